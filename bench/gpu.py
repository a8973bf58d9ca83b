"""A GPU set-up check in a few minutes: ``python -m bench.gpu`` (or ``make gpu-check``).

On the machine's GPU (``--device``, default ``cuda``), with a small simulated dataset of the mini
study's kind (``n`` subtomograms of 34³, 22 classes, SNR 0.06, made once into ``--data``):

1. the precision ``auto`` chooses (bf16 where the GPU runs it natively, else fp16 with the
   gradient scaler) and the device's name;
2. the mini DSM-Net trained for one epoch, then resumed (``--resume``) for a second;
3. the GPU-written checkpoint loaded with a plain ``torch.load`` (no ``map_location``), then
   evaluated and used for prediction **on the CPU**, as a user without a GPU would;
4. training throughput on the device (samples/s of the second epoch) and the loader's.

On a machine without CUDA it says so and exits 0; ``--device cpu`` runs the same steps on the
CPU (the test suite does, on a few particles).

Run: ``python -m bench.gpu [--device cuda] [--n 1024] [--data /tmp/dsmnet-bench-gpu]``
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import main


def _dataset(root: Path, n: int) -> Path:
    from dsmnet.simulate.generate import SimulationConfig, simulate
    from dsmnet.simulate.preview import is_dataset

    if not is_dataset(root):
        print(f"simulating {n} subtomograms of 34³ into {root} (once)", file=sys.stderr)
        config = SimulationConfig(n=n, classes=22, snr=0.06, seed=4, box=34, tomogram=(160, 320, 320))
        simulate(config, root, overwrite=True)
    return root


def run(device: str = "cuda", n: int = 1024, data: str = "/tmp/dsmnet-bench-gpu", batch: int = 16) -> dict:
    from dsmnet.infer.predict import predict
    from dsmnet.reproduce.scales import SCALES, variant
    from dsmnet.training.evaluate import evaluate
    from dsmnet.training.loop import train
    from dsmnet.training.runtime import auto_precision, make_runtime
    from dsmnet.training.settings import TrainConfig

    if device.startswith("cuda") and not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine (torch.cuda.is_available() is False): nothing to check"}
    rt = make_runtime(device)
    result: dict = {"device": rt.signature(), "precision": auto_precision(rt.device)}
    root = _dataset(Path(data), n)
    spec = variant("dsmnet", None, {}, SCALES["mini"])
    work = Path(tempfile.mkdtemp(prefix="dsmnet-gpu-"))
    try:
        run_dir = work / "run"
        quiet = dict(device=device, augment="rotate", progress=False, batch_size=batch, in_memory=True)
        train(spec, root, run_dir, TrainConfig(epochs=1, **quiet), log=lambda _: None)
        summary = train(spec, root, run_dir, TrainConfig(epochs=2, **quiet), resume=True, log=lambda _: None)
        state = torch.load(run_dir / "best.pt")  # plain: every tensor must come back on the CPU
        devices = {t.device.type for t in state["step"].values()}
        history = state["history"]
        result.update(
            epochs=summary["epochs"],
            resumed=len(state["revisions"]) >= 1 and history[-1]["epoch"] == 2,
            checkpoint_devices=sorted(devices),
            train_samples_per_s=history[-1]["train_samples_per_s"],
            val_acc=history[-1].get("val_acc_cls"),
        )
        started = time.perf_counter()
        metrics = evaluate(run_dir, root, "val", work / "evaluate", device="cpu")
        result["cpu_evaluation"] = {"acc": metrics["metrics"]["acc_cls"], "seconds": time.perf_counter() - started}
        predicted = predict(run_dir, root, work / "predict", device="cpu", progress=False, log=lambda _: None)
        result["cpu_prediction_particles"] = predicted["particles"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def report(r: dict) -> str:
    if "skipped" in r:
        return r["skipped"]
    ok = r["checkpoint_devices"] == ["cpu"] and r["epochs"] == 2
    return "\n".join(
        [
            f"device: {r['device']}",
            f"precision chosen by auto: {r['precision']}",
            f"trained 1 epoch, resumed for a 2nd: {r['epochs']} epochs (validation accuracy {r['val_acc']:.3f})",
            f"checkpoint tensors loaded by a plain torch.load on: {', '.join(r['checkpoint_devices'])}",
            f"evaluated on the CPU: accuracy {r['cpu_evaluation']['acc']:.3f} ({r['cpu_evaluation']['seconds']:.1f} s)",
            f"predicted on the CPU: {r['cpu_prediction_particles']} particles",
            f"training throughput on the device: {r['train_samples_per_s']:,.0f} samples/s",
            "set-up OK" if ok else "set-up NOT OK: see above",
        ]
    )


if __name__ == "__main__":
    main(sys.modules[__name__])

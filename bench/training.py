"""Training throughput of DSM-Net at 40³ on this machine, against a naive hand-written loop.

- peak: an fp32 (and a bf16) 2048² matrix multiply, GFLOP/s;
- naive: ``bench/handwritten.py``'s DSM-Net, a plain PyTorch loop as one writes it first
  (fp32, NCDHW, ``DataLoader`` over a ``TensorDataset``, Adam, the three losses by hand);
- engine: the spec-built DSM-Net through dsmnet's training step (``training/loop.py``): in-memory
  batches, channels-last 3D layout, bf16 autocast where the CPU has native bf16.

FLOPs per training sample (forward + backward) are counted once by ``FlopCounterMode``; each
loop is set against the matmul peak of the precision it computes in (bf16 work against the bf16
peak: on a CPU with AMX that peak is several times the fp32 one). The engine runs once more in a
subprocess with glibc's default allocator (``DSMNET_KEEP_FREED_MEMORY=0``), to show what
``training.runtime.keep_freed_memory`` buys. Required: engine ≥ 1.5 × naive.

Run: ``python -m bench.training [--batch 32] [--steps 5]``
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

import dsmnet
from bench.common import interleaved, matmul_gflops
from bench.handwritten import HandDSMNet
from dsmnet.training.runtime import keep_freed_memory, make_runtime
from dsmnet.training.step import TrainStep


def _data(n: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 40, 40, 40, generator=g)
    y = torch.randint(0, 22, (n,), generator=g)
    m = torch.randint(0, 2, (n, 40, 40, 40), generator=g)
    d = torch.randn(n, 1, 40, 40, 40, generator=g)
    return x, y, m, d


def train_flops_per_sample() -> float:
    model = dsmnet.build_model(dsmnet.load_spec("dsmnet"))
    x, y, m, d = _data(2)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        loss = F.cross_entropy(out["cls"], y) + 10 * F.cross_entropy(out["seg"], m) + F.mse_loss(out["rec"], d)
        loss.backward()
    return counter.get_total_flops() / 2


def naive(batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = HandDSMNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    loader = DataLoader(TensorDataset(*_data(batch * (steps + 2))), batch_size=batch, shuffle=True)
    model.train()
    start = None
    for i, (x, y, m, d) in enumerate(loader):
        if i == 2:
            start = time.perf_counter()
        opt.zero_grad()
        logits, seg, rec = model(x)
        loss = F.cross_entropy(logits, y) + 10 * F.cross_entropy(seg, m) + F.mse_loss(rec, d)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def engine(batch: int, steps: int) -> tuple[float, str]:
    torch.manual_seed(0)
    rt = make_runtime("cpu")
    keep_freed_memory()  # as training does (no-op with DSMNET_KEEP_FREED_MEMORY=0)
    spec = dsmnet.load_spec("dsmnet")
    step = TrainStep(rt.module(dsmnet.build_model(spec)), dsmnet.build_loss(spec))
    opt = torch.optim.Adam(step.parameters(), lr=1e-3, betas=(0.9, 0.99))
    x, y, m, d = _data(batch * (steps + 2))
    step.train()
    start = None
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        sl = slice(i * batch, (i + 1) * batch)
        opt.zero_grad(set_to_none=True)
        with rt.autocast():
            result = step(rt.input(x[sl]), {"class": y[sl], "mask": m[sl], "density": d[sl]}, None)
        result.total.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start), rt.describe()


def _engine_default_allocator(batch: int, steps: int) -> float:
    import json
    import os
    import subprocess
    import sys

    code = f"import json; from bench.training import engine; print(json.dumps(engine({batch}, {steps})[0]))"
    env = {**os.environ, "DSMNET_KEEP_FREED_MEMORY": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def run(batch: int = 32, steps: int = 5) -> dict:
    flops = train_flops_per_sample()
    peak = matmul_gflops()
    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    peak_bf16 = 2 * 2048**3 / interleaved({"mm": lambda: a @ a}, 5)["mm"] / 1e9
    default_allocator = _engine_default_allocator(batch, steps)
    n = naive(batch, steps)
    e, how = engine(batch, steps)
    return {
        "batch": batch,
        "gflop_per_sample": flops / 1e9,
        "peak_fp32": peak,
        "peak_bf16": peak_bf16,
        "naive": n,
        "engine": e,
        "engine_runtime": how,
        "ratio": e / n,
        "engine_default_allocator": default_allocator,
    }


def report(r: dict) -> str:
    g = r["gflop_per_sample"]
    kind = "bf16" if "bf16" in r["engine_runtime"] else "fp32"
    peak = r["peak_bf16"] if kind == "bf16" else r["peak_fp32"]
    return "\n".join(
        [
            f"DSM-Net training at 40³, batch {r['batch']}: {g:.2f} GFLOP per sample (forward + backward)",
            f"peak matmul: fp32 {r['peak_fp32']:.0f} GFLOP/s, bf16 {r['peak_bf16']:.0f} GFLOP/s",
            f"naive loop (fp32, NCDHW, DataLoader): {r['naive']:.1f} samples/s = {r['naive'] * g:.0f} GFLOP/s "
            f"= {r['naive'] * g / r['peak_fp32']:.2f} of fp32 peak",
            f"engine ({r['engine_runtime']}): {r['engine']:.1f} samples/s = {r['engine'] * g:.0f} GFLOP/s "
            f"= {r['engine'] * g / peak:.2f} of the {kind} peak",
            f"engine with glibc's default allocator: {r['engine_default_allocator']:.1f} samples/s "
            f"(keeping freed memory: {r['engine'] / r['engine_default_allocator']:.2f}×)",
            f"engine / naive = {r['ratio']:.2f}× (≥ 1.5 required)",
        ]
    )


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

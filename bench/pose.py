"""What a pose head and its loss add to a DSM-Net training step.

The study's DSM-Net (34³ boxes, widths 16/32/64, batch 32, the converged scale's network) timed
through dsmnet's training step on one thread (as the study's workers run), alone and with a pose
head (``hidden: [256]``) trained by the turned-density loss: one hypothesis against the default 24,
the loss compared on every voxel (``stride: 1``) against every second one along each axis (the
default ``stride: 2``). Each hypothesis turns the particle's density once, so the loss's cost grows
with K × (box / stride)³. The variants are timed interleaved.

Run: ``python -m bench.pose [--batch 32] [--repeats 3]``
"""

from __future__ import annotations

import torch

from bench.common import interleaved, machine
from dsmnet.core.build import build_loss, build_model
from dsmnet.core.rotations import random_rotations
from dsmnet.specs import three_task
from dsmnet.training.runtime import make_runtime
from dsmnet.training.step import TrainStep

VARIANTS = {  # label: (hypotheses, stride), None: no pose head
    "DSM-Net": None,
    "+ pose, K = 1, stride 1": (1, 1),
    "+ pose, K = 24, stride 1": (24, 1),
    "+ pose, K = 24, stride 2 (default)": (24, 2),
}


def _step(variant: tuple[int, int] | None, batch: int, box: int):
    torch.manual_seed(0)
    spec = three_task("bench", box=box, widths=[16, 32, 64], hidden=1024, classes=22, batch=batch, epochs=1)
    if variant is not None:
        spec["heads"]["pose"] = {"type": "pose", "hidden": [256], "hypotheses": variant[0]}
        spec["losses"]["pose"] = {"type": "turned_density", "weight": 1, "stride": variant[1]}
    rt = make_runtime("cpu")
    step = TrainStep(rt.module(build_model(spec)), build_loss(spec)).train()
    optimiser = torch.optim.Adam(step.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, box, box, box, generator=g)
    density = torch.randn(batch, 1, box, box, box, generator=g).clamp_min(0)
    targets = {
        "class": torch.randint(0, 22, (batch,), generator=g),
        "mask": (density[:, 0] > 1).long(),
        "density": density,
        "pose": random_rotations(batch, g),
    }

    def once() -> None:
        optimiser.zero_grad(set_to_none=True)
        with rt.autocast():
            result = step(rt.input(x), targets, None)
        result.total.backward()
        optimiser.step()

    return once, rt.describe()


def run(batch: int = 32, box: int = 34, repeats: int = 3) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps, how = {}, ""
        for label, variant in VARIANTS.items():
            steps[label], how = _step(variant, batch, box)
        t = interleaved(steps, repeats)
    finally:
        torch.set_num_threads(threads)
    return {"batch": batch, "box": box, "runtime": how, "smp_s": {k: batch / v for k, v in t.items()}}


def report(r: dict) -> str:
    s = r["smp_s"]
    base = s["DSM-Net"]
    lines = [
        f"DSM-Net training step, batch {r['batch']} of {r['box']}³, one thread ({r['runtime']})",
        f"machine: {machine()}",
    ]
    lines += [f"{label:36s} {v:6.1f} smp/s  ({base / v:.2f}× DSM-Net's time)" for label, v in s.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

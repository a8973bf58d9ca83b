"""Training on binned boxes (``input.bin: 2``) against the box's own voxels.

The simulated data are band-limited at 1/(4 nm) on a 1 nm grid, so a box Fourier-cropped by 2
(2 nm voxels, Nyquist 1/(4 nm)) holds every frequency the data has: the network sees the same
information on 8× fewer voxels, and returns its per-voxel outputs resized back to the box. This
benchmark times, at the mini scale's sizes (34³, widths 16/32/64, batch 16), the engine's
training step of the Cls subnet and DSM-Net at ``bin`` 1 and 2 (the two interleaved, medians),
and the ``rotate`` augmentation of a batch, which stays at the box's voxels and so bounds what
binning can gain in a real epoch (the data loader runs it in its own thread).

Run: ``python -m bench.binning [--repeats 5]``
"""

from __future__ import annotations

import torch

from bench.common import interleaved, machine
from bench.workers import training_step

ROWS = {"Cls subnet": ("cls",), "DSM-Net": ("cls", "seg", "rec")}


def _spec(heads: tuple[str, ...], factor: int):
    from dsmnet.core.build import load_spec
    from dsmnet.reproduce.scales import SCALES, variant

    data = variant("dsmnet", heads, {}, SCALES["mini"]).to_dict()
    data["input"]["bin"] = factor
    return load_spec(data)


def _augmentation(batch: int, box: tuple[int, int, int]):
    from dsmnet.training.augment import augment, measured_frequencies

    measured = measured_frequencies(None, box, 10.0)
    g = torch.Generator().manual_seed(0)
    data = {
        "x": torch.randn(batch, 1, *box),
        "mask": torch.randint(0, 2, (batch, *box)),
        "density": torch.randn(batch, 1, *box),
    }
    return lambda: augment(data, "rotate", g, measured)


def run(repeats: int = 5) -> dict:
    out: dict = {"rows": {}}
    for row, heads in ROWS.items():
        steps = {f: training_step(_spec(heads, f)) for f in (1, 2)}
        t = interleaved({f: one for f, (one, _) in steps.items()}, repeats)
        batch = steps[1][1]
        out["rows"][row] = {f: batch / t[f] for f in steps}
    spec = _spec(("cls",), 1)
    t = interleaved({"rotate": _augmentation(spec.training.batch_size, spec.input.shape)}, repeats)["rotate"]
    out["rotate"] = spec.training.batch_size / t
    return out


def report(r: dict) -> str:
    lines = [
        f"mini scale (34³, widths 16/32/64, batch 16), training step; {machine()}",
        f"{'row':<11} {'bin 1 (34³)':>16} {'bin 2 (17³)':>16} {'bin 2 / bin 1':>14}",
    ]
    for row, v in r["rows"].items():
        lines.append(f"{row:<11} {v[1]:>10.1f} smp/s {v[2]:>10.1f} smp/s {v[2] / v[1]:>14.2f}")
    lines.append(f"rotate augmentation of a batch (all heads' targets, 34³): {r['rotate']:.1f} smp/s")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

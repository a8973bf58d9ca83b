"""The ``rotate`` augmentation against a hand-written twin of its first version.

``rotate`` turns every particle of a batch by its own random rotation, then keeps only the
frequencies the data measures. In the study each training is a single-threaded worker, and the
data loader's thread that augments shares that worker's core with the training step, so every
millisecond here is a millisecond of the epoch. The twin builds the sampling grid with
``F.affine_grid`` once per volume (input, mask, density) and resamples each alone; the engine
builds the grid once per batch, one term per axis, and resamples the input and density in one
call. Both are timed interleaved on one thread at the mini scale's batch (16 boxes of 34³, every
head's targets), with their outputs compared.

Second, what a classifier's batch costs to load (read from the dataset's files, as training does by
default, and augment with ``rotate``): with every target the dataset has, as before, against only
the targets its heads train on (the class), on a small simulated dataset of 32³ boxes (simulated
once into ``--data`` and reused).

Run: ``python -m bench.augment [--repeats 7]``
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.common import interleaved, machine


def _twin(batch: dict[str, torch.Tensor], rotations: torch.Tensor, measured: torch.Tensor) -> dict:
    """The first version: one ``affine_grid`` and one ``grid_sample`` per volume."""

    def rotate(v: torch.Tensor, mode: str) -> torch.Tensor:
        sizes = v.shape[-1:-4:-1]
        centre = torch.tensor([(2 * (n // 2) + 1) / n - 1 for n in sizes])
        theta = torch.cat([rotations, centre[None, :, None] - rotations @ centre[None, :, None]], dim=2)
        grid = F.affine_grid(theta, list(v.shape), align_corners=False)
        return F.grid_sample(v, grid, mode=mode, padding_mode="zeros", align_corners=False)

    x = batch["x"]
    spectrum = torch.fft.rfftn(rotate(x, "bilinear"), dim=(-3, -2, -1)) * measured
    flat = torch.fft.irfftn(spectrum, s=x.shape[-3:], dim=(-3, -2, -1)).flatten(1)
    out = {"x": ((flat - flat.mean(1, keepdim=True)) / flat.std(1).clamp_min(1e-6)[:, None]).reshape(x.shape)}
    out["mask"] = rotate(batch["mask"][:, None].float(), "nearest")[:, 0].to(batch["mask"].dtype)
    out["density"] = rotate(batch["density"], "bilinear")
    return out


def _loading(data: str, batch: int, repeats: int) -> dict[str, float]:
    """Samples/s of reading and augmenting a classifier's batch: every target against the class only."""
    from pathlib import Path

    from bench.memory import _dataset
    from dsmnet.dataset.subtomograms import load_dataset
    from dsmnet.training.augment import augment, measured_frequencies

    root = _dataset(Path(data), 64, 64)
    dataset = load_dataset(root)
    measured = measured_frequencies(root, dataset.box, dataset.voxel_size)
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(batch)

    def load(kinds):
        x, targets, _ = dataset.batch(idx, kinds)
        return augment({"x": x, **targets}, "rotate", g, measured)

    t = interleaved({"all": lambda: load(None), "heads": lambda: load({"class"})}, repeats)
    return {k: batch / v for k, v in t.items()}


def run(repeats: int = 7, batch: int = 16, box: int = 34, data: str = "/tmp/dsmnet-bench-augment") -> dict:
    from dsmnet.training.augment import measured_frequencies, random_rotations, rotated_batch

    data_dir = data

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the study's workers
    try:
        shape = (box,) * 3
        measured = measured_frequencies(None, shape, 10.0)
        g = torch.Generator().manual_seed(0)
        data = {"x": torch.randn(batch, 1, *shape, generator=g), "density": torch.randn(batch, 1, *shape, generator=g)}
        data["mask"] = (data["density"][:, 0] > 0.5).long()
        rotations = random_rotations(batch, g)
        engine, twin = rotated_batch(data, rotations, measured), _twin(data, rotations, measured)
        differ = {k: float((engine[k].float() - twin[k].float()).abs().max()) for k in ("x", "density")}
        differ["mask voxels"] = float((engine["mask"] != twin["mask"]).float().mean())
        t = interleaved(
            {
                "engine": lambda: rotated_batch(data, rotations, measured),
                "twin": lambda: _twin(data, rotations, measured),
            },
            repeats,
        )
        loading = _loading(data_dir, batch, repeats)
    finally:
        torch.set_num_threads(threads)
    smp_s = {k: batch / v for k, v in t.items()}
    return {"batch": batch, "box": box, "smp_s": smp_s, "differ": differ, "loading": loading}


def report(r: dict) -> str:
    s = r["smp_s"]
    d, ld = r["differ"], r["loading"]
    return "\n".join(
        [
            f"rotate augmentation, batch {r['batch']} of {r['box']}³ (input, mask, density), timed on 1 thread",
            f"machine: {machine()}",
            f"engine {s['engine']:.1f} smp/s, twin {s['twin']:.1f} smp/s: engine / twin {s['engine'] / s['twin']:.2f}",
            f"largest difference: input {d['x']:.1e}, density {d['density']:.1e}; "
            f"mask voxels that differ {d['mask voxels']:.1e}",
            f"a classifier's batch read and augmented (32³): every target {ld['all']:.1f} smp/s, "
            f"the heads' only {ld['heads']:.1f} smp/s: {ld['heads'] / ld['all']:.2f}×",
        ]
    )


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

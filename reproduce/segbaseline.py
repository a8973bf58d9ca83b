"""The classical segmentation baseline every mIoU row is put beside: the smoothed box thresholded
inside a sphere about the centre, the connected piece nearest the centre kept.

Each normalised subtomogram is smoothed with a Gaussian (σ voxels); the voxels above ``level`` ×
the smoothed box's own standard deviation and within ``radius`` voxels of the centre are the
candidates, and of their connected pieces (6-connected) the one holding — or nearest to — the centre
voxel is the target. σ, the radius and the level are fitted on the run's training split for the
highest mIoU (a grid; the particles are centred, so the sphere alone is already a prior), then
scored on the same test particles as the networks with the same metric (dataset-level mIoU over
background and target, :class:`dsmnet.training.metrics.Confusion`).

Run alone: ``dsmnet baseline --data DATASET --segmentation [--test TEST_DATASET] [--seed 0]``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import load_dataset, stratified_split
from dsmnet.training.metrics import Confusion

GRID = {"sigma": (1.5, 2.0, 2.5), "radius": (6, 8, 10, 12), "level": (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)}


def grid_record() -> dict[str, list[float]]:
    """:data:`GRID` as a record keeps it (JSON lists): a kept fit is reused only on the same grid."""
    return {k: list(v) for k, v in GRID.items()}


FIT = 512  # training particles the grid is searched on (the first of the seeded split's training part)


def _nearest_piece(candidates: np.ndarray, centre: tuple[int, ...]) -> np.ndarray:
    labels, n = ndimage.label(candidates)
    if n == 0:
        return candidates
    which = labels[centre]
    if not which:  # the centre voxel is not a candidate: the piece nearest to it
        nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)[1]
        which = labels[tuple(nearest[(slice(None), *centre)])]
    return labels == which


def segment(smoothed: np.ndarray, radius: float, level: float) -> np.ndarray:
    """``[N, D, H, W]`` smoothed subtomograms → ``[N, D, H, W]`` boolean target masks."""
    shape = smoothed.shape[1:]
    centre = tuple(s // 2 for s in shape)
    r = np.sqrt(((np.indices(shape) - np.array(centre)[:, None, None, None]) ** 2).sum(0))
    inside = r <= radius
    out = np.zeros(smoothed.shape, bool)
    for i, v in enumerate(smoothed):
        out[i] = _nearest_piece((v > level * v.std()) & inside, centre)
    return out


def _smooth(volumes: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([ndimage.gaussian_filter(v.astype(np.float32), sigma) for v in volumes])


def _confusion(pred: np.ndarray, truth: np.ndarray) -> Confusion:
    c = Confusion(2)
    c.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(truth.astype(np.int64)))
    return c


def _volumes_and_masks(root: Path, indices=None, data=None) -> tuple[np.ndarray, np.ndarray]:
    """The normalised boxes and target masks of a dataset folder (``indices``: those particles only)."""
    data = data if data is not None else load_dataset(root)
    if "mask" not in data.targets:
        raise DataError(f"{root}: no masks (rlnMaskName) to fit or score a segmentation baseline on")
    which = slice(None) if indices is None else torch.as_tensor(np.asarray(indices))
    return data.x[which][:, 0].numpy(), data.targets["mask"][which].numpy() > 0


def fit(volumes: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The grid's σ, radius and level with the highest mIoU on ``volumes`` against ``masks``."""
    best, chosen = -1.0, {}
    for sigma in GRID["sigma"]:
        smoothed = _smooth(volumes, sigma)
        for radius, level in itertools.product(GRID["radius"], GRID["level"]):
            miou = _confusion(segment(smoothed, radius, level), masks).miou
            if miou > best:
                best, chosen = miou, {"sigma": sigma, "radius": radius, "level": level, "fit_miou": miou}
    return chosen


def classical_segmentation(data_dir: Path, seed: int, test_dir: Path | None = None) -> dict[str, Any]:
    """Fit the baseline on ``data_dir``'s training split (seeded like the runs; its first
    :data:`FIT` particles); score it on that split's test particles, or on every particle of
    ``test_dir`` (an independent test set). Returns a metrics record shaped like an evaluation's
    (``metrics.pixel_acc_seg``, ``metrics.miou_seg``, ``iou_seg``)."""
    data = load_dataset(data_dir)
    split = stratified_split(data.labels, seed)
    train = np.asarray(split["train"])[:FIT]
    params = fit(*_volumes_and_masks(data_dir, train, data))
    volumes, truth = _volumes_and_masks(test_dir) if test_dir else _volumes_and_masks(data_dir, split["test"], data)
    confusion = _confusion(segment(_smooth(volumes, params["sigma"]), params["radius"], params["level"]), truth)
    return {
        "run": "classical segmentation (the smoothed box thresholded inside a centred sphere, the piece nearest "
        "the centre)",
        "data": str(test_dir or data_dir),
        "particles": int(len(volumes)),
        "fitted": {**params, "on": f"{len(train)} training particles (seed {seed})"},
        "grid": grid_record(),
        "metrics": {"pixel_acc_seg": confusion.accuracy, "miou_seg": confusion.miou},
        "iou_seg": confusion.iou(),
    }

"""Datasets in dsmnet's format (see :mod:`dsmnet.dataset.layout`), held in memory as tensors.

Each subtomogram is normalised to zero mean and unit variance. Masks and densities may be
missing for some or all particles (experimental data): ``present`` records which targets each
particle has, and the loss leaves a missing one out of that particle's loss.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, read_mrc
from dsmnet.dataset.star import read_star

SPLITS = ("train", "val", "test")
RATIOS = (0.8, 0.1, 0.1)  # the paper's 8:1:1


@dataclass
class Subtomograms:
    """A dataset in memory.

    Attributes:
        x: ``[N, 1, D, H, W]`` normalised subtomograms.
        targets: ``class`` ``[N]`` (0-based), ``mask`` ``[N, D, H, W]`` int64-able, ``density``
            ``[N, 1, D, H, W]``; a kind is absent when no particle has it.
        present: per kind, a boolean ``[N]``.
        classes: class names, index = class id.
        table: the particles table as read.
        voxel_size: Å per voxel.
    """

    x: torch.Tensor
    targets: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    classes: list[str]
    table: pd.DataFrame
    voxel_size: float
    root: Path

    density_scale: float = 1.0  # density targets are held multiplied by this (see training.loop.density_scale)

    def __len__(self) -> int:
        return self.x.shape[0]

    def scale_density(self, scale: float) -> None:
        """Hold the density targets multiplied by ``scale`` (a run's ``density_scale``)."""
        if "density" in self.targets and scale != self.density_scale:
            self.targets["density"] = self.targets["density"] * (scale / self.density_scale)
        self.density_scale = scale

    @property
    def fingerprint(self) -> str:
        """Identifies the particle list (which files, in which order), to match a run's split."""
        names = "\n".join(str(v) for v in self.table[layout.IMAGE])
        return hashlib.sha256(names.encode()).hexdigest()

    @property
    def box(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[2:])  # type: ignore[return-value]

    @property
    def labels(self) -> np.ndarray:
        """Class ids (−1 where unknown)."""
        if "class" not in self.targets:
            return np.full(len(self), -1)
        return np.where(self.present["class"].numpy(), self.targets["class"].numpy(), -1)


def normalise(volume: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (a constant volume becomes zeros)."""
    std = float(volume.std())
    return (volume - volume.mean()) / (std if std > 0 else 1.0)


def check_voxels(volume: np.ndarray, path: Path) -> None:
    """Refuse a subtomogram no network should be given: NaN or infinite voxels, or a constant box
    (nothing to normalise; typically a box cut outside the tomogram's data)."""
    finite = np.isfinite(volume)
    if not finite.all():
        raise DataError(f"{path}: {int((~finite).sum())} NaN or infinite voxel(s); fix or drop this subtomogram")
    if float(volume.max()) == float(volume.min()):
        raise DataError(f"{path}: every voxel is {float(volume.flat[0]):g} (a constant box); drop this subtomogram")


def _cell(row: pd.Series, column: str) -> str | None:
    value = row.get(column)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    value = str(value).strip()
    return value if value and value not in ("<NA>", "None") else None


def read_classes(root: Path) -> list[str] | None:
    path = root / layout.CLASSES
    if not path.is_file():
        return None
    try:
        return [c["name"] for c in json.loads(path.read_text())]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a class list ({exc})") from None


def load_dataset(
    root: str | Path,
    classes: list[str] | None = None,
    box: tuple[int, ...] | None = None,
    targets: bool = True,
) -> Subtomograms:
    """Read a dataset folder into memory.

    Args:
        root: the folder with ``particles.star``.
        classes: class names to map ``dsmClassName`` onto (e.g. a checkpoint's); default the
            dataset's ``classes.json`` (or the names found in the table).
        box: the subtomogram size the model expects; a different one is an error.
        targets: read classes, masks and densities (off: subtomograms only, for prediction).

    Raises:
        DataError: naming the file that is missing, unreadable or inconsistent.
    """
    root = Path(root)
    star = root / layout.PARTICLES
    table = read_star(star)
    if layout.IMAGE not in table.columns:
        raise DataError(f"{star}: no {layout.IMAGE} column (the subtomogram of each particle)")
    own = read_classes(root) if targets else None
    if classes and own and own != classes:
        raise DataError(
            f"{root / layout.CLASSES}: the class names ({', '.join(own)}) do not match the model's "
            f"({', '.join(classes)})"
        )
    names = classes or own
    if names is None and targets and layout.CLASS_NAME in table.columns:
        names = sorted({n for n in table[layout.CLASS_NAME].astype(str) if n and n != "<NA>"})
    n = len(table)
    xs, masks, densities, labels = [], [], [], []
    has = {"class": np.zeros(n, bool), "mask": np.zeros(n, bool), "density": np.zeros(n, bool)}
    voxel = None
    for i, (_, row) in enumerate(table.iterrows()):
        sub, vs = read_mrc(root / _cell(row, layout.IMAGE))
        if box is not None and tuple(sub.shape) != tuple(box):
            raise DataError(
                f"{root / _cell(row, layout.IMAGE)}: subtomogram is {'×'.join(map(str, sub.shape))}, "
                f"but the model takes {'×'.join(map(str, box))}"
            )
        if xs and sub.shape != xs[0].shape:
            raise DataError(f"{root / _cell(row, layout.IMAGE)}: size {sub.shape} differs from {xs[0].shape}")
        voxel = voxel or vs
        check_voxels(sub, root / _cell(row, layout.IMAGE))
        xs.append(normalise(sub).astype(np.float32))
        name = _cell(row, layout.CLASS_NAME) if targets else None
        if name is not None and names is not None:
            if name not in names:
                raise DataError(f"{star}: particle {i + 1} has class {name!r}, not among {', '.join(names)}")
            labels.append(names.index(name))
            has["class"][i] = True
        else:
            labels.append(0)
        for kind, column, store, dtype in (
            ("mask", layout.MASK, masks, np.int8),
            ("density", layout.DENSITY, densities, np.float32),
        ):
            path = _cell(row, column) if targets else None
            if path is None:
                store.append(None)
                continue
            vol, _ = read_mrc(root / path, dtype=dtype)
            if vol.shape != sub.shape:
                raise DataError(f"{root / path}: size {vol.shape} differs from its subtomogram's {sub.shape}")
            store.append(vol)
            has[kind][i] = True
    if n == 0:
        raise DataError(f"{star}: no particles")
    shape = xs[0].shape
    targets, present = {}, {}
    if has["class"].any():
        targets["class"] = torch.tensor(labels)
    for kind, store, dtype in (("mask", masks, np.int8), ("density", densities, np.float32)):
        if has[kind].any():
            filled = [v if v is not None else np.zeros(shape, dtype) for v in store]
            t = torch.from_numpy(np.stack(filled))
            targets[kind] = t if kind == "mask" else t[:, None]
    for kind in targets:
        present[kind] = torch.from_numpy(has[kind])
    x = torch.from_numpy(np.stack(xs))[:, None]
    return Subtomograms(x, targets, present, list(names or []), table, float(voxel or 0.0), root)


def stratified_split(
    labels: np.ndarray, seed: int, ratios: tuple[float, float, float] = RATIOS
) -> dict[str, list[int]]:
    """Seeded split keeping each class's proportions in train/val/test (unlabelled go to train)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        if cls < 0:
            out["train"] += idx.tolist()
            continue
        n_val = int(round(len(idx) * ratios[1]))
        n_test = int(round(len(idx) * ratios[2]))
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test : n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val :].tolist()
    return {k: sorted(v) for k, v in out.items()}

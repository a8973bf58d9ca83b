"""Datasets in dsmnet's format (see :mod:`dsmnet.dataset.layout`), read lazily.

Subtomograms, masks and densities stay on disk and are read when a batch asks for them, so the
memory a dataset costs does not grow with its number of particles (``in_memory=True`` reads
them all at once instead). Only the particles table, the class labels and which targets each
particle has are held. Every subtomogram is checked once when the dataset is opened (size, NaN
or infinite voxels, a constant box), so bad data is refused before training starts, naming the
file. Each subtomogram is normalised to zero mean and unit variance when read. Masks and
densities may be missing for some or all particles (experimental data): ``present`` records
which targets each particle has, and the loss leaves a missing one out of that particle's loss.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, read_mrc, read_volume
from dsmnet.dataset.poses import read_poses
from dsmnet.dataset.star import read_star

SPLITS = ("train", "val", "test")
RATIOS = (0.8, 0.1, 0.1)  # the paper's 8:1:1


_POOL: ThreadPoolExecutor | None = None


def _readers() -> ThreadPoolExecutor:
    """The threads that read a batch's files side by side (file reads and numpy release the
    GIL): as many as the process may use cores, at most 8."""
    global _POOL
    if _POOL is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        _POOL = ThreadPoolExecutor(max(1, min(8, cores)), thread_name_prefix="dsmnet-read")
    return _POOL


class Volumes:
    """One MRC volume per item, read when indexed: ``v[i]``, ``v[a:b]``, ``v[indices]`` or
    ``v[bool_mask]`` give a stacked tensor ``[n, *item_shape]`` (an int index: ``item_shape``),
    like indexing a tensor. A missing file (``None``) reads as zeros."""

    def __init__(self, paths: list[Path | None], item_shape: tuple[int, ...], kind: str, scale: float = 1.0):
        self.paths = paths
        self.item_shape = item_shape
        self.kind = kind  # "x" (normalised subtomograms), "mask" or "density"
        self.scale = scale  # densities are multiplied by it (a run's density_scale)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.item_shape)

    @property
    def dtype(self) -> type:
        return np.int8 if self.kind == "mask" else np.float32

    def read(self, i: int) -> np.ndarray:
        path = self.paths[i]
        volume_shape = self.item_shape[-3:]
        if path is None:
            return np.zeros(self.item_shape, self.dtype)
        volume = read_volume(path, volume_shape, self.dtype)
        if tuple(volume.shape) != tuple(volume_shape):
            raise DataError(f"{path}: size {volume.shape} differs from its subtomogram's {volume_shape}")
        if self.kind == "x":
            volume = normalise(volume).astype(np.float32)
        elif self.kind == "density" and self.scale != 1.0:
            volume = volume * np.float32(self.scale)
        return volume.reshape(self.item_shape)

    def __getitem__(self, index) -> torch.Tensor:
        rest = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.dim() == 0):
            out = torch.from_numpy(self.read(int(index)))
        else:
            if isinstance(index, slice):
                items = range(*index.indices(len(self)))
            else:
                array = index.numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
                items = np.flatnonzero(array) if array.dtype == bool else array.reshape(-1)
            batch = np.empty((len(items), *self.item_shape), self.dtype)

            def fill(j: int) -> None:  # each item read straight into its place, on the reader threads
                batch[j] = self.read(int(items[j]))

            list(_readers().map(fill, range(len(items))) if len(items) > 1 else map(fill, range(len(items))))
            out = torch.from_numpy(batch)
            rest = (slice(None), *rest) if rest else ()  # the other indices apply to each item
        return out[rest] if rest else out

    def load(self) -> torch.Tensor:
        """Every item, in memory."""
        return self[:]


@dataclass
class Subtomograms:
    """A dataset: its table and labels in memory, its volumes read when indexed.

    Attributes:
        x: ``[N, 1, D, H, W]`` normalised subtomograms (:class:`Volumes`, or a tensor in memory).
        targets: ``class`` ``[N]`` (0-based tensor), ``mask`` ``[N, D, H, W]`` int8, ``density``
            ``[N, 1, D, H, W]`` (:class:`Volumes`, or tensors), ``pose`` ``[N, 3, 3]`` (the
            rotation of the table's ``rlnAngleRot/Tilt/Psi``, when it has them); a kind is absent
            when no particle has it.
        present: per kind, a boolean ``[N]``.
        classes: class names, index = class id.
        table: the particles table as read.
        voxel_size: Å per voxel.
    """

    x: Volumes | torch.Tensor
    targets: dict[str, Volumes | torch.Tensor]
    present: dict[str, torch.Tensor]
    classes: list[str]
    table: pd.DataFrame
    voxel_size: float
    root: Path

    density_scale: float = 1.0  # density targets are held multiplied by this (see training.priors.density_scale)

    def __len__(self) -> int:
        return self.x.shape[0]

    def scale_density(self, scale: float) -> None:
        """Hold the density targets multiplied by ``scale`` (a run's ``density_scale``)."""
        density = self.targets.get("density")
        if isinstance(density, Volumes):
            density.scale = scale
        elif density is not None and scale != self.density_scale:
            self.targets["density"] = density * (scale / self.density_scale)
        self.density_scale = scale

    def nbytes(self, kinds: Collection[str]) -> int:
        """Bytes the volumes of ``kinds`` (``x`` for the subtomograms, ``mask``, ``density``) take in memory."""
        volumes = {"x": self.x, **self.targets}
        return sum(
            math.prod(v.shape) * np.dtype(v.dtype if isinstance(v, Volumes) else v.numpy().dtype).itemsize
            for k, v in volumes.items()
            if k in kinds and k != "class"
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the particle list (which files, in which order), to match a run's split."""
        names = "\n".join(str(v) for v in self.table[layout.IMAGE])
        return hashlib.sha256(names.encode()).hexdigest()

    @property
    def box(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[2:])  # type: ignore[return-value]

    def batch(
        self, idx: torch.Tensor, kinds: Collection[str] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Subtomograms, targets and which targets are present, for the particles ``idx``; only
        the target ``kinds`` given (those a model trains on: a classifier's batches then read no
        masks or densities), or every kind the dataset has."""
        wanted = self.targets.keys() if kinds is None else [k for k in self.targets if k in kinds]
        targets = {k: self.targets[k][idx] for k in wanted}
        present = {k: self.present[k][idx] for k in wanted if k in self.present}
        return self.x[idx], targets, present

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


def _class_names(root: Path, table: pd.DataFrame, classes: list[str] | None) -> list[str] | None:
    """The class names labels index: ``classes`` (a checkpoint's; the dataset's ``classes.json``
    must agree), else ``classes.json``, else the names found in the table."""
    own = read_classes(root)
    if classes and own and own != classes:
        raise DataError(
            f"{root / layout.CLASSES}: the class names ({', '.join(own)}) do not match the model's "
            f"({', '.join(classes)})"
        )
    names = classes or own
    if names is None and layout.CLASS_NAME in table.columns:
        names = sorted({n for n in table[layout.CLASS_NAME].astype(str) if n and n != "<NA>"})
    return names


def _check_subtomogram(path: Path, box: tuple[int, ...] | None, shape: tuple[int, ...] | None):
    """Read and check one subtomogram (read again when a batch needs it): the model's box, the
    same size as the others, finite and not constant. Its shape and voxel size."""
    sub, vs = read_mrc(path)
    if box is not None and tuple(sub.shape) != tuple(box):
        raise DataError(
            f"{path}: subtomogram is {'×'.join(map(str, sub.shape))}, but the model takes {'×'.join(map(str, box))}"
        )
    if shape is not None and sub.shape != shape:
        raise DataError(f"{path}: size {sub.shape} differs from {shape}")
    check_voxels(sub, path)
    return sub.shape, vs


def load_dataset(
    root: str | Path,
    classes: list[str] | None = None,
    box: tuple[int, ...] | None = None,
    targets: bool = True,
    in_memory: bool = False,
) -> Subtomograms:
    """Open a dataset folder: read its table and check every subtomogram once (see the module).

    Args:
        root: the folder with ``particles.star``.
        classes: class names to map ``dsmClassName`` onto (e.g. a checkpoint's); default the
            dataset's ``classes.json`` (or the names found in the table).
        box: the subtomogram size the model expects; a different one is an error.
        targets: read classes, masks and densities (off: subtomograms only, for prediction).
        in_memory: read every volume now and hold it (small datasets, repeated passes).

    Raises:
        DataError: naming the file that is missing, unreadable or inconsistent.
    """
    root = Path(root)
    star = root / layout.PARTICLES
    table = read_star(star)
    if layout.IMAGE not in table.columns:
        raise DataError(f"{star}: no {layout.IMAGE} column (the subtomogram of each particle)")
    names = _class_names(root, table, classes) if targets else classes
    n = len(table)
    if n == 0:
        raise DataError(f"{star}: no particles")
    images, labels = [], []
    files = {"mask": [], "density": []}
    has = {"class": np.zeros(n, bool), "mask": np.zeros(n, bool), "density": np.zeros(n, bool)}
    shape, voxel = None, None
    for i, (_, row) in enumerate(table.iterrows()):
        path = root / _cell(row, layout.IMAGE)
        sub_shape, vs = _check_subtomogram(path, box, shape)
        shape, voxel = shape or sub_shape, voxel or vs
        images.append(path)
        name = _cell(row, layout.CLASS_NAME) if targets else None
        if name is not None and names is not None:
            if name not in names:
                raise DataError(f"{star}: particle {i + 1} has class {name!r}, not among {', '.join(names)}")
            labels.append(names.index(name))
            has["class"][i] = True
        else:
            labels.append(0)
        for kind, column in (("mask", layout.MASK), ("density", layout.DENSITY)):
            cell = _cell(row, column) if targets else None
            files[kind].append(root / cell if cell is not None else None)
            has[kind][i] = cell is not None
    found = _targets(labels, files, has, shape)
    if targets and set(layout.ANGLES) <= set(table.columns):
        found["pose"], has["pose"] = read_poses(table, star)
    present = {kind: torch.from_numpy(has[kind]) for kind in found}
    x: Volumes | torch.Tensor = Volumes(images, (1, *shape), "x")
    if in_memory:
        x = x.load()
        found = {k: (v.load() if isinstance(v, Volumes) else v) for k, v in found.items()}
    return Subtomograms(x, found, present, list(names or []), table, float(voxel or 0.0), root)


def _targets(labels: list[int], files: dict[str, list], has: dict[str, np.ndarray], shape) -> dict:
    """The targets some particle has: class labels, and masks and densities read lazily."""
    found: dict[str, Volumes | torch.Tensor] = {}
    if has["class"].any():
        found["class"] = torch.tensor(labels)
    if has["mask"].any():
        found["mask"] = Volumes(files["mask"], tuple(shape), "mask")
    if has["density"].any():
        found["density"] = Volumes(files["density"], (1, *shape), "density")
    return found


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

"""MRC volumes through ``mrcfile``: C-order ``[z, y, x]``, voxel size in Å on every file written,
clear errors naming the file, and writes that are atomic (temporary name, then rename)."""

from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np

from dsmnet.core.fsutil import atomic_path
from dsmnet.registry.errors import UserError


class DataError(UserError, ValueError):
    """A data file is missing, unreadable or inconsistent; the message names it."""


def _open(path: str | Path, opener):
    """``opener`` (``mrcfile.open`` or ``mrcfile.mmap``) on ``path``, read-only and strict; a
    missing or corrupt file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such MRC file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return opener(path, mode="r", permissive=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable MRC file ({exc})") from None


def read_mrc(path: str | Path, *, dtype: np.dtype | type = np.float32) -> tuple[np.ndarray, float]:
    """Read a 3D MRC volume and its voxel size (Å; the x spacing).

    Raises:
        DataError: missing, corrupt, or not 3D.
    """
    with _open(path, mrcfile.open) as mrc:
        data = np.asarray(mrc.data, dtype=dtype).copy()
        voxel = float(mrc.voxel_size.x)
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}")
    return data, voxel


def mmap_mrc(path: str | Path) -> mrcfile.mrcmemmap.MrcMemmap:
    """Open an MRC file memory-mapped, read-only (a tomogram: nothing is read until indexed).

    Raises:
        DataError: missing or corrupt, naming the file.
    """
    return _open(path, mrcfile.mmap)


def write_mrc(path: str | Path, data: np.ndarray, voxel_size: float) -> None:
    """Write a volume atomically with its voxel size (Å). float64 is stored as float32, bool as int8."""
    path = Path(path)
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    elif data.dtype == bool:
        data = data.astype(np.int8)
    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data))
        mrc.voxel_size = voxel_size
        mrc.update_header_stats()
        mrc.header.label[:] = b""  # mrcfile's default label holds a timestamp: same data, same bytes
        mrc.header.label[0] = b"dsmnet"
        mrc.header.nlabl = 1

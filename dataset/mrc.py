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


# MRC modes a fast read takes (anything else goes through mrcfile)
_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}


def read_volume(path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """A 3D volume of a known ``shape`` read again (a dataset's subtomogram, checked once with
    :func:`read_mrc` when the dataset was opened): the header's size, mode and byte order read
    with numpy and the data with one ``np.fromfile``, five times faster than ``mrcfile.open``,
    whose validation and record arrays cost more than the read itself at 40³. Whatever this
    does not recognise (another size or mode, a short file) goes through :func:`read_mrc`, so
    errors are the same and name the file."""
    try:
        with open(path, "rb") as f:
            header = f.read(1024)
            words = np.frombuffer(header, "<i4", 24)
            order = "<" if header[212] == 0x44 else ">" if header[212] == 0x11 else None
            if order == ">":
                words = words.byteswap()
            mode, extra = int(words[3]), int(words[23])
            size = (int(words[2]), int(words[1]), int(words[0]))
            if order is None or mode not in _MODES or size != tuple(shape[-3:]) or extra < 0:
                raise ValueError
            f.seek(1024 + extra)
            data = np.fromfile(f, np.dtype(_MODES[mode]).newbyteorder(order), int(np.prod(size)))
        if data.size != np.prod(size):
            raise ValueError
        return data.reshape(size).astype(dtype, copy=False)
    except (OSError, ValueError, IndexError):
        return read_mrc(path, dtype=dtype)[0]


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

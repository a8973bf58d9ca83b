"""Subtomograms cut from a tomogram on disk, at the voxel size a model wants, one at a time.

The tomogram is memory-mapped (``mrcfile.mmap``), so a 10 GB tomogram costs the memory of the
boxes being cut, not of the tomogram. At the tomogram's own voxel size a box is a plain slice
around the rounded pick (no interpolation: the data as measured). At another voxel size the box is
resampled at the exact sub-voxel positions ``centre + (i − box/2) · scale`` by cubic B-spline
interpolation of the region around it; when the model's voxels are larger (downsampling) the
region is first band-limited to the model's Nyquist frequency by Fourier cropping of its
spectrum, so nothing aliases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from dsmnet.dataset.mrc import mmap_mrc

_MARGIN = 4  # voxels of context kept around a resampled box for the spline and the filter


def same_voxel_size(a: float, b: float) -> bool:
    """Whether two voxel sizes agree to 0.1 %, so that boxes are sliced, not resampled."""
    return abs(a - b) <= 1e-3 * b


class TomogramBoxes:
    """Cut ``box``³ subtomograms at ``voxel_size`` Å from the tomogram at ``path``.

    Use as a context manager; :meth:`cut` returns the box and whether it lay wholly inside.
    """

    def __init__(
        self, path: Path, box: int, voxel_size: float, tomogram_voxel_size: float, halves: tuple[Path, ...] = ()
    ):
        self.path = Path(path)
        self.halves = tuple(Path(h) for h in halves)  # cut from the mean of these (RELION's half tomograms)
        self.box = box
        self.scale = voxel_size / tomogram_voxel_size  # tomogram voxels per model voxel
        self.resample = not same_voxel_size(voxel_size, tomogram_voxel_size)
        self._mrc = None

    def __enter__(self) -> TomogramBoxes:
        self._mrcs = [mmap_mrc(p) for p in (self.halves or (self.path,))]
        self._mrc = self._mrcs[0]
        self.data = self._mrc.data if len(self._mrcs) == 1 else _MeanOf([m.data for m in self._mrcs])
        self.shape = np.array(self.data.shape)
        return self

    def __exit__(self, *exc) -> None:
        for mrc in getattr(self, "_mrcs", []):
            mrc.close()

    def cut(self, centre: np.ndarray) -> tuple[np.ndarray, bool]:
        """The box centred at ``centre`` (0-based ``(z, y, x)`` voxels of the tomogram); voxels
        outside the tomogram hold the mean of those inside."""
        return self._resampled(centre) if self.resample else self._sliced(centre)

    def _sliced(self, centre: np.ndarray) -> tuple[np.ndarray, bool]:
        half = self.box // 2
        c = np.round(centre).astype(int)
        lo, hi = c - half, c - half + self.box
        inside = bool((lo >= 0).all() and (hi <= self.shape).all())
        src = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, self.shape))
        part = np.asarray(self.data[src], dtype=np.float32)
        if inside:
            return part.copy(), True
        out = np.full((self.box,) * 3, float(part.mean()) if part.size else 0.0, np.float32)
        if part.size:
            out[tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))] = part
        return out, False

    def _resampled(self, centre: np.ndarray) -> tuple[np.ndarray, bool]:
        offsets = (np.arange(self.box) - self.box // 2) * self.scale
        first, last = centre + offsets[0], centre + offsets[-1]
        inside = bool((first >= 0).all() and (last <= self.shape - 1).all())
        lo = np.maximum(np.floor(first).astype(int) - _MARGIN, 0)
        hi = np.minimum(np.ceil(last).astype(int) + _MARGIN + 1, self.shape)
        if (hi <= lo).any():  # wholly outside the tomogram
            return np.zeros((self.box,) * 3, np.float32), False
        region = np.asarray(self.data[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float32)
        if self.scale > 1.0:
            region = _band_limit(region, 0.5 / self.scale)
        grids = np.meshgrid(*[(c - a) + offsets for c, a in zip(centre, lo)], indexing="ij")
        out = ndimage.map_coordinates(region, grids, order=3, mode="nearest", prefilter=True).astype(np.float32)
        if not inside:
            outside = np.zeros(out.shape, bool)
            for axis, (g, a) in enumerate(zip(grids, lo)):
                absolute = g + a
                outside |= (absolute < 0) | (absolute > self.shape[axis] - 1)
            out[outside] = float(out[~outside].mean()) if (~outside).any() else 0.0
        return out, inside


class _MeanOf:
    """The voxel-wise mean of same-shaped memory-mapped volumes, read only where indexed."""

    def __init__(self, volumes: list):
        self.volumes = volumes
        self.shape = volumes[0].shape

    def __getitem__(self, index) -> np.ndarray:
        return sum(np.asarray(v[index], dtype=np.float32) for v in self.volumes) / np.float32(len(self.volumes))


def _band_limit(volume: np.ndarray, cutoff: float) -> np.ndarray:
    """Zero every frequency above ``cutoff`` cycles/voxel along any axis (a Fourier crop kept at
    the original sampling)."""
    spectrum = np.fft.rfftn(volume)
    for axis, n in enumerate(volume.shape):
        k = np.abs(np.fft.rfftfreq(n) if axis == volume.ndim - 1 else np.fft.fftfreq(n))
        shape = [1] * volume.ndim
        shape[axis] = len(k)
        spectrum = spectrum * (k <= cutoff).reshape(shape)
    return np.fft.irfftn(spectrum, s=volume.shape, axes=tuple(range(volume.ndim))).astype(np.float32)

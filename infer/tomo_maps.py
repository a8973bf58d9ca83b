"""Tomogram-sized outputs of a prediction, to overlay on the tomogram in IMOD, napari or ChimeraX.

Per tomogram, with its voxel size and header origin:

* ``<name>_labels.mrc`` (int16): each particle's predicted mask placed at its position, labelled
  with its predicted class number (1-based; 0 = no particle). Where two masks overlap the voxel
  goes to the particle predicted with the higher probability.
* ``<name>_density.mrc`` (float32): each particle's recovered density inside its mask.
* ``<name>_labels.png``: three slices of the tomogram with the labels drawn over them.

The maps are written through memory maps, so their size costs disk, not memory. A model without
a segmentation head has no masks and writes no label map; one without a recovery head no density.
"""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np

from dsmnet.dataset.boxes import same_voxel_size
from dsmnet.dataset.mrc import mmap_mrc
from dsmnet.dataset.picks import Picks
from dsmnet.infer.extract import Box


class TomogramMaps:
    def __init__(self, picks: Picks, folder: Path, classes: list[str], voxel_size: float):
        info = picks.tomogram
        self.info, self.classes = info, classes
        self.scale = voxel_size / info.voxel_size  # tomogram voxels per model voxel
        self.resampled = not same_voxel_size(voxel_size, info.voxel_size)  # as the boxes were cut
        self.stem = info.path.stem
        self.folder = folder / "tomograms"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.relative = Path("tomograms") / f"{self.stem}_labels.mrc"
        self._labels = self._density = None
        self._prob = None
        self.positions = picks.positions

    def _open(self, name: str, dtype) -> mrcfile.mrcfile.MrcFile:
        mrc = mrcfile.new_mmap(
            self.folder / name, shape=self.info.shape, mrc_mode={np.int16: 1, np.float32: 2}[dtype], overwrite=True
        )
        mrc.voxel_size = self.info.voxel_size
        mrc.header.origin = self.info.origin
        return mrc

    def _footprint(self, box: Box, n: int) -> tuple[tuple[slice, ...], tuple[np.ndarray, ...]] | None:
        """The tomogram region a box covers and, per axis, the box voxel each region voxel takes."""
        centre = box.picks.positions[box.index]
        half = n // 2
        shape = self.info.shape
        if self.resampled:
            first = np.ceil(centre - half * self.scale).astype(int)
            last = np.floor(centre + (n - 1 - half) * self.scale).astype(int)
        else:  # the box was the slice around the rounded pick
            first = np.round(centre).astype(int) - half
            last = first + n - 1
        first, last = np.maximum(first, 0), np.minimum(last, np.array(shape) - 1)
        if (last < first).any():
            return None
        index = []
        for axis in range(3):
            t = np.arange(first[axis], last[axis] + 1)
            m = (
                np.round((t - centre[axis]) / self.scale + half)
                if self.resampled
                else t - (np.round(centre[axis]) - half)
            )
            index.append(np.clip(m.astype(int), 0, n - 1))
        return tuple(slice(a, b + 1) for a, b in zip(first, last)), tuple(index)

    def add(
        self, box: Box, mask: np.ndarray | None, density: np.ndarray | None, k: int | None, probability: float
    ) -> None:
        if mask is None:
            return
        if self._labels is None:
            self._labels = self._open(f"{self.stem}_labels.mrc", np.int16)
            self._prob = (
                np.zeros(self.info.shape, np.float16)
                if np.prod(self.info.shape) < 2**28
                else np.memmap(self.folder / f".{self.stem}_probability.tmp", np.float16, "w+", shape=self.info.shape)
            )
        if density is not None and self._density is None:
            self._density = self._open(f"{self.stem}_density.mrc", np.float32)
        where = self._footprint(box, mask.shape[0])
        if where is None:
            return
        region, index = where
        grid = np.ix_(*index)
        inside = mask[grid] > 0
        better = inside & (self._prob[region] < probability)
        if not better.any():
            return
        labels = self._labels.data[region]
        labels[better] = (k + 1) if k is not None else 1
        prob = self._prob[region]
        prob[better] = probability
        if density is not None:
            dens = self._density.data[region]
            dens[better] = density[grid][better]

    def close(self) -> None:
        if self._labels is None:
            return
        self._picture()
        for mrc in (self._labels, self._density):
            if mrc is not None:
                mrc.update_header_stats()
                mrc.close()
        if isinstance(self._prob, np.memmap):
            path = Path(self._prob.filename)
            del self._prob
            path.unlink(missing_ok=True)
        self._prob = None

    def _picture(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch

        tomo = mmap_mrc(self.info.path)
        try:
            nz = self.info.shape[0]
            zs = sorted(
                {int(np.clip(round(q), 0, nz - 1)) for q in np.quantile(self.positions[:, 0], [0.25, 0.5, 0.75])}
            )
            step = max(1, max(self.info.shape[1:]) // 512)
            colours = np.vstack([plt.get_cmap(n)(np.arange(20)) for n in ("tab20", "tab20b")])  # 40 distinct
            cmap = ListedColormap(np.vstack([[0, 0, 0, 0], np.tile(colours, (len(self.classes) // 40 + 1, 1))]))
            fig, axes = plt.subplots(1, len(zs), figsize=(5 * len(zs), 5.6), squeeze=False)
            seen: set[int] = set()
            for ax, z in zip(axes[0], zs):
                image = np.asarray(tomo.data[z, ::step, ::step], np.float32)
                labels = np.asarray(self._labels.data[z, ::step, ::step])
                seen |= set(np.unique(labels).tolist()) - {0}
                lo, hi = np.percentile(image, [1, 99])
                ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
                ax.imshow(
                    np.ma.masked_equal(labels, 0),
                    cmap=cmap,
                    vmin=0,
                    vmax=cmap.N - 1,
                    alpha=0.5,
                    interpolation="nearest",
                )
                ax.set_title(f"{self.stem}: z = {z}")
                ax.axis("off")
            names = self.classes or ["particle"]
            handles = [Patch(color=cmap(c), label=names[c - 1] if c - 1 < len(names) else str(c)) for c in sorted(seen)]
            if handles:
                fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
            fig.tight_layout(rect=(0, 0.08 if handles else 0, 1, 1))
            fig.savefig(self.folder / f"{self.stem}_labels.png", dpi=90)
            plt.close(fig)
        finally:
            tomo.close()

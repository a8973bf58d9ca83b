"""What ``dsmnet predict`` reads: the particles of a dataset folder, a folder of MRC subtomograms,
a STAR file with ``rlnImageName`` (RELION or Warp subtomograms; paths relative to the STAR file's
folder or to the working directory, RELION's project folder), or a tomogram's picks (boxes cut at
the model's voxel size on the fly). Particles are streamed: each is a position in its input table
and a way to read its volume when its batch comes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, read_mrc
from dsmnet.dataset.picks import read_picks
from dsmnet.dataset.star import particles_block, read_star_blocks
from dsmnet.infer.extract import Box, boxes, check_voxel_size


@dataclass
class Particle:
    """One subtomogram to predict: its row of the input table, a name for messages, and how to
    read it. The row is a position in a table shared by every particle, not a copy."""

    table: pd.DataFrame
    i: int  # position in ``table``
    name: str
    path: Path | None = None  # an MRC subtomogram, read when its batch comes
    box: Box | None = None  # or a box cut from a tomogram
    volume: tuple[np.ndarray, float] | None = None  # or read already (in_memory)

    @property
    def row(self) -> dict[str, Any]:
        return self.table.iloc[self.i].to_dict()


def _image_path(name: str, star: Path) -> Path:
    if "@" in name:
        raise DataError(
            f"{star}: {layout.IMAGE} {name!r} is an image in a 2D stack (RELION-5's default "
            "subtomograms); predict from the tomogram instead (--tomogram/--tomograms with --picks), "
            "or extract 3D subtomograms (relion_tomo_subtomo without --stack2d)"
        )
    path = Path(name)
    if path.is_absolute():
        return path
    beside = star.parent / path
    return beside if beside.exists() or not path.exists() else path


def file_particles(source: Path) -> tuple[Iterator[Particle], int, dict[str, Any], Path | None]:
    """The particles of a dataset folder, a folder of MRCs or a STAR file (streamed), how many,
    the STAR file's blocks (to write back whole) and the dataset folder whose relative paths the
    output must rewrite (None for a folder of MRCs, whose paths are given whole, and for a STAR
    file, whose paths stay as RELION wrote them)."""
    if source.is_dir() and not (source / layout.PARTICLES).is_file():
        files = sorted(p for p in source.iterdir() if p.suffix in (".mrc", ".rec", ".map"))
        if not files:
            raise DataError(f"{source}: no {layout.PARTICLES} and no .mrc subtomograms")
        table = pd.DataFrame({layout.IMAGE: [str(p) for p in files]})
        return (Particle(table, i, str(p), path=p) for i, p in enumerate(files)), len(files), {}, None
    star = source / layout.PARTICLES if source.is_dir() else source
    if not star.exists():
        raise DataError(f"{source}: no such dataset folder, folder of MRC files or STAR file")
    blocks = read_star_blocks(star)
    table = particles_block(blocks, star)
    if table.empty:
        raise DataError(f"{star}: no particles table")
    if layout.IMAGE not in table.columns:
        raise DataError(
            f"{star}: no {layout.IMAGE} column (the subtomogram of each particle); for picks, "
            "give the tomogram: dsmnet predict RUN --tomogram T.mrc --picks P.star"
        )
    table = table.reset_index(drop=True)
    paths = [_image_path(str(name), star) for name in table[layout.IMAGE]]  # a 2D stack is refused up front
    items = (Particle(table, i, str(path), path=path) for i, path in enumerate(paths))
    return items, len(table), blocks, (source if source.is_dir() else None)  # a RELION STAR keeps its paths


def load(p: Particle) -> tuple[np.ndarray, float | None]:
    if p.volume is not None:
        return p.volume
    if p.box is not None:
        return p.box.volume, None
    return read_mrc(p.path)


def batches(items: Iterable[Particle], size: int) -> Iterator[list[Particle]]:
    batch: list[Particle] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Source:
    """What to predict: the particles (streamed), their STAR blocks, and the tomograms if any."""

    items: Iterable[Particle]
    total: int
    blocks: dict[str, Any]
    voxel: float  # Å: the voxel size the boxes are at
    groups: list = field(default_factory=list)  # per tomogram its picks (for the maps)
    data_dir: Path | None = None

    @classmethod
    def of(
        cls, source, tomogram, picks, tomograms, box: int, want: float, rescale, border, in_memory, log, pixel=None
    ) -> Source:
        if picks is not None:
            if source is not None:
                raise DataError("give either subtomograms (DATA) or a tomogram's picks (--picks), not both")
            blocks = read_star_blocks(picks)  # read once: the picks, and the blocks to write back
            groups = read_picks(picks, tomogram, tomograms, pixel, blocks=blocks, log=log)
            voxel = want or groups[0].tomogram.voxel_size
            check_voxel_size(groups, voxel, rescale, log)
            items = (Particle(g.rows, b.index, b.name, box=b) for g in groups for b in boxes(g, box, voxel, border))
            return cls(items, sum(len(g.rows) for g in groups), blocks, voxel, groups)
        if source is None:
            raise DataError("nothing to predict: give a dataset folder, a folder of MRCs or a STAR file, or --picks")
        if tomogram is not None or tomograms is not None:
            raise DataError("--tomogram/--tomograms need --picks (the particles' positions)")
        items, total, blocks, data_dir = file_particles(Path(source))
        if in_memory:
            items = [replace(p, volume=read_mrc(p.path)) for p in items]
        return cls(items, total, blocks, want, [], data_dir)

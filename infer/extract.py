"""Users' tomograms: cut subtomograms at picked positions, at the model's voxel size.

``dsmnet extract`` writes the boxes as a dataset folder; ``dsmnet predict --tomogram`` uses the
same :func:`boxes` without writing them. Picks are read by :mod:`dsmnet.dataset.picks` (RELION-4
pixels or RELION-5 centred Å, detected from the columns).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dsmnet.core.fsutil import atomic_dir
from dsmnet.core.progress import Progress
from dsmnet.dataset import layout
from dsmnet.dataset.boxes import TomogramBoxes, same_voxel_size
from dsmnet.dataset.mrc import DataError, write_mrc
from dsmnet.dataset.picks import Picks, read_picks
from dsmnet.dataset.star import write_star
from dsmnet.training.options import BORDERS

DEFAULT_VOXEL_SIZE = 10.0  # Å: the paper's 1 nm, dsmnet's simulated data and shipped specs


@dataclass
class Box:
    """One particle's box: its position in its picks' table, the box and where it came from."""

    index: int  # position of the particle in its tomogram's picks
    volume: np.ndarray
    inside: bool
    picks: Picks

    @property
    def name(self) -> str:
        return f"{self.picks.tomogram.path} particle {self.index + 1}"


def check_voxel_size(picks: list[Picks], voxel_size: float, rescale: bool, log=print) -> None:
    """Say when a tomogram will be resampled to ``voxel_size``; refuse it with ``rescale`` off."""
    for p in picks:
        have = p.tomogram.voxel_size
        if same_voxel_size(have, voxel_size):
            continue
        if not rescale:
            raise DataError(
                f"{p.tomogram.path}: {have:g} Å/voxel, but the model takes {voxel_size:g} Å/voxel; "
                "drop --no-rescale to resample the boxes, or give a tomogram at that voxel size"
            )
        log(f"{p.tomogram.path}: {have:g} Å/voxel; boxes are resampled to the model's {voxel_size:g} Å/voxel")


def check_wedge(
    picks: list[Picks], wedge: list[float] | tuple[float, float] | None, log=print, axis: str = "y"
) -> None:
    """Say, once per tomogram, when its tilt series (from ``tomograms.star``) covered another
    range than the model was trained for (``wedge``, its checkpoint's), or when the model was
    trained with the tilt axis along x (``axis``) and RELION's tomograms have it along y: its
    missing wedge differs, which a network meets as a domain it has never seen. Nothing is refused."""
    if not wedge:
        return
    for p in picks:
        have = p.tomogram.tilt_range
        if have is not None and axis != "y":
            log(
                f"note: {p.tomogram.path.name} comes from a RELION project, whose tomograms have the tilt axis "
                f"along y; the model was trained with it along {axis}: its missing wedge lies elsewhere"
            )
        if have is not None and max(abs(have[0] - wedge[0]), abs(have[1] - wedge[1])) > 3.0:
            log(
                f"note: {p.tomogram.path.name} was recorded from {have[0]:+.0f}° to {have[1]:+.0f}°, the model was "
                f"trained for {wedge[0]:+.0f}° to {wedge[1]:+.0f}°: its missing wedge differs (for a model of these "
                f"data: dsmnet simulate --tilt-range={have[0]:g},{have[1]:g} … and train on that)"
            )


def boxes(picks: Picks, box: int, voxel_size: float, border: str = "skip") -> Iterator[Box]:
    """The boxes of one tomogram's picks, streamed from the memory-mapped tomogram; with
    ``border="skip"`` a box that crosses the tomogram's border is not yielded."""
    if border not in BORDERS:
        raise DataError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
    with TomogramBoxes(
        picks.tomogram.path, box, voxel_size, picks.tomogram.voxel_size, picks.tomogram.halves
    ) as cutter:
        for i, centre in enumerate(picks.positions):
            volume, inside = cutter.cut(centre)
            if inside or border == "pad":
                yield Box(i, volume, inside, picks)


def extract(
    picks_star: str | Path,
    out: str | Path,
    tomogram: str | Path | None = None,
    tomograms: str | Path | None = None,
    box: int = 40,
    voxel_size: float = DEFAULT_VOXEL_SIZE,
    rescale: bool = True,
    border: str = "skip",
    overwrite: bool = False,
    progress: bool = True,
    log=print,
    picks_pixel_size: float | None = None,
) -> dict[str, Any]:
    """Cut ``box``³ subtomograms at ``voxel_size`` Å around every pick into a dataset folder.

    The particles table keeps the input's columns (so its coordinates still refer to the
    tomogram), and adds ``rlnImageName``, ``dsmTomogram`` (the file cut from) and ``dsmPadded``.

    Raises:
        DataError: bad picks or tomogram, a voxel size to resample with ``rescale`` off, no box left.
    """
    if box < 4 or box % 2:
        raise DataError(f"box must be even and ≥ 4, got {box}")
    groups = read_picks(picks_star, tomogram, tomograms, picks_pixel_size, log=log)
    check_voxel_size(groups, voxel_size, rescale, log)
    parts, extracted, skipped = [], 0, 0
    out = Path(out)
    bar = Progress(sum(len(p.rows) for p in groups), "extract", "particles", log, enabled=progress)
    with atomic_dir(out, overwrite=overwrite) as tmp, bar:
        for picks in groups:
            kept, names, padded = [], [], []  # positions in the picks' table: its rows are taken once, at the end
            for b in boxes(picks, box, voxel_size, border):
                names.append(f"subtomograms/{extracted + len(names) + 1:06d}.mrc")
                write_mrc(tmp / names[-1], b.volume, voxel_size)
                kept.append(b.index)
                padded.append(int(not b.inside))
                bar.update()
            skipped += len(picks.rows) - len(kept)
            if kept:
                columns = {layout.IMAGE: names, "dsmTomogram": str(picks.tomogram.path), "dsmPadded": padded}
                parts.append(picks.rows.iloc[kept].assign(**columns))
            extracted += len(kept)
        if not parts:
            raise DataError(f"{picks_star}: every box crosses the border of its tomogram (try --border pad)")
        write_star(tmp / layout.PARTICLES, {"particles": pd.concat(parts, ignore_index=True)})
    return {
        "extracted": extracted,
        "skipped": skipped,
        "voxel_size": voxel_size,
        "rescaled": not all(same_voxel_size(p.tomogram.voxel_size, voxel_size) for p in groups),
        "convention": groups[0].convention,
        "out": str(out),
    }

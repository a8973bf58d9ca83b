"""Particle picks from RELION (4 and 5), Warp, pytom-match-pick or a neural picker, as voxel
positions in the tomograms they were picked in.

Two conventions, told apart by their columns:

* **RELION-4** — ``rlnCoordinateX/Y/Z`` in pixels. Of which pixels is read from the files as
  RELION-4's own programs read them: a tomography particles file (its optics table, or the
  project's ``tomograms.star``, gives ``rlnTomoTiltSeriesPixelSize``) holds **unbinned
  tilt-series pixels** (RELION-4's coordinate import and converters such as dynamo2relion scale
  picks from a binned tomogram up to them); plain picks (no such pixel size) are pixels of the
  tomogram. ``coords_voxel_size`` (``--picks-pixel-size``) overrides both. Tomograms are named
  by ``rlnTomoName`` (Warp 2 writes ``TS_17.tomostar`` there and ``TS_17_10.00Apx.mrc`` for
  the reconstruction) or, in a Warp/M export without it, by a ``.tomostar`` ``rlnMicrographName``.
* **RELION-5** — ``rlnCenteredCoordinateX/Y/ZAngst``: Å from the tomogram's centre. RELION's own
  tomography code (``ParticleSet::getParticleCoordDecenteredPixel``) converts them as
  ``pixel = Å / pixel size + size / 2`` (a float division), which for the tomogram at hand is
  ``voxel = Å / voxel size + n / 2``; the size comes from ``tomograms.star``
  (``rlnTomoSizeX/Y/Z`` in tilt-series pixels of ``rlnTomoTiltSeriesPixelSize``) when given, else
  from the MRC header.

Either way the result is a **0-based** voxel position (voxel ``i`` is centred at ``i``), the
convention of RELION ≥ 4.1 and of numpy/mrcfile indexing, rounded to 10⁻⁴ voxel;
``rlnOriginX/Y/ZAngst`` shifts, when present, are applied as RELION does (``position − origin /
pixel size``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, mmap_mrc
from dsmnet.dataset.star import particles_block, read_star_blocks

RELION4 = layout.COORDS
RELION5 = ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst")
ORIGIN = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")


@dataclass(frozen=True)
class TomogramInfo:
    """What the conversion needs of a tomogram: its file, shape ``(z, y, x)``, voxel size (Å) and,
    from ``tomograms.star``, RELION's centre in voxels of this file ``(z, y, x)``."""

    path: Path
    shape: tuple[int, int, int]
    voxel_size: float
    origin: tuple[float, float, float]  # the MRC header's origin (x, y, z in Å)
    centre: tuple[float, float, float] | None = None
    halves: tuple[Path, ...] = ()  # when only half tomograms are listed: boxes are cut from their mean
    tilt_range: tuple[float, float] | None = None  # degrees, from its tilt series' STAR file (tomograms.star)


def tomogram_info(path: Path) -> TomogramInfo:
    """Read a tomogram's header only (shape, voxel size, origin)."""
    with mmap_mrc(path) as mrc:
        shape = tuple(int(n) for n in mrc.data.shape)
        voxel = float(mrc.voxel_size.x)
        origin = tuple(float(mrc.header.origin[k]) for k in ("x", "y", "z"))
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3D tomogram, got shape {shape}")
    return TomogramInfo(path, shape, voxel, origin)  # type: ignore[arg-type]


def convention(table: pd.DataFrame, source: Path) -> str:
    """``relion5`` or ``relion4``, from the coordinate columns; neither is an error naming both."""
    if all(c in table.columns for c in RELION5):
        return "relion5"
    if all(c in table.columns for c in RELION4):
        return "relion4"
    raise DataError(
        f"{source}: no particle coordinates: expected {', '.join(RELION4)} (RELION-4, pixels) "
        f"or {', '.join(RELION5)} (RELION-5, Å from the tomogram's centre)"
    )


WARP = ".tomostar"  # Warp 2's tomogram names (TS_17.tomostar): the reconstruction is TS_17_<pixel>Apx.mrc


def tomo_name(name: str) -> str:
    """A tomogram's name as its files are named: Warp's ``.tomostar`` suffix dropped."""
    return name[: -len(WARP)] if name.endswith(WARP) else name


def project_path(value: str, star: Path) -> Path:
    """A path in a RELION file: absolute, or relative to the project folder RELION runs in (the
    working directory), to the STAR file's folder or to a folder above it (the project's, for a
    job's file read from elsewhere), whichever holds it first (the working directory when none
    does, so the error names what RELION would have opened)."""
    file = Path(value)
    if file.is_absolute():
        return file
    for base in (Path.cwd(), *Path(star).resolve().parents):
        if (base / file).exists():
            return base / file
    return Path.cwd() / file


def _text(row: pd.Series, column: str) -> str | None:
    value = row.get(column)
    return value if isinstance(value, str) and value.strip() else None


def _tomograms_star(path: Path) -> dict[str, dict]:
    """Per tomogram name: its file (if named; both halves when only the half tomograms are) and
    RELION's size and pixel size, from a RELION ``tomograms.star`` (block ``global``)."""
    blocks = read_star_blocks(path)
    table = particles_block(blocks, path, "global" if "global" in blocks else None)
    if layout.TOMO not in table.columns:
        raise DataError(f"{path}: no {layout.TOMO} column (not a RELION tomograms.star)")
    out = {}
    for _, row in table.iterrows():
        entry: dict = {}
        cell = partial(_text, row)
        if cell("rlnTomoReconstructedTomogram"):
            entry["file"] = project_path(cell("rlnTomoReconstructedTomogram"), path)
        elif cell("rlnTomoReconstructedTomogramHalf1") and cell("rlnTomoReconstructedTomogramHalf2"):
            halves = tuple(project_path(cell(f"rlnTomoReconstructedTomogramHalf{k}"), path) for k in (1, 2))
            entry["file"], entry["halves"] = halves[0], halves
        elif cell("rlnTomoReconstructedTomogramHalf1"):
            entry["file"] = project_path(cell("rlnTomoReconstructedTomogramHalf1"), path)
        entry["tilt_range"] = _tilt_range(cell("rlnTomoTiltSeriesStarFile"), path)
        if "rlnTomoTiltSeriesPixelSize" in row:
            entry["pixel"] = float(row["rlnTomoTiltSeriesPixelSize"])
            if all(f"rlnTomoSize{a}" in row for a in "XYZ"):
                entry["size"] = tuple(float(row[f"rlnTomoSize{a}"]) for a in "XYZ")
        out[tomo_name(str(row[layout.TOMO]))] = entry
    return out


def _tilt_range(star: str | None, tomograms: Path) -> tuple[float, float] | None:
    """A tilt series' lowest and highest nominal tilt (degrees), from its RELION STAR file; None when
    the file is not named or not readable (nothing is refused for it)."""
    if not star:
        return None
    try:
        table = particles_block(read_star_blocks(project_path(star, tomograms)), Path(star))
        tilts = table["rlnTomoNominalStageTiltAngle"].astype(float)
        return (float(tilts.min()), float(tilts.max())) if len(tilts) else None
    except (DataError, KeyError, ValueError, OSError):
        return None


def _optics_pixel(blocks: dict | None) -> float | None:
    """The unbinned tilt-series pixel size of a RELION-4 tomography particles file's optics table."""
    optics = (blocks or {}).get("optics")
    if isinstance(optics, pd.DataFrame) and "rlnTomoTiltSeriesPixelSize" in optics.columns and len(optics):
        return float(optics["rlnTomoTiltSeriesPixelSize"].iloc[0])
    return None


def _find_in_folder(folder: Path, name: str) -> Path:
    name = tomo_name(name)
    exact = [p for p in (folder / f"{name}.mrc", folder / f"{name}.rec") if p.is_file()]
    if exact:
        return exact[0]
    found = sorted(
        p
        for p in folder.iterdir()
        if p.suffix in (".mrc", ".rec") and (p.stem.startswith(f"{name}_") or p.stem.startswith(f"{name}."))
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"{folder}: no tomogram for {layout.TOMO} {name!r} (looked for {name}.mrc or {name}_*.mrc)")
    raise DataError(f"{folder}: several tomograms match {layout.TOMO} {name!r}: {', '.join(p.name for p in found)}")


@dataclass
class Picks:
    """The particles of one tomogram: the table's rows (all input columns kept) and their 0-based
    voxel positions ``[n, 3]`` as ``(z, y, x)``."""

    tomogram: TomogramInfo
    rows: pd.DataFrame
    positions: np.ndarray
    convention: str


def read_picks(
    star: str | Path,
    tomogram: str | Path | None = None,
    tomograms: str | Path | None = None,
    coords_voxel_size: float | None = None,
    blocks: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Picks]:
    """The picks of a STAR file, grouped by tomogram, as voxel positions in each tomogram.

    Args:
        blocks: the STAR file's blocks, when the caller has read them already (to write back).
        tomogram: the one tomogram the picks belong to (rows of other ``rlnTomoName`` are left out).
        tomograms: a folder of tomograms named after ``rlnTomoName``, or a RELION ``tomograms.star``.
        coords_voxel_size: RELION-4 coordinates given in pixels of this size (Å), whatever the
            files say (``--picks-pixel-size``).
        log: told, in one line per tomogram, the unit the coordinates were read in.

    Raises:
        DataError: no coordinates, no tomogram for a name, a tomogram without a voxel size, etc.
    """
    star = Path(star)
    if blocks is None:
        blocks = read_star_blocks(star)
    table = particles_block(blocks, star)
    table = _with_warp_names(table)
    kind = convention(table, star)
    if table.empty:
        raise DataError(f"{star}: no particles")
    relion = _tomograms_star(Path(tomograms)) if tomograms and Path(tomograms).is_file() else {}
    folder = Path(tomograms) if tomograms and Path(tomograms).is_dir() else None
    if tomograms and not relion and folder is None:
        raise DataError(f"{tomograms}: neither a folder of tomograms nor a tomograms.star")
    names = table[layout.TOMO].astype(str) if layout.TOMO in table.columns else pd.Series([""] * len(table))
    if tomogram is not None:
        groups = [_one_tomogram(star, table, names, Path(tomogram), relion)]
    else:
        groups = _by_tomogram(star, table, names, relion, folder, tomograms)
    optics = _optics_pixel(blocks)
    picks = []
    for path, rows, entry in groups:
        unit, why = _unit(kind, coords_voxel_size, optics, entry)
        picks.append(_convert(star, path, rows, entry, kind, unit))
        if log is not None:
            log(f"{star}: {_said(kind, unit, why, picks[-1].tomogram)}")
    return picks


def _one_tomogram(star: Path, table: pd.DataFrame, names: pd.Series, tomogram: Path, relion: dict):
    """The picks of the one tomogram given (those of its name, when the file names several)."""
    rows = table
    if layout.TOMO in table.columns and names.nunique() > 1:
        stems = names.map(tomo_name)  # Warp's TS_17.tomostar: its file TS_17_10.00Apx.mrc
        rows = table[(stems == tomogram.stem) | stems.map(lambda n: tomogram.stem.startswith(f"{n}_"))]
        if rows.empty:
            raise DataError(
                f"{star}: no particle has {layout.TOMO} = {tomogram.stem!r} (the tomogram's name); "
                f"names here: {', '.join(sorted(names.unique())[:5])}; give --tomograms DIR to use them all"
            )
    return tomogram, rows, relion.get(tomo_name(str(names[rows.index[0]])), {}) if relion else {}


def _by_tomogram(star: Path, table: pd.DataFrame, names: pd.Series, relion: dict, folder, tomograms):
    """(tomogram file, its picks, its tomograms.star entry) for every tomogram the picks name."""
    if not (relion or folder):
        raise DataError(
            f"{star}: give the tomogram (--tomogram) or where to find them (--tomograms DIR or tomograms.star)"
        )
    if layout.TOMO not in table.columns:
        raise DataError(f"{star}: no {layout.TOMO} column to find each particle's tomogram by")
    groups: list[tuple[Path, pd.DataFrame, dict]] = []
    for name in dict.fromkeys(names):
        entry = relion.get(tomo_name(name), {})
        if relion and not entry:
            raise DataError(f"{tomograms}: no tomogram named {name!r} (named by {star})")
        path = entry.get("file") or (_find_in_folder(folder, name) if folder else None)
        if path is None:
            raise DataError(f"{tomograms}: {name!r} has no rlnTomoReconstructedTomogram; give --tomograms DIR")
        groups.append((Path(path), table[names == name], entry))
    return groups


def _with_warp_names(table: pd.DataFrame) -> pd.DataFrame:
    """A Warp/M export names each particle's tomogram by a ``.tomostar`` ``rlnMicrographName``
    and has no ``rlnTomoName``: that name, as RELION would have it."""
    if layout.TOMO in table.columns or "rlnMicrographName" not in table.columns:
        return table
    names = table["rlnMicrographName"].astype(str)
    return table.assign(**{layout.TOMO: names}) if names.str.endswith(WARP).all() else table


def _unit(kind: str, given: float | None, optics: float | None, entry: dict) -> tuple[float | None, str]:
    """The pixel size (Å) RELION-4 coordinates are in (None: the tomogram's voxels) and why."""
    if kind == "relion5":
        return None, ""
    if given:
        return given, "--picks-pixel-size"
    if optics:
        return optics, "the optics table's rlnTomoTiltSeriesPixelSize"
    if entry.get("pixel"):
        return entry["pixel"], "tomograms.star's rlnTomoTiltSeriesPixelSize"
    return None, "plain picks: no tilt-series pixel size in the particles file or tomograms.star"


def _said(kind: str, unit: float | None, why: str, info: TomogramInfo) -> str:
    """The one line that says how a tomogram's picks were read."""
    of = f"{info.path.name} ({info.voxel_size:.4g} Å/voxel{', the mean of its two halves' if info.halves else ''})"
    if kind == "relion5":
        return f"RELION-5 coordinates in Å from the tomogram's centre → voxels of {of}"
    if unit is None:
        return f"RELION-4 coordinates in pixels of the tomogram {of} ({why}; else give --picks-pixel-size)"
    return (
        f"RELION-4 coordinates in unbinned tilt-series pixels of {unit:.4g} Å ({why}) → voxels of {of}, "
        f"÷ {info.voxel_size / unit:.4g} (another unit: --picks-pixel-size)"
    )


def _convert(star: Path, path: Path, rows: pd.DataFrame, entry: dict, kind: str, coords_voxel_size) -> Picks:
    info = tomogram_info(path)
    if entry.get("halves"):
        for half in entry["halves"][1:]:
            if tomogram_info(half).shape != info.shape:
                raise DataError(f"{half}: not the shape of {path}, its other half tomogram")
        info = replace(info, halves=tuple(entry["halves"]))
    if entry.get("tilt_range"):
        info = replace(info, tilt_range=entry["tilt_range"])
    if info.voxel_size <= 0:
        raise DataError(f"{path}: the MRC header has no voxel size; set it (e.g. with IMOD's alterheader)")
    xyz_columns = RELION5 if kind == "relion5" else RELION4
    try:
        xyz = rows[list(xyz_columns)].to_numpy(float)
    except ValueError as exc:
        raise DataError(f"{star}: coordinates that are not numbers ({exc})") from None
    if not np.isfinite(xyz).all():
        raise DataError(f"{star}: NaN or infinite particle coordinates")
    n_xyz = np.array(info.shape[::-1], float)
    if kind == "relion5":
        if "size" in entry:  # RELION's centre: its size in tilt-series pixels, halved, in this file's voxels
            centre = np.array(entry["size"]) * entry["pixel"] / (2.0 * info.voxel_size)
        else:
            centre = n_xyz / 2.0
        voxels = xyz / info.voxel_size + centre
        info = replace(info, centre=tuple(centre[::-1]))
    else:
        voxels = xyz * ((coords_voxel_size or info.voxel_size) / info.voxel_size)
    if all(c in rows.columns for c in ORIGIN):
        voxels = voxels - rows[list(ORIGIN)].to_numpy(float) / info.voxel_size
    # to 10⁻⁴ voxel: below any pick's precision, above the float32 rounding of the header's voxel
    # size, so the same particles in either convention give the very same boxes
    return Picks(info, rows, np.round(voxels[:, ::-1], 4) + 0.0, kind)


def to_relion5(positions: np.ndarray, info: TomogramInfo) -> np.ndarray:
    """0-based ``(z, y, x)`` voxel positions → RELION-5 ``(x, y, z)`` Å from the centre."""
    centre = np.array(info.centre[::-1]) if info.centre else np.array(info.shape[::-1], float) / 2.0
    return (positions[:, ::-1] - centre) * info.voxel_size

"""A simulated dataset written as a RELION-5 tomography project: what a user's own project looks
like to dsmnet, with the truth known — for trying ``simulate --like``, ``predict`` and one's own
pipeline on data whose answers are known.

The project holds, laid out and named as RELION-5 writes them (paths relative to the project
folder)::

    Tomograms/job001/tomograms.star                 the acquisition and each tomogram's file
    Tomograms/job001/tomograms/rec_<name>.mrc       the noisy tomograms (hard links where possible)
    AlignTiltSeries/job001/tilt_series/<name>.star  per tilt: nominal angle, defocus, pre-exposure
    particles.star                                  the picks, in Å from each tomogram's centre

``particles.star`` keeps each particle's true class (``rlnClassNumber``, ``dsmClassName``) beside
its pick: a picker would not know it, and dsmnet's readers pass it through, so that ``extract``
followed by ``evaluate`` scores a model on the project's own picks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dsmnet.core.fsutil import atomic_dir
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.picks import TomogramInfo, to_relion5
from dsmnet.dataset.star import read_star, write_star
from dsmnet.simulate.exposure import dose_symmetric

TOMOGRAMS_JOB = Path("Tomograms/job001")
TILT_SERIES_JOB = Path("AlignTiltSeries/job001/tilt_series")
# e⁻/Å² over the whole tilt series, shared evenly by its tilts: the simulation's dose, or where it
# modelled none, a typical exposure
TOTAL_DOSE = 120.0


def _tilt_angles(scope: dict) -> np.ndarray:
    """The nominal tilts from ``tilt_min`` to ``tilt_max`` by ``tilt_step``, in dose-symmetric order
    (0°, then alternately up and down: the order their pre-exposure grows in)."""
    step = scope["tilt_step"]
    angles = np.arange(scope["tilt_min"], scope["tilt_max"] + step / 2, step)
    return angles[dose_symmetric(angles)]


def _tilt_series(name: str, scope: dict, defocus_um: float) -> pd.DataFrame:
    """One tilt series' STAR table: a movie name per tilt, its angle, pre-exposure and defocus (Å)."""
    angles = _tilt_angles(scope)
    return pd.DataFrame(
        {
            "rlnMicrographMovieName": [f"frames/{name}_{i + 1:03d}.tiff" for i in range(len(angles))],
            "rlnTomoNominalStageTiltAngle": angles,
            "rlnMicrographPreExposure": np.arange(len(angles)) * (scope.get("dose") or TOTAL_DOSE) / len(angles),
            "rlnDefocusU": np.full(len(angles), defocus_um * 1e4),
            "rlnDefocusV": np.full(len(angles), defocus_um * 1e4),
        }
    )


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or no hard links: a copy
        shutil.copy2(source, target)


def write_project(data_dir: str | Path, out: str | Path, binning: int = 4, overwrite: bool = False) -> dict:
    """Write the simulated dataset ``data_dir`` (made with its tomograms) as a RELION-5 project.

    The tilt series' pixel is the tomograms' voxel divided by ``binning`` (RELION's tomograms are
    binned tilt series); sizes and centres are given in those pixels, as RELION-5 gives them.

    Returns:
        The project folder, its tomograms, picks and files.

    Raises:
        DataError: not a simulated dataset, or one made without its tomograms (``--no-tomograms``).
    """
    data, out = Path(data_dir), Path(out)
    made = data / layout.SIMULATION
    if not made.is_file():
        raise DataError(f"{data}: no {layout.SIMULATION} (a project is written from a simulated dataset)")
    summary = json.loads(made.read_text())
    config, scope = summary["config"], summary["config"]["microscope"]
    voxel = float(config["voxel_size"])
    shape = tuple(int(n) for n in config["tomogram"])  # z, y, x
    particles = read_star(data / layout.PARTICLES)
    rows, tomograms = [], []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for record in summary["tomograms"]:
            name = record["name"]
            source = data / "tomograms" / f"{name}.mrc"
            if not source.is_file():
                raise DataError(f"{source}: missing (simulate the dataset without --no-tomograms)")
            _link_or_copy(source, tmp / TOMOGRAMS_JOB / "tomograms" / f"rec_{name}.mrc")
            defocus = record.get("defocus_um", scope["defocus_um"])
            write_star(tmp / TILT_SERIES_JOB / f"{name}.star", {name: _tilt_series(name, scope, defocus)})
            tomograms.append(_tomogram_row(name, scope, voxel, binning, shape))
            picks = particles[particles[layout.TOMO].astype(str) == name]
            rows.append(_picks(picks, name, voxel, shape))
        write_star(tmp / TOMOGRAMS_JOB / "tomograms.star", {"global": pd.DataFrame(tomograms)})
        write_star(tmp / "particles.star", {"particles": pd.concat(rows, ignore_index=True)})
    return {
        "project": str(out),
        "tomograms_star": str(out / TOMOGRAMS_JOB / "tomograms.star"),
        "particles_star": str(out / "particles.star"),
        "tomograms": len(tomograms),
        "particles": int(sum(len(r) for r in rows)),
    }


def _tomogram_row(name: str, scope: dict, voxel: float, binning: int, shape: tuple[int, int, int]) -> dict:
    pixel = voxel / binning
    return {
        "rlnTomoName": name,
        "rlnVoltage": scope["voltage_kv"],
        "rlnSphericalAberration": scope["cs_mm"],
        "rlnAmplitudeContrast": scope["amplitude_contrast"],
        "rlnMicrographOriginalPixelSize": pixel,
        "rlnTomoHand": -1.0,
        "rlnTomoTiltSeriesPixelSize": pixel,
        "rlnTomoTiltSeriesStarFile": str(TILT_SERIES_JOB / f"{name}.star"),
        "rlnTomoTomogramBinning": float(binning),
        "rlnTomoSizeX": shape[2] * binning,
        "rlnTomoSizeY": shape[1] * binning,
        "rlnTomoSizeZ": shape[0] * binning,
        "rlnTomoReconstructedTomogram": str(TOMOGRAMS_JOB / "tomograms" / f"rec_{name}.mrc"),
    }


def _picks(particles: pd.DataFrame, name: str, voxel: float, shape: tuple[int, int, int]) -> pd.DataFrame:
    """A tomogram's particles as RELION-5 picks (Å from its centre), with their true class."""
    zyx = particles[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy(float)
    info = TomogramInfo(Path(f"rec_{name}.mrc"), shape, voxel, (0.0, 0.0, 0.0), tuple(np.array(shape, float) / 2))
    xyz = to_relion5(zyx, info)
    return pd.DataFrame(
        {
            "rlnTomoName": name,
            "rlnCenteredCoordinateXAngst": xyz[:, 0],
            "rlnCenteredCoordinateYAngst": xyz[:, 1],
            "rlnCenteredCoordinateZAngst": xyz[:, 2],
            "rlnAngleRot": particles["rlnAngleRot"].to_numpy(float),
            "rlnAngleTilt": particles["rlnAngleTilt"].to_numpy(float),
            "rlnAnglePsi": particles["rlnAnglePsi"].to_numpy(float),
            "rlnClassNumber": particles["rlnClassNumber"].to_numpy(int),
            layout.CLASS_NAME: particles[layout.CLASS_NAME].astype(str).to_numpy(),
        }
    )

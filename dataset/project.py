"""A RELION-5 tomography project's acquisition, read for ``dsmnet simulate --like``: the microscope
from ``tomograms.star`` (voltage, Cs, amplitude contrast, tilt-series pixel size and binning) and,
from each tilt series' STAR file, the tilt angles, defoci and pre-exposure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.picks import project_path
from dsmnet.dataset.star import particles_block, read_star_blocks

NEEDED = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnTomoTiltSeriesStarFile")


def read_acquisition(tomograms_star: str | Path) -> dict:
    """The imaging a project's tilt series were recorded with, over all its tomograms: voltage (kV),
    Cs (mm), amplitude contrast, the tomograms' voxel size (Å: tilt-series pixel × binning), the
    tilt range and step (degrees), the range of the per-tilt defoci (µm underfocus, the mean of
    ``rlnDefocusU/V``) and the total exposure of a tilt series (e⁻/Å²: its last tilt's pre-exposure
    and that tilt's share, the largest over the series).

    Raises:
        DataError: a file missing, or a column the simulation needs, named.
    """
    path = Path(tomograms_star)
    if not path.is_file():
        raise DataError(f"{path}: no such tomograms.star")
    blocks = read_star_blocks(path)
    table = particles_block(blocks, path, "global" if "global" in blocks else None)
    missing = [c for c in NEEDED if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)} (a RELION-5 tomograms.star has them); give the flags instead")
    tilts, defoci, doses = [], [], []
    for star in table["rlnTomoTiltSeriesStarFile"].astype(str):
        file = project_path(star, path)
        if not file.is_file():
            raise DataError(f"{path}: its tilt series file {file} is missing")
        series = particles_block(read_star_blocks(file), file)
        if "rlnTomoNominalStageTiltAngle" not in series.columns:
            raise DataError(f"{file}: no rlnTomoNominalStageTiltAngle (the tilt angles)")
        tilts.append(np.sort(series["rlnTomoNominalStageTiltAngle"].to_numpy(float)))
        if {"rlnDefocusU", "rlnDefocusV"} <= set(series.columns):
            defoci += list((series["rlnDefocusU"].to_numpy(float) + series["rlnDefocusV"].to_numpy(float)) / 2e4)
        if "rlnMicrographPreExposure" in series.columns and len(series) > 1:
            # the total: the last tilt's pre-exposure and its own share (each tilt's, alike)
            doses.append(float(series["rlnMicrographPreExposure"].max()) * len(series) / (len(series) - 1))
    first = table.iloc[0]
    steps = np.concatenate([np.diff(t) for t in tilts if len(t) > 1]) if tilts else np.array([])
    pixel = float(first["rlnTomoTiltSeriesPixelSize"]) if "rlnTomoTiltSeriesPixelSize" in table.columns else None
    binning = float(first["rlnTomoTomogramBinning"]) if "rlnTomoTomogramBinning" in table.columns else None
    return {
        "voltage_kv": float(first["rlnVoltage"]),
        "cs_mm": float(first["rlnSphericalAberration"]),
        "amplitude_contrast": float(first["rlnAmplitudeContrast"]),
        "tilt_min": float(min(t[0] for t in tilts)),
        "tilt_max": float(max(t[-1] for t in tilts)),
        "tilt_step": float(np.median(steps)) if len(steps) else None,
        "defocus_range_um": (round(float(min(defoci)), 3), round(float(max(defoci)), 3)) if defoci else None,
        "dose": round(max(doses), 2) if doses else None,
        "voxel_size": pixel * binning if pixel and binning else None,
        "tomograms": len(table),
    }

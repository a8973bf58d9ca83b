"""Simulated datasets: crowded tomograms imaged, subtomograms extracted with ground truth.

Examples:
    >>> config = SimulationConfig.preset("A", n=200, classes=5, seed=1)
    >>> summary = simulate(config, Path("data/small"))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dsmnet.core.fsutil import atomic_dir
from dsmnet.core.progress import Progress
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import write_mrc
from dsmnet.dataset.star import write_star
from dsmnet.simulate.crowding import SimulationError, Tomogram, crowd, paste, relion_angles
from dsmnet.simulate.imaging import Microscope, Mode, image
from dsmnet.simulate.library import Structure, load_library

PROJECTION_TOMOGRAM = (128, 256, 256)  # a tilt series of a larger one needs more than 24 GB
PROJECTION_MAX_SIDE = 256
PRESETS = {
    "A": {"snr": 0.06, "n": 3205, "classes": 22},
    "B": {"snr": 0.01, "n": 3205, "classes": 22},
    # like the paper's dataset C in its acquisition only: the paper's C is experimental (ribosomes and
    # proteasomes in a cell, recorded from −50° to +70°, binned to 13.68 Å); this is simulated, with
    # dataset A's SNR
    "C": {
        "snr": 0.06,
        "n": 786,
        "classes": ["ribosome_6zu5", "pseudo_proteasome"],
        "box": 40,
        "voxel_size": 13.68,
        "tilt_range": (-50.0, 70.0),
    },
}


@dataclass
class SimulationConfig:
    """Everything that defines a simulated dataset; the same config and seed give the same bytes.

    Attributes:
        n: subtomograms, balanced over the classes.
        classes: how many of the library's classes (the first ones), or their names.
        snr: signal-to-noise ratio (Xu-lab definition: filtered-signal variance / noise variance).
        box: subtomogram side (voxels).
        voxel_size: Å per voxel (the library's maps are at 10 Å).
        tomogram: tomogram shape ``[z, y, x]`` (voxels).
        crowding: volume fraction of each tomogram inside molecules' contours.
        mode: ``fourier`` or ``projection`` imaging.
        write_tomograms: also write each whole tomogram (noisy, clean, labels).
    """

    n: int = 3205
    classes: int | list[str] = 22
    snr: float = 0.06
    seed: int = 0
    box: int = 40
    voxel_size: float = 10.0
    tomogram: tuple[int, int, int] = (200, 400, 400)
    crowding: float = 0.05
    mode: Mode = "fourier"
    microscope: Microscope = field(default_factory=Microscope)
    write_tomograms: bool = True
    max_tomograms: int = 100

    @classmethod
    def preset(cls, name: str, imaging: dict | None = None, **overrides) -> SimulationConfig:
        """A named preset (``A``: SNR 0.06, ``B``: SNR 0.01; 3205 subtomograms of 22 classes; ``C``:
        dataset C's acquisition), with ``imaging`` (:class:`Microscope` fields) over its microscope."""
        if name not in PRESETS:
            raise SimulationError(f"unknown preset {name!r} (allowed: {', '.join(PRESETS)})")
        values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
        tilts = values.pop("tilt_range", None)
        scope = Microscope(tilt_min=tilts[0], tilt_max=tilts[1]) if tilts else Microscope()
        if imaging:
            scope = dataclasses.replace(scope, **imaging)
        if imaging or tilts:
            values["microscope"] = scope
        if values.get("mode") == "projection" and "tomogram" not in values:
            values["tomogram"] = PROJECTION_TOMOGRAM
        return cls(**values)

    @classmethod
    def from_dict(cls, made: dict) -> SimulationConfig:
        """The config a ``simulation.json`` records (its ``config``): keys this version does not
        know are left out, settings added since it was made take their defaults.

        Raises:
            KeyError, TypeError, ValueError: not a dsmnet simulation's config.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in made.items() if k in known}
        scope = dict(values.pop("microscope", {}))
        if scope.get("defocus_range_um") is not None:
            scope["defocus_range_um"] = tuple(scope["defocus_range_um"])
        if "tomogram" in values:
            values["tomogram"] = tuple(values["tomogram"])
        return cls(**values, microscope=Microscope(**scope))

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["tomogram"] = list(self.tomogram)
        return data


def choose_structures(config: SimulationConfig, library: dict[str, Structure]) -> list[Structure]:
    """The classes to simulate, checked against the library, the box and the voxel size."""
    names = list(library)
    if isinstance(config.classes, int):
        if not 1 <= config.classes <= len(names):
            raise SimulationError(
                f"--classes must be between 1 and {len(names)} (the library's size), got {config.classes}"
            )
        chosen = names[: config.classes]
    else:
        unknown = [c for c in config.classes if c not in library]
        if unknown:
            raise SimulationError(f"unknown class {unknown[0]!r} (allowed: {', '.join(names)})")
        chosen = list(dict.fromkeys(config.classes))
    structures = [library[c].at(config.voxel_size) for c in chosen]  # resampled when the grid differs
    for s in structures:
        diameter = 2 * s.radius / s.voxel_size
        if diameter > config.box:
            raise SimulationError(
                f"box {config.box} is smaller than structure {s.name!r} ({diameter:.0f} voxels across)"
            )
    return structures


def _check(config: SimulationConfig) -> None:
    if config.n < 1:
        raise SimulationError(f"--n must be ≥ 1, got {config.n}")
    if not config.snr > 0:
        raise SimulationError(f"--snr must be > 0, got {config.snr}")
    if config.box < 8 or config.box % 2:
        raise SimulationError(f"--box must be even and ≥ 8, got {config.box}")
    if min(config.tomogram) < config.box + 2:
        raise SimulationError(f"tomogram {config.tomogram} is too small for {config.box}³ boxes")
    if not 2.0 <= config.voxel_size <= 30.0:
        raise SimulationError(f"--voxel-size must be between 2 and 30 Å, got {config.voxel_size:g}")
    problems = config.microscope.problems()
    if problems:
        raise SimulationError("; ".join(problems))
    if config.mode == "projection" and max(config.tomogram) > PROJECTION_MAX_SIDE:
        raise SimulationError(
            f"projection mode needs tomograms of at most {PROJECTION_MAX_SIDE} voxels a side (a tilt series "
            f"of {max(config.tomogram)} needs about {12 * (max(config.tomogram) / 256) ** 3:.0f} GB); "
            f"use --tomogram {','.join(map(str, PROJECTION_TOMOGRAM))}"
        )


def _quota(n: int, k: int) -> np.ndarray:
    q = np.full(k, n // k)
    q[: n % k] += 1
    return q


def _extractable(tomo: Tomogram, shape: tuple[int, ...], box: int) -> list:
    half = box // 2
    return [m for m in tomo.molecules if all(half <= c <= s - half for c, s in zip(m.centre, shape))]


def _write_particle(
    tmp: Path, config: SimulationConfig, m, noisy: np.ndarray, clean: np.ndarray, index: int, tomogram: str, name: str
):
    """Write one molecule's subtomogram (cut from the noisy tomogram), mask and density; return
    its row of ``particles.star``, with the target's share of the clean box's density (the rest is
    its neighbours')."""
    lo = m.centre - config.box // 2
    region = tuple(slice(int(a), int(a) + config.box) for a in lo)
    volumes = {
        "subtomograms": noisy[region],
        "masks": paste(m.region.astype(np.int8), m.corner, config.box, m.centre),
        "densities": paste(m.density, m.corner, config.box, m.centre),
    }
    files = {kind: f"{kind}/{index:06d}.mrc" for kind in volumes}
    for kind, volume in volumes.items():
        write_mrc(tmp / files[kind], volume, config.voxel_size)
    rot, tilt, psi = relion_angles(m.rotation)
    z, y, x = (float(c) for c in m.centre)
    share = float(volumes["densities"].sum(dtype=np.float64) / max(clean[region].sum(dtype=np.float64), 1e-12))
    return {
        layout.TOMO: tomogram,
        "rlnCoordinateX": x,
        "rlnCoordinateY": y,
        "rlnCoordinateZ": z,
        "rlnAngleRot": rot,
        "rlnAngleTilt": tilt,
        "rlnAnglePsi": psi,
        layout.CLASS_NUMBER: m.cls + 1,
        layout.CLASS_NAME: name,
        layout.IMAGE: files["subtomograms"],
        layout.MASK: files["masks"],
        layout.DENSITY: files["densities"],
        layout.TARGET_SHARE: round(share, 4),
    }


def _progress_line(t: dict, done: int, n: int) -> str:
    return (
        f"{t['name']}: {t['molecules']} molecules, {t['subtomograms']} subtomograms, SNR {t['measured_snr']:.4f} "
        f"(below 1/(4 nm): {t['measured_snr_in_band']:.4f}) ({done}/{n})"
    )


def _summary(config: SimulationConfig, structures, tomograms: list[dict], rows: list[dict]) -> dict:
    """What ``simulation.json`` records: the settings, counts, SNR (nominal and measured), how much
    of each class's boxes is its own density, and the library."""
    snrs = [t["measured_snr"] for t in tomograms]
    shares: dict[str, list[float]] = {s.name: [] for s in structures}
    for row in rows:
        shares[row[layout.CLASS_NAME]].append(row[layout.TARGET_SHARE])
    return {
        "config": config.as_dict(),
        "subtomograms": len(rows),
        "per_class": {name: len(v) for name, v in shares.items()},
        # the median particle's own share of its clean box's density (the rest is neighbours')
        "target_share_of_box": {name: round(float(np.median(v)), 3) for name, v in shares.items() if v},
        "tomograms": tomograms,
        "snr": {
            "nominal": config.snr,
            "convention": "AITom (Xu lab): nominal = unfiltered clean-tomogram variance / variance of the "
            "noise added, half before the CTF and half after; CTF envelope and band limit at 1/(4 nm)",
            "measured_total": float(np.mean(snrs)),
            "measured_in_band": float(np.mean([t["measured_snr_in_band"] for t in tomograms])),
        },
        "measured_snr": float(np.mean(snrs)),
        "library": {s.name: hashlib.sha256(s.density.tobytes()).hexdigest() for s in structures},
        "mask": "the target's region: its own density at its structure's contour (the level enclosing "
        "1.21 Å³/Da of its mass), closed with a 2 nm ball and cavities filled; neighbours excluded",
    }


def _tomogram_record(name: str, tomo, made: int, imaged, scope: Microscope, config: SimulationConfig) -> dict:
    """One tomogram's line in ``simulation.json``: its molecules, boxes, crowding, measured SNR
    (and its own defocus, when the microscope draws one per tomogram)."""
    return {
        "name": name,
        "molecules": len(tomo.molecules),
        "subtomograms": made,
        "crowding": round(tomo.occupancy, 4),
        "measured_snr": imaged.snr,
        "measured_snr_in_band": imaged.snr_in_band,
        **({"defocus_um": round(scope.defocus_um, 4)} if scope is not config.microscope else {}),
    }


def _write_tables(tmp: Path, config: SimulationConfig, structures: list[Structure], tomograms, rows) -> dict:
    """``particles.star``, ``classes.json`` and ``simulation.json`` (whose summary is returned)."""
    write_star(tmp / layout.PARTICLES, {"particles": pd.DataFrame(rows)})
    classes = [
        {"number": i + 1, "name": s.name, "description": s.description, "kind": s.kind, "mass_kda": s.mass_kda}
        for i, s in enumerate(structures)
    ]
    (tmp / layout.CLASSES).write_text(json.dumps(classes, indent=1) + "\n")
    summary = _summary(config, structures, tomograms, rows)
    (tmp / layout.SIMULATION).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def simulate(
    config: SimulationConfig,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
    library: dict[str, Structure] | None = None,
) -> dict:
    """Simulate a dataset into ``out`` (written under a temporary name, renamed when complete).

    Returns:
        The summary also written to ``simulation.json``.

    Raises:
        SimulationError: bad parameters; FileExistsError: ``out`` exists and not ``overwrite``.
    """
    _check(config)
    library = library if library is not None else load_library()
    structures = choose_structures(config, library)
    say = progress or (lambda _msg: None)
    rng = np.random.default_rng(config.seed)
    quota = _quota(config.n, len(structures))
    have = np.zeros(len(structures), int)
    rows, tomograms = [], []
    start = time.perf_counter()
    # a bar on a terminal; in a log the per-tomogram lines below already say how far it got
    bar = Progress(config.n, "simulate", "subtomograms", log=lambda _msg: None, enabled=progress is not None)
    with atomic_dir(out, overwrite=overwrite) as tmp, bar:
        for t in range(config.max_tomograms):
            if (have >= quota).all():
                break
            name = f"tomo_{t + 1:03d}"
            tomo = crowd(config.tomogram, structures, config.crowding, rng, first_id=len(rows))
            scope = config.microscope.for_tomogram(rng)
            imaged = image(tomo.clean, config.voxel_size, config.snr, scope, rng, config.mode)
            made = 0
            for m in _extractable(tomo, config.tomogram, config.box):
                if have[m.cls] >= quota[m.cls]:
                    continue
                have[m.cls] += 1
                made += 1
                cls_name = structures[m.cls].name
                rows.append(_write_particle(tmp, config, m, imaged.noisy, tomo.clean, len(rows) + 1, name, cls_name))
            if config.write_tomograms:
                for suffix, volume in (("", imaged.noisy), ("_clean", tomo.clean), ("_labels", tomo.labels)):
                    write_mrc(tmp / "tomograms" / f"{name}{suffix}.mrc", volume, config.voxel_size)
            tomograms.append(_tomogram_record(name, tomo, made, imaged, scope, config))
            bar.update(made)
            say(_progress_line(tomograms[-1], len(rows), config.n))
        else:
            raise SimulationError(
                f"only {len(rows)} of {config.n} subtomograms after {config.max_tomograms} tomograms; "
                "raise the crowding or the tomogram size"
            )
        summary = _write_tables(tmp, config, structures, tomograms, rows)
    summary["seconds"] = time.perf_counter() - start
    return summary

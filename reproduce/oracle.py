"""What a box can tell: template matching with the true structures, the reference row above the CNNs.

An observer that knows the 22 maps, the imaging (CTF with envelope, detector MTF, band limit, the
dataset's missing wedge) and the noise's spectrum scores each simulated subtomogram ``b`` against
every class ``c`` by the log-likelihood of its best orientation among ``rotations`` (the same set
for every class and box),

    s_c(b) = max over R of  <W b, W F R m_c> − ½ ‖W F R m_c‖²    (up to a factor 1/σ²),

where ``m_c`` is the class's map centred on the box's centre voxel, ``F`` the imaging transfer and
``W`` whitens the noise (half of it through the CTF, half not: the simulator's convention), and
picks the best class. It treats the neighbours in the box as noise and only searches orientations
(boxes are centred on the true positions), so it is not the best possible classifier — a finer
rotation set or a model of the crowding would do better — but it shows how much of what the
boxes hold a CNN uses. Simulated data only: it needs the maps the data were made from
(the library) and the data's own scale (the raw boxes, not normalised).

Run: ``dsmnet template-match --data DATASET [--rotations 2000]``
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, read_mrc
from dsmnet.dataset.star import read_star
from dsmnet.dataset.subtomograms import read_classes
from dsmnet.reproduce.separability import centred_map, rotated_maps
from dsmnet.simulate.imaging import Microscope, ctf_mtf, rfft_grid, rfft_weights, wedge_mask
from dsmnet.simulate.library import load_library

NAME = "Template matching (true maps)"


def _imaging(config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The whitened matched filter ``G = M H / N²`` and the template energy filter ``E = M H² / N²``
    on the rFFT grid (``M`` the measured frequencies, ``H`` the CTF × MTF, ``N²`` the noise's power
    spectrum relative to white) of a simulation's ``config``; ``E`` carries the half spectrum's
    Parseval weights and ``1/V``, so that summing ``E |T̂|²`` gives ``‖W F T‖²``."""
    scope = Microscope(**config["microscope"])
    box, voxel = (int(config["box"]),) * 3, float(config["voxel_size"])
    kz, ky, kx = rfft_grid(box)
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    measured = wedge_mask(box, scope).float() * scope.band(k, voxel)
    h = ctf_mtf(k, voxel, scope)
    noise = (h**2 + 1) / 2
    return measured * h / noise, measured * h**2 / noise * rfft_weights(box) / box[0] ** 3


def _boxes(root: Path, table, box: int) -> torch.Tensor:
    volumes = []
    for name in table[layout.IMAGE]:
        volume, _ = read_mrc(root / name)
        if volume.shape != (box,) * 3:
            raise DataError(f"{root / name}: a {volume.shape} box, the others are {box}³")
        volumes.append(torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)))
    return torch.stack(volumes)


@torch.no_grad()
def template_matching(data_dir: Path, rotations: int = 2000, seed: int = 0, log=lambda _m: None) -> dict[str, Any]:
    """Classify every particle of a simulated dataset by template matching with the true maps.

    Returns:
        A metrics record shaped like an evaluation's (``metrics.acc_cls``, ``confusion_cls``).

    Raises:
        DataError: not a dsmnet simulation, or its classes are not in the structure library.
    """
    root = Path(data_dir)
    if not (root / layout.SIMULATION).is_file():
        raise DataError(f"{root}: no {layout.SIMULATION}; template matching needs data simulated from the library")
    classes = read_classes(root) or []
    library = load_library()
    missing = [c for c in classes if c not in library]
    if missing:
        raise DataError(f"{root}: classes not in the structure library: {', '.join(missing)}")
    table = read_star(root / layout.PARTICLES)
    config = json.loads((root / layout.SIMULATION).read_text())["config"]
    box, voxel = int(config["box"]), float(config["voxel_size"])
    matched, energy_filter = _imaging(config)
    b = _boxes(root, table, box)
    dims = (-3, -2, -1)
    whitened = torch.fft.irfftn(torch.fft.rfftn(b, dim=dims) * matched, s=(box,) * 3, dim=dims).flatten(1)
    del b
    turns = Rotation.random(rotations, random_state=seed).as_matrix()
    turns[0] = np.eye(3)
    scores = torch.empty(len(whitened), len(classes))
    start = time.perf_counter()
    for c, name in enumerate(classes):
        structure = library[name]
        if abs(structure.voxel_size - voxel) > 1e-3:
            raise DataError(f"{root}: voxel size {voxel} Å, the library's {name} is at {structure.voxel_size} Å")
        centred = centred_map(structure.density, box)
        best = torch.full((len(whitened),), -torch.inf)
        for lo in range(0, rotations, 250):
            templates = rotated_maps(centred, turns[lo : lo + 250])
            energy = (torch.fft.rfftn(templates, dim=dims).abs() ** 2 * energy_filter).flatten(1).sum(1)
            best = torch.maximum(best, (whitened @ templates.flatten(1).T - energy / 2).max(1).values)
        scores[:, c] = best
        log(f"{name}: {time.perf_counter() - start:.0f} s")
    truth = table[layout.CLASS_NUMBER].to_numpy().astype(int) - 1
    predicted = scores.argmax(1).numpy()
    k = len(classes)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (truth, predicted), 1)
    return {
        "run": f"template matching with the true maps ({rotations} rotations)",
        "data": str(root),
        "particles": int(len(truth)),
        "rotations": rotations,
        "metrics": {"acc_cls": float((predicted == truth).mean())},
        "confusion_cls": confusion.tolist(),
        "classes": classes,
        "per_particle": {"label": truth.tolist(), "predicted_cls": predicted.tolist()},
    }


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet template-match``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["template-match", *sys.argv[1:]]))

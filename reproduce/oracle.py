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

With ``averages_from`` the templates are not the true maps but what a structural biologist would
make of the training data: each class's **subtomogram average** over the training split the
networks of ``split_seed`` learn from, every particle turned back by its recorded pose (a perfect
alignment) and the missing wedge compensated by the turned wedges' coverage. It learns from the
same labelled particles as the CNNs, but is told their orientations — which the CNNs are not —
and searches orientations explicitly: how far knowing where and how a particle lies carries.

Run: ``dsmnet template-match --data DATASET [--rotations 2000] [--averages-from TRAIN [--split-seed 0]]``
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
COVERAGE = 0.1  # an average's frequencies measured in fewer than this share of its particles are left out


def _imaging(config: dict, imaged: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The whitened matched filter ``G = M H / N²`` and the template energy filter ``E = M H² / N²``
    on the rFFT grid (``M`` the measured frequencies, ``H`` the CTF × MTF, ``N²`` the noise's power
    spectrum relative to white) of a simulation's ``config``; ``E`` carries the half spectrum's
    Parseval weights and ``1/V``, so that summing ``E |T̂|²`` gives ``‖W F T‖²``. ``imaged``: the
    templates carry ``H`` already (averages of the data), so ``G = M / N²`` and ``E = M / N²``."""
    scope = Microscope(**config["microscope"])
    box, voxel = (int(config["box"]),) * 3, float(config["voxel_size"])
    kz, ky, kx = rfft_grid(box)
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    measured = wedge_mask(box, scope).float() * scope.band(k, voxel)
    transfer = ctf_mtf(k, voxel, scope)
    h = torch.ones(()) if imaged else transfer
    noise = (transfer**2 + 1) / 2
    return measured * h / noise, measured * h**2 / noise * rfft_weights(box) / box[0] ** 3


def _boxes(root: Path, table, box: int) -> torch.Tensor:
    volumes = []
    for name in table[layout.IMAGE]:
        volume, _ = read_mrc(root / name)
        if volume.shape != (box,) * 3:
            raise DataError(f"{root / name}: a {volume.shape} box, the others are {box}³")
        volumes.append(torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)))
    return torch.stack(volumes)


def _simulation(data_dir: Path) -> tuple[Path, list[str], Any, dict]:
    """A simulated dataset's folder, classes, particle table and simulation settings."""
    root = Path(data_dir)
    if not (root / layout.SIMULATION).is_file():
        raise DataError(f"{root}: no {layout.SIMULATION}; template matching needs data simulated from the library")
    config = json.loads((root / layout.SIMULATION).read_text())["config"]
    return root, read_classes(root) or [], read_star(root / layout.PARTICLES), config


def _true_maps(root: Path, classes: list[str], box: int, voxel: float) -> torch.Tensor:
    """The classes' library maps centred in the box (``[C, D, H, W]``)."""
    library = load_library()
    missing = [c for c in classes if c not in library]
    if missing:
        raise DataError(f"{root}: classes not in the structure library: {', '.join(missing)}")
    for name in classes:
        if abs(library[name].voxel_size - voxel) > 1e-3:
            raise DataError(f"{root}: voxel size {voxel} Å, the library's {name} is at {library[name].voxel_size} Å")
    return torch.stack([centred_map(library[name].density, box) for name in classes])


@torch.no_grad()
def class_averages(
    train_dir: Path, split_seed: int, classes: list[str], box: int, limit: int | None = None, pose_error: float = 0.0
) -> tuple[torch.Tensor, list[int]]:
    """Each of ``classes``' subtomogram average over the training split of ``split_seed`` of a
    simulated dataset (the particles the networks of that seed learn from): every box turned back
    by its recorded pose, summed, and divided frequency by frequency by how many of the turned
    wedges measured it (frequencies measured in under :data:`COVERAGE` of the boxes left out).
    ``limit``: at most this many particles a class (the split's first); ``pose_error``: each pose
    turned further by a random rotation about a random axis through an angle of that many degrees
    r.m.s. (a Gaussian; an alignment's error). Returns the averages ``[C, D, H, W]`` (the
    imaging's CTF in them) and each class's count.

    Raises:
        DataError: not a simulation, no poses, other classes or another box size than ``box``.
    """
    from dsmnet.core.rotations import rotate_volumes
    from dsmnet.dataset.poses import read_poses
    from dsmnet.dataset.subtomograms import stratified_split

    root, own, table, config = _simulation(train_dir)
    if own != classes:
        raise DataError(f"{root}: classes {', '.join(own)}; the test set's are {', '.join(classes)}")
    if int(config["box"]) != box:
        raise DataError(f"{root}: {config['box']}³ boxes, the test set's are {box}³")
    if not set(layout.ANGLES) <= set(table.columns):
        raise DataError(f"{root}: no particle poses ({', '.join(layout.ANGLES)}); averages need them")
    labels = table[layout.CLASS_NUMBER].to_numpy().astype(int) - 1
    train = np.asarray(stratified_split(labels, split_seed)["train"], dtype=int)
    poses, has = read_poses(table, root / layout.PARTICLES)
    if not has[train].all():
        missing = int((~has[train]).sum())
        raise DataError(f"{root}: {missing} training particle(s) without a pose; averages need them all")
    turns = poses[train]  # rotate_volumes turns a box by Aᵀ: back by its pose
    if pose_error > 0:
        rng = np.random.default_rng(split_seed)
        axes = rng.normal(size=(len(train), 3))
        angles = np.deg2rad(pose_error) * rng.normal(size=(len(train), 1))
        errors = Rotation.from_rotvec(axes / np.linalg.norm(axes, axis=1, keepdims=True) * angles).as_matrix()
        turns = turns @ torch.from_numpy(errors).float()
    measured = torch.fft.fftshift(wedge_mask((box,) * 3, Microscope(**config["microscope"]), rfft=False).float())
    averages, counts = torch.zeros(len(classes), box, box, box), []
    for c in range(len(classes)):
        mine = np.flatnonzero(labels[train] == c)[:limit]
        counts.append(len(mine))
        if not len(mine):
            continue
        boxes = _boxes(root, table.iloc[train[mine]], box)
        summed = rotate_volumes(boxes[:, None], turns[mine])[:, 0].sum(0)
        wedges = rotate_volumes(measured.expand(len(mine), 1, *measured.shape), turns[mine])[:, 0].sum(0)
        coverage = torch.fft.ifftshift(wedges) / len(mine)
        spectrum = torch.fft.fftn(summed) / (coverage * len(mine)).clamp(min=1e-6)
        averages[c] = torch.fft.ifftn(torch.where(coverage >= COVERAGE, spectrum, 0)).real
    return averages, counts


def _whitened_boxes(root: Path, table, box: int, matched: torch.Tensor) -> torch.Tensor:
    """The dataset's boxes through the matched filter ``matched`` (:func:`_imaging`), flattened:
    ``[boxes, box³]``, what :func:`_best_scores` correlates the turned templates with."""
    dims = (-3, -2, -1)
    spectra = torch.fft.rfftn(_boxes(root, table, box), dim=dims) * matched
    return torch.fft.irfftn(spectra, s=(box,) * 3, dim=dims).flatten(1)


def search_turns(rotations: int, seed: int) -> np.ndarray:
    """The ``[rotations, 3, 3]`` orientations a search tries: drawn uniformly with ``seed``, the
    first the identity."""
    turns = Rotation.random(rotations, random_state=seed).as_matrix()
    turns[0] = np.eye(3)
    return turns


def _best_scores(whitened: torch.Tensor, templates, names: list[str], turns: np.ndarray, energy_filter, log):
    """Each box's (rows of ``whitened``) best log-likelihood score over ``turns`` of each template,
    and the turn that gives it (a pose: the template turned by it, :func:`rotated_maps`): two
    ``[boxes, classes]`` tensors."""
    dims = (-3, -2, -1)
    scores = torch.empty(len(whitened), len(names))
    at = torch.zeros(len(whitened), len(names), dtype=torch.long)
    start = time.perf_counter()
    for c, (name, centred) in enumerate(zip(names, templates)):
        best = torch.full((len(whitened),), -torch.inf)
        for lo in range(0, len(turns), 250):
            turned = rotated_maps(centred, turns[lo : lo + 250])
            energy = (torch.fft.rfftn(turned, dim=dims).abs() ** 2 * energy_filter).flatten(1).sum(1)
            value, index = (whitened @ turned.flatten(1).T - energy / 2).max(1)
            better = value > best
            at[better, c] = index[better] + lo
            best = torch.where(better, value, best)
        scores[:, c] = best
        log(f"{name}: {time.perf_counter() - start:.0f} s")
    return scores, at


@torch.no_grad()
def template_matching(
    data_dir: Path,
    rotations: int = 2000,
    seed: int = 0,
    log=lambda _m: None,
    averages_from: Path | None = None,
    split_seed: int = 0,
    limit: int | None = None,
    pose_error: float = 0.0,
) -> dict[str, Any]:
    """Classify every particle of a simulated dataset by template matching with the true maps, or
    with ``averages_from``'s class averages over its training split of ``split_seed``
    (:func:`class_averages`, at most ``limit`` particles a class, its poses off by ``pose_error``°).

    Returns:
        A metrics record shaped like an evaluation's (``metrics.acc_cls``, ``confusion_cls``).

    Raises:
        DataError: not a dsmnet simulation, or its classes are not in the structure library (true
            maps) or not ``averages_from``'s (averages).
    """
    root, classes, table, config = _simulation(data_dir)
    box, voxel = int(config["box"]), float(config["voxel_size"])
    made: dict[str, Any] = {"templates": "true maps"}
    if averages_from is None:
        templates = _true_maps(root, classes, box, voxel)
    else:
        templates, counts = class_averages(Path(averages_from), split_seed, classes, box, limit, pose_error)
        made = {"templates": "training averages", "train": str(averages_from), "split_seed": split_seed,
                "averaged": dict(zip(classes, counts)), **({"limit": limit} if limit is not None else {}),
                **({"pose_error": pose_error} if pose_error else {})}  # fmt: skip
    matched, energy_filter = _imaging(config, imaged=averages_from is not None)
    whitened, turns = _whitened_boxes(root, table, box, matched), search_turns(rotations, seed)
    scores, _ = _best_scores(whitened, templates, classes, turns, energy_filter, log)
    truth = table[layout.CLASS_NUMBER].to_numpy().astype(int) - 1
    predicted = scores.argmax(1).numpy()
    confusion = np.zeros((len(classes),) * 2, int)
    np.add.at(confusion, (truth, predicted), 1)
    return {
        "run": f"template matching with the {made['templates']} ({rotations} rotations)",
        "data": str(root),
        "particles": int(len(truth)),
        "rotations": rotations,
        **made,
        "metrics": {"acc_cls": float((predicted == truth).mean())},
        "confusion_cls": confusion.tolist(),
        "classes": classes,
        "per_particle": {"label": truth.tolist(), "predicted_cls": predicted.tolist()},
    }


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet template-match``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["template-match", *sys.argv[1:]]))

"""Augmentations that keep what a subtomogram measures: the missing wedge and the band limit.

A subtomogram holds only the frequencies inside the wedge of the tilt range (tilt axis y, or x) and
below the band limit. A network trained on them learns where that wedge is, so an augmentation
must leave it where it is:

* ``flip``: random flips along z, y and x. The wedge is symmetric under each, but a flip mirrors
  the molecule into its enantiomer, which no real particle is.
* ``rot180``: the identity or a 180° rotation about z, y or x (two flips): proper rotations of
  the wedge onto itself, which keep the molecule's hand. Four orientations per particle.
* ``rotate``: a uniformly random proper rotation per particle, after which only the frequencies
  the data measures are kept (the rotated volume times the wedge-and-band mask), so the result has
  exactly the data's wedge, with the rotated wedge's frequencies missing as well. Targets (mask,
  density) are rotated with it, a pose composed with the rotation. Every orientation of every
  training particle is reachable, which is what a network needs to learn a class from ~100
  particles in random orientations.
  The price is information: a rotated box lacks the rotated wedge's frequencies as well as the
  data's, and trilinear resampling damps its finest ones. A model trained with ``rotate`` (the mini
  Cls subnet, seed 0) classifies test boxes as they are 0.531 of the time, and the same boxes
  after a ``rotate`` view 0.375 (1000 test particles of dataset A, one view each).
* ``mixed``: each particle either a ``rotate`` view or, with probability 1/2, one of the four
  ``rot180`` turns (exact, nothing lost): every orientation is reachable, and half of what the
  network sees holds all the information a test box does. Measured (same model, seed and budget):
  it learns faster than ``rotate`` (validation loss 0.05–0.13 lower over epochs 5–15) but ends no
  better on the independent test set (0.562 against 0.570 with test-time turns).
* ``spin``: a uniformly random proper rotation per particle, and its wedge turned with it: nothing
  is re-masked, so a view keeps every frequency the box measured, in another orientation (as a
  particle lies in subtomogram averaging). The network must then read a molecule whatever the
  wedge's direction; a test box, its wedge where the data has it, is one of the views it trained
  on. The wedge's re-imposition is what ``rotate`` pays for, not the resampling: the ``rotate``
  model above (retrained at this revision: 0.56 on 1200 test boxes as they are) scores 0.54, 0.50
  and 0.45 on the same boxes turned by 5°, 30° and 90° and re-masked, but 0.57, 0.57 and 0.54
  turned by as much with their own wedge. Trained with ``spin`` (same spec, seed and budget), the
  Cls subnet is nonetheless 0.024 ± 0.007 *below* ``rotate`` on the independent test set (0.545
  against 0.569 with test-time turns; best epoch 16, stopped at 22) and DSM-Net 0.549: a network
  learns a class more easily with the wedge always where the test data has it, even at the cost
  of frequencies, than with every frequency and the wedge anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dsmnet.core.rotations import random_rotations, rotate_volumes, rotation_grid
from dsmnet.training.options import Augment

# the augmentations that resample, and so need the measured-frequency mask (measured_frequencies)
RESAMPLED: tuple[str, ...] = ("rotate", "mixed")
# the three 180° rotations (about z, y, x) as pairs of flipped axes of a [.., z, y, x] volume
ROT180: tuple[tuple[int, ...], ...] = ((), (-2, -1), (-3, -1), (-3, -2))

# Every turn and rotation here is about the voxel at index n // 2 of each axis, where the simulator,
# ``dsmnet extract`` and RELION put a particle's centre. (About the array's geometric centre,
# (n - 1) / 2 for an even box, a 180° turn would move the particle by one voxel along each turned
# axis, and a random rotation by up to 1.7.)


def turn_matrix(dims: tuple[int, ...]) -> torch.Tensor:
    """The ``[3, 3]`` matrix on (x, y, z) of :func:`turn` along ``dims`` of a [.., z, y, x] volume:
    −1 on each mirrored axis. A particle of pose ``P`` turned so has pose ``T P`` (its own inverse;
    one axis mirrors, which no pose of a real particle does)."""
    signs = [-1.0 if d in dims else 1.0 for d in (-1, -2, -3)]
    return torch.diag(torch.tensor(signs))


def turned_poses(poses: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` poses of particles turned by ``turns`` (``[3, 3]`` or ``[B, 3, 3]``, on (x, y, z))."""
    return turns.to(poses) @ poses


def turn(v: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``v`` mirrored along ``dims`` about index n // 2: index i goes to (n - i) mod n (a flip and,
    for an even n, a roll by one; index 0 stays). Its own inverse; two axes make a 180° turn."""
    for d in dims:
        v = v.flip(d)
        if v.shape[d] % 2 == 0:
            v = v.roll(1, d)
    return v


def dataset_microscope(root: Path | None):
    """The acquisition a dataset's ``simulation.json`` records (the paper's ±60° and 1/(4 nm) when
    it has none, e.g. experimental data)."""
    from dsmnet.simulate.generate import SimulationConfig
    from dsmnet.simulate.imaging import Microscope

    path = Path(root) / "simulation.json" if root is not None else None
    if path is not None and path.is_file():
        try:
            return SimulationConfig.from_dict(json.loads(path.read_text())["config"]).microscope
        except (ValueError, KeyError, TypeError):
            pass  # not a dsmnet simulation: keep the paper's acquisition
    return Microscope()


def wedge_turns(tilt_range: tuple[float, float] | list[float] | None, axis: str = "y") -> tuple[tuple[int, ...], ...]:
    """The 180° turns that map the measured region of a single-axis tilt series over ``tilt_range``
    (degrees about the tilt axis, along the box's y or x) onto itself: all four of :data:`ROT180`
    for a symmetric range (or none given), only the identity and the turn about the tilt axis for
    an asymmetric one — the other two turns mirror the range (−50°/+70° becomes −70°/+50°)."""
    if tilt_range is None or abs(float(tilt_range[0]) + float(tilt_range[1])) < 1e-6:
        return ROT180
    return ((), (-3, -1)) if axis == "y" else ((), (-3, -2))


def _flip_axes(turns: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """The flips that keep the wedge :func:`wedge_turns` gave ``turns`` for: along any axis for a
    symmetric range, else only along the tilt axis (the one axis the turn about it leaves)."""
    if len(turns) == len(ROT180):
        return (-3, -2, -1)
    return tuple(d for d in (-2, -1) if d not in turns[1])


def measured_frequencies(root: Path | None, box: tuple[int, int, int], voxel_size: float) -> torch.Tensor:
    """The rFFT mask of the frequencies a dataset's subtomograms hold: the wedge of its tilt range
    and its band limit (:func:`dataset_microscope`)."""
    from dsmnet.simulate.imaging import rfft_grid, wedge_mask

    scope = dataset_microscope(root)
    kz, ky, kx = rfft_grid(box)
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    return wedge_mask(box, scope) & (scope.band(k, voxel_size or 10.0) > 0)


def _rotate(batch: dict[str, torch.Tensor], generator: torch.Generator, measured: torch.Tensor | None) -> dict:
    return rotated_batch(batch, random_rotations(len(batch["x"]), generator).to(batch["x"].device), measured)


def rotated_batch(batch: dict[str, torch.Tensor], rotations: torch.Tensor, measured: torch.Tensor | None) -> dict:
    """Each particle of ``batch`` turned by its rotation, only the ``measured`` frequencies kept
    (all of them, the wedge turned too, when None). The grid is built once, and the input and the
    other volumes (density) are resampled in one call. The input is renormalised."""
    x = batch["x"]
    grid = rotation_grid(rotations, tuple(x.shape[-3:]))
    volumes = ["x", *(k for k, v in batch.items() if k not in ("x", "mask") and v.dim() >= 4)]
    stacked = torch.cat([batch[k].to(x.dtype) for k in volumes], dim=1) if len(volumes) > 1 else x
    turned = dict(
        zip(volumes, rotate_volumes(stacked, rotations, grid=grid).split([batch[k].shape[1] for k in volumes], 1))
    )
    if measured is None:  # spin: the wedge turns with the particle
        flat = turned["x"].flatten(1)
    else:
        spectrum = torch.fft.rfftn(turned["x"], dim=(-3, -2, -1)) * measured.to(x.device)
        flat = torch.fft.irfftn(spectrum, s=x.shape[-3:], dim=(-3, -2, -1)).flatten(1)
    std = flat.std(1).clamp_min(1e-6)
    out = {"x": ((flat - flat.mean(1, keepdim=True)) / std[:, None]).reshape(x.shape)}
    for key, value in batch.items():
        if key == "mask":
            out[key] = rotate_volumes(value[:, None].float(), rotations, "nearest", grid)[:, 0].to(value.dtype)
        elif key == "pose":  # the box turned by Aᵀ: the reference turned by Aᵀ P
            out[key] = turned_poses(value, rotations.transpose(1, 2))
        elif key != "x":
            out[key] = turned[key].to(value.dtype) if key in turned else value
    return out


def _mixed(batch: dict[str, torch.Tensor], generator: torch.Generator, measured: torch.Tensor, turns=ROT180) -> dict:
    """Each particle a ``rotate`` view, or (probability 1/2) one of the wedge-preserving 180° turns;
    only the particles that get a rotation are resampled."""
    n = len(batch["x"])
    device = batch["x"].device  # drawn on the CPU (the generator's stream), used where the batch is
    rotations = random_rotations(n, generator)
    exact = torch.rand(n, generator=generator) < 0.5
    chosen = torch.randint(len(turns), (n,), generator=generator)
    resampled = (~exact).nonzero().flatten()  # chosen on the CPU: no waiting on a GPU to decide
    volumes = [key for key, value in batch.items() if value.dim() >= 4]
    on_device = resampled.to(device)
    rotated = (
        rotated_batch({k: batch[k][on_device] for k in volumes}, rotations[resampled].to(device), measured)
        if len(resampled)
        else {}
    )
    out = {key: value for key, value in batch.items() if key not in volumes}
    for key in volumes:
        mixed = batch[key].clone()
        if rotated:
            mixed[on_device] = rotated[key]
        for i in exact.nonzero().flatten().tolist():
            mixed[i] = turn(batch[key][i : i + 1], turns[int(chosen[i])])[0]
        out[key] = mixed
    if "pose" in batch:
        by = torch.stack([turn_matrix(turns[int(c)]) for c in chosen]).to(device)
        by[~exact.to(device)] = rotations[~exact].to(device).transpose(1, 2)
        out["pose"] = turned_poses(batch["pose"], by)
    return out


def augment(
    batch: dict[str, torch.Tensor],
    kind: Augment,
    generator: torch.Generator,
    measured: torch.Tensor | None = None,
    turns: tuple[tuple[int, ...], ...] = ROT180,
) -> dict[str, torch.Tensor]:
    """One augmentation of ``batch`` (``x`` ``[B, 1, D, H, W]`` and its targets), every target moved
    with its input. ``flip`` and ``rot180`` turn the whole batch alike; ``rotate``, ``mixed`` and
    ``spin`` turn each particle its own way, the first two needing ``measured``
    (:func:`measured_frequencies`). ``turns`` are the data's wedge-preserving turns
    (:func:`wedge_turns`): with an asymmetric tilt range ``rot180`` and ``mixed`` use only those,
    and ``flip`` flips only along the tilt axis."""
    if kind == "spin":  # rotated with nothing re-masked
        return _rotate(batch, generator, None)
    if kind in RESAMPLED:
        if measured is None:
            raise ValueError(f"{kind} augmentation needs the measured-frequency mask")
        return _rotate(batch, generator, measured) if kind == "rotate" else _mixed(batch, generator, measured, turns)
    if kind == "flip":
        dims = tuple(d for d in _flip_axes(turns) if torch.rand((), generator=generator) < 0.5)
    elif kind == "rot180":
        dims = turns[int(torch.randint(len(turns), (), generator=generator))]
    else:
        dims = ()
    if not dims:
        return batch
    out = {k: (turn(v, dims) if v.dim() >= 4 else v) for k, v in batch.items()}
    if "pose" in batch:
        out["pose"] = turned_poses(batch["pose"], turn_matrix(dims))
    return out

"""Crowded tomograms: molecules at random positions and orientations, without overlaps."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.ndimage import affine_transform
from scipy.spatial.transform import Rotation

from dsmnet.registry.errors import UserError
from dsmnet.simulate.library import Structure

MAX_CROWDING = 0.35  # random sequential packing of irregular shapes jams below ~0.38
EXCLUSION = 0.3  # molecules keep apart where their density exceeds this fraction of the contour


CLOSING_NM = 2.0  # a region's gaps narrower than about twice this are closed


def region(density: np.ndarray, contour: float, voxel_size: float = 10.0) -> np.ndarray:
    """A molecule's region, the paper's segmentation target: its density at the contour, gaps
    between fragments closed (morphological closing with a ball of :data:`CLOSING_NM`) and
    enclosed cavities filled, so that "a hole in a macromolecule [...] still [is] categorized as a
    part of the segment" (Liu et al. 2018, §3.1). Open channels (GroEL's, a pore's) stay open."""
    inside = density >= contour
    r = max(1, int(round(CLOSING_NM * 10.0 / voxel_size)))
    grid = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    ball = (grid**2).sum(0) <= r * r
    padded = np.pad(inside, r + 1)
    closed = ndimage.binary_closing(padded, structure=ball)[(slice(r + 1, -(r + 1)),) * 3]
    return ndimage.binary_fill_holes(closed | inside)


class SimulationError(UserError, ValueError):
    """The requested simulation cannot be made (bad preset, class, box, crowding…)."""


_FLIP = np.eye(3)[::-1]  # xyz ↔ zyx


def rotate(density: np.ndarray, rotation: Rotation) -> np.ndarray:
    """Actively rotate a centred ``[z, y, x]`` cube: ``out(x) = in(Rᵀ x)`` about the cube centre
    (index ``n/2``), trilinear."""
    m = _FLIP @ rotation.as_matrix().T @ _FLIP
    centre = np.full(3, density.shape[0] // 2, dtype=float)
    return affine_transform(density, m, offset=centre - m @ centre, order=1, prefilter=False, output=np.float32)


def relion_angles(rotation: Rotation) -> tuple[float, float, float]:
    """``(rot, tilt, psi)`` in degrees, ZYZ, such that the particle is the reference actively
    rotated by ``Rotation.from_euler("ZYZ", (rot, tilt, psi), degrees=True)`` (RELION's convention)."""
    rot, tilt, psi = rotation.as_euler("ZYZ", degrees=True)
    return float(rot), float(tilt), float(psi)


@dataclass
class Molecule:
    """A placed molecule: class, centre (voxel index ``[z, y, x]``), orientation and its rotated map."""

    ident: int
    cls: int
    centre: np.ndarray
    rotation: Rotation
    density: np.ndarray = field(repr=False)
    contour: float
    region: np.ndarray = field(repr=False)  # the segmentation target (see :func:`region`)

    @property
    def corner(self) -> np.ndarray:
        return self.centre - self.density.shape[0] // 2


@dataclass
class Tomogram:
    """A clean (noise-free, unfiltered) crowded tomogram and what is in it."""

    clean: np.ndarray
    labels: np.ndarray  # class index + 1 per voxel, 0 = solvent
    molecules: list[Molecule]
    occupancy: float


def _region(corner: np.ndarray, size: int) -> tuple[slice, slice, slice]:
    return tuple(slice(int(c), int(c) + size) for c in corner)  # type: ignore[return-value]


def _position(s: Structure, shape: tuple[int, int, int], taken: np.ndarray, rng: np.random.Generator, tries: int):
    """A random orientation of ``s`` and a random position where it overlaps nothing placed yet
    (its exclusion zone against ``taken``), tried ``tries`` times: (rotation, rotated density,
    corner, the box's slices), or None."""
    rotation = Rotation.random(random_state=rng)
    density = rotate(s.density, rotation)
    exclusion = density > EXCLUSION * s.contour
    b = density.shape[0]
    for _ in range(tries):
        corner = np.array([rng.integers(0, n - b + 1) for n in shape])
        box = _region(corner, b)
        if not (taken[box] & exclusion).any():
            return rotation, density, corner, box
    return None


def _put(s: Structure, density: np.ndarray, box, cls: int, clean, labels, taken) -> np.ndarray:
    """Adds a placed molecule to the tomogram: its density, the room it takes, and its label on
    the voxels of its own region that no earlier neighbour holds (returned)."""
    taken[box] |= density > EXCLUSION * s.contour
    clean[box] += density
    own = region(density, s.contour, s.voxel_size) & ~(labels[box] > 0)  # neighbours excluded
    labels[box][own] = cls + 1
    return own


def _check_crowding(shape: tuple[int, int, int], structures: list[Structure], crowding: float) -> None:
    if not 0 < crowding <= MAX_CROWDING:
        raise SimulationError(f"crowding must be in (0, {MAX_CROWDING}] (volume fraction), got {crowding}")
    largest = max(s.box for s in structures)
    if min(shape) < largest:
        raise SimulationError(f"tomogram {shape} is smaller than the largest structure ({largest}³ voxels)")


def crowd(
    shape: tuple[int, int, int],
    structures: list[Structure],
    crowding: float,
    rng: np.random.Generator,
    first_id: int = 0,
    max_tries: int = 100,
) -> Tomogram:
    """Place molecules until ``crowding`` of the volume is molecular (inside the contours).

    Every class gets the same number of copies, placed largest first (random sequential addition
    jams early when large molecules come last) at random positions and orientations, each tried
    at up to ``max_tries`` positions before it is dropped.

    Raises:
        SimulationError: the crowding cannot be reached (jammed) or a structure does not fit.
    """
    _check_crowding(shape, structures, crowding)
    volume = float(np.prod(shape))
    sizes = np.array([(s.density >= s.contour).sum() for s in structures], float)
    copies = int(np.ceil(crowding * volume / sizes.sum()))
    order = np.argsort(-sizes, kind="stable")
    clean = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int8 if len(structures) < 127 else np.int16)
    taken = np.zeros(shape, bool)
    molecules: list[Molecule] = []
    filled = 0
    target = crowding * volume
    # first the estimated number of copies per class, largest first; then whole rounds until
    # the crowding is reached (rotation smooths maps, so the estimate falls a little short)
    plan = [c for c in order for _ in range(copies)]
    while filled < target:
        placed = 0
        for cls in plan:
            if filled >= target and len(plan) == len(order):
                break
            s = structures[int(cls)]
            found = _position(s, shape, taken, rng, max_tries)
            if found is None:
                continue
            rotation, density, corner, box = found
            own = _put(s, density, box, int(cls), clean, labels, taken)
            filled += int((density >= s.contour).sum())
            placed += 1
            b = density.shape[0]
            molecules.append(
                Molecule(first_id + len(molecules), int(cls), corner + b // 2, rotation, density, s.contour, own)
            )
        if placed < len(plan) / 2 and filled < target:
            break
        plan = list(order)
    if filled < target:
        raise SimulationError(
            f"cannot reach crowding {crowding:.2f} in a {'×'.join(map(str, shape))} tomogram: "
            f"jammed at {filled / volume:.2f}; lower the crowding or enlarge the tomogram"
        )
    return Tomogram(clean, labels, molecules, filled / volume)


def paste(volume: np.ndarray, corner: np.ndarray, box: int, centre: np.ndarray) -> np.ndarray:
    """The part of ``volume`` (placed with its corner at ``corner``) inside the ``box``³ centred at
    ``centre``, as a ``box``³ array (zeros elsewhere)."""
    out = np.zeros((box,) * 3, volume.dtype)
    lo = centre - box // 2  # box corner in tomogram coordinates
    src, dst = [], []
    for axis in range(3):
        start = max(lo[axis], corner[axis])
        stop = min(lo[axis] + box, corner[axis] + volume.shape[axis])
        if stop <= start:
            return out
        src.append(slice(int(start - corner[axis]), int(stop - corner[axis])))
        dst.append(slice(int(start - lo[axis]), int(stop - lo[axis])))
    out[tuple(dst)] = volume[tuple(src)]
    return out

"""Assemble pseudo-complexes from real subunits by point-group or helical symmetry, in contact.

Real complexes are contiguous: neighbouring subunits touch. Every assembler here has one free
size (a ring's radius, a shell's radius, the spacing of two rings, a dimer's separation) and sets
it by bisection so that a set fraction of the atoms (:data:`INTERFACE`) lie within
:data:`CONTACT` Å of another copy: the copies share interfaces of the size real oligomers bury,
whatever the subunit's shape. (Spacing copies by their bounding
spheres, as a first version did, leaves elongated subunits as separate blobs.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from dsmnet.simulate.density import Atoms

CONTACT = 4.5  # Å: an atom within this distance of another copy's atom lies at an interface
INTERFACE = 0.06  # fraction of each assembly's atoms at an interface (a 40 kDa subunit with two
# neighbours in a ring then buries ~2 × 900 Å², as real homo-oligomers do)
Part = tuple[Atoms, np.ndarray, np.ndarray]  # subunit, rotation (3×3), shift (Å)


def _combine(subunits: list[Part]) -> Atoms:
    """Concatenate subunits, each rotated (3×3) then translated (Å), and re-centre."""
    xyz = np.concatenate([a.xyz @ rot.T + shift for a, rot, shift in subunits])
    elements = [e for a, _, _ in subunits for e in a.elements]
    mass = sum(a.mass_da for a, _, _ in subunits)
    return Atoms(xyz - xyz.mean(0), elements, mass)


def interface_fraction(parts: list[Part], contact: float = CONTACT) -> float:
    """The fraction of all atoms lying within ``contact`` Å of an atom of another copy; 0 when
    the copies do not form one connected network of contacts."""
    placed = [a.xyz @ rot.T + shift for a, rot, shift in parts]
    centres = [p.mean(0) for p in placed]
    radii = [float(np.sqrt(((p - c) ** 2).sum(1)).max()) for p, c in zip(placed, centres)]
    trees = [cKDTree(p) for p in placed]
    near = [np.zeros(len(p), bool) for p in placed]
    group = list(range(len(placed)))  # union-find over copies in contact

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i in range(len(placed)):
        for j in range(i + 1, len(placed)):
            if np.linalg.norm(centres[i] - centres[j]) - radii[i] - radii[j] > contact:
                continue
            d, k = trees[i].query(placed[j], k=1, distance_upper_bound=contact)
            hit = np.isfinite(d)
            near[j] |= hit
            near[i][k[hit]] = True
            if hit.any():
                group[root(i)] = root(j)
    if len({root(i) for i in range(len(placed))}) > 1:
        return 0.0
    return float(sum(n.sum() for n in near) / sum(len(n) for n in near))


def touching(build: Callable[[float], list[Part]], far: float, interface: float = INTERFACE) -> float:
    """The largest size ``s`` in ``(0, far]`` at which ``interface`` of ``build(s)``'s atoms lie at
    an interface between copies (to 0.1 Å), by bisection; ``far`` must keep the copies apart."""
    lo, hi = 0.0, far
    if interface_fraction(build(hi)) >= interface > 0:
        raise ValueError(f"copies are in contact even at size {far:.1f} Å")
    while hi - lo > 0.1:
        mid = (lo + hi) / 2
        if interface_fraction(build(mid)) >= interface:
            lo = mid
        else:
            hi = mid
    return lo


def upright(subunit: Atoms) -> Atoms:
    """The subunit turned so that its longest principal axis lies along z (a pore's staves)."""
    _, vectors = np.linalg.eigh(np.cov(subunit.xyz.T))  # ascending: the last is the longest axis
    basis = vectors[:, [0, 1, 2]]
    if np.linalg.det(basis) < 0:
        basis[:, 0] *= -1
    return Atoms(subunit.xyz @ basis, subunit.elements, subunit.mass_da)


def _rz(angle: float) -> np.ndarray:
    return Rotation.from_euler("z", angle).as_matrix()


def _ring(subunit: Atoms, n: int, radius: float, z: float = 0.0, flip: bool = False) -> list[Part]:
    base = Rotation.from_euler("x", np.pi).as_matrix() if flip else np.eye(3)
    return [
        (
            subunit,
            _rz(2 * np.pi * k / n) @ base,
            np.array([radius * np.cos(2 * np.pi * k / n), radius * np.sin(2 * np.pi * k / n), z]),
        )
        for k in range(n)
    ]


def ring_radius(subunit: Atoms, n: int, flip: bool = False) -> float:
    """The radius at which ``n`` copies around z (Cn) share interfaces with their neighbours."""
    far = (subunit.radius + CONTACT) / np.sin(np.pi / n)
    return touching(lambda r: _ring(subunit, n, r, flip=flip), far)


def stacked_rings(layers: list[tuple[Atoms, bool]], n: int) -> Atoms:
    """Rings of ``n`` (each touching within itself) stacked along z, each ring touching the one
    below: e.g. a GroEL-like D7 double ring or a proteasome-like α7β7β7α7 barrel."""
    rings = [(sub, flip, ring_radius(sub, n, flip)) for sub, flip in layers]
    parts = _ring(rings[0][0], n, rings[0][2], 0.0, rings[0][1])
    z = 0.0
    for sub, flip, radius in rings[1:]:
        below = parts[-n:]
        far = 2 * (max(a.radius for a, _, _ in below) + sub.radius + CONTACT)
        build = lambda dz, z=z, below=below, sub=sub, radius=radius, flip=flip: (  # noqa: E731  (bound now)
            below + _ring(sub, n, radius, z + dz, flip)
        )
        # the rings' own interfaces, plus half as much again between the rings
        within = (interface_fraction(below) + interface_fraction(_ring(sub, n, radius, 0.0, flip))) / 2
        step = touching(build, far, within + INTERFACE / 2)
        z += step
        parts += _ring(sub, n, radius, z, flip)
    return _combine(parts)


def point_group(subunit: Atoms, group: str) -> Atoms:
    """Copies of ``subunit`` under a point group (``T``: 12, ``O``: 24, ``I``: 60) on the smallest
    shell on which they touch without clashing."""
    rots = Rotation.create_group(group).as_matrix()
    direction = np.array([0.31, 0.52, 0.79])
    direction /= np.linalg.norm(direction)

    def build(r: float) -> list[Part]:
        return [(subunit, rot, rot @ direction * r) for rot in rots]

    return _combine(build(touching(build, 3 * subunit.radius * len(rots) ** 0.5)))


def dihedral(subunit: Atoms, n: int) -> Atoms:
    """A Dn assembly of ``2n`` copies: a ring of ``n`` and its upside-down twin, touching."""
    return stacked_rings([(subunit, False), (subunit, True)], n)


def helix(subunit: Atoms, copies: int, twist_deg: float, rise: float, radius: float) -> Atoms:
    """A helical filament segment: copy ``k`` turned by ``k·twist`` about z and raised by ``k·rise``;
    radius and rise are scaled together until neighbouring copies touch."""

    def build(scale: float) -> list[Part]:
        out = []
        for k in range(copies):
            angle = np.deg2rad(twist_deg * k)
            shift = scale * np.array([radius * np.cos(angle), radius * np.sin(angle), rise * k])
            out.append((subunit, _rz(angle), shift))
        return out

    far = 2 * (subunit.radius + CONTACT) / min(rise, radius)
    return _combine(build(touching(build, far)))


def dimer(subunit: Atoms, axis: str = "z") -> Atoms:
    """A C2 dimer: the subunit and its copy turned 180° about ``axis``, moved apart along x until
    they touch."""
    turn = Rotation.from_euler(axis, np.pi).as_matrix()

    def build(d: float) -> list[Part]:
        return [(subunit, np.eye(3), np.array([-d / 2, 0, 0])), (subunit, turn, np.array([d / 2, 0, 0]))]

    return _combine(build(touching(build, 2 * subunit.radius + 2 * CONTACT)))

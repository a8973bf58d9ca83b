"""Assemble pseudo-complexes from real subunits by point-group or helical symmetry."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from dsmnet.simulate.density import Atoms


def _combine(subunits: list[tuple[Atoms, np.ndarray, np.ndarray]]) -> Atoms:
    """Concatenate subunits, each rotated (3×3) then translated (Å), and re-centre."""
    xyz = np.concatenate([a.xyz @ rot.T + shift for a, rot, shift in subunits])
    elements = [e for a, _, _ in subunits for e in a.elements]
    mass = sum(a.mass_da for a, _, _ in subunits)
    return Atoms(xyz - xyz.mean(0), elements, mass)


def _rz(angle: float) -> np.ndarray:
    return Rotation.from_euler("z", angle).as_matrix()


def ring(subunit: Atoms, n: int, z: float = 0.0, flip: bool = False, phase: float = 0.0, gap: float = 2.0) -> list:
    """``n`` copies around the z axis (Cn), touching, at height ``z``; ``flip`` turns them upside
    down (the second ring of a Dn double ring)."""
    radius = (subunit.radius + gap / 2) / np.sin(np.pi / n) if n > 1 else 0.0
    base = Rotation.from_euler("x", np.pi).as_matrix() if flip else np.eye(3)
    out = []
    for k in range(n):
        angle = 2 * np.pi * k / n + phase
        rot = _rz(angle) @ base
        out.append((subunit, rot, np.array([radius * np.cos(angle), radius * np.sin(angle), z])))
    return out


def stacked_rings(layers: list[tuple[Atoms, bool]], n: int, gap: float = 2.0) -> Atoms:
    """Rings of ``n`` stacked along z, e.g. a proteasome-like α7β7β7α7 barrel."""
    heights = []
    z = 0.0
    for i, (sub, _) in enumerate(layers):
        if i:
            z += layers[i - 1][0].radius + sub.radius + gap
        heights.append(z)
    centre = heights[-1] / 2
    parts = [p for (sub, flip), h in zip(layers, heights) for p in ring(sub, n, h - centre, flip, gap=gap)]
    return _combine(parts)


def point_group(subunit: Atoms, group: str, gap: float = 2.0, packing: float = 1.0) -> Atoms:
    """Copies of ``subunit`` under a point group (``O``: 24, ``I``: 60, ``T``: 12) on a shell
    whose radius keeps neighbouring copies' bounding spheres apart; ``packing`` < 1 lets them
    interdigitate, as capsid proteins do."""
    rots = Rotation.create_group(group).as_matrix()
    direction = np.array([0.31, 0.52, 0.79])
    direction /= np.linalg.norm(direction)
    points = rots @ direction
    cos = np.clip(points @ points.T, -1, 1)
    np.fill_diagonal(cos, -1)
    min_angle = np.arccos(cos.max())
    radius = (subunit.radius * packing + gap / 2) / np.sin(min_angle / 2)
    return _combine([(subunit, r, r @ direction * radius) for r in rots])


def helix(subunit: Atoms, copies: int, twist_deg: float, rise: float, radius: float) -> Atoms:
    """A helical filament segment: each copy turned by ``twist_deg`` about z and raised by ``rise`` Å."""
    parts = []
    for k in range(copies):
        angle = np.deg2rad(twist_deg * k)
        shift = np.array([radius * np.cos(angle), radius * np.sin(angle), rise * k])
        parts.append((subunit, _rz(angle), shift))
    return _combine(parts)


def heteromer(subunits: list[Atoms], n_each: int = 2, gap: float = 2.0) -> Atoms:
    """A compact D2-like tetramer of two kinds of subunit (α2β2), at the corners of a tetrahedron."""
    r = max(s.radius for s in subunits) + gap / 2
    corners = np.array([[1, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]], dtype=float)
    corners *= r / np.sqrt(2)
    rots = Rotation.create_group("D2").as_matrix()
    kinds = [s for s in subunits for _ in range(n_each)]
    return _combine([(kinds[i], rots[i], corners[i]) for i in range(4)])

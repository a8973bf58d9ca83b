"""Atomic coordinates → electron-scattering density maps, with gemmi.

Maps are computed on a fine grid with gemmi's ``DensityCalculatorE`` (electron scattering
factors), then Fourier-cropped to the requested voxel size, so they are band-limited at the
coarse Nyquist frequency instead of aliased. Arrays are C-order ``[z, y, x]`` as in MRC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from dsmnet.registry.errors import UserError

OVERSAMPLE = 4  # fine grid spacing = voxel_size / OVERSAMPLE
DALTON_VOLUME = 1.21  # Å³ per dalton of protein (Matthews / Harpaz)


class StructureError(UserError, ValueError):
    """A coordinate file cannot be read or does not fit."""


@dataclass(frozen=True)
class Atoms:
    """Heavy-atom coordinates (Å, xyz) with their elements, centred on the centroid."""

    xyz: np.ndarray
    elements: list[str]
    mass_da: float

    @property
    def radius(self) -> float:
        """Largest distance of an atom from the centroid (Å)."""
        return float(np.sqrt((self.xyz**2).sum(1)).max()) if len(self.xyz) else 0.0


def read_atoms(path: str | Path, assembly: str | None = None) -> Atoms:
    """Read a PDB/mmCIF file (optionally its biological assembly): heavy atoms of the first model.

    Raises:
        StructureError: unreadable file or no atoms.
    """
    path = Path(path)
    try:
        st = gemmi.read_structure(str(path))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError/IOError variously
        raise StructureError(f"{path}: cannot read coordinates: {exc}") from None
    if len(st) == 0:
        raise StructureError(f"{path}: no models in the file")
    st.setup_entities()
    st.remove_hydrogens()
    st.remove_ligands_and_waters()
    st.remove_empty_chains()
    model = st[0]
    if assembly is not None:
        found = [a for a in st.assemblies if a.name == assembly]
        if not found:
            names = ", ".join(a.name for a in st.assemblies) or "none"
            raise StructureError(f"{path}: no biological assembly {assembly!r} (assemblies: {names})")
        model = gemmi.make_assembly(found[0], model, gemmi.HowToNameCopiedChain.AddNumber)
    atoms = [(a.pos.tolist(), a.element.name, a.element.weight) for ch in model for r in ch for a in r]
    if not atoms:
        raise StructureError(f"{path}: no protein or nucleic-acid atoms")
    xyz = np.array([a[0] for a in atoms], dtype=np.float64)
    xyz -= xyz.mean(0)
    return Atoms(xyz, [a[1] for a in atoms], float(sum(a[2] for a in atoms)))


def box_for(radius: float, voxel_size: float, margin: float = 2.0) -> int:
    """An even cube side (voxels) that holds a sphere of ``radius`` Å plus ``margin`` voxels, so
    any rotation of the molecule stays inside."""
    return 2 * math.ceil(radius / voxel_size + margin)


def density_map(atoms: Atoms, voxel_size: float, box: int | None = None) -> np.ndarray:
    """Electron-scattering density of ``atoms`` on a ``box``³ grid of ``voxel_size`` Å, centred.

    Returns:
        float32 ``[z, y, x]`` array, band-limited to the grid's Nyquist frequency.
    """
    box = box or box_for(atoms.radius, voxel_size)
    side = box * voxel_size
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(side, side, side, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    centre = side / 2
    for i, (pos, element) in enumerate(zip(atoms.xyz, atoms.elements)):
        res = gemmi.Residue()
        res.name = "UNK"
        res.seqid = gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name = element
        atom.element = gemmi.Element(element)
        atom.pos = gemmi.Position(*(pos + centre))
        atom.occ = 1.0
        atom.b_iso = 20.0
        res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    fine = box * OVERSAMPLE
    calc = gemmi.DensityCalculatorE()
    calc.d_min = 2 * voxel_size / OVERSAMPLE
    calc.rate = 1.0
    calc.set_grid_cell_and_spacegroup(st)
    calc.grid.set_size(fine, fine, fine)
    calc.set_refmac_compatible_blur(st[0])
    calc.add_model_density_to_grid(st[0])
    calc.grid.symmetrize_sum()
    grid = np.array(calc.grid, copy=True).transpose(2, 1, 0)  # gemmi [x, y, z] → [z, y, x]
    return fourier_crop(grid, box).astype(np.float32)


def fourier_crop(volume: np.ndarray, size: int) -> np.ndarray:
    """Resample an even cube to ``size``³ (even) by keeping its lowest frequencies: exact band-limited
    resampling; each coarse voxel holds the density integrated over it.

    Not :func:`dsmnet.core.resample.fourier_resize`, which bins a network's input: that one keeps
    the mean and the box's centre voxel, this one the integral and the grid's corner (voxel 0), the
    origin the library's maps were built on. Either gives the other's frequencies, but the grids
    differ by a phase, so swapping them would change every map of the library."""
    n = volume.shape[0]
    f = np.fft.fftshift(np.fft.fftn(volume))
    lo = n // 2 - size // 2
    cropped = f[lo : lo + size, lo : lo + size, lo : lo + size]
    return np.fft.ifftn(np.fft.ifftshift(cropped)).real  # the sum (integrated density) is kept


def contour_for_mass(density: np.ndarray, mass_da: float, voxel_size: float) -> float:
    """The density level whose enclosed volume equals the molecule's (1.21 Å³/Da): the level the
    segmentation masks are cut at."""
    voxels = max(1, round(mass_da * DALTON_VOLUME / voxel_size**3))
    flat = np.sort(density.ravel())[::-1]
    return float(flat[min(voxels, flat.size) - 1])

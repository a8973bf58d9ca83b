"""A simulated dataset written as a RELION-5 project reads back as its simulation made it: the
acquisition for ``simulate --like``, every pick on the voxel it was simulated at, and the boxes
``extract`` cuts there are the dataset's own, with their true classes."""

from __future__ import annotations

import numpy as np
import pytest

from dsmnet.cli import main
from dsmnet.dataset.mrc import read_mrc
from dsmnet.dataset.picks import read_picks
from dsmnet.dataset.project import read_acquisition
from dsmnet.dataset.star import read_star
from dsmnet.infer.extract import extract


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("relion5")
    argv = ["simulate", "--preset", "C", "--n", "24", "--seed", "5", "--tomogram", "64,128,128", "--box", "24",
            "--defocus", "3,4", "--dose", "100", "--out", str(root / "sim"),
            "--relion-project", str(root / "project")]  # fmt: skip
    assert main(argv) == 0
    return root


def test_the_project_holds_the_simulations_acquisition(project):
    got = read_acquisition(project / "project" / "Tomograms" / "job001" / "tomograms.star")
    assert (got["voltage_kv"], got["cs_mm"], got["amplitude_contrast"]) == (300.0, 2.0, 0.07)
    assert (got["tilt_min"], got["tilt_max"], got["tilt_step"]) == (-50.0, 70.0, 1.0)
    assert got["voxel_size"] == pytest.approx(13.68) and got["tomograms"] >= 1
    assert got["dose"] == pytest.approx(100.0)  # the last tilt's pre-exposure and its own share
    low, high = got["defocus_range_um"]
    assert 3.0 <= low <= high <= 4.0


def test_every_pick_lands_on_its_simulated_voxel_and_extract_cuts_the_same_box(project, tmp_path):
    star = project / "project" / "particles.star"
    tomograms = project / "project" / "Tomograms" / "job001" / "tomograms.star"
    sim = read_star(project / "sim" / "particles.star")
    picks = read_picks(star, tomograms=tomograms)
    assert sum(len(p.rows) for p in picks) == len(sim)
    for p in picks:
        mine = sim[sim["rlnTomoName"] == p.tomogram.path.stem.removeprefix("rec_")]
        want = mine[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy(float)
        np.testing.assert_allclose(p.positions, want, atol=1e-3)
        assert p.tomogram.tilt_range == (-50.0, 70.0)
    r = extract(star, tmp_path / "cut", tomograms=tomograms, box=24, voxel_size=13.68, log=lambda _: None)
    assert r["extracted"] + r["skipped"] == len(sim)
    cut = read_star(tmp_path / "cut" / "particles.star")
    assert list(cut["dsmClassName"]) == list(sim["dsmClassName"])[: len(cut)]  # the truth rides along
    first = read_mrc(tmp_path / "cut" / cut["rlnImageName"][0])[0]
    own = read_mrc(project / "sim" / sim["rlnImageName"][0])[0]
    np.testing.assert_allclose(first, own, atol=1e-5)  # the simulation's own box: same voxels


def test_a_project_needs_the_tomograms(tmp_path, capsys):
    argv = ["simulate", "--preset", "C", "--n", "4", "--no-tomograms", "--out", str(tmp_path / "s"),
            "--relion-project", str(tmp_path / "p")]  # fmt: skip
    assert main(argv) == 2
    assert "--relion-project needs the tomograms" in capsys.readouterr().err

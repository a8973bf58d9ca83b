"""Prediction on users' data: one step from a tomogram and its picks, folders of MRCs, RELION STAR
files with rlnImageName, outputs RELION/IMOD/napari open, and bad subtomograms."""

from __future__ import annotations

import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from dsmnet.dataset.mrc import DataError, read_mrc, write_mrc
from dsmnet.dataset.star import write_star
from dsmnet.infer.extract import extract
from dsmnet.infer.predict import predict

CLASSES = ("ruvb_7pbl", "mjap_9x2o", "mtor_4jsv")
VOXEL = 13.68


def users_tomogram(tmp_path: Path, small_data: Path, voxel: float = VOXEL) -> tuple[Path, np.ndarray]:
    """The simulated noisy tomogram as a user's: int16, a non-zero origin, and a header voxel
    size that is not the model's (the picks' pixel positions stay those of the file)."""
    with mrcfile.open(small_data / "tomograms" / "tomo_001.mrc") as mrc:
        data = np.asarray(mrc.data, np.float32)
    scaled = np.round(data / data.std() * 1000).astype(np.int16)
    tomo = tmp_path / "TS_01.mrc"
    with mrcfile.new(tomo) as mrc:
        mrc.set_data(scaled)
        mrc.voxel_size = voxel
        mrc.header.origin = (500.0, 250.0, -125.0)
    table = starfile.read(small_data / "particles.star")
    picks = table[table["rlnTomoName"] == "tomo_001"][["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]]
    return tomo, picks.to_numpy(float)


def relion5_picks(path: Path, xyz: np.ndarray, shape_zyx, voxel: float = VOXEL) -> Path:
    angst = (xyz - np.array(shape_zyx[::-1]) / 2.0) * voxel
    particles = pd.DataFrame(
        angst, columns=["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
    )
    particles.insert(0, "rlnTomoName", "TS_01")
    particles["rlnClassNumber"] = 7  # a RELION classification's, kept as dsmInputClassNumber
    particles["rlnOpticsGroup"] = 1
    optics = pd.DataFrame(
        {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnTomoTiltSeriesPixelSize": [VOXEL / 4]}
    )
    write_star(path, {"optics": optics, "particles": particles})
    return path


def test_predict_from_a_tomogram_and_relion5_picks(trained_run, small_data, tmp_path):
    tomo, xyz = users_tomogram(tmp_path, small_data, voxel=10.0)
    with mrcfile.open(tomo, header_only=True) as mrc:
        shape = (int(mrc.header.nz), int(mrc.header.ny), int(mrc.header.nx))
    xyz = np.vstack([xyz, [[1.0, 1.0, 1.0]]])  # one pick at the edge: its box crosses the border
    picks = relion5_picks(tmp_path / "particles.star", xyz, shape, voxel=10.0)
    said = []
    r = predict(trained_run, None, tmp_path / "out", tomogram=tomo, picks=picks, progress=False, log=said.append)
    out = tmp_path / "out"
    blocks = starfile.read(out / "predictions.star", always_dict=True)
    assert list(blocks) == ["optics", "particles"]  # the input's blocks, in its order
    table = blocks["particles"]
    assert len(table) == r["particles"] == len(xyz) - 1
    assert {"rlnCenteredCoordinateXAngst", "rlnTomoName", "rlnOpticsGroup"} <= set(table.columns)
    assert (table["dsmInputClassNumber"] == 7).all()
    probs = table[[f"dsmProb_{c}" for c in CLASSES]].to_numpy()
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (table["rlnClassNumber"] == table["dsmClassName"].map(lambda c: CLASSES.index(c) + 1)).all()
    for cls, part in table.groupby("dsmClassName"):
        per_class = starfile.read(out / "classes" / f"{cls}.star", always_dict=True)
        assert len(per_class["particles"]) == len(part) and "optics" in per_class
    with mrcfile.open(tomo, header_only=True) as t, mrcfile.open(out / "tomograms" / "TS_01_labels.mrc") as labels:
        assert labels.data.shape == shape and labels.data.dtype == np.int16
        assert labels.voxel_size.x == pytest.approx(float(t.voxel_size.x))
        assert tuple(labels.header.origin.item()) == tuple(t.header.origin.item())
        found = set(np.unique(labels.data)) - {0}
        assert found and found <= set(table["rlnClassNumber"])
        # each particle's label sits where the particle is
        centre = np.round(xyz[0][::-1]).astype(int)
        assert labels.data[tuple(centre)] in found | {0}
    with mrcfile.open(out / "tomograms" / "TS_01_density.mrc") as dens:
        assert dens.data.shape == shape and dens.data.dtype == np.float32
    assert (out / "tomograms" / "TS_01_labels.png").stat().st_size > 5000
    assert not list((out / "tomograms").glob(".*"))  # no temporary left behind


def test_a_tomogram_at_another_voxel_size_is_resampled_and_said_or_refused(trained_run, small_data, tmp_path):
    tomo, xyz = users_tomogram(tmp_path, small_data)  # 13.68 Å/voxel; the model takes 10
    table = pd.DataFrame(xyz * 10.0 / VOXEL, columns=["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    write_star(tmp_path / "p.star", {"particles": table})
    with pytest.raises(DataError, match="13.68 Å/voxel, but the model takes 10 Å/voxel"):
        predict(
            trained_run, None, tmp_path / "a", tomogram=tomo, picks=tmp_path / "p.star", rescale=False, progress=False
        )
    said = []
    r = predict(
        trained_run, None, tmp_path / "b", tomogram=tomo, picks=tmp_path / "p.star", progress=False, log=said.append
    )
    assert any("resampled to the model's 10 Å/voxel" in s for s in said)
    assert r["particles"] >= 1
    with mrcfile.open(tmp_path / "b" / "tomograms" / "TS_01_labels.mrc", header_only=True) as mrc:
        assert mrc.voxel_size.x == pytest.approx(VOXEL, rel=1e-5)  # the maps are on the tomogram's grid


def test_predict_reads_a_folder_of_mrcs_and_a_relion_star(trained_run, small_data, tmp_path, monkeypatch):
    folder = tmp_path / "boxes"
    folder.mkdir()
    for i, path in enumerate(sorted((small_data / "subtomograms").glob("*.mrc"))[:5]):
        shutil.copy(path, folder / f"particle_{i}.mrc")
    r = predict(trained_run, folder, tmp_path / "p1", progress=False)
    assert r["particles"] == 5
    # a RELION STAR whose rlnImageName paths are relative to the project folder (here: the cwd)
    star = tmp_path / "Extract" / "job001" / "particles.star"
    star.parent.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    names = [f"boxes/{p.name}" for p in sorted(folder.glob("*.mrc"))]
    write_star(star, {"particles": pd.DataFrame({"rlnImageName": names, "rlnTomoName": "TS_01"})})
    table = starfile.read(predict(trained_run, star, tmp_path / "p2", progress=False)["out"] + "/predictions.star")
    assert list(table["rlnImageName"]) == names and "dsmClassName" in table.columns
    stacked = tmp_path / "stack.star"
    write_star(stacked, {"particles": pd.DataFrame({"rlnImageName": ["1@Subtomograms/TS_01/1_stack2d.mrcs"]})})
    with pytest.raises(DataError, match="2D stack"):
        predict(trained_run, stacked, tmp_path / "p3", progress=False)


def test_bad_subtomograms_are_refused_or_skipped_and_listed(trained_run, small_data, tmp_path):
    folder = tmp_path / "boxes"
    folder.mkdir()
    files = sorted((small_data / "subtomograms").glob("*.mrc"))[:4]
    for i, path in enumerate(files):
        shutil.copy(path, folder / f"p{i}.mrc")
    volume, voxel = read_mrc(folder / "p1.mrc")
    volume[3, 4, 5] = np.nan
    write_mrc(folder / "p1.mrc", volume, voxel)
    write_mrc(folder / "p2.mrc", np.full_like(volume, 2.0), voxel)
    write_mrc(folder / "p3.mrc", volume[:-2, :-2, :-2] * 0 + np.random.default_rng(0).normal(size=(22, 22, 22)), voxel)
    with pytest.raises(DataError, match="p1.mrc: 1 NaN or infinite voxel"):
        predict(trained_run, folder, tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    r = predict(trained_run, folder, tmp_path / "b", skip_bad=True, progress=False, log=lambda _: None)
    assert (r["particles"], r["skipped"]) == (1, 3)
    skipped = starfile.read(tmp_path / "b" / "skipped.star")
    reasons = " ".join(skipped["dsmSkipReason"])
    assert "NaN" in reasons and "constant box" in reasons and "but the model takes 24×24×24" in reasons
    table = starfile.read(tmp_path / "b" / "predictions.star")
    assert len(table) == 1 and np.isfinite(table["dsmClassProbability"]).all()


def test_extract_writes_relion5_picks_at_the_models_voxel_size(small_data, tmp_path):
    tomo, xyz = users_tomogram(tmp_path, small_data)
    with mrcfile.open(tomo, header_only=True) as mrc:
        shape = (int(mrc.header.nz), int(mrc.header.ny), int(mrc.header.nx))
    picks = relion5_picks(tmp_path / "p.star", xyz * 10.0 / VOXEL, shape)
    r = extract(picks, tmp_path / "boxes", tomogram=tomo, box=24, log=lambda _: None)
    assert r["convention"] == "relion5" and r["voxel_size"] == 10.0 and r["rescaled"]
    table = starfile.read(tmp_path / "boxes" / "particles.star")
    assert "rlnCenteredCoordinateXAngst" in table.columns and (table["dsmTomogram"] == str(tomo)).all()
    given = starfile.read(picks)["particles"]  # every input column kept, row by row, for the boxes cut (in order)
    assert r["extracted"] + r["skipped"] == len(given) and r["extracted"] == len(table)
    kept = given.merge(table[list(given.columns)], how="inner")
    assert len(kept) == len(table) and list(table["rlnImageName"]) == [
        f"subtomograms/{n:06d}.mrc" for n in range(1, len(table) + 1)
    ]
    with mrcfile.open(tmp_path / "boxes" / table["rlnImageName"].iloc[0]) as mrc:
        assert mrc.voxel_size.x == pytest.approx(10.0) and mrc.data.shape == (24, 24, 24)


@pytest.mark.parametrize("tomo_voxel", [10.0, 13.68, 5.0])
def test_label_maps_put_each_mask_where_its_particle_is_and_overlaps_to_the_more_probable(tmp_path, tomo_voxel):
    from dsmnet.dataset.picks import Picks, tomogram_info
    from dsmnet.infer.extract import Box
    from dsmnet.infer.tomo_maps import TomogramMaps

    tomo = tmp_path / "t.mrc"
    write_mrc(tomo, np.random.default_rng(0).normal(size=(40, 60, 60)).astype(np.float32), tomo_voxel)
    positions = np.array([[20.0, 30.0, 30.0], [20.0, 30.0, 31.0]])  # z, y, x: overlapping
    picks = Picks(tomogram_info(tomo), pd.DataFrame({"i": [0, 1]}), positions, "relion4")
    maps = TomogramMaps(picks, tmp_path, list(CLASSES), voxel_size=10.0)
    ball = np.indices((16, 16, 16)) - 8.0
    ball = ((ball**2).sum(0) <= 9).astype(np.int8)  # radius 3 model voxels = 30 Å
    maps.add(Box(0, None, True, picks), ball, ball.astype(np.float32), 0, 0.6)
    maps.add(Box(1, None, True, picks), ball, 2 * ball.astype(np.float32), 2, 0.9)
    maps.close()
    with (
        mrcfile.open(tmp_path / "tomograms" / "t_labels.mrc") as labels,
        mrcfile.open(tmp_path / "tomograms" / "t_density.mrc") as dens,
    ):
        assert labels.data[20, 30, 31] == 3 and dens.data[20, 30, 31] == 2.0  # the overlap: the more probable
        radius = 30.0 / tomo_voxel
        left = int(np.ceil(30 - radius))  # the first ball's edge away from the second
        assert labels.data[20, 30, left] == 1 and dens.data[20, 30, left] == 1.0
        assert labels.data[20, 30, left - 2] == 0 and labels.data[20, 30 + int(radius) + 3, 30] == 0
        volume = (labels.data > 0).sum() * tomo_voxel**3
        R, d = 30.0, tomo_voxel  # two 30 Å balls one tomogram voxel apart: their union
        expected = 2 * (4 / 3) * np.pi * R**3 - np.pi * (4 * R + d) * (2 * R - d) ** 2 / 12
        assert 0.7 * expected < volume < 1.4 * expected

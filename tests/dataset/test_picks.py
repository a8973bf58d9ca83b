"""Picks in both RELION conventions, tomograms.star, boxes at another voxel size, bad files."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest

from dsmnet.dataset.boxes import TomogramBoxes
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.picks import read_picks, to_relion5
from dsmnet.dataset.star import write_star

SHAPE = (30, 50, 44)  # z, y, x: odd and even sizes, so the centre's half voxel matters
VOXEL = 13.68  # Å: a binned tomogram, not the model's 10 Å
ORIGIN = (120.0, -40.0, 300.0)  # Å, x y z


def int16_tomogram(path: Path, shape=SHAPE, voxel=VOXEL) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = (rng.normal(0, 300, shape)).astype(np.int16)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
        mrc.header.origin = ORIGIN
    return data


# 0-based (x, y, z) voxel positions: inside, sub-voxel, and at the edge
POSITIONS = np.array([[22.0, 25.0, 15.0], [10.3, 30.6, 12.2], [1.0, 2.0, 3.0]])


def relion4(path: Path, name="tomo") -> Path:
    table = pd.DataFrame(POSITIONS, columns=["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    table.insert(0, "rlnTomoName", name)
    table["rlnAngleRot"] = [10.0, 20.0, 30.0]
    write_star(path, {"particles": table})
    return path


def relion5(path: Path, centre_xyz, voxel=VOXEL, name="tomo", optics=True) -> Path:
    angst = (POSITIONS - np.asarray(centre_xyz)) * voxel
    table = pd.DataFrame(
        angst, columns=["rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"]
    )
    table.insert(0, "rlnTomoName", name)
    table["rlnOpticsGroup"] = 1
    blocks = {"particles": table}
    if optics:
        blocks = {"optics": pd.DataFrame({"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [VOXEL / 4]}), **blocks}
    write_star(path, blocks)
    return path


def test_relion4_and_relion5_picks_give_the_same_positions_and_boxes(tmp_path):
    tomo = tmp_path / "tomo.mrc"
    int16_tomogram(tomo)
    centre = np.array(SHAPE[::-1]) / 2.0  # RELION: size / 2 (float), here from the MRC header
    a = read_picks(relion4(tmp_path / "r4.star"), tomogram=tomo)[0]
    b = read_picks(relion5(tmp_path / "r5.star", centre), tomogram=tomo)[0]
    assert (a.convention, b.convention) == ("relion4", "relion5")
    np.testing.assert_allclose(a.positions, POSITIONS[:, ::-1], atol=1e-9)
    np.testing.assert_array_equal(b.positions, a.positions)
    np.testing.assert_allclose(to_relion5(b.positions, b.tomogram), b.rows.iloc[:, 1:4].to_numpy(float), atol=1e-6)
    for voxel_size in (VOXEL, 10.0):  # sliced at the tomogram's own size, resampled at the model's
        with TomogramBoxes(tomo, 16, voxel_size, VOXEL) as cut:
            for pa, pb in zip(a.positions, b.positions):
                box_a, inside_a = cut.cut(pa)
                box_b, inside_b = cut.cut(pb)
                assert inside_a == inside_b
                np.testing.assert_array_equal(box_a, box_b)
    # the edge pick's box crosses the border; the others do not
    with TomogramBoxes(tomo, 16, VOXEL, VOXEL) as cut:
        assert [cut.cut(p)[1] for p in a.positions] == [True, True, False]


def test_an_unresampled_box_is_the_tomogram_slice_around_the_rounded_pick(tmp_path):
    tomo = tmp_path / "tomo.mrc"
    data = int16_tomogram(tomo)
    with TomogramBoxes(tomo, 16, VOXEL, VOXEL) as cut:
        box, inside = cut.cut(np.array([15.0, 25.0, 22.0]))
    assert inside and box.dtype == np.float32
    np.testing.assert_array_equal(box, data[7:23, 17:33, 14:30])


def test_resampling_keeps_scale_and_position(tmp_path):
    """A Gaussian blob at a known place, resampled from 13.68 to 10 Å/voxel (and to 20), stays a
    blob at the box centre with its width in Å kept."""
    tomo = tmp_path / "blob.mrc"
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    centre = np.array([14.4, 24.7, 21.2])
    sigma = 2.0  # voxels of 13.68 Å
    blob = np.exp(-((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) / (2 * sigma**2))
    with mrcfile.new(tomo) as mrc:
        mrc.set_data(blob.astype(np.float32))
        mrc.voxel_size = VOXEL
    for model_voxel in (10.0, 20.0):
        with TomogramBoxes(tomo, 16, model_voxel, VOXEL) as cut:
            box, _ = cut.cut(centre)
        grid = np.indices(box.shape).reshape(3, -1)
        w = np.clip(box.reshape(-1), 0, None)
        mean = (grid * w).sum(1) / w.sum()
        np.testing.assert_allclose(mean, 8.0, atol=0.1)  # the pick is voxel box//2
        width = np.sqrt(((grid - mean[:, None]) ** 2 * w).sum(1) / w.sum())
        np.testing.assert_allclose(width * model_voxel, sigma * VOXEL, rtol=0.12)


def test_tomograms_star_names_files_and_sizes(tmp_path):
    """RELION-5 picks of two tomograms found through tomograms.star; the centre comes from its
    rlnTomoSizeX/Y/Z (tilt-series pixels), not from the binned file's header."""
    (tmp_path / "tomos").mkdir()
    for name in ("TS_01", "TS_02"):
        int16_tomogram(tmp_path / "tomos" / f"{name}_13.68Apx.mrc")
    ts_pixel = VOXEL / 4
    size = np.array([177, 201, 121])  # tilt-series pixels: binned by 4 → 44.25, 50.25, 30.25
    global_ = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01", "TS_02"],
            "rlnTomoReconstructedTomogram": [f"tomos/TS_0{i}_13.68Apx.mrc" for i in (1, 2)],
            "rlnTomoSizeX": [size[0]] * 2,
            "rlnTomoSizeY": [size[1]] * 2,
            "rlnTomoSizeZ": [size[2]] * 2,
            "rlnTomoTiltSeriesPixelSize": [ts_pixel] * 2,
        }
    )
    write_star(tmp_path / "tomograms.star", {"global": global_})
    centre = size * ts_pixel / (2 * VOXEL)
    one = relion5(tmp_path / "a.star", centre, name="TS_01")
    two = relion5(tmp_path / "b.star", centre, name="TS_02")
    both = tmp_path / "both.star"
    import starfile

    tables = [starfile.read(p, always_dict=True)["particles"] for p in (one, two)]
    write_star(both, {"particles": pd.concat(tables, ignore_index=True)})
    groups = read_picks(both, tomograms=tmp_path / "tomograms.star")
    assert [g.tomogram.path.name for g in groups] == ["TS_01_13.68Apx.mrc", "TS_02_13.68Apx.mrc"]
    for g in groups:
        np.testing.assert_allclose(g.positions, POSITIONS[:, ::-1], atol=1e-5)
    by_folder = read_picks(both, tomograms=tmp_path / "tomos")  # names matched to files in a folder
    assert [len(g.rows) for g in by_folder] == [3, 3]


@pytest.mark.parametrize(
    "write,message",
    [
        (lambda p: p.write_bytes(b"not an MRC file at all" * 50), "not a readable MRC file"),
        (lambda p: (int16_tomogram(p), p.write_bytes(p.read_bytes()[:2000])), "not a readable MRC file"),
    ],
    ids=["not-mrc", "truncated"],
)
def test_a_bad_tomogram_is_named(tmp_path, write, message):
    tomo = tmp_path / "bad.mrc"
    write(tomo)
    with pytest.raises(DataError, match=f"{tomo}: {message}"):
        read_picks(relion4(tmp_path / "p.star"), tomogram=tomo)


def test_picks_without_coordinates_or_tomogram_are_refused(tmp_path):
    tomo = tmp_path / "tomo.mrc"
    int16_tomogram(tomo)
    star = tmp_path / "none.star"
    write_star(star, {"particles": pd.DataFrame({"rlnTomoName": ["tomo"], "rlnAngleRot": [0.0]})})
    with pytest.raises(
        DataError, match="none.star: no particle coordinates: expected rlnCoordinateX.*rlnCenteredCoordinateXAngst"
    ):
        read_picks(star, tomogram=tomo)
    with pytest.raises(DataError, match="give the tomogram"):
        read_picks(relion4(tmp_path / "p.star"))
    with pytest.raises(DataError, match="no tomogram for rlnTomoName 'tomo'"):
        (tmp_path / "empty").mkdir()
        read_picks(relion4(tmp_path / "p.star"), tomograms=tmp_path / "empty")

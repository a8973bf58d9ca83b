"""Real projects' files read as their own programs read them: excerpts laid out as RELION-4
tomography, Warp 2 / Warp-M and RELION-5 projects write them (a few rows each), checking the
voxel each pick lands on and the one line that says how the coordinates were read."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from dsmnet.dataset.boxes import TomogramBoxes
from dsmnet.dataset.picks import read_picks

FILES = Path(__file__).parent / "files"  # project files as RELION, Warp and M write them
TS_PIXEL = 1.971  # Å: the unbinned tilt-series pixel of a RELION-4 tutorial-style project

# RELION-4 (relion_tomo) particles file: an optics table with the tilt-series pixel size, the
# coordinates in unbinned tilt-series pixels (laid out as RELION 4.0 writes it)
RELION4_PARTICLES = (FILES / "relion4_particles.star").read_text()
# where they land in a bin-8 tomogram (15.768 Å): 0-based (z, y, x)
RELION4_BIN8 = np.array([[15.0, 43.0, 23.0], [22.0, 25.0, 30.5], [10.0, 16.5, 12.5]])


def tomogram(path: Path, shape, voxel: float, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
    return data


def test_relion4_tomography_coordinates_are_unbinned_tilt_series_pixels(tmp_path):
    star = tmp_path / "particles.star"
    star.write_text(RELION4_PARTICLES)
    tomogram(tmp_path / "TS_01.mrc", (32, 56, 48), TS_PIXEL * 8)
    lines: list[str] = []
    (picks,) = read_picks(star, tmp_path / "TS_01.mrc", log=lines.append)
    np.testing.assert_allclose(picks.positions, RELION4_BIN8, atol=1e-4)
    assert len(lines) == 1 and "unbinned tilt-series pixels of 1.971 Å" in lines[0] and "÷ 8" in lines[0]
    assert "optics table" in lines[0]
    # against a bin-2 tomogram of the same data: 4× the voxel numbers, not the bin-8 ones
    (tmp_path / "bin2").mkdir()
    tomogram(tmp_path / "bin2" / "TS_01.mrc", (128, 224, 192), TS_PIXEL * 2)
    (bin2,) = read_picks(star, tomograms=tmp_path / "bin2")
    np.testing.assert_allclose(bin2.positions, RELION4_BIN8 * 4, atol=1e-3)
    # the user's word overrides the files'
    (given,) = read_picks(star, tmp_path / "TS_01.mrc", coords_voxel_size=TS_PIXEL * 8, log=lines.append)
    np.testing.assert_allclose(given.positions[0], [120.0 - 0.0, 344.0, 184.0], atol=1e-4)
    assert "--picks-pixel-size" in lines[-1]


def test_plain_picks_are_pixels_of_the_tomogram(tmp_path):
    plain = "\n".join(
        [
            "data_particles",
            "loop_",
            "_rlnTomoName",
            "_rlnCoordinateX",
            "_rlnCoordinateY",
            "_rlnCoordinateZ",
            "TS_01 23.0 43.0 15.0",
        ]
    )
    star = tmp_path / "picks.star"
    star.write_text(plain + "\n")
    tomogram(tmp_path / "TS_01.mrc", (32, 56, 48), 15.768)
    lines: list[str] = []
    (picks,) = read_picks(star, tmp_path / "TS_01.mrc", log=lines.append)
    np.testing.assert_allclose(picks.positions, [[15.0, 43.0, 23.0]])
    assert "pixels of the tomogram TS_01.mrc" in lines[0] and "plain picks" in lines[0]


# Warp 2 names tomograms after their .tomostar and writes reconstructions as <name>_<pixel>Apx.mrc
WARP2 = (FILES / "warp2.star").read_text()

# A Warp/M export (laid out as the starfile documentation's Warp example): no rlnTomoName, the
# tomogram named by a .tomostar rlnMicrographName
WARP_M = (FILES / "warp_m.star").read_text()


def test_warp_tomostar_names_find_their_reconstructions(tmp_path):
    recon = tmp_path / "reconstruction"
    recon.mkdir()
    tomogram(recon / "TS_17_10.00Apx.mrc", (32, 56, 48), 10.0)
    tomogram(recon / "TS.mrc_10.00Apx.mrc", (32, 56, 48), 10.0, seed=1)
    (tmp_path / "warp2.star").write_text(WARP2)
    (picks,) = read_picks(tmp_path / "warp2.star", tomograms=recon)
    assert picks.tomogram.path.name == "TS_17_10.00Apx.mrc"
    np.testing.assert_allclose(picks.positions, [[15.0, 43.0, 23.0], [22.0, 25.0, 30.5]])
    (one,) = read_picks(tmp_path / "warp2.star", recon / "TS_17_10.00Apx.mrc")  # the tomogram named directly
    assert len(one.rows) == 2
    (tmp_path / "warpm.star").write_text(WARP_M)
    (m,) = read_picks(tmp_path / "warpm.star", tomograms=recon)
    assert m.tomogram.path.name == "TS.mrc_10.00Apx.mrc"
    np.testing.assert_allclose(m.positions, [[15.0, 43.0, 23.0]])


# RELION-5's tutorial tomograms.star lists the half tomograms only, relative to the project folder
TOMOGRAMS_STAR = (FILES / "tomograms_star.star").read_text()

RELION5_PICKS = (FILES / "relion5_picks.star").read_text()


def test_relion5_half_tomograms_relative_to_the_project_folder_are_averaged(tmp_path, monkeypatch):
    project = tmp_path / "project"
    folder = project / "Tomograms" / "job007" / "tomograms"
    folder.mkdir(parents=True)
    shape = (32, 56, 48)  # = rlnTomoSize × 1.35 / 13.5, as z y x
    half1 = tomogram(folder / "rec_TS_01_half1.mrc", shape, 13.5, seed=1)
    half2 = tomogram(folder / "rec_TS_01_half2.mrc", shape, 13.5, seed=2)
    (project / "Tomograms" / "job007" / "tomograms.star").write_text(TOMOGRAMS_STAR)
    (project / "particles.star").write_text(RELION5_PICKS)
    monkeypatch.chdir(project)  # RELION runs in its project folder: the paths are relative to it
    lines: list[str] = []
    (picks,) = read_picks("particles.star", tomograms="Tomograms/job007/tomograms.star", log=lines.append)
    # centre (24, 28, 16) voxels (x, y, z) + Å / 13.5 → x 21, y 38, z 15
    np.testing.assert_allclose(picks.positions, [[15.0, 38.0, 21.0]], atol=1e-4)
    assert picks.tomogram.halves and "the mean of its two halves" in lines[0]
    with TomogramBoxes(picks.tomogram.path, 4, 13.5, 13.5, picks.tomogram.halves) as cutter:
        box, inside = cutter.cut(picks.positions[0])
    assert inside
    np.testing.assert_allclose(box, (half1[13:17, 36:40, 19:23] + half2[13:17, 36:40, 19:23]) / 2, rtol=1e-6)


@pytest.mark.parametrize("value", ["0", "-1.5"])
def test_a_picks_pixel_size_that_is_not_positive_is_refused(tmp_path, value, capsys):
    from dsmnet.cli import main

    star = tmp_path / "p.star"
    star.write_text(RELION4_PARTICLES)
    status = main(
        ["extract", str(star), "--tomogram", "x.mrc", "--out", str(tmp_path / "o"), "--picks-pixel-size", value]
    )
    assert status == 2 and "--picks-pixel-size must be a positive size" in capsys.readouterr().err


TILT_SERIES = (FILES / "tilt_series.star").read_text()


def test_a_tomogram_recorded_over_another_tilt_range_is_said_before_prediction(tmp_path, monkeypatch):
    from dsmnet.infer.extract import check_wedge

    project = tmp_path / "project"
    folder = project / "Tomograms" / "job007" / "tomograms"
    folder.mkdir(parents=True)
    (project / "AlignTiltSeries" / "job006" / "tilt_series").mkdir(parents=True)
    (project / "AlignTiltSeries" / "job006" / "tilt_series" / "TS_01.star").write_text(TILT_SERIES)
    for k in (1, 2):
        tomogram(folder / f"rec_TS_01_half{k}.mrc", (32, 56, 48), 13.5, seed=k)
    (project / "Tomograms" / "job007" / "tomograms.star").write_text(TOMOGRAMS_STAR)
    (project / "particles.star").write_text(RELION5_PICKS)
    monkeypatch.chdir(project)
    picks = read_picks("particles.star", tomograms="Tomograms/job007/tomograms.star")
    assert picks[0].tomogram.tilt_range == (-50.0, 70.0)
    lines: list[str] = []
    check_wedge(picks, [-60.0, 60.0], lines.append)
    assert len(lines) == 1 and "from -50° to +70°" in lines[0] and "--tilt-range=-50,70" in lines[0]
    lines.clear()
    check_wedge(picks, [-50.0, 70.0], lines.append)  # the model was trained for this wedge
    check_wedge(picks, None, lines.append)  # a model from before wedges were recorded
    assert lines == []
    check_wedge(picks, [-50.0, 70.0], lines.append, axis="x")  # trained with the tilt axis along x
    assert len(lines) == 1 and "tilt axis along y; the model was trained with it along x" in lines[0]


def _tilt_series_star(path: Path, tilts, defocus_angstrom: float) -> None:
    rows = "\n".join(
        f"frames/TS_01_{i:03d}.tiff {t:.2f} {3.0 * i:.1f} {defocus_angstrom + 200 * (i % 3):.1f} "
        f"{defocus_angstrom + 150:.1f}"
        for i, t in enumerate(tilts)
    )
    path.write_text(
        "data_TS_01\n\nloop_\n_rlnMicrographMovieName #1\n_rlnTomoNominalStageTiltAngle #2\n"
        "_rlnMicrographPreExposure #3\n_rlnDefocusU #4\n_rlnDefocusV #5\n" + rows + "\n"
    )


def test_simulate_like_a_relion5_project(tmp_path, monkeypatch, capsys):
    from dsmnet.cli import main

    project = tmp_path / "project"
    series = project / "AlignTiltSeries" / "job006" / "tilt_series"
    series.mkdir(parents=True)
    (project / "Tomograms" / "job007").mkdir(parents=True)
    # dose-symmetric −50°…+70° in 3° steps, as the order a dose-symmetric scheme records them
    tilts = sorted(np.arange(-49.0, 71.0, 3.0), key=lambda t: abs(t - 11))
    _tilt_series_star(series / "TS_01.star", tilts, 38000.0)
    (project / "Tomograms" / "job007" / "tomograms.star").write_text(TOMOGRAMS_STAR)
    monkeypatch.chdir(project)
    out = tmp_path / "like"
    status = main(
        ["simulate", "--like", "Tomograms/job007/tomograms.star", "--n", "4", "--classes", "ruvb_7pbl,mjap_9x2o",
         "--box", "24", "--tomogram", "48,96,96", "--seed", "2", "--no-tomograms", "--out", str(out), "--cs", "2.7"]
    )  # fmt: skip
    said = capsys.readouterr().out
    assert status == 0 and "imaging like Tomograms/job007/tomograms.star (1 tomogram(s))" in said
    scope = json.loads((out / "simulation.json").read_text())["config"]["microscope"]
    assert (scope["voltage_kv"], scope["amplitude_contrast"], scope["cs_mm"]) == (300.0, 0.1, 2.7)  # --cs overrides
    assert (scope["tilt_min"], scope["tilt_max"], scope["tilt_step"]) == (-49.0, 68.0, 3.0)
    assert scope["defocus_range_um"] == pytest.approx([3.8075, 3.8275], abs=1e-3)  # mean of U and V, µm
    assert "13.5 Å/voxel" in said  # 1.35 Å × binning 10, said (the simulation stays at 10 Å)
    # 40 tilts, 3 e/Å² each: the last one's pre-exposure 117 and its own share make the total
    assert scope["dose"] == pytest.approx(120.0) and "dose 120 e/Å² (the last tilt's pre-exposure" in said


def test_simulate_like_a_project_without_the_columns_is_one_line(tmp_path, capsys):
    from dsmnet.cli import main

    star = tmp_path / "tomograms.star"
    star.write_text("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoTiltSeriesPixelSize #2\nTS_01 1.35\n")
    status = main(["simulate", "--like", str(star), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2 and "no rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast" in err
    assert "Traceback" not in err

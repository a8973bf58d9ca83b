"""The simulator: ground truth, imaging physics, format and determinism, on a small dataset."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
from scipy import ndimage

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import read_mrc
from dsmnet.simulate.crowding import SimulationError
from dsmnet.simulate.generate import SimulationConfig, simulate
from dsmnet.simulate.imaging import Microscope, image, wedge_mask
from dsmnet.simulate.library import load_library

SMALL = ["ruvb_7pbl", "gltph_2nwl", "mjap_9x2o", "cftr_6msm", "mtor_4jsv"]


def small_config(**kw) -> SimulationConfig:
    values = dict(n=40, classes=SMALL, snr=0.1, seed=3, box=32, tomogram=(64, 128, 128), crowding=0.05)
    values.update(kw)
    return SimulationConfig(**values)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "small"
    simulate(small_config(), out)
    return out


@pytest.fixture(scope="module")
def particles(dataset) -> starfile.pd.DataFrame:
    return starfile.read(dataset / layout.PARTICLES)


def test_star_reads_back_with_relion_columns_and_balanced_classes(dataset, particles):
    for column in (
        layout.TOMO,
        *layout.COORDS,
        *layout.ANGLES,
        layout.CLASS_NUMBER,
        layout.CLASS_NAME,
        layout.IMAGE,
        layout.MASK,
        layout.DENSITY,
    ):
        assert column in particles.columns
    assert len(particles) == 40
    assert sorted(particles[layout.CLASS_NAME].value_counts().tolist()) == [8] * 5
    classes = json.loads((dataset / layout.CLASSES).read_text())
    assert [c["name"] for c in classes] == SMALL
    for _, row in particles.iterrows():
        assert classes[row[layout.CLASS_NUMBER] - 1]["name"] == row[layout.CLASS_NAME]
        for col in (layout.IMAGE, layout.MASK, layout.DENSITY):
            assert (dataset / row[col]).is_file()


def test_mrc_headers_carry_the_voxel_size(dataset, particles):
    row = particles.iloc[0]
    for col in (layout.IMAGE, layout.MASK, layout.DENSITY):
        with mrcfile.open(dataset / row[col]) as mrc:
            assert mrc.voxel_size.x == mrc.voxel_size.y == mrc.voxel_size.z == pytest.approx(10.0)
            assert mrc.data.shape == (32, 32, 32)
    with mrcfile.open(dataset / "tomograms" / "tomo_001.mrc") as mrc:
        assert mrc.voxel_size.x == pytest.approx(10.0) and mrc.data.shape == (64, 128, 128)


def test_coordinates_and_angles_locate_the_target(dataset, particles):
    """The mask cut from the label tomogram at the STAR coordinates is the target's class."""
    labels, _ = read_mrc(dataset / "tomograms" / "tomo_001_labels.mrc")
    for _, row in particles[particles[layout.TOMO] == "tomo_001"].iterrows():
        x, y, z = (int(row[c]) for c in layout.COORDS)
        box = labels[z - 16 : z + 16, y - 16 : y + 16, x - 16 : x + 16]
        mask, _ = read_mrc(dataset / row[layout.MASK])
        on = box[mask > 0]
        assert on.size > 0 and (on == row[layout.CLASS_NUMBER]).all()


def test_masks_are_the_target_region_and_exclude_neighbours(dataset, particles):
    library = load_library()
    clean, _ = read_mrc(dataset / "tomograms" / "tomo_001_clean.mrc")
    with_neighbours = 0
    rows = particles[particles[layout.TOMO] == "tomo_001"]
    for _, row in rows.iterrows():
        x, y, z = (int(row[c]) for c in layout.COORDS)
        mask, _ = read_mrc(dataset / row[layout.MASK])
        density, _ = read_mrc(dataset / row[layout.DENSITY])
        assert mask.any()
        # the mask is the target's region: all of its density above the contour, gaps closed and
        # cavities filled (the paper's "a hole in a macromolecule [...] part of the segment")
        contour = library[row[layout.CLASS_NAME]].contour
        assert (mask[density >= contour] > 0).all()
        assert (ndimage.binary_fill_holes(mask > 0) == (mask > 0)).all()
        assert density[mask > 0].mean() > 3 * density[mask == 0].mean()
        neighbours = clean[z - 16 : z + 16, y - 16 : y + 16, x - 16 : x + 16] - density
        assert neighbours[mask > 0].max() < 0.35 * density[mask > 0].mean()  # neighbours never under the mask
        if neighbours.sum() > 0.05 * density.sum():
            with_neighbours += 1
    assert with_neighbours >= 0.5 * len(rows), "most boxes hold fragments of crowding neighbours"


def test_each_box_records_the_targets_share_of_its_density(dataset, particles):
    """``dsmTargetShare`` is the target's part of the noise-free box (the rest is neighbours'), and
    ``simulation.json`` gives each class's median."""
    clean, _ = read_mrc(dataset / "tomograms" / "tomo_001_clean.mrc")
    for _, row in particles[particles[layout.TOMO] == "tomo_001"].iterrows():
        x, y, z = (int(row[c]) for c in layout.COORDS)
        density, _ = read_mrc(dataset / row[layout.DENSITY])
        box = clean[z - 16 : z + 16, y - 16 : y + 16, x - 16 : x + 16]
        assert row[layout.TARGET_SHARE] == pytest.approx(density.sum() / box.sum(), abs=1e-4)
        assert 0 < row[layout.TARGET_SHARE] <= 1
    medians = json.loads((dataset / layout.SIMULATION).read_text())["target_share_of_box"]
    by_class = particles.groupby(layout.CLASS_NAME)[layout.TARGET_SHARE].median()
    assert medians == pytest.approx(by_class.to_dict(), abs=1e-3) and len(medians) == len(SMALL)


def test_missing_wedge_is_empty(dataset, particles):
    tomo, _ = read_mrc(dataset / "tomograms" / "tomo_001.mrc")
    scope = Microscope()
    wedge = wedge_mask(tomo.shape, scope)
    power = torch.fft.rfftn(torch.from_numpy(tomo)).abs() ** 2
    assert power[~wedge].mean() < 1e-8 * power[wedge].mean()
    # subtomograms: windowed to limit the leakage of cutting a box; compare the wedge's depth
    # (beyond 70°) with the well-measured directions (within 50°), away from the origin
    window = torch.from_numpy(np.hanning(32)).float()
    window = window[:, None, None] * window[None, :, None] * window[None, None, :]
    kz = torch.fft.fftfreq(32)[:, None, None] * 32
    kx = torch.fft.rfftfreq(32)[None, None, :] * 32
    angle = torch.rad2deg(torch.atan2(kz.abs(), kx)).expand(32, 32, 17)
    radius = torch.sqrt(kz**2 + kx**2).expand(32, 32, 17)
    ring = (radius >= 3) & (radius <= 12)
    deep, measured = ring & (angle > 70), ring & (angle < 50)
    total = torch.zeros(32, 32, 17)
    for _, row in particles.iterrows():
        sub, _ = read_mrc(dataset / row[layout.IMAGE])
        total += torch.fft.rfftn((torch.from_numpy(sub) - float(sub.mean())) * window).abs() ** 2
    assert total[deep].mean() < 0.05 * total[measured].mean()


def test_snr_follows_the_xu_lab_convention_and_is_recorded(dataset):
    """Nominal SNR: unfiltered signal variance over the noise added; the SNR measured after CTF,
    wedge and band limit is recorded beside it, and re-measured here."""
    summary = json.loads((dataset / layout.SIMULATION).read_text())
    noisy, _ = read_mrc(dataset / "tomograms" / "tomo_001.mrc")
    clean, _ = read_mrc(dataset / "tomograms" / "tomo_001_clean.mrc")
    signal = image(clean, 10.0, float("inf"), Microscope(), np.random.default_rng(0), "fourier").signal
    noise = noisy - signal
    total = signal.var() / noise.var()
    assert summary["snr"]["nominal"] == 0.1
    assert summary["tomograms"][0]["measured_snr"] == pytest.approx(total, rel=0.02)
    assert summary["snr"]["measured_in_band"] == pytest.approx(summary["snr"]["measured_total"], rel=0.05)
    assert total > 0.1, "the filters remove more of the noise's power than of the signal's"
    # half the nominal noise goes through the CTF, half does not: the noise variance is the white
    # noise's (var(clean) / SNR) times the fraction of the spectrum the wedge and band limit keep
    k = np.sqrt(sum(g**2 for g in np.meshgrid(*(np.fft.fftfreq(n) for n in clean.shape), indexing="ij")))
    kept = ((k <= 0.25) * wedge_mask(clean.shape, Microscope(), rfft=False).numpy()).mean()
    after = clean.var() / 0.1 / 2 * kept
    assert after < noise.var() < 2 * after
    # the noise is band-limited to 1/(4 nm): nothing above it
    power = np.abs(np.fft.fftn(noise)) ** 2
    assert power[k > 0.26].sum() < 1e-6 * power.sum()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, dataset):
    def digests(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    again = tmp_path / "again"
    simulate(small_config(), again)
    assert digests(again) == digests(dataset)
    other = tmp_path / "other"
    simulate(small_config(seed=4, write_tomograms=False), other)
    assert digests(other)["subtomograms/000001.mrc"] != digests(dataset)["subtomograms/000001.mrc"]


def test_projection_mode_agrees_with_fourier_mode_on_noise_free_data():
    from torch_fourier_shell_correlation import fsc

    library = load_library()
    vol = np.zeros((48, 48, 48), np.float32)
    d = library["pseudo_groel"].density
    o = (48 - d.shape[0]) // 2
    vol[o : o + d.shape[0], o : o + d.shape[0], o : o + d.shape[0]] = d
    rng = np.random.default_rng(0)
    a = image(vol, 10.0, float("inf"), Microscope(), rng, "fourier").signal
    b = image(vol, 10.0, float("inf"), Microscope(), rng, "projection").signal
    curve = fsc(torch.from_numpy(a), torch.from_numpy(b))
    in_band = curve[: 48 // 4 + 1]  # shell i is at i/48 cycles/voxel; both are band-limited at 1/(4 nm)
    assert in_band.min() > 0.95, curve


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(classes=["nope"]), "unknown class 'nope'"),
        (dict(box=12), "box 12 is smaller than structure"),
        (dict(crowding=0.5), "crowding must be in"),
        (dict(crowding=0.2), "cannot reach crowding 0.20"),
        (dict(snr=0), "--snr must be > 0"),
        (dict(tomogram=(30, 128, 128)), "too small for 32³ boxes"),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_written(tmp_path, kw, message):
    with pytest.raises(SimulationError, match=message):
        simulate(small_config(**kw), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset():
    with pytest.raises(SimulationError, match="unknown preset 'D' \\(allowed: A, B, C\\)"):
        SimulationConfig.preset("D")


def test_preset_c_has_dataset_cs_acquisition_and_the_flags_go_over_it():
    c = SimulationConfig.preset("C")
    assert (c.n, c.box, c.voxel_size, c.classes) == (786, 40, 13.68, ["ribosome_6zu5", "pseudo_proteasome"])
    assert (c.microscope.tilt_min, c.microscope.tilt_max) == (-50.0, 70.0)
    given = SimulationConfig.preset("C", imaging={"defocus_um": 3.0})
    assert (given.microscope.tilt_min, given.microscope.defocus_um) == (-50.0, 3.0)  # the preset's wedge kept
    assert SimulationConfig.preset("A").microscope == Microscope()


def test_existing_output_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        simulate(small_config(), tmp_path / "out")


def test_imaging_flags_reach_the_simulation_and_are_recorded(tmp_path):
    from dsmnet.cli import main

    out = tmp_path / "scope"
    status = main(
        ["simulate", "--n", "6", "--classes", "ruvb_7pbl,mjap_9x2o", "--box", "24", "--tomogram", "48,96,96",
         "--seed", "3", "--no-tomograms", "--out", str(out), "--voltage", "200", "--cs", "2.7",
         "--amplitude-contrast", "0.1", "--defocus", "2,6", "--b-factor", "150", "--tilt-range=-50,70"]
    )  # fmt: skip
    assert status == 0
    made = json.loads((out / "simulation.json").read_text())
    scope = made["config"]["microscope"]
    assert (scope["voltage_kv"], scope["cs_mm"], scope["amplitude_contrast"], scope["b_factor"]) == (200, 2.7, 0.1, 150)
    assert (scope["tilt_min"], scope["tilt_max"], scope["defocus_range_um"]) == (-50, 70, [2, 6])
    drawn = [t["defocus_um"] for t in made["tomograms"]]
    assert drawn and all(2 <= d <= 6 for d in drawn)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--tilt-range=-95,60"], "--tilt-range must be MIN,MAX degrees with −90 ≤ MIN < MAX ≤ 90"),
        (["--tilt-range", "60,-60"], "--tilt-range must be"),
        (["--defocus", "6,2"], "--defocus must be an underfocus in µm"),
        (["--voltage", "5"], "--voltage must be between 20 and 1000 kV"),
        (["--amplitude-contrast", "1.5"], "--amplitude-contrast must be in [0, 1)"),
        (["--tilt-step", "0"], "--tilt-step must be > 0"),
        (["--defocus", "a,b"], "expected a number or MIN,MAX"),
    ],
)
def test_bad_imaging_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, says):
    from dsmnet.cli import main

    with pytest.raises(SystemExit) if "a,b" in flags else contextlib.nullcontext() as raised:
        status = main(["simulate", "--n", "4", "--out", str(tmp_path / "x"), *flags])
    err = capsys.readouterr().err
    assert (raised.value.code if raised else status) == 2
    assert says in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_another_voxel_size_resamples_the_library(tmp_path):
    from dsmnet.simulate.library import load_library

    ref = load_library()["ruvb_7pbl"]
    coarse = ref.at(13.68)
    assert coarse.voxel_size == 13.68 and (coarse.box - ref.box) % 2 == 0
    want = ref.mass_kda * 1000 * 1.21 / 13.68**3  # the molecule's volume in voxels of 13.68 Å
    assert abs(int((coarse.density >= coarse.contour).sum()) - want) <= 0.05 * want + 1
    assert ref.at(10.0) is ref
    out = tmp_path / "c"
    config = SimulationConfig(n=4, classes=["ruvb_7pbl", "mjap_9x2o"], snr=0.5, seed=1, box=24,
                              tomogram=(48, 96, 96), voxel_size=13.68, write_tomograms=False)  # fmt: skip
    simulate(config, out)
    first = sorted(out.rglob("*.mrc"))[0]
    assert read_mrc(first)[1] == pytest.approx(13.68, abs=1e-4)
    with pytest.raises(SimulationError, match="--voxel-size must be between 2 and 30"):
        simulate(SimulationConfig(n=2, voxel_size=40.0), tmp_path / "d")


@pytest.mark.parametrize("mode", ["fourier", "projection"])
def test_same_seed_same_bytes_on_two_threads(mode):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        vol = np.random.default_rng(2).standard_normal((24, 24, 24)).astype(np.float32)
        scope = Microscope(tilt_step=4, dose=100)
        a, b = (image(vol, 10.0, 0.1, scope, np.random.default_rng(1), mode).noisy for _ in range(2))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(a, b)  # projection's back-projection once differed in the last bit
    assert not torch.are_deterministic_algorithms_enabled()  # the setting is given back

"""``--dose``: radiation damage fades each tilt's signal by the exposure before it, recorded in a
dose-symmetric scheme (Grant & Grigorieff 2015's critical exposure)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dsmnet.simulate.exposure import critical_exposure, dose_symmetric, exposure_filter
from dsmnet.simulate.imaging import Microscope, image, rfft_grid


def test_dose_symmetric_order_and_each_tilts_exposure():
    angles = np.array([-6.0, -3.0, 0.0, 3.0, 6.0, 9.0])
    assert angles[dose_symmetric(angles)].tolist() == [0, 3, -3, 6, -6, 9]
    scope = Microscope(tilt_min=-6, tilt_max=9, tilt_step=3, dose=60)
    # 10 e/Å² per tilt; each tilt's mean exposure: the tilts before it plus half its own
    assert scope.exposures().tolist() == [45.0, 25.0, 5.0, 15.0, 35.0, 55.0]
    assert Microscope().exposures().tolist() == [0.0] * 121  # no dose, no damage


def test_critical_exposure_is_grant_and_grigorieffs():
    k = torch.tensor([0.025, 0.1, 1 / 3])  # 1/(40 Å), 1/(10 Å), 1/(3 Å)
    at300 = critical_exposure(k, 300.0)
    assert at300.tolist() == pytest.approx([0.245 * x**-1.665 + 2.81 for x in k.tolist()])
    assert at300[0] == pytest.approx(116.7, abs=0.1)  # at 1/(4 nm) the signal lasts ~117 e/Å²
    assert critical_exposure(k, 200.0).tolist() == pytest.approx((0.8 * at300).tolist())
    assert float(exposure_filter(k[:1], float(at300[0]) * 2, 300.0)) == pytest.approx(np.exp(-1.0), rel=1e-6)


def _kept(mode: str) -> list[float]:
    """The amplitude a dose of 300 e/Å² leaves on a shell at about 1/(80 Å) (before the CTF's first
    zero), over the directions measured by the first tilts (|θ| ≤ 4°) and by the last (50–58°)."""
    from dsmnet.simulate.imaging import _directions

    rng = np.random.default_rng(0)
    vol = rng.standard_normal((32, 32, 32)).astype(np.float32)
    plain = Microscope(tilt_min=-60, tilt_max=60, tilt_step=3)
    dosed = Microscope(tilt_min=-60, tilt_max=60, tilt_step=3, dose=300)
    a = torch.fft.rfftn(torch.from_numpy(image(vol, 10.0, float("inf"), plain, rng, mode).signal))
    b = torch.fft.rfftn(torch.from_numpy(image(vol, 10.0, float("inf"), dosed, rng, mode).signal))
    kz, ky, kx = rfft_grid((32, 32, 32))
    k = torch.sqrt(kz**2 + ky**2 + kx**2)
    _, _, angle = _directions((32, 32, 32))
    shell = (k > 3.5 / 32) & (k < 4.5 / 32)
    out = []
    for low, high in ((-4.0, 4.0), (50.0, 58.0)):
        where = shell & (angle >= low) & (angle <= high)
        out.append(float((b[where].abs() ** 2).sum() / (a[where].abs() ** 2).sum()) ** 0.5)
    return out


def test_the_signal_fades_by_the_exposure_of_the_tilt_that_measured_it():
    scope = Microscope(tilt_min=-60, tilt_max=60, tilt_step=3, dose=300)
    tilts, exposures = scope.tilts, scope.exposures()
    want = [
        float(
            exposure_filter(
                torch.tensor([1 / 80.0]), float(exposures[(tilts >= lo - 1.5) & (tilts <= hi + 1.5)].mean()), 300.0
            )
        )
        for lo, hi in ((-4.0, 4.0), (50.0, 58.0))
    ]
    fourier, projection = _kept("fourier"), _kept("projection")
    assert fourier == pytest.approx(want, abs=0.03)  # each frequency after the exposure of the tilt nearest it
    assert want[0] > 0.95 and want[1] < 0.75  # the first tilts keep nearly all; the last (~290 e/Å²) two thirds
    # a real tilt series, reconstructed, mixes neighbouring tilts into each frequency: the same fade
    assert projection == pytest.approx(fourier, abs=0.08)


def test_the_dose_flag_is_validated_and_recorded(tmp_path, capsys):
    from dsmnet.cli import main

    assert main(["simulate", "--n", "4", "--out", str(tmp_path / "x"), "--dose", "-5"]) == 2
    assert "--dose must be the tilt series' total exposure, 0 to 1000 e/Å², got -5" in capsys.readouterr().err
    out = tmp_path / "dosed"
    argv = ["simulate", "--n", "4", "--classes", "ruvb_7pbl,mjap_9x2o", "--box", "24", "--tomogram", "48,96,96",
            "--no-tomograms", "--out", str(out), "--dose", "120"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "simulation.json").read_text())["config"]["microscope"]["dose"] == 120

"""``--tilt-axis``: the tilt axis along the tomogram's y (RELION-5, Warp, IMOD) or x, the whole
acquisition turned by 90° about the beam; both imaging modes and every wedge-aware step agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsmnet.simulate.imaging import Microscope, image, wedge_mask
from dsmnet.simulate.library import load_library


def test_the_x_axis_wedge_is_the_y_axis_wedge_turned_about_the_beam():
    y = wedge_mask((20, 20, 20), Microscope(tilt_min=-40, tilt_max=65), rfft=False)
    x = wedge_mask((20, 20, 20), Microscope(tilt_min=-40, tilt_max=65, tilt_axis="x"), rfft=False)
    assert torch.equal(x, y.transpose(1, 2))
    assert not torch.equal(x, y)
    # the rFFT form is the half of the full one
    half = wedge_mask((20, 20, 20), Microscope(tilt_min=-40, tilt_max=65, tilt_axis="x"))
    assert torch.equal(half, x[..., :11])


@pytest.mark.parametrize("axis", ["y", "x"])
def test_projection_mode_measures_the_wedge_fourier_mode_fills(axis):
    """An asymmetric range tells the sign apart: a projection series tilted the other way, or about
    the other axis, fills another wedge and would disagree far below 0.9."""
    from torch_fourier_shell_correlation import fsc

    d = load_library()["pseudo_groel"].density
    vol = np.zeros((48, 48, 48), np.float32)
    o = (48 - d.shape[0]) // 2
    vol[o : o + d.shape[0], o : o + d.shape[0], o : o + d.shape[0]] = d
    rng = np.random.default_rng(0)
    scope = Microscope(tilt_min=-30, tilt_max=70, tilt_step=2, tilt_axis=axis)
    a = image(vol, 10.0, float("inf"), scope, rng, "fourier").signal
    b = image(vol, 10.0, float("inf"), scope, rng, "projection").signal
    shells = slice(1, 48 // 4 + 1)  # below the band limit (shell 1, a few voxels on the wedge's edge, is rough)
    same = fsc(torch.from_numpy(b), torch.from_numpy(a))[shells]
    assert same[1:].min() > 0.9 and same.mean() > 0.95, same
    turned = Microscope(tilt_min=-30, tilt_max=70, tilt_step=2, tilt_axis="x" if axis == "y" else "y")
    mirrored = Microscope(tilt_min=-70, tilt_max=30, tilt_step=2, tilt_axis=axis)
    for wrong in (turned, mirrored):  # measured 0.73-0.75
        c = image(vol, 10.0, float("inf"), wrong, rng, "fourier").signal
        assert fsc(torch.from_numpy(b), torch.from_numpy(c))[shells].mean() < 0.8


def test_a_bad_axis_is_one_line_and_exit_2(tmp_path, capsys):
    from dsmnet.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["simulate", "--n", "4", "--out", str(tmp_path / "x"), "--tilt-axis", "z"])
    assert raised.value.code == 2 and "--tilt-axis: invalid choice: 'z'" in capsys.readouterr().err
    argv = ["simulate", "--n", "4", "--out", str(tmp_path / "y"), "--tilt-axis", "x", "--relion-project", "p"]
    assert main(argv) == 2
    assert "RELION-5 tomograms, whose tilt axis lies along y" in capsys.readouterr().err
    assert Microscope(tilt_axis="z").problems() == [
        "--tilt-axis must be y or x (the tomogram axis the tilt axis lies along), got 'z'"
    ]

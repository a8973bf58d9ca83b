"""An asymmetric tilt range (−50°/+70°, as the paper's dataset C): only the turns that map the
measured region onto itself, in augmentation and test-time augmentation, and the wedge a model
was trained for kept in its checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from dsmnet.simulate.imaging import Microscope, wedge_mask
from dsmnet.training.augment import ROT180, augment, turn, wedge_turns
from dsmnet.training.loop import train
from dsmnet.training.settings import TrainConfig
from dsmnet.training.tta import Turns, with_turns

BOX = (16, 16, 16)


def _inside(kz: torch.Tensor, kx: torch.Tensor, tilt_min: float, tilt_max: float) -> torch.Tensor:
    """Whether a frequency's (x, z) direction lies in the tilt range (a line: ±k alike)."""
    angle = (torch.rad2deg(torch.atan2(kx, kz)) + 90) % 180 - 90
    return (angle >= tilt_min) & (angle <= tilt_max)


# each 180° turn of ROT180 as the signs it gives (k_z, k_x)
SIGNS = {(): (1, 1), (-2, -1): (1, -1), (-3, -1): (-1, -1), (-3, -2): (-1, 1)}


def test_only_the_turn_about_the_tilt_axis_keeps_an_asymmetric_wedge():
    assert wedge_turns(None) == ROT180 and wedge_turns((-60, 60)) == ROT180
    assert wedge_turns((-50, 70)) == ((), (-3, -1))
    kz, kx = torch.meshgrid(torch.linspace(-1, 1, 41), torch.linspace(-1, 1, 41), indexing="ij")
    for dims, (sz, sx) in SIGNS.items():
        for tilts in ((-60.0, 60.0), (-50.0, 70.0)):
            kept = torch.equal(_inside(sz * kz, sx * kx, *tilts), _inside(kz, kx, *tilts))
            assert kept == (dims in wedge_turns(tilts)), (dims, tilts)
    # and the simulator's own wedge mask is asymmetric the way the range is
    mask = wedge_mask(BOX, Microscope(tilt_min=-50.0, tilt_max=70.0), rfft=False)
    assert not torch.equal(mask, mask.flip(-1))


@pytest.mark.parametrize("axis", ["y", "x"])
@pytest.mark.parametrize("tilts", [(-60.0, 60.0), (-50.0, 70.0)])
def test_the_turns_and_flips_kept_are_exactly_those_that_keep_the_simulators_wedge(axis, tilts):
    """A turn of the box about its centre voxel takes frequency k to −k along the turned axes
    (index i of the full FFT to −i mod n); the kept turns and flips are exactly those leaving the
    mask as it is. (An odd box: an even one's Nyquist plane holds −½ only, which has no +½.)"""
    from dsmnet.training.augment import _flip_axes

    def negated(mask: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        for d in dims:
            mask = mask.flip(d).roll(1, d)
        return mask

    mask = wedge_mask((17, 17, 17), Microscope(tilt_min=tilts[0], tilt_max=tilts[1], tilt_axis=axis), rfft=False)
    turns = wedge_turns(tilts, axis)
    for dims in ROT180:
        assert torch.equal(negated(mask, dims), mask) == (dims in turns), (dims, tilts, axis)
    for d in (-3, -2, -1):
        assert torch.equal(negated(mask, (d,)), mask) == (d in _flip_axes(turns)), (d, tilts, axis)


def test_augmentation_and_tta_use_only_the_wedges_turns():
    x = torch.randn(64, 1, *BOX)
    gen = torch.Generator().manual_seed(0)
    turns = wedge_turns((-50, 70))
    for _ in range(20):
        out = augment({"x": x}, "rot180", gen, turns=turns)["x"]
        assert any(torch.equal(out, turn(x, d) if d else x) for d in turns)
        flipped = augment({"x": x}, "flip", gen, turns=turns)["x"]
        assert torch.equal(flipped, x) or torch.equal(flipped, turn(x, (-2,)))
    # the default stream is unchanged: the same draws as before the turns existed
    a = augment({"x": x}, "rot180", torch.Generator().manual_seed(3))["x"]
    b = augment({"x": x}, "rot180", torch.Generator().manual_seed(3), turns=ROT180)["x"]
    assert torch.equal(a, b)
    model = torch.nn.Identity()
    model.targets = {}
    assert isinstance(with_turns(model, True, [-50, 70]), Turns)
    assert with_turns(model, True, [-50, 70]).turns == turns and with_turns(model, True, None).turns == ROT180


def test_a_run_records_the_wedge_of_its_data(small_data, tiny_spec, tmp_path):
    asym = tmp_path / "asym"
    import shutil

    shutil.copytree(small_data, asym)
    made = json.loads((asym / "simulation.json").read_text())
    made["config"]["microscope"].update(tilt_min=-50.0, tilt_max=70.0, tilt_axis="x")
    (asym / "simulation.json").write_text(json.dumps(made))
    config = TrainConfig(progress=False, precise_bn=32, epochs=1, augment="rot180")
    train(tiny_spec, asym, tmp_path / "run", config, log=lambda _: None)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["settings"]["wedge"] == [-50.0, 70.0] and state["settings"]["wedge_axis"] == "x"

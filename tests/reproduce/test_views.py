"""The turned-view probe: a trained classifier's accuracy on its test boxes rotated by fixed angles."""

from __future__ import annotations

import json

import torch

from dsmnet.cli import main
from dsmnet.reproduce import views


def test_views_reports_both_kinds_of_view_per_angle_and_writes_its_json(trained_run, small_data, tmp_path, capsys):
    out = tmp_path / "views.json"
    assert (
        main(["views", str(trained_run), "--data", str(small_data), "--n", "24", "--angles", "0,90", "--out", str(out)])
        == 0
    )
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result and result["particles"] == 24
    assert set(result["accuracy"]) == {"rotate", "spin"}
    for view in result["accuracy"].values():
        assert set(view) == {"0", "90"} and all(0 <= a <= 1 for a in view.values())
    # at 0° a view is the box itself (resampled on its own grid, renormalised)
    from dsmnet.dataset.subtomograms import load_dataset
    from dsmnet.training.step import load_trained

    model, _, state = load_trained(trained_run)
    data = load_dataset(small_data, classes=state["classes"])
    x, _, _ = data.batch(torch.arange(24), [])
    with torch.no_grad():
        plain = float((model(x)["cls"].argmax(1) == torch.as_tensor(data.labels[:24])).float().mean())
    assert abs(result["accuracy"]["spin"]["0"] - plain) <= 1 / 24


def test_views_axis_angle_is_a_rotation_by_the_angle():
    r = views.axis_angle(torch.tensor([1.0, 2.0, 2.0]), 0.7)
    torch.testing.assert_close(r @ r.T, torch.eye(3), atol=1e-6, rtol=0)
    assert abs(float(torch.det(r)) - 1) < 1e-6 and abs((float(r.trace()) - 1) / 2 - torch.cos(torch.tensor(0.7))) < 1e-6
    torch.testing.assert_close(r @ torch.tensor([1.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 2.0]))

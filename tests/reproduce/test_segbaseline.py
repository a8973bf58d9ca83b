"""The classical segmentation baseline: a fitted threshold about the box centre."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsmnet.cli import main
from dsmnet.reproduce.segbaseline import GRID, _smooth, classical_segmentation, fit, segment


def _boxes(n: int = 6, side: int = 24, seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Noisy boxes holding a centred ball (the target) and an off-centre ball that touches nothing."""
    rng = np.random.default_rng(seed)
    grid = np.indices((side,) * 3) - side // 2
    target = (grid**2).sum(0) <= 4**2
    neighbour = ((grid - np.array([0, 0, 9])[:, None, None, None]) ** 2).sum(0) <= 2**2
    clean = (target | neighbour).astype(np.float32)
    return clean + noise * rng.standard_normal((n, side, side, side)).astype(np.float32), np.stack([target] * n)


def test_the_piece_at_the_centre_is_the_target_and_the_neighbour_is_left_out():
    volumes, truth = _boxes()
    pred = segment(_smooth(volumes, 1.0), radius=10, level=3.0)
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.9
    assert not pred[:, 12, 12, 21].any()  # the neighbour's centre, 9 voxels off
    # smoothed more and cut lower, the two join in some boxes: the neighbour comes with the target
    assert segment(_smooth(volumes, 1.5), radius=10, level=0.75)[:, 12, 12, 21].any()
    # the sphere alone bounds what is kept; nothing above the level: nothing kept
    assert not segment(_smooth(volumes, 1.0), radius=10, level=50.0).any()


def test_the_fit_picks_from_the_grid():
    volumes, truth = _boxes(seed=1, noise=1.0)
    params = fit(volumes, truth)
    assert params["sigma"] in GRID["sigma"] and params["radius"] in GRID["radius"] and params["level"] in GRID["level"]
    assert params["fit_miou"] > 0.85


def test_on_a_simulated_dataset_and_from_the_command_line(small_data, tmp_path, capsys):
    r = classical_segmentation(small_data, 0)
    assert r["particles"] == 6 and 0.5 < r["metrics"]["miou_seg"] <= 1.0
    assert r["metrics"]["miou_seg"] == pytest.approx(np.mean(r["iou_seg"]))
    out = tmp_path / "seg.json"
    assert main(["baseline", "--data", str(small_data), "--segmentation", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"] == r["metrics"]
    assert "target IoU" in capsys.readouterr().out


def test_the_study_reuses_a_kept_fit_only_on_the_same_grid(small_data, tmp_path, monkeypatch):
    from dsmnet.reproduce import jobs, segbaseline

    calls = []
    real = segbaseline.classical_segmentation
    monkeypatch.setattr(segbaseline, "classical_segmentation", lambda *a: calls.append(a) or real(*a))
    first = jobs.seg_baseline(small_data, 0, small_data, tmp_path)
    assert jobs.seg_baseline(small_data, 0, small_data, tmp_path) == json.loads(json.dumps(first)) and len(calls) == 1
    monkeypatch.setitem(segbaseline.GRID, "level", (0.5,))  # another grid: fitted again
    assert jobs.seg_baseline(small_data, 0, small_data, tmp_path)["fitted"]["level"] == 0.5 and len(calls) == 2
    # without the data to fit on, the kept fit stands in, as the other references' records do
    monkeypatch.setitem(segbaseline.GRID, "level", (0.7,))
    gone = tmp_path / "elsewhere" / small_data.name
    assert jobs.seg_baseline(small_data, 0, gone, tmp_path)["fitted"]["level"] == 0.5 and len(calls) == 2

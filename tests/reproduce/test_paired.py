"""Paired standard errors of two rows scored on the same test particles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dsmnet.cli import main as dsmnet_main
from dsmnet.reproduce.orderings import ordering_lines
from dsmnet.reproduce.paired import _miou, accuracy_se, discordance, error_text, miou_se
from dsmnet.training.metrics import Confusion


def main(argv: list[str]) -> int:
    return dsmnet_main(["paired", *argv])


def classified(correct: np.ndarray) -> dict:
    """A run on particles of class 0 that is right where ``correct`` says (else predicts class 1)."""
    n = len(correct)
    return {
        "metrics": {"acc_cls": float(correct.mean())},
        "confusion_cls": [[int(correct.sum()), int(n - correct.sum())], [0, 0]],
        "per_particle": {"label": [0] * n, "predicted_cls": np.where(correct, 0, 1).tolist()},
    }


def test_pairing_resolves_a_difference_shared_particles_hide():
    # both rows right on the same 75 particles of 100, the better one on 5 more
    better, worse = classified(np.arange(100) < 80), classified(np.arange(100) < 75)
    # 5 particles differ by 1: s.d. sqrt((5·0.95² + 95·0.05²)/99) = 0.219, s.e. 0.0219
    assert accuracy_se([better], [worse]) == pytest.approx(0.0219, abs=1e-4)
    line = ordering_lines({"table1": {"DSM-Net": [better], "Cls subnet": [worse]}})[0]
    assert line == (
        "- table1: DSM-Net acc 0.800 > Cls subnet 0.750 — **held**; "
        "difference +0.050 ± 0.022 (1 s.e., paired over the 100 test particles)"
    )
    # the unpaired, binomial estimate of the same difference (0.059) cannot resolve it
    for r in (better, worse):
        del r["per_particle"]
    assert (
        "**not shown: within noise**; difference +0.050 ± 0.059 (1 s.e.)"
        in ordering_lines({"table1": {"DSM-Net": [better], "Cls subnet": [worse]}})[0]
    )


def test_with_several_seeds_their_spread_decides_when_it_is_the_larger():
    # 1000 particles; at seed 0 the better row is right on 10 more, at seed 1 on 200 more
    i = np.arange(1000)
    a = [classified(i < 510) | {"seed": 0}, classified(i < 700) | {"seed": 1}]
    b = [classified(i < 500) | {"seed": 0}, classified(i < 500) | {"seed": 1}]
    line = ordering_lines({"table1": {"DSM-Net": a, "Cls subnet": b}})[0]
    # differences +0.010 and +0.200: s.e. |0.19| / 2 = 0.095; the particles' (of the seeds' mean:
    # 10 particles differ by 1, 190 by ½) sqrt((10 + 190/4)/1000 - 0.105²) / sqrt(999) = 0.007
    assert "**not shown: within noise (2/2 seeds ahead)**; difference +0.105 ± 0.095" in line
    assert "from the 2 seeds' differences +0.010, +0.200; test particles alone ± 0.007" in line
    # seeds that agree: the particles' error stands, the seeds' differences beside it
    a[1] = classified(i < 712) | {"seed": 1}
    b[1] = classified(i < 500) | {"seed": 1}
    a[0] = classified(i < 710) | {"seed": 0}
    line = ordering_lines({"table1": {"DSM-Net": a, "Cls subnet": b}})[0]
    assert (
        "**held (2/2 seeds)**" in line
        and "paired over the 1000 test particles; the seeds' differences +0.210, +0.212" in line
    )


def test_discordance_counts_the_particles_only_one_run_gets_right():
    # 100 particles: both right on 0-69, only the first on 70-79, only the second on 80-81
    first = classified(np.arange(100) < 80)
    second = classified((np.arange(100) < 70) | ((np.arange(100) >= 80) & (np.arange(100) < 82)))
    split = discordance(first, second)
    assert (split["both"], split["only_first"], split["only_second"], split["neither"]) == (70, 10, 2, 18)
    assert split["either"] == pytest.approx(0.82)
    # exact two-sided binomial test of 10 against 2 of 12: 2·P(X ≤ 2 | 12, ½) = 2·79/4096
    assert split["mcnemar_p"] == pytest.approx(2 * 79 / 4096)
    assert discordance(first, first)["mcnemar_p"] == 1.0
    assert discordance(first, {"metrics": {}}) is None


def test_runs_on_other_particles_are_not_paired():
    a, b = classified(np.arange(10) < 8), classified(np.arange(10) < 5)
    b["per_particle"]["label"][0] = 1
    assert accuracy_se([a], [b]) is None and accuracy_se([a], [{"metrics": {}}]) is None


def segmented(rng: np.random.Generator, n: int, miss: float) -> dict:
    """A run whose per-particle 2×2 voxel confusions miss about ``miss`` of the target voxels."""
    target = rng.integers(50, 150, n)
    missed = rng.binomial(target, miss)
    false = rng.binomial(1000 - target, 0.02)
    rows = np.stack([1000 - target - false, false, missed, target - missed], 1)
    per_particle = {"label": [0] * n, "confusion_seg": rows.tolist()}
    return {"metrics": {"miou_seg": float(_miou(rows.sum(0)))}, "per_particle": per_particle}


def test_miou_from_summed_confusions_is_the_evaluations():
    m = np.random.default_rng(0).integers(0, 100, (3, 3))
    conf = Confusion(3)
    conf.matrix = torch.tensor(m)
    assert _miou(m.reshape(-1)) == pytest.approx(conf.miou)


def test_the_bootstrap_miou_error_shrinks_as_one_over_root_n():
    rng = np.random.default_rng(1)
    a, b = segmented(rng, 400, 0.1), segmented(rng, 400, 0.2)
    se = miou_se([a], [b])
    assert 0 < se < 0.01
    assert miou_se([a], [a]) == 0.0
    a4, b4 = (
        {"per_particle": {"label": [0] * 1600, "confusion_seg": r["per_particle"]["confusion_seg"] * 4}} for r in (a, b)
    )
    assert miou_se([a4], [b4]) == pytest.approx(se / 2, rel=0.1)  # the same particles four times over
    assert "paired over the 400 test particles" in ordering_lines({"table1": {"DSM-Net": [a], "Seg subnet": [b]}})[0]


def test_an_error_below_a_thousandth_keeps_one_significant_figure():
    assert [error_text(x) for x in (0.0123, 0.0005, 0.00034, 0.00049, 4.6e-05, 0.0)] == [
        "0.012",
        "0.001",
        "0.0003",
        "0.0005",
        "0.00005",
        "0.000",
    ]


def test_paired_compares_two_records_from_the_command_line(tmp_path, capsys):
    better, worse = classified(np.arange(100) < 80), classified(np.arange(100) < 75)
    paths = []
    for name, record in (("a", better), ("b", worse)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(record))
    assert main([str(paths[0]), f"{paths[1]},{paths[1]}"]) == 0
    assert capsys.readouterr().out == ("acc_cls: 0.800 vs 0.750, difference +0.050 ± 0.022 (1 s.e.; beyond 2 s.e.)\n")
    assert main([str(paths[0]), str(paths[1])]) == 0  # single runs: how their particles split too
    assert capsys.readouterr().out.splitlines()[1] == (
        "particles: both right 75, only the first 5, only the second 0, neither 20 "
        "(either right 0.800; McNemar exact p = 0.062)"
    )
    assert main([str(paths[0]), str(paths[1]), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["metric"] == "acc_cls" and row["difference"] == pytest.approx(0.05) and row["particles"]["both"] == 75
    (tmp_path / "bad.json").write_text('{"metrics": {}}')
    assert main([str(paths[0]), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json: no per-particle record" in err
    worse["per_particle"]["label"][0] = 1
    paths[1].write_text(json.dumps(worse))
    assert main([str(paths[0]), str(paths[1])]) == 2
    assert "not scored on the same particles" in capsys.readouterr().err

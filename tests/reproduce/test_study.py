"""The reproduction study's rows come from the ablation generator; discovery on a small run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from dsmnet.dataset.mrc import DataError
from dsmnet.reproduce.discover import discover, without_class
from dsmnet.reproduce.jobs import StudyError
from dsmnet.reproduce.orderings import ordering_lines
from dsmnet.reproduce.records import with_record
from dsmnet.reproduce.report import (
    budget_note,
    failed,
    reference_levels,
    revisions_line,
    runtimes_line,
    table_lines,
)
from dsmnet.reproduce.scales import BASELINE, ORACLE, SCALES, TABLE1, TABLE3, variant
from dsmnet.training.loop import train
from dsmnet.training.settings import TrainConfig


@pytest.mark.parametrize("row,base,heads,grid", TABLE1 + TABLE3)
def test_rows_are_generated_variants_at_one_scale(row, base, heads, grid):
    scale = SCALES["mini"]
    spec = variant(base, heads, grid, scale)
    assert spec.input.shape == (scale.box,) * 3
    assert spec.backbone.params["widths"] == list(scale.widths)
    assert spec.training.epochs == scale.epochs and spec.training.batch_size == scale.batch
    assert spec.training.patience == scale.patience
    if heads is not None:
        assert tuple(spec.heads) == heads
    for key, weights in grid.items():
        assert spec.losses[key].weight == weights[0]
    if "cls" in spec.heads:
        assert spec.heads["cls"].params["classes"] == 22
        assert set(spec.heads["cls"].params["hidden"]) == {scale.hidden}


def test_the_rows_beyond_the_paper_are_dsmnet_with_one_change_each(tmp_path):
    from dsmnet.reproduce.study import plan_runs

    scale = SCALES["converged"]
    paths = {"A": tmp_path / "A", "A_test": tmp_path / "A_test"}
    both, wide, pose = "DSM-Net + centre prior + fresh data", "DSM-Net + paper widths", "DSM-Net + pose"
    rows = ("DSM-Net", "DSM-Net + centre prior", "DSM-Net + fresh data", both, wide, pose)
    plan, jobs = plan_runs(scale, tmp_path, paths, ("table1", "beyond"), rows)
    beyond = dict(plan["beyond"][::2])  # seed 0 of each row
    assert beyond["DSM-Net"] == dict(plan["table1"][::2])["DSM-Net"]  # Table 1's run, reused
    centre, fresh, plain, joined = (
        jobs[beyond[r]] for r in ("DSM-Net + centre prior", "DSM-Net + fresh data", "DSM-Net", both)
    )
    assert len({beyond[r] for r in beyond}) == 6 and len(jobs) == 6 * len(scale.seeds)
    assert centre.spec["input"]["centre_prior"] == 0.2 and not centre.fresh
    assert fresh.fresh and not plain.fresh and "centre_prior" not in fresh.spec["input"]
    assert joined.fresh and joined.spec["input"]["centre_prior"] == 0.2 and joined.spec["name"].endswith("centre+fresh")
    wider = jobs[beyond[wide]]
    assert wider.spec["backbone"]["widths"] == [32, 64, 128] != plain.spec["backbone"]["widths"] and not wider.fresh
    posed = jobs[beyond[pose]]
    assert posed.spec["heads"]["pose"]["type"] == "pose" and posed.spec["losses"]["pose"]["type"] == "turned_density"
    assert set(posed.spec["heads"]) == {*plain.spec["heads"], "pose"} and not posed.fresh
    # nothing else differs from DSM-Net's spec but the change and the name
    for job in (centre, fresh, joined, wider, posed):
        spec = {**job.spec, "name": plain.spec["name"], "input": {**job.spec["input"]}}
        spec["heads"] = {k: v for k, v in job.spec["heads"].items() if k != "pose"}
        spec["losses"] = {k: v for k, v in job.spec["losses"].items() if k != "pose"}
        spec["input"].pop("centre_prior", None)
        spec["backbone"] = {**job.spec["backbone"], "widths": plain.spec["backbone"]["widths"]}
        assert spec == plain.spec


def test_each_dataset_has_its_own_reference_lines():
    a, b = [{"metrics": {"acc_cls": 0.59}}], [{"metrics": {"acc_cls": 0.29}}]
    results = {
        "table1": {BASELINE: a, ORACLE: a, "DSM-Net": a},
        "table2": {BASELINE: b, ORACLE: b},
        "beyond": {BASELINE: a},  # dataset A again: its lines once
        "table3": {"Cls+Rec 1:10": a},  # no references of its own
    }
    levels = reference_levels(results, ["table1", "table2", "table3", "beyond"])
    assert levels == {
        f"A · {BASELINE}": a,
        f"A · {ORACLE}": a,
        f"B · {BASELINE}": b,
        f"B · {ORACLE}": b,
    }


def test_learning_curves_give_each_dataset_its_panels_and_its_reference_lines(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from dsmnet.reproduce.figures import learning_curves

    def run(accuracy: float) -> dict:
        history = [{"epoch": e, "val_acc_cls": accuracy, "val_miou_seg": 0.7} for e in (1, 2, 3)]
        return {"metrics": {"acc_cls": accuracy}, "training": {"history": history, "summary": {"best_epoch": 2}}}

    kept = []
    monkeypatch.setattr(plt, "close", kept.append)  # the figure, to read its panels
    results = {"A · DSM-Net · seed0": run(0.6), "A · DSM-Net · seed1": run(0.62), "B · DSM-Net · seed0": run(0.3)}
    levels = {f"A · {ORACLE}": [{"metrics": {"acc_cls": 0.86}}], f"B · {ORACLE}": [{"metrics": {"acc_cls": 0.4}}]}
    learning_curves(results, tmp_path / "curves.png", levels, per_epoch=100)
    assert (tmp_path / "curves.png").is_file()
    (a_acc, a_miou, b_acc, b_miou) = kept[0].axes
    assert [ax.get_title() for ax in (a_acc, b_miou)] == ["dataset A", "dataset B"]
    labels = [line.get_label() for line in a_acc.get_lines() if line.get_label()[0] != "_"]
    assert labels == ["DSM-Net · seed0", "DSM-Net · seed1"]  # the panel's title names the dataset
    assert {line.get_ydata()[0] for line in b_acc.get_lines()} == {0.3, 0.4}  # B's curve and B's reference only
    (a_colour,) = {line.get_color() for line in a_acc.get_lines() if line.get_label().startswith("DSM-Net")}
    assert [line.get_color() for line in b_miou.get_lines()][0] == a_colour  # a row keeps its colour
    assert [line.get_xdata()[-1] for line in a_miou.get_lines() if line.get_label()[0] != "_"] == [300, 300]


def test_paper_scale_is_the_papers_network():
    spec = variant("dsmnet", ("cls", "seg", "rec"), {}, SCALES["paper"])
    from dsmnet.core.build import load_spec

    base = load_spec("dsmnet")
    assert spec.to_dict()["heads"] == base.to_dict()["heads"]
    assert spec.backbone == base.backbone and spec.training == base.training


def test_tables_and_orderings_are_stated_from_measurements():
    good = {"metrics": {"acc_cls": 0.8, "miou_seg": 0.7, "pixel_acc_seg": 0.95}, "iou_seg": [0.9, 0.5]}
    collapsed = [[0] * 21 + [5] for _ in range(22)]  # every particle called the last class
    bad = {
        "metrics": {"acc_cls": 0.05, "pixel_acc_seg": 0.9, "miou_seg": 0.45},
        "iou_seg": [0.9, 0.0],
        "confusion_cls": collapsed,
    }
    assert not failed(good, 22) and failed(bad, 22)
    md, csv_text = table_lines("table1", {"DSM-Net": [good, good], "Cls subnet": [bad]}, SCALES["mini"])
    assert "| DSM-Net | 0.950 ± 0.000 | 0.700 ± 0.000 | 0.800 ± 0.000 |" in md
    assert md.startswith("## Table 1\n\nDataset A (simulated, SNR 0.06).\n\n| model |")
    assert "dataset C rows (experimental" in table_lines("table2", {"DSM-Net": [good]}, SCALES["mini"])[0]
    assert "did not converge (1/1 seeds: predicts one class for every particle; target IoU 0.00)" in md
    # a seed-to-seed spread below 0.001 is printed to one significant figure, not as "± 0.000"
    near = {**good, "metrics": {**good["metrics"], "miou_seg": 0.7004}}
    md, _ = table_lines("table1", {"Seg subnet": [good, near]}, SCALES["mini"])
    assert "| Seg subnet | 0.950 ± 0.000 | 0.700 ± 0.0003 |" in md
    assert csv_text.startswith("model,seeds")
    lines = ordering_lines({"table1": {"DSM-Net": [good], "Cls subnet": [bad]}})
    assert lines == ["- table1: DSM-Net acc 0.800 > Cls subnet 0.050 — **held**"]
    # several seeds: the verdict is on the means, says on how many seeds it held, and weighs the
    # seeds' spread (here the only error there is: no test particles or confusion kept)
    close = {"metrics": {"acc_cls": 0.82}}
    lines = ordering_lines({"table1": {"DSM-Net": [good, good], "Cls subnet": [bad, close]}})
    assert lines == [
        "- table1: DSM-Net acc 0.800 > Cls subnet 0.435 — **not shown: within noise (1/2 seeds ahead)**; "
        "difference +0.365 ± 0.385 (1 s.e., from the 2 seeds' differences +0.750, -0.020)"
    ]


def test_a_row_still_improving_at_its_last_epoch_says_so(tmp_path):
    def run(name: str, best: int, epochs: int, early: bool) -> dict:
        folder = tmp_path / name
        folder.mkdir()
        summary = {"epochs": epochs, "best_epoch": best, "stopped_early": early}
        (folder / "summary.json").write_text(json.dumps(summary))
        return with_record({"run": str(folder), "epoch": best, "metrics": {"acc_cls": 0.5}}, folder)

    stopped, late = run("a", 12, 18, True), run("b", 29, 30, False)
    assert budget_note([stopped]) == ""
    assert budget_note([stopped, late]) == "best epoch 12, 29 of 30: still improving at the budget's end (1/2 seeds)"
    assert budget_note([{"metrics": {"acc_cls": 0.6}}]) == ""  # a reference row: no training run
    gone = {"run": str(tmp_path / "gone"), "epoch": 9, "metrics": {"acc_cls": 0.5}}  # kept before records were
    assert budget_note([{"run": "classical baseline", "metrics": {"acc_cls": 0.6}}]) == ""  # a reference row
    assert budget_note([stopped, gone]) == "1/2 seeds kept without a training record"
    assert budget_note([late, gone]).endswith("(1/1 seeds); 1/2 seeds kept without a training record")
    md, _ = table_lines("table1", {"Cls subnet": [late]}, SCALES["mini"])
    assert "| 0.500 | - / - / 76.24 | best epoch 29 of 30: still improving at the budget's end (1/1 seeds) |" in md


def test_discovery_on_a_run_without_one_class(small_data, tiny_spec, tmp_path):
    reduced = without_class(small_data, tmp_path / "reduced", "mtor_4jsv")
    classes = json.loads((reduced / "classes.json").read_text())
    assert [c["name"] for c in classes] == ["ruvb_7pbl", "mjap_9x2o"]
    run = tmp_path / "run"
    train(tiny_spec, reduced, run, TrainConfig(progress=False, epochs=1), log=lambda _: None)
    result = discover(run, small_data, "mtor_4jsv", tmp_path / "found")
    assert result["k"] == 3 and result["holdout_particles"] == 20 and result["feature_dim"] == 16
    assert 0 < result["holdout_share_in_dominant_cluster"] <= 1 and 0 < result["dominant_cluster_purity"] <= 1
    assert result["fsc"]["resolution_0.5"] >= 20.0
    for name in ("tsne.png", "recovery.png", "fsc_holdout.png", "discover.json", "clusters.csv"):
        assert (Path(result["out"]) / name).is_file()
    with pytest.raises(DataError, match="was trained with 'ruvb_7pbl'"):
        discover(run, small_data, "ruvb_7pbl", tmp_path / "x")


def test_a_whole_study_runs_on_two_workers(monkeypatch, tmp_path, capfd):
    """End to end at a toy scale: datasets, jobs side by side in two processes, tables, orderings."""
    import dataclasses

    from dsmnet.reproduce import study

    toy = dataclasses.replace(
        SCALES["mini"],
        name="toy",
        n=36,
        box=34,
        tomogram=(96, 192, 192),
        widths=(4, 8, 16),
        hidden=16,
        batch=8,
        epochs=1,
        patience=1,
        classes=3,
        test_n=12,
    )
    monkeypatch.setitem(study.SCALES, "toy", toy)
    monkeypatch.setattr(study, "HOLDOUT", "mtor_4jsv")  # one of the toy's three classes
    lines = []
    result = study.reproduce("toy", tmp_path / "toy", log=lines.append, tables=("table3",), workers=2)
    assert "5 training runs on 2 worker(s)" in lines  # Table 3's four and discovery's
    assert result["discovery"]["holdout"] == "mtor_4jsv" and result["discovery"]["training"]["history"]
    rows = result["results"]["table3"]
    assert list(rows) == ["Cls+Rec 1:1", "Cls+Rec 1:10", "Cls+Seg 1:10", "Cls+Seg 1:100"]
    assert all(len(runs) == 1 and "acc_cls" in runs[0]["metrics"] for runs in rows.values())
    for name in ("table3.md", "table3.csv", "summary.md"):
        assert (tmp_path / "toy" / name).is_file()
    assert "on 2 worker(s)" in (tmp_path / "toy" / "summary.md").read_text()
    assert "[A · Cls+Seg 1:100 · seed 0]" in capfd.readouterr().out  # the workers' logs, prefixed
    # a second call reuses every finished run and its test metrics, and sums the wall time
    run = tmp_path / "toy" / "runs" / "A" / "dsmnet-cls+seg-seg=100" / "seed0"
    metrics = run / "evaluate-independent-tta" / "metrics.json"  # the mini scale evaluates with tta
    evaluated = metrics.stat().st_mtime_ns
    again = study.reproduce(
        "toy", tmp_path / "toy", log=lines.append, tables=("table3",), with_discovery=False, workers=1
    )
    assert again["results"]["table3"]["Cls+Seg 1:100"][0]["metrics"] == rows["Cls+Seg 1:100"][0]["metrics"]
    assert metrics.stat().st_mtime_ns == evaluated  # not evaluated again
    state = json.loads((tmp_path / "toy" / "study.json").read_text())
    assert state["invocations"] == 2
    assert state["seconds"] == pytest.approx(result["seconds"] + again["seconds"], abs=1.0)
    assert "summed over the 2 invocations" in (text := (tmp_path / "toy" / "summary.md").read_text())
    assert "on 1 worker(s))." in text  # the workers of this invocation, not of the study
    # a larger budget trains the finished runs on from where they ended (and their specs say so)
    monkeypatch.setitem(study.SCALES, "toy", dataclasses.replace(toy, epochs=2))
    longer = study.reproduce("toy", tmp_path / "toy", log=lines.append, tables=("table3",), with_discovery=False)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    assert "epochs: 2" in (run / "spec.yaml").read_text()
    assert (
        longer["results"]["table3"]["Cls+Seg 1:100"][0]["epoch"]
        == json.loads((run / "summary.json").read_text())["best_epoch"]
    )  # evaluated again when the best checkpoint moved
    # a smaller budget, or another spec, is refused, naming what differs
    with pytest.raises(StudyError, match=r"trained with a larger budget \(epochs 2, patience 1\) than this study's"):
        monkeypatch.setitem(study.SCALES, "toy", toy)
        study.reproduce("toy", tmp_path / "toy", log=lines.append, tables=("table3",), with_discovery=False)
    monkeypatch.setitem(study.SCALES, "toy", dataclasses.replace(toy, epochs=2, hidden=32))
    with pytest.raises(StudyError, match="holds a run of another spec"):
        study.reproduce("toy", tmp_path / "toy", log=lines.append, tables=("table3",), with_discovery=False)
    # with the run folders gone and the study folder moved (a clean clone elsewhere), the kept
    # results redraw the report and nothing is trained or scored again
    import shutil

    shutil.rmtree(tmp_path / "toy" / "runs")
    moved = tmp_path / "moved"
    (tmp_path / "toy").rename(moved)
    monkeypatch.setitem(study.SCALES, "toy", dataclasses.replace(toy, epochs=2))
    shutil.rmtree(moved / "data")
    lines.clear()
    kept = study.reproduce("toy", moved, log=lines.append, tables=("table3",), report_only=True)
    assert f"{moved / 'data' / 'A_test'} not simulated: its rows' kept results stand in for it" in lines
    assert lines[-3:] == [
        f"discovery reused from {moved / 'discover' / 'discover.json'} (its run folder gone)",
        f"4 run(s) reused from their kept results in {moved / 'metrics'} (run folders gone)",
        "0 training runs on 2 worker(s)",
    ]
    assert (
        kept["discovery"] == result["discovery"] and "Unseen-structure discovery" in (moved / "summary.md").read_text()
    )
    assert not any("template matching" in line for line in lines)  # the reference rows' caches hold too
    row = kept["results"]["table3"]["Cls+Seg 1:100"][0]
    assert row["metrics"] == longer["results"]["table3"]["Cls+Seg 1:100"][0]["metrics"]
    assert not (moved / "runs").exists()
    record = json.loads((moved / "metrics" / "A" / "dsmnet-cls+seg-seg=100" / "seed0.json").read_text())
    assert record["run"] == str(moved / "runs" / "A" / "dsmnet-cls+seg-seg=100" / "seed0")  # where it now is
    assert record["data"] == str(moved / "data" / "A_test")  # and its test set
    assert [h["epoch"] for h in record["training"]["history"]] == [1, 2]
    assert record["training"]["spec"]["training"]["epochs"] == 2
    text = (moved / "summary.md").read_text()
    assert "Code revisions that trained these runs: " in text and "unrecorded" not in text
    assert (moved / "learning_curves.png").is_file()
    # ... but a larger budget needs the checkpoints, and another spec is refused as before
    monkeypatch.setitem(study.SCALES, "toy", dataclasses.replace(toy, epochs=3))
    with pytest.raises(StudyError, match="larger budget, but only its kept result is left"):
        study.reproduce("toy", moved, log=lines.append, tables=("table3",), with_discovery=False)
    monkeypatch.setitem(study.SCALES, "toy", dataclasses.replace(toy, epochs=2, hidden=32))
    with pytest.raises(StudyError, match="holds a run of another spec"):
        study.reproduce("toy", moved, log=lines.append, tables=("table3",), with_discovery=False)
    monkeypatch.setitem(study.SCALES, "toy", dataclasses.replace(toy, n=40))
    with pytest.raises(StudyError, match="simulated with other settings .n: 36.*wants n: 40"):
        study.reproduce("toy", moved, log=lines.append, tables=("table3",), with_discovery=False)


def test_a_failing_job_names_itself_and_stops_the_queue(tmp_path, tiny_spec):
    from dsmnet.core.build import load_spec
    from dsmnet.reproduce import study

    spec = load_spec(tiny_spec).to_dict()
    jobs = [study.Job(tmp_path / f"run{i}", spec, tmp_path / "no-such-data", 0, f"row {i}", float(i)) for i in range(3)]
    with pytest.raises(StudyError, match=r"row \d \(.*run\d\) failed: .*no-such-data"):
        study.run_jobs(jobs, workers=2, log=lambda _: None)


def test_accuracy_orderings_state_their_standard_error():
    def run(acc: float, n: int = 100) -> dict:
        confusion = [[n // 2, 0], [0, n - n // 2]]  # only its total, the test set's size, is used
        return {"metrics": {"acc_cls": acc}, "confusion_cls": confusion}

    close = ordering_lines({"table1": {"DSM-Net": [run(0.80)], "Cls subnet": [run(0.75)]}})
    # sqrt(0.8·0.2/100 + 0.75·0.25/100) = 0.059
    assert close == [
        "- table1: DSM-Net acc 0.800 > Cls subnet 0.750 — **not shown: within noise**; "
        "difference +0.050 ± 0.059 (1 s.e.)"
    ]
    behind = ordering_lines({"table1": {"DSM-Net": [run(0.75), run(0.80)], "Cls subnet": [run(0.80), run(0.75)]}})
    assert behind[0].startswith(
        "- table1: DSM-Net acc 0.775 > Cls subnet 0.775 — **not shown: within noise (1/2 seeds ahead)**"
    )
    reversed_ = ordering_lines({"table1": {"DSM-Net": [run(0.40)], "Cls subnet": [run(0.80)]}})
    assert "**did not hold**; difference -0.400 ± 0.063" in reversed_[0]
    far = ordering_lines({"table1": {"DSM-Net": [run(0.80)], "Cls subnet": [run(0.40)]}})
    assert far[0].endswith("difference +0.400 ± 0.063 (1 s.e.)")
    # two seeds: the standard error of the mean of each row; the seeds agree, so it stands
    two = ordering_lines({"table1": {"DSM-Net": [run(0.8), run(0.8)], "Cls subnet": [run(0.4), run(0.4)]}})
    assert "difference +0.400 ± 0.045 (1 s.e.; the seeds' differences +0.400, +0.400)" in two[0]


def test_rows_at_different_seeds_are_compared_on_the_seeds_both_have():
    def run(acc: float, seed: int) -> dict:
        return {"run": f"study/runs/A/row/seed{seed}", "metrics": {"acc_cls": acc}, "confusion_cls": [[50, 0], [0, 50]]}

    # DSM-Net has finished seeds 0 and 1, the Cls subnet only seed 0: compared on seed 0 alone
    lines = ordering_lines({"table1": {"DSM-Net": [run(0.8, 0), run(0.4, 1)], "Cls subnet": [run(0.7, 0)]}})
    assert lines[0].startswith(
        "- table1: DSM-Net acc 0.800 > Cls subnet 0.700 (seed 0: the seeds both rows have so far)"
    )
    same = ordering_lines({"table1": {"DSM-Net": [run(0.8, 0), run(0.4, 1)], "Cls subnet": [run(0.7, 0), run(0.7, 1)]}})
    assert same[0].startswith("- table1: DSM-Net acc 0.600 > Cls subnet 0.700 — ")
    md, _ = table_lines(
        "table1", {"DSM-Net": [run(0.8, 0), run(0.4, 1)], "Cls subnet": [run(0.7, 0)]}, SCALES["converged"]
    )
    assert "| Cls subnet | — | — | 0.700 | - / - / 76.24 | seed 0 only (of 0, 1) so far |" in md
    assert "seed 0 only" not in md.split("Cls subnet")[0]
    # a planned row none of whose runs has finished stands in the table, marked, after the scored ones
    md, csv_text = table_lines(
        "table3", {"Cls+Rec 1:1": [run(0.7, 0)]}, SCALES["converged"], ["Cls+Rec 1:1", "Cls+Rec 1:10", "Cls+Rec 1:10"]
    )
    waiting = "| Cls+Rec 1:10 | — | — | — | - / - / 81.87 | not finished at any seed yet (`status.md`) |"
    assert md.rstrip().endswith(waiting) and md.count("Cls+Rec 1:10") == 1 and md.count("Cls+Rec 1:1 |") == 1
    assert "1:10" not in csv_text  # the CSV holds measured rows only


def test_miou_orderings_take_their_standard_error_from_the_seeds():
    def seg(miou: float) -> dict:
        return {"metrics": {"miou_seg": miou}}

    one = ordering_lines({"table1": {"DSM-Net": [seg(0.80)], "SSN3D-ED": [seg(0.79)]}})
    assert one == ["- table1: DSM-Net miou 0.800 > SSN3D-ED 0.790 — **held (one seed each: no standard error)**"]
    # seeds 0.666 and 0.634 (s.d. 0.0226) against one seed: s.e. 0.0226 · sqrt(1/2 + 1) = 0.028
    spread = ordering_lines({"table2": {"DSM-Net": [seg(0.666), seg(0.634)], "Seg subnet": [seg(0.648)]}})
    assert spread == [
        "- table2: DSM-Net miou 0.650 > Seg subnet 0.648 — **not shown: within noise**; "
        "difference +0.002 ± 0.028 (1 s.e., from the seeds' spread)"
    ]
    # the spread is pooled over the table's rows: a row whose two seeds agree does not make it zero
    pooled = {"DSM-Net": [seg(0.80), seg(0.80)], "Cls+Seg": [seg(0.78), seg(0.76)], "Seg subnet": [seg(0.803)]}
    assert "**not shown: within noise**; difference -0.003 ± 0.012" in ordering_lines({"table1": pooled})[0]
    far = ordering_lines({"table2": {"DSM-Net": [seg(0.80), seg(0.81)], "Seg subnet": [seg(0.60), seg(0.61)]}})
    assert far[0].startswith("- table2: DSM-Net miou 0.805 > Seg subnet 0.605 — **held (2/2 seeds)**")


def test_wall_time_counts_side_by_side_invocations_once(tmp_path):
    from dsmnet.reproduce.clock import record_span

    assert record_span(tmp_path, 1000.0, 1100.0) == (pytest.approx(100.0), 1)
    assert record_span(tmp_path, 1050.0, 1100.0) == (pytest.approx(100.0), 2)  # ran inside the first one's span
    assert record_span(tmp_path, 1000.0, 1200.0) == (pytest.approx(200.0), 2)  # the first one's end moved on
    assert record_span(tmp_path, 1000.0, 1150.0) == (pytest.approx(200.0), 2)  # a late beat moves no end back
    (tmp_path / "study.json").write_text(json.dumps({"seconds": 600.0, "invocations": 3}))  # an older file
    assert record_span(tmp_path, 0.0, 60.0) == (pytest.approx(660.0), 4)


def test_an_invocation_counts_while_it_runs_so_a_killed_one_is_not_lost(tmp_path):
    from dsmnet.reproduce.clock import StudyClock

    clock = StudyClock(tmp_path, every=0.02)
    assert clock.end() is None and not (tmp_path / "study.json").exists()  # one that never began: nothing
    clock.begin()
    try:
        state = json.loads((tmp_path / "study.json").read_text())  # written at once
        assert state["invocations"] == 1 and state["spans"][0][0] == clock.start
        first_end = state["spans"][0][1]
        time.sleep(0.2)  # beats move its end on; were the process killed now, this is what stays
        state = json.loads((tmp_path / "study.json").read_text())
        assert state["invocations"] == 1 and state["spans"][0][1] > first_end + 0.1
        other = StudyClock(tmp_path, every=0.02)  # a second invocation side by side
        other.begin()
        time.sleep(0.1)
        assert other.end()[1] == 2
    finally:
        total, invocations = clock.end()
    assert invocations == 2 and total == pytest.approx(time.time() - clock.start, abs=0.05)
    assert clock.end() is None  # closing twice is harmless


def test_the_report_names_the_code_revisions_that_trained_its_runs(tmp_path):
    def run(name: str, revisions: list[str] | None) -> dict:
        folder = tmp_path / name
        folder.mkdir()
        summary = {"epochs": 3} if revisions is None else {"epochs": 3, "revisions": revisions}
        (folder / "summary.json").write_text(json.dumps(summary))
        return with_record({"run": str(folder), "metrics": {}}, folder)

    runs = {"A · Cls · seed0": run("a", ["abc1234"]), "A · DSM · seed0": run("b", ["abc1234"])}
    assert revisions_line(runs) == "Code revisions that trained these runs: abc1234 (2 runs)."
    runs["B · DSM · seed0"] = run("c", ["0ld0000", "abc1234+changes"])  # resumed at another revision
    runs["B · Cls · seed0"] = run("d", None)  # trained before runs recorded it
    runs["B · Seg · seed0"] = {"run": str(tmp_path / "gone"), "metrics": {}}  # kept before records were
    assert revisions_line(runs) == (
        "Code revisions that trained these runs: abc1234 (2 runs); unrecorded (B · Cls · seed0, B · Seg · seed0); "
        "0ld0000 (B · DSM · seed0); abc1234+changes (B · DSM · seed0)."
    )
    assert revisions_line({}) == ""
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "summary.json").write_text(json.dumps({"epochs": 3, "runtimes": ["cpu fp32 NCDHW; avx2"]}))
    runs["A · Seg · seed0"] = with_record({"run": str(tmp_path / "e"), "metrics": {}}, tmp_path / "e")
    assert runtimes_line(runs) == (
        "Arithmetic that trained these runs: unrecorded (5 runs); cpu fp32 NCDHW; avx2 (A · Seg · seed0)."
    )


def test_one_worker_trains_on_the_threads_asked(tmp_path):
    """Two invocations side by side each say --threads 1, else each takes every core (4 threads on 2)."""
    from dsmnet.reproduce import study

    class Probe:
        cost, title, run = 1.0, "probe", tmp_path / "probe"

        def __call__(self, log):
            return {"threads": torch.get_num_threads()}

    before = torch.get_num_threads()
    try:
        assert study.run_jobs([Probe()], workers=1, log=lambda _: None, threads=1) == {Probe.run: {"threads": 1}}
    finally:
        torch.set_num_threads(before)

"""``dsmnet reproduce --status``: where each planned run of a study stands, read from its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from dsmnet.cli import main
from dsmnet.reproduce.jobs import Job
from dsmnet.reproduce.records import kept_path
from dsmnet.reproduce.status import cost_line, run_status, status_line, status_table

SPEC = {"training": {"patience": 15, "epochs": 300}}


def _job(out, row: str, seed: int = 0) -> Job:
    run = out / "runs" / "A" / row / f"seed{seed}"
    return Job(run, SPEC, out / "data" / "A", seed, f"A · {row} · seed {seed}", 1.0, True, out / "data" / "A_test",
               "rotate", True)  # fmt: skip


def _epochs(run, losses: list[float], rate: float = 40.0, train: int = 100) -> None:
    run.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"epoch": e + 1, "val_loss": v, "lr": 1e-3, "train_samples_per_s": rate})
        for e, v in enumerate(losses)
    ]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + '{"epoch": 9, "val_lo')  # a line being written
    (run / "split.json").write_text(json.dumps({"train": list(range(train)), "val": [], "test": []}))


def test_each_state_of_a_run_is_read_from_its_files(tmp_path):
    out, now = tmp_path, time.time()
    assert run_status(_job(out, "none"), out)["state"] == "not started"

    job = _job(out, "training")
    _epochs(job.run, [2.0, 1.5, 1.6, 1.7])
    s = run_status(job, out, now)
    assert (s["state"], s["epoch"], s["best_epoch"], s["samples_seen"], s["patience"]) == ("training", 4, 2, 400, 15)
    line = status_line(s)
    assert line.startswith("A · training · seed 0: training, epoch 4 (best 2, val. loss 1.5000; 2 of 15 epochs ")
    assert "400 samples; stops after epoch 17 at the earliest (13 more, ≈ 1 min" in line  # pace: the training rate
    assert line.endswith("; last epoch 0 min ago")
    old = now - 3 * 3600  # an epoch of 100 samples at 40/s takes seconds: three hours idle is a stopped process
    os.utime(job.run / "metrics.jsonl", (old, old))
    assert status_line(run_status(job, out, now)).endswith("last epoch 3.0 h ago (not running?)")

    job = _job(out, "stopped")
    _epochs(job.run, [2.0, 1.0])
    summary = {"epochs": 17, "best_epoch": 2, "stopped_early": True, "core_hours": 0.25}
    (job.run / "summary.json").write_text(json.dumps(summary))
    (job.run / "best.pt").write_bytes(b"")
    assert status_line(run_status(job, out)) == (
        "A · stopped · seed 0: stopped at epoch 17 (best 2; 15 epochs without a lower validation loss), 0.2 core-h; "
        "not yet scored on the test set"
    )
    scored = job.run / "evaluate-independent-tta" / "metrics.json"
    scored.parent.mkdir()
    scored.write_text(json.dumps({"data": str(out / "data" / "A_test"), "metrics": {"acc_cls": 0.5, "miou_seg": 0.75}}))
    assert status_line(run_status(job, out)).endswith("; test acc 0.500, mIoU 0.750")
    (job.run / "summary.json").write_text(json.dumps({**summary, "epochs": 300, "stopped_early": False}))
    assert "budget spent at epoch 300 (best 2; not converged)" in status_line(run_status(job, out))
    floor = {**summary, "stopped_because": "the rate (2.4e-06) below min_lr 3e-06"}  # its own words where kept
    (job.run / "summary.json").write_text(json.dumps(floor))
    assert "stopped at epoch 17 (best 2; the rate (2.4e-06) below min_lr 3e-06), 0.2 core-h" in status_line(
        run_status(job, out)
    )

    job = _job(out, "gone", seed=1)  # only its kept result left
    keep = kept_path(out, job.run)
    keep.parent.mkdir(parents=True)
    record = {"training": {"summary": {"epochs": 88, "best_epoch": 73, "stopped_early": True}}}
    keep.write_text(json.dumps({"data": "x/A_test", "tta": "rot180x4", "metrics": {"acc_cls": 0.627}, **record}))
    assert status_line(run_status(job, out)) == (
        "A · gone · seed 1: stopped at epoch 88 (best 73; 15 epochs without a lower validation loss) (run folder gone; "
        "its kept result); test acc 0.627"
    )
    record["training"]["summary"]["seconds"] = 5400.0  # kept before runs recorded CPU time: its wall-clock said
    keep.write_text(json.dumps({"data": "x/A_test", "tta": "rot180x4", "metrics": {"acc_cls": 0.627}, **record}))
    assert "lower validation loss), 1.5 h wall-clock (CPU time not recorded) (run folder gone" in status_line(
        run_status(job, out)
    )
    job = _job(out, "timed")  # records since 2026-12-06 keep the run's seconds: the epoch's minutes and cost so far
    _epochs(job.run, [2.0, 1.5])
    rows = [json.loads(line) for line in (job.run / "metrics.jsonl").read_text().splitlines()[:2]]
    rows = [{**r, "seconds": 60.0 * r["epoch"] ** 2, "cpu_seconds": 1800.0 * r["epoch"]} for r in rows]
    (job.run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = run_status(job, out, now)
    assert (s["epoch_minutes"], s["core_hours"]) == (3.0, 1.0)  # epochs at 60 s and 240 s of the run
    # best epoch 2, patience 15: epoch 17 at the earliest, 15 more epochs at the last one's 3 minutes
    end = "; stops after epoch 17 at the earliest (15 more, ≈ 45 min at the last epoch's pace); last epoch"
    assert f"200 samples, 1.0 core-h{end}" in status_line(s)
    capped = status_line({**s, "max_epochs": 10, "epoch_minutes": 30.0})  # the budget's end comes first
    assert "; stops after epoch 10 at the earliest (8 more, ≈ 4.0 h at the last epoch's pace); last epoch" in capped

    table = status_table([run_status(_job(out, r), out, now) for r in ("none", "training", "stopped")], now)
    assert table.splitlines()[2] == "1 not started, 1 training, 1 stopped (of 3 runs)."


def test_a_run_in_training_says_whether_a_process_holds_it(tmp_path):
    """The run's ``.lock`` names the process that trains it: alive, the line names it; gone (the
    lanes were stopped), the line says the run waits to resume, however recent its last epoch."""
    job = _job(tmp_path, "training")
    _epochs(job.run, [2.0, 1.5])
    (job.run / ".lock").write_text(f"{os.getpid()}\n")
    assert status_line(run_status(job, tmp_path)).endswith(f"last epoch 0 min ago (process {os.getpid()})")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (job.run / ".lock").write_text(ended.stdout)
    waits = "last epoch 0 min ago (no process trains it: it resumes from last.pt)"
    assert status_line(run_status(job, tmp_path)).endswith(waits)
    if sys.platform == "linux":  # the id taken again by another program: not the holder
        other = subprocess.Popen(["sleep", "30"])
        try:
            (job.run / ".lock").write_text(f"{other.pid}\n")
            assert status_line(run_status(job, tmp_path)).endswith(waits)
        finally:
            other.kill()
            other.wait()


def test_status_needs_a_study_folder_and_excludes_report(capsys, tmp_path):
    assert main(["reproduce", "--out", str(tmp_path / "none"), "--status"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"dsmnet: error: {tmp_path / 'none'}: no study folder there (nothing has run yet)"
    )
    assert main(["reproduce", "--out", str(tmp_path), "--status", "--report"]) == 2
    assert "--status and --report" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_the_cost_so_far_and_an_estimate_of_the_rest():
    def run(title, state, hours=None, so_far=None):
        return {"title": title, "state": state, "summary": {"core_hours": hours} if hours else {}, "core_hours": so_far}

    statuses = [
        run("A · Cls subnet · seed 0", "stopped", 1.0),
        run("A · DSM-Net · seed 0", "kept", 2.0),
        run("A · Seg subnet · seed 0", "kept"),  # a kept record from before runs recorded their cost
        run("B · Cls subnet · seed 0", "not started"),  # the row's own other run: 1.0
        run("A · DSM-Net · seed 1", "training", so_far=0.5),  # 2.0, half an hour of it spent
        run("A · Cls+Rec · seed 0", "not started"),  # no run of its row yet: the mean, 1.5
    ]
    assert cost_line(statuses) == (
        "Cost so far: 3.0 core-hours over the 2 finished runs that record it. Still to run: 3 runs, ≈ 4 core-hours "
        "at the finished runs' cost (a row's own other runs where it has some, else their mean, 1.5), ≈ 2 hours as "
        "two single-threaded trainings side by side."
    )
    assert cost_line(statuses[:3]) == "Cost so far: 3.0 core-hours over the 2 finished runs that record it."


def test_a_run_of_a_seed_beyond_the_plan_is_listed_not_hidden(tmp_path):
    from dsmnet.reproduce.status import study_status

    out = tmp_path
    _epochs(out / "runs" / "A" / "dsmnet-cls" / "seed2", [2.0, 1.8])  # a third seed of the Cls subnet, training
    (out / "metrics" / "A" / "baseline").mkdir(parents=True)
    (out / "metrics" / "A" / "baseline" / "seed5.json").write_text("{}")  # a reference's seed: no run of it
    statuses = study_status("converged", out, tables=("table1",), with_discovery=False, rows=("Cls subnet", "DSM-Net"))
    titles = [s["title"] for s in statuses]
    assert titles[:4] == [f"A · {row} · seed {n}" for row in ("Cls subnet", "DSM-Net") for n in (0, 1)]
    assert titles[4:] == ["A · Cls subnet · seed 2"] and statuses[4]["epoch"] == 2
    assert "A · Cls subnet · seed 2: training, epoch 2" in (out / "status.md").read_text()


def test_a_runs_sessions_are_listed_under_it_from_its_own_record(tmp_path):
    """The sitting notes a study kept by hand, from what the training records: each session's start,
    machine, code and threads, the epochs it trained and when its last one ended; a session cut
    short by the next one's start trained up to the epoch the next resumed after."""
    out = tmp_path
    job = _job(out, "resumed")
    _epochs(job.run, [2.0, 1.5, 1.6, 1.7])
    rows = [json.loads(line) for line in (job.run / "metrics.jsonl").read_text().splitlines()[:4]]
    for row, ended in zip(rows, ["06:50:00", "07:10:00", "08:40:00", "09:00:00"]):
        row["ended"] = f"2026-12-07T{ended}Z"
    (job.run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    session = {"host": "xeon", "revision": "ab49628", "runtime": "cpu bf16", "threads": 1}
    sessions = [
        {**session, "began": "2026-12-07T06:46:12Z", "after_epoch": 0},
        {**session, "began": "2026-12-07T08:25:40Z", "after_epoch": 2, "revision": "097f309"},
        {**session, "began": "2026-12-07T10:00:00Z", "after_epoch": 4, "threads": 2},  # nothing done yet
    ]
    (job.run / "sessions.json").write_text(json.dumps(sessions))
    pauses = [  # as pause.sh writes them; the second session's two, the first before any session was kept
        {"from": "2026-12-06T23:10:00Z", "to": "2026-12-06T23:12:30Z", "why": "bench"},
        {"from": "2026-12-07T08:43:25Z", "to": "2026-12-07T08:43:31Z", "why": "microbench"},
        {"from": "2026-12-07T08:50:00Z", "to": "2026-12-07T08:56:10Z"},
    ]
    (job.run / "pauses.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pauses) + '{"from": "2026-12-07T09')
    lines = status_line(run_status(job, out)).split("\n")
    assert lines[1:] == [
        "  - paused 2026-12-06 23:10–23:12 UTC (bench)",
        "  - session 2026-12-07 06:46 UTC on xeon, code ab49628, 1 thread: epochs 1–2, the last ended 2026-12-07 07:10",
        "  - session 2026-12-07 08:25 UTC on xeon, code 097f309, 1 thread: epochs 3–4, the last ended "
        "2026-12-07 09:00; paused 08:43–08:43 (microbench), 08:50–08:56",
        "  - session 2026-12-07 10:00 UTC on xeon, code ab49628, 2 threads: no epoch finished",
    ]
    assert "\n  - session 2026-12-07 06:46" in status_table([run_status(job, out)])
    (job.run / "sessions.json").write_text("{not json")  # a run from before sessions were kept, or a torn file
    assert status_line(run_status(job, out)).split("\n")[1:] == [
        "  - paused 2026-12-06 23:10–23:12 UTC (bench)",
        "  - paused 2026-12-07 08:43–08:43 UTC (microbench)",
        "  - paused 2026-12-07 08:50–08:56 UTC",
    ]
    (job.run / "pauses.jsonl").unlink()
    assert "\n" not in status_line(run_status(job, out))

    job = _job(out, "kept")  # its folder gone: the sessions and epochs its kept record holds
    keep = kept_path(out, job.run)
    keep.parent.mkdir(parents=True)
    training = {"summary": {"epochs": 4, "best_epoch": 2, "stopped_early": True, "sessions": sessions[:2]}}
    training["history"] = rows
    keep.write_text(
        json.dumps({"data": "x/A_test", "tta": "rot180x4", "metrics": {"acc_cls": 0.6}, "training": training})
    )
    assert status_line(run_status(job, out)).split("\n")[1:] == [
        "  - session 2026-12-07 06:46 UTC on xeon, code ab49628, 1 thread: epochs 1–2, the last ended 2026-12-07 07:10",
        "  - session 2026-12-07 08:25 UTC on xeon, code 097f309, 1 thread: epochs 3–4, the last ended 2026-12-07 09:00",
    ]

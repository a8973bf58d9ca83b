"""Where each run of a study stands, without training anything (``dsmnet reproduce --status``).

A study trained to convergence spans several sittings: each row's run stops when early stopping
fires, which may be epoch 70 or 120. Between sittings one wants to know, per planned run, whether
it has not started, is training (epoch, best epoch, how much of the patience is used up, the
rate, samples seen, when it last wrote an epoch), has stopped (where, at what cost) and been
scored on the test set, or survives only as its kept result. Everything is read from the run
folders and ``metrics/``: nothing is loaded into a network and nothing is written but
``status.md``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from dsmnet.core.fsutil import atomic_write_text
from dsmnet.reproduce.jobs import Job, StudyError, datasets, scored, scoring
from dsmnet.reproduce.records import kept_path, kept_unless_run
from dsmnet.reproduce.scales import HOLDOUT, PAPER_TABLES, variant
from dsmnet.reproduce.study import discovery_folder, plan_runs, scale_at


def _rows(path: Path) -> list[Any]:
    """A JSON-lines file's rows, up to a line being written as we read (none if there is no file)."""
    rows = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def _history(run: Path) -> list[dict[str, Any]]:
    return [r for r in _rows(run / "metrics.jsonl") if "val_loss" in r and "epoch" in r]


def run_status(job: Job, out: Path, now: float | None = None) -> dict[str, Any]:
    """One planned run's state: ``not started``, ``training``, ``stopped`` (trained, perhaps not yet
    scored) or ``kept`` (its run folder gone, its result kept in ``out/metrics``), with what the
    run's files say of it."""
    run, now = job.run, time.time() if now is None else now
    status: dict[str, Any] = {"title": job.title, "run": str(run)}
    kept = kept_unless_run(out, run, job.test, job.tta)
    if kept is not None:
        training = kept.get("training") or {}
        summary = training.get("summary") or {}
        sessions = session_notes(summary.get("sessions") or [], training.get("history") or [])
        return {**status, "state": "kept", "summary": summary, "metrics": kept.get("metrics", {}), "sessions": sessions}
    if (run / "summary.json").is_file():
        summary = json.loads((run / "summary.json").read_text())
        source, _, folder = scoring(run, job.data, job.test, job.tta)
        return {
            **status,
            "state": "stopped",
            "summary": summary,
            "metrics": (scored(run, source, folder) or {}).get("metrics"),
            "sessions": session_notes(summary.get("sessions") or [], _history(run), _pauses(run)),
        }
    history = _history(run)
    if not history:
        return {**status, "state": "not started"}
    best = min(history, key=lambda r: r["val_loss"])
    last = history[-1]
    split = run / "split.json"
    per_epoch = len(json.loads(split.read_text()).get("train", [])) if split.is_file() else None
    return {
        **status,
        "state": "training",
        "epoch": last["epoch"],
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "patience": job.spec.get("training", {}).get("patience"),
        "max_epochs": job.spec.get("training", {}).get("epochs"),
        "lr": last.get("lr"),
        "samples_seen": per_epoch * last["epoch"] if per_epoch else None,
        "idle_minutes": max(0.0, now - (run / "metrics.jsonl").stat().st_mtime) / 60,
        "epoch_minutes": _epoch_minutes(history, per_epoch),
        "core_hours": last["cpu_seconds"] / 3600 if "cpu_seconds" in last else None,
        "held_by": _holder(run),
        "locked": (run / ".lock").is_file(),  # written by every training since 2026-12-06
        "sessions": session_notes(_sessions(run), history, _pauses(run)),
    }


def _sessions(run: Path) -> list[dict[str, Any]]:
    """The run's sessions as its training wrote them (``sessions.json``; none before 2026-12-07)."""
    try:
        sessions = json.loads((run / "sessions.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return sessions if isinstance(sessions, list) else []


def _pauses(run: Path) -> list[dict[str, Any]]:
    """The pauses ``results/converged/pause.sh`` wrote into the run (``pauses.jsonl``: from, to, why)."""
    return [r for r in _rows(run / "pauses.jsonl") if isinstance(r, dict) and {"from", "to"} <= r.keys()]


def _clock(iso: str) -> str:
    """``2026-12-07T08:25:03Z`` → ``2026-12-07 08:25``."""
    return iso[:16].replace("T", " ")


def _span(pause: dict[str, Any], date: bool = False) -> str:
    """A pause as ``08:43–08:47 (why)`` (with its date: ``2026-12-07 08:43–08:47 UTC (why)``)."""
    span = f"{_clock(pause['from']) if date else pause['from'][11:16]}–{pause['to'][11:16]}" + (" UTC" if date else "")
    return span + (f" ({pause['why']})" if pause.get("why") else "")


def session_notes(
    sessions: list[dict[str, Any]], history: list[dict[str, Any]], pauses: list[dict[str, Any]] | None = None
) -> list[str]:
    """Each session of a run in a line — when it began, where, with which code, which epochs it
    trained and when the last of them ended, when it was paused and why — from the sessions the
    training recorded, its epochs' rows and the pauses ``pause.sh`` wrote: what a study's sitting
    notes said by hand before runs recorded them. A session whose epochs are cut short by the next
    one's start ended (killed or stopped) during the epoch after its last. Pauses before the first
    recorded session (a run begun before sessions were kept) get lines of their own."""
    ended = {r["epoch"]: r.get("ended") for r in history}
    last = history[-1]["epoch"] if history else 0
    starts, pauses = [s.get("began", "") for s in sessions], pauses or []
    before = [p for p in pauses if not starts or p["from"] < starts[0]]
    notes = [f"paused {_span(p, date=True)}" for p in before]
    for i, s in enumerate(sessions):
        until = starts[i + 1] if i + 1 < len(sessions) else "9999"
        during = [p for p in pauses if starts[i] <= p["from"] < until]
        first = s.get("after_epoch", 0) + 1
        upto = sessions[i + 1].get("after_epoch", last) if i + 1 < len(sessions) else last
        threads = s.get("threads")
        host = s.get("host") or "an unnamed host"
        where = f"session {_clock(s.get('began', '?'))} UTC on {host}, code {s.get('revision')}"
        where += f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
        paused = "; paused " + ", ".join(map(_span, during)) if during else ""
        if upto < first:
            notes.append(f"{where}: no epoch finished{paused}")
            continue
        done = f"epochs {first}–{upto}" if upto > first else f"epoch {first}"
        when = f", the last ended {_clock(ended[upto])}" if ended.get(upto) else ""
        notes.append(f"{where}: {done}{when}{paused}")
    return notes


def _holder(run: Path) -> int | None:
    """The id of the live process training the run, as its ``.lock`` names it
    (:func:`~dsmnet.core.fsutil.claimed`), or None. Asked without taking the lock, so a training
    starting at that moment is never refused because of it; where ``/proc`` says what the process
    runs, one that is not Python (the id taken again by another program) is not the holder."""
    try:
        pid = int((run / ".lock").read_text().split()[0])
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return pid
    except (OSError, ValueError, IndexError):  # no lock, an empty one, or its process gone
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS), or the process ended meanwhile: the id is all there is
        return pid
    return pid if b"python" in command.lower() or b"dsmnet" in command else None


def _epoch_minutes(rows: list[dict[str, Any]], per_epoch: int | None) -> float | None:
    """The last epoch's minutes: the difference of the last two rows' run seconds where the record
    keeps them, else from the training rate (validation adds about a tenth on the study's 8:1:1 split)."""
    if len(rows) > 1 and "seconds" in rows[-1] and "seconds" in rows[-2]:
        return (rows[-1]["seconds"] - rows[-2]["seconds"]) / 60
    if per_epoch and rows[-1].get("train_samples_per_s"):
        return per_epoch / rows[-1]["train_samples_per_s"] * 1.15 / 60
    return None


def _earliest_end(s: dict[str, Any]) -> str:
    """When a run in training stops at the earliest: its patience spent with no lower validation loss
    (or the budget's last epoch, if sooner), at the last epoch's pace — a new best moves it later."""
    if not s.get("patience") or not s.get("epoch_minutes"):
        return ""
    last = s["best_epoch"] + s["patience"]
    if s.get("max_epochs"):
        last = min(last, s["max_epochs"])
    left = max(last - s["epoch"], 0)
    hours = left * s["epoch_minutes"] / 60
    pace = f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"
    return f"; stops after epoch {last} at the earliest ({left} more, ≈ {pace} at the last epoch's pace)"


def _why(summary: dict[str, Any]) -> str:
    """Why a finished run stopped, as its summary says (``stopped_because``); records from before it was
    kept stopped on patience alone, so the epochs after the best one say it."""
    if why := summary.get("stopped_because"):
        return f"; {why}"
    if summary.get("stopped_early") and isinstance(summary.get("best_epoch"), int):
        return f"; {summary['epochs'] - summary['best_epoch']} epochs without a lower validation loss"
    return ""


def _scores(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "not yet scored on the test set"
    parts = [f"acc {metrics['acc_cls']:.3f}" if "acc_cls" in metrics else ""]
    parts.append(f"mIoU {metrics['miou_seg']:.3f}" if "miou_seg" in metrics else "")
    return "test " + ", ".join(p for p in parts if p)


def status_line(s: dict[str, Any]) -> str:
    """One run's state in one line, and its sessions, where it recorded them, in a line each below."""
    state = s["state"]
    if state == "not started":
        return f"{s['title']}: not started"
    return _state_line(s) + "".join(f"\n  - {note}" for note in s.get("sessions") or [])


def _state_line(s: dict[str, Any]) -> str:
    state = s["state"]
    if state == "training":
        since = s["epoch"] - s["best_epoch"]
        patience = f" of {s['patience']}" if s.get("patience") else ""
        seen = ", " + f"{s['samples_seen']:,}".replace(",", " ") + " samples" if s.get("samples_seen") else ""
        seen += f", {s['core_hours']:.1f} core-h" if s.get("core_hours") is not None else ""
        lr = f", rate {s['lr']:.2g}" if s.get("lr") is not None else ""
        idle, epoch = s["idle_minutes"], s.get("epoch_minutes") or 10.0
        when = f"last epoch {idle:.0f} min ago" if idle < 60 else f"last epoch {idle / 60:.1f} h ago"
        if s.get("held_by"):
            when += f" (process {s['held_by']})"
        elif s.get("locked"):
            when += " (no process trains it: it resumes from last.pt)"
        elif idle > max(10.0, 3 * epoch):
            when += " (not running?)"
        return (
            f"{s['title']}: training, epoch {s['epoch']} (best {s['best_epoch']}, val. loss {s['best_val_loss']:.4f}; "
            f"{since}{patience} epochs without a lower one){lr}{seen}{_earliest_end(s)}; {when}"
        )
    summary = s.get("summary") or {}
    where = (
        f"stopped at epoch {summary['epochs']} (best {summary.get('best_epoch')}{_why(summary)})"
        if summary.get("epochs")
        else "finished"
    )
    if summary.get("epochs") and not summary.get("stopped_early", True):
        where = f"budget spent at epoch {summary['epochs']} (best {summary.get('best_epoch')}; not converged)"
    cost = f", {summary['core_hours']:.1f} core-h" if summary.get("core_hours") else ""
    if not cost and summary.get("seconds"):  # records kept before runs recorded their CPU time
        cost = f", {summary['seconds'] / 3600:.1f} h wall-clock (CPU time not recorded)"
    kept = " (run folder gone; its kept result)" if state == "kept" else ""
    return f"{s['title']}: {where}{cost}{kept}; {_scores(s.get('metrics'))}"


def status_table(statuses: list[dict[str, Any]], now: float | None = None) -> str:
    """The study's runs as a Markdown list (``status.md``), dated."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() if now is None else now))
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    lines = [
        f"# Where the study's runs stand ({when})",
        "",
        ", ".join(f"{n} {state}" for state, n in counts.items()) + f" (of {len(statuses)} runs).",
        "",
    ]
    lines += [cost_line(statuses), ""] if any(_core_hours(s) for s in statuses) else []
    lines += [f"- {status_line(s)}" for s in statuses]
    return "\n".join(lines) + "\n"


def _row(title: str) -> str:
    """A run's row without its dataset and seed ("A · Cls subnet · seed 0" → "Cls subnet")."""
    parts = title.split(" · ")
    return parts[1] if len(parts) == 3 else title


def _core_hours(s: dict[str, Any]) -> float | None:
    """A finished run's core-hours (its summary's; records before they were kept have none)."""
    return (s.get("summary") or {}).get("core_hours") if s["state"] in ("stopped", "kept") else None


def cost_line(statuses: list[dict[str, Any]]) -> str:
    """What the finished runs cost, and what the rest will at the finished runs' cost: a row's own
    other seeds (or datasets) where it has some, else the mean of every finished run."""
    done: dict[str, list[float]] = {}
    for s in statuses:
        if (hours := _core_hours(s)) is not None:
            done.setdefault(_row(s["title"]), []).append(hours)
    every = [h for hours in done.values() for h in hours]
    mean = sum(every) / len(every)
    left = [s for s in statuses if s["state"] in ("not started", "training")]
    guess = sum(sum(done[r]) / len(done[r]) if (r := _row(s["title"])) in done else mean for s in left)
    spent = sum(s.get("core_hours") or 0.0 for s in left)  # what the runs in training have used already
    line = f"Cost so far: {sum(every):.1f} core-hours over the {len(every)} finished runs that record it"
    if not left:
        return line + "."
    return (
        f"{line}. Still to run: {len(left)} runs, ≈ {max(guess - spent, 0.0):.0f} core-hours at the finished runs' "
        f"cost (a row's own other runs where it has some, else their mean, {mean:.1f}), ≈ "
        f"{max(guess - spent, 0.0) / 2:.0f} hours as two single-threaded trainings side by side."
    )


def _other_seeds(out: Path, seeds: tuple[int, ...]) -> tuple[int, ...]:
    """Seeds of run folders or kept records in the study folder other than ``seeds``: a seed trained
    on top of the plan (a third for the claim rows) is listed by ``--status`` rather than hidden."""
    found = [*out.glob("runs/*/*/seed*"), *out.glob("metrics/*/*/seed*.json")]
    numbers = {p.name.removesuffix(".json").removeprefix("seed") for p in found}
    return tuple(sorted({int(n) for n in numbers if n.isdigit()} - set(seeds)))


def study_status(
    scale_name: str,
    out: Path,
    tables: tuple[str, ...] = PAPER_TABLES,
    with_discovery: bool = True,
    seeds: tuple[int, ...] | None = None,
    rows: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """Where each run the study plans stands (:mod:`.status`), and each run of another seed found in
    the study folder, training nothing; writes ``out/status.md``. The study folder must exist (its
    datasets are checked, never simulated)."""
    if not out.is_dir():
        raise StudyError(f"{out}: no study folder there (nothing has run yet)")
    scale = scale_at(scale_name, seeds)
    paths = datasets(scale, out, lambda _: None, simulate_missing=False)
    jobs = list(plan_runs(scale, out, paths, tables, rows)[1].values())
    if extra := _other_seeds(out, scale.seeds):  # runs of further seeds started on top of the plan
        more = plan_runs(scale_at(scale_name, extra), out, paths, tables, rows)[1].values()
        jobs += [job for job in more if job.run.is_dir() or kept_path(out, job.run).is_file()]
    if with_discovery:  # its run, without making its reduced dataset
        spec = variant("dsmnet", None, {}, scale)
        run = discovery_folder(scale, out)
        jobs.append(
            Job(run, spec.to_dict(), paths["A"], scale.seeds[0], f"discovery · DSM-Net without {HOLDOUT}", 0.0, False)
        )
    statuses = [run_status(job, out) for job in jobs]
    atomic_write_text(out / "status.md", status_table(statuses))
    return statuses

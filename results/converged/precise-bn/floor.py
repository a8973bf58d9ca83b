"""Replays the study's finished runs under a rate floor (``train --min-lr``): each run's recorded
validation losses are fed, epoch by epoch, through the training loop's own bookkeeping and stopping
rule (``RunState.validated``, ``finished_learning``) with the study's recipe plus ``min_lr`` = peak / 1000, and the
replayed rate is checked against the rate the run recorded. Prints, for every run the floor would
have ended sooner, its last epoch, where the floor stops it, the epochs and core-hours saved, and
its best epoch (by validation loss) with and without the floor.

    .venv/bin/python results/converged/precise-bn/floor.py > results/converged/precise-bn/floor.txt
"""

import json
import math
from pathlib import Path

from dsmnet.training.settings import RunSettings, RunState, finished_learning

KEPT = Path(__file__).parent.parent / "metrics"


def replay(history: list[dict], settings: RunSettings) -> tuple[int, int]:
    """The epoch the run stops at under ``settings`` and its best epoch by then."""
    run = RunState()
    for record in history:
        if record["epoch"] > settings.warmup:  # (the warm-up's epochs ran below the peak)
            assert math.isclose(record["lr"], settings.lr * run.lr_scale, rel_tol=1e-6), record
        run.validated(settings, record["epoch"], record["val_loss"])
        if finished_learning(settings, run):
            break
    return run.epoch, run.best_epoch


def main() -> None:
    print("| run | last epoch | floor stops after | epochs saved | core-h saved | best epoch (val. loss) → floored |")
    print("|---|---|---|---|---|---|")
    saved_epochs, saved_hours, runs = 0, 0.0, 0
    for path in sorted(KEPT.glob("*/*/seed*.json")):
        training = json.loads(path.read_text()).get("training") or {}
        history, summary = training.get("history"), training.get("summary") or {}
        if not history or "lr" not in history[0] or not summary.get("stopped_early"):
            continue
        spec = training["spec"]["training"]
        settings = RunSettings.from_dict({**spec, "min_lr": spec["lr"] / 1000})
        stop, best = replay(history, settings)
        last = history[-1]["epoch"]
        if stop >= last:
            continue
        hours = (summary.get("core_hours") or 0.0) * (last - stop) / last  # the epochs saved, at the run's mean
        losses = {r["epoch"]: r["val_loss"] for r in history}
        runs, saved_epochs, saved_hours = runs + 1, saved_epochs + last - stop, saved_hours + hours
        print(
            f"| {path.parent.parent.name}/{path.parent.name}/{path.stem} | {last} | {stop} | {last - stop} | "
            f"{hours:.2f} | {summary['best_epoch']} ({losses[summary['best_epoch']]:.4f}) → "
            f"{best} ({losses[best]:.4f}) |"
        )
    print(f"\n{runs} runs end sooner, {saved_epochs} epochs, {saved_hours:.1f} core-hours (of runs that record them)")


if __name__ == "__main__":
    main()

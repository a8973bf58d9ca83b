"""What the study keeps of each run once it is done: its test metrics and its training record
(spec, summary, per-epoch history) in ``out/metrics/<dataset>/<run>/seed<N>.json``.

Those files are small enough to commit beside the tables, and they are enough to redraw the
report (tables, orderings, budget notes, learning curves, revisions) when the run folders with
their checkpoints are gone — in a clean clone, or after ``runs/`` was deleted to free space. A
study given a row whose run folder is gone but whose record is kept reuses the record instead of
training the row again; only a larger budget (which needs the checkpoint to train on) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def run_dataset(run: Path) -> str:
    """The dataset of the study's run ``out/runs/<dataset>/<row>/seed<N>``: trained on ``<dataset>``,
    tested on ``<dataset>_test``."""
    return run.parent.parent.name


def kept_path(out: Path, run: Path) -> Path:
    """Where the record of the run ``out/runs/<dataset>/<row>/seed<N>`` is kept."""
    return out / "metrics" / run_dataset(run) / run.parent.name / f"{run.name}.json"


def training_record(run: Path) -> dict[str, Any] | None:
    """A finished run's spec, ``summary.json`` and per-epoch history, read from its folder."""
    summary = run / "summary.json"
    if not summary.is_file():
        return None
    history = run / "metrics.jsonl"
    spec = run / "spec.yaml"
    return {
        "spec": yaml.safe_load(spec.read_text()) if spec.is_file() else None,
        "summary": json.loads(summary.read_text()),
        "history": [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        if history.is_file()
        else [],
    }


def record_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """The training record kept with a row's test result (:func:`with_record` read it from the run
    folder while that was there); None for the reference rows and for results kept before records
    were (they hold test metrics only)."""
    return result.get("training")


def with_record(result: dict[str, Any], run: Path) -> dict[str, Any]:
    """The result as it is kept: its test metrics with the run's training record."""
    found = training_record(run)
    return {**result, "training": found} if found else result


def same_dataset(recorded: str | None, path: Path) -> bool:
    """Whether a result kept inside a study folder was scored on the dataset at ``path``. The
    result names its dataset by the path given when it was made — relative or absolute, perhaps
    from before the study folder was moved or cloned elsewhere — so the paths themselves cannot be
    compared. Within one study folder the datasets are told apart by name (``data/A_test``…), and
    each is checked against the scale's settings before anything is reused, so the name decides."""
    return recorded is not None and Path(recorded).name == path.name


def kept_unless_run(out: Path, run: Path, test: Path | None, tta: bool) -> dict[str, Any] | None:
    """The kept result of a run whose folder is gone, if it was scored on this test set with this
    test-time augmentation (the caller checks its spec); None when the run folder holds a finished
    run (that is used instead) or nothing usable is kept."""
    path = kept_path(out, run)
    if (run / "summary.json").is_file() or not path.is_file():
        return None
    kept = json.loads(path.read_text())
    if (test is not None and not same_dataset(kept.get("data"), test)) or bool(kept.get("tta")) != tta:
        return None  # scored otherwise: trained again
    return kept

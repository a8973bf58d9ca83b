"""How many training particles a class average needs: template matching with the class averages of
the first N training particles of each class (seed 0's split of dataset A, poses known), scored on
the 3000 test particles, beside the networks' accuracy.

Run (from the repository, the study's data in place; ~4 min of one core a point):
    python results/converged/averages/curve.py results/converged
Writes ``curve.json`` and ``curve.txt`` beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dsmnet.core.fsutil import atomic_write_text
from dsmnet.reproduce.oracle import template_matching
from dsmnet.reproduce.report import mass_halves

LIMITS = (4, 8, 16, 32, 64, None)  # None: every training particle (116–117 a class)


def sweep(study: Path, name: str, column: str, settings: list[dict], label) -> None:
    """Template matching on dataset A's test set with the averages of seed 0's training split made
    with each of ``settings`` (keyword arguments of :func:`template_matching`); each row's accuracy
    and its mass halves written to ``<name>.json`` and ``<name>.txt`` (first column ``column``,
    ``label(record, setting)`` in it) beside this file."""
    torch.set_num_threads(1)
    here, data = Path(__file__).parent, study / "data"
    rows = []
    for setting in settings:
        record = template_matching(data / "A_test", 2000, averages_from=data / "A", **setting)
        (_, light), (_, heavy) = mass_halves(record)  # the 11 lightest and the 11 heaviest by library mass
        row = {column: label(record, setting), "acc": record["metrics"]["acc_cls"], "light": light, "heavy": heavy}
        rows.append(row)
        print(rows[-1], flush=True)
    atomic_write_text(here / f"{name}.json", json.dumps(rows, indent=1) + "\n")
    lines = [f"{column} | test accuracy | 11 lightest | 11 heaviest", "---|---|---|---"]
    lines += [f"{r[column]} | {r['acc']:.3f} | {r['light']:.3f} | {r['heavy']:.3f}" for r in rows]
    atomic_write_text(here / f"{name}.txt", "\n".join(lines) + "\n")


if __name__ == "__main__":
    fewest = lambda record, _setting: min(record["averaged"].values())  # noqa: E731
    sweep(Path(sys.argv[1]), "curve", "particles a class", [{"limit": n} for n in LIMITS], fewest)

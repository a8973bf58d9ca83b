"""How much the training averages owe to exact poses: template matching with the class averages of
seed 0's training split of dataset A, each training particle's pose off by a random rotation of
σ degrees r.m.s. (an alignment's error), scored on the 3000 test particles.

Run (from the repository, the study's data in place; ~4 min of one core a point):
    python results/converged/averages/pose_error.py results/converged
Writes ``pose_error.json`` and ``pose_error.txt`` beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dsmnet.core.fsutil import atomic_write_text
from dsmnet.reproduce.oracle import template_matching
from dsmnet.reproduce.report import mass_halves

ERRORS = (10.0, 20.0, 40.0)  # degrees r.m.s.; 0 is the reference row itself (0.758)


def main(study: Path) -> None:
    torch.set_num_threads(1)
    here = Path(__file__).parent
    rows = []
    for error in ERRORS:
        data = study / "data"
        record = template_matching(data / "A_test", 2000, averages_from=data / "A", pose_error=error)
        (_, light), (_, heavy) = mass_halves(record)
        rows.append({"pose_error": error, "acc": record["metrics"]["acc_cls"], "light": light, "heavy": heavy})
        print(rows[-1], flush=True)
    atomic_write_text(here / "pose_error.json", json.dumps(rows, indent=1) + "\n")
    lines = ["pose error (° r.m.s.) | test accuracy | 11 lightest | 11 heaviest", "---|---|---|---"]
    lines += [f"{r['pose_error']:.0f} | {r['acc']:.3f} | {r['light']:.3f} | {r['heavy']:.3f}" for r in rows]
    atomic_write_text(here / "pose_error.txt", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

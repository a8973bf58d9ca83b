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


def main(study: Path) -> None:
    torch.set_num_threads(1)
    here = Path(__file__).parent
    rows = []
    for limit in LIMITS:
        record = template_matching(study / "data" / "A_test", 2000, averages_from=study / "data" / "A", limit=limit)
        (_, light), (_, heavy) = mass_halves(record)  # the 11 lightest and the 11 heaviest by library mass
        per_class = min(record["averaged"].values())
        rows.append({"per_class": per_class, "acc": record["metrics"]["acc_cls"], "light": light, "heavy": heavy})
        print(rows[-1], flush=True)
    atomic_write_text(here / "curve.json", json.dumps(rows, indent=1) + "\n")
    lines = ["particles a class | test accuracy | 11 lightest | 11 heaviest", "---|---|---|---"]
    lines += [f"{r['per_class']} | {r['acc']:.3f} | {r['light']:.3f} | {r['heavy']:.3f}" for r in rows]
    atomic_write_text(here / "curve.txt", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Reads probe.py's outputs beside the runs' kept records (../in-progress): for each run, whether
its best epoch's precise-BN sample is the one that gives its frozen weights the lowest validation
loss, how closely the probe follows the recorded validation losses, and how the probes of rows
at one seed (the same samples, other networks) move together.

    python3 results/converged/precise-bn/read.py
"""

import json
from itertools import combinations
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def main() -> None:
    probes = {}
    for path in sorted(HERE.glob("*.json")):
        probe = json.loads(path.read_text())
        run = probe["run"].split("runs/")[1]
        kept = HERE.parent / "in-progress" / run / "metrics.jsonl"
        recorded = {r["epoch"]: r["val_loss"] for r in map(json.loads, kept.read_text().splitlines())}
        epochs = sorted(int(e) for e in probe["losses"])
        a = np.array([probe["losses"][str(e)] for e in epochs])
        b = np.array([recorded[e] for e in epochs])
        late = [i for i, e in enumerate(epochs) if e >= probe["best_epoch"] - 3]
        rank = 1 + int(np.sum(a < a[epochs.index(probe["best_epoch"])]))
        print(
            f"{run:28s} best epoch {probe['best_epoch']:3d}; lowest probe at {epochs[int(a.argmin())]:3d} "
            f"(the best epoch's sample ranks {rank} of {len(epochs)}); "
            f"probe against record r {np.corrcoef(a, b)[0, 1]:.2f}, "
            f"from 3 epochs before the best r {np.corrcoef(a[late], b[late])[0, 1]:.2f}; s.d. probe {a.std():.4f}, "
            f"recorded {b.std():.4f}"
        )
        probes[run] = dict(zip(epochs, a, strict=True))
    for (x, px), (y, py) in combinations(probes.items(), 2):
        common = sorted(set(px) & set(py))
        r = np.corrcoef([px[e] for e in common], [py[e] for e in common])[0, 1]
        same = "same seed" if x.rsplit("/", 1)[1] == y.rsplit("/", 1)[1] else "other seeds"
        print(f"  {same:11s} {x} ~ {y}: r {r:+.2f} over epochs {common[0]}-{common[-1]}")


if __name__ == "__main__":
    main()

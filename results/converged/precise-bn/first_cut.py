"""When the plateau schedule first cut each run's rate, against what the run reached on the test set.

The study's recipe multiplies the rate by 0.2 after 5 epochs without a lower validation loss; that
loss moves with precise BN's sample by an s.d. of 0.002–0.006 (``README.md``), so the first cut can
come from noise. For every row trained at two or more seeds this prints each seed's first cut (the
first epoch after the warm-up below half the peak), its best epoch and test score (the same 3000
test particles for every seed), and how often the seed cut last scored higher than the one cut
first. That says the two go together, not which way: a run that keeps finding lower losses is cut
later and may be the better one anyway. The seeds' validation losses cannot be set side by side to
tell — each seed draws its own split, so its own 323 validation particles.

    .venv/bin/python results/converged/precise-bn/first_cut.py > results/converged/precise-bn/first_cut.txt
"""

import json
from collections import defaultdict
from pathlib import Path

KEPT = Path(__file__).parent.parent / "metrics"
METRICS = {"acc_cls": "accuracy", "miou_seg": "mIoU"}


def first_cut(history: list[dict]) -> int | None:
    peak = max(r["lr"] for r in history)
    return next((r["epoch"] for r in history if r["epoch"] > 3 and r["lr"] < peak / 2), None)


def main() -> None:
    runs = defaultdict(list)
    for path in sorted(KEPT.glob("*/*/seed*.json")):
        record = json.loads(path.read_text())
        history = (record.get("training") or {}).get("history")
        if history and "lr" in history[0]:
            runs[f"{path.parent.parent.name} · {path.parent.name}"].append((path.stem, history, record))
    print("| row | metric | seeds: first cut / best epoch / test | cut last − cut first |")
    print("|---|---|---|---|")
    later_ahead = compared = 0
    for row, seeds in runs.items():
        if len(seeds) < 2:
            continue
        seeds.sort(key=lambda s: first_cut(s[1]) or 10**6)
        for key, name in METRICS.items():
            if key not in seeds[0][2]["metrics"]:
                continue
            scores = [s[2]["metrics"][key] for s in seeds]
            each = ", ".join(
                f"{stem} {first_cut(h)} / {r['training']['summary'].get('best_epoch')} / {r['metrics'][key]:.3f}"
                for stem, h, r in seeds
            )
            gain = scores[-1] - scores[0]
            compared += 1
            later_ahead += gain > 0
            print(f"| {row} | {name} | {each} | {gain:+.3f} |")
    print(f"\nThe seed cut later scored higher in {later_ahead} of {compared} comparisons (a tie counts as not).")


if __name__ == "__main__":
    main()

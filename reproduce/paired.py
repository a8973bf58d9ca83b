"""Standard errors of the difference between two rows scored on the same test particles, paired
particle by particle.

Every row of a table is evaluated on the same independent test set, so most of the sampling noise of
two rows' accuracies is shared: a hard particle is hard for both. Treating the two test sets as
independent (a binomial s.e. for each) overstates the noise of their difference; pairing removes
what they share. Both need each run's ``per_particle`` record (``label``, ``predicted_cls``,
``confusion_seg``: what ``dsmnet evaluate``, the classical baseline and template matching keep),
and give None without it, so that older results fall back to the unpaired estimates.

These are test-set sampling errors of the rows' mean over their seeds: the seed-to-seed spread of
training is not in them; :mod:`.orderings` sets the seeds' own paired differences beside them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def error_text(se: float) -> str:
    """A standard error to three decimals, or to one significant figure below 0.001 (a paired mIoU
    error is often 0.0003: "± 0.000" would read as no error at all), never with an exponent."""
    if se >= 0.0005 or se == 0:
        return f"{se:.3f}"
    one = float(f"{se:.1g}")  # rounded to one significant figure, then written without an exponent
    return f"{one:.{-math.floor(math.log10(one))}f}"


def _labels(runs: list[dict]) -> np.ndarray | None:
    """The runs' common per-particle labels, or None if a run has none or they differ."""
    labels = None
    for r in runs:
        found = (r.get("per_particle") or {}).get("label")
        if found is None:
            return None
        found = np.asarray(found)
        if labels is not None and not np.array_equal(labels, found):
            return None
        labels = found
    return labels


def _correct(runs: list[dict], labels: np.ndarray) -> list[np.ndarray] | None:
    """Each run's per-particle correctness against ``labels``; None if a run lacks predictions
    for them (or there are no runs)."""
    predicted = [(r["per_particle"] or {}).get("predicted_cls") for r in runs]
    if not runs or any(p is None or len(p) != len(labels) for p in predicted):
        return None
    return [np.asarray(p) == labels for p in predicted]


def accuracy_se(better: list[dict], worse: list[dict]) -> float | None:
    """S.e. of the difference of the two rows' mean accuracies, from the per-particle differences
    of their correctness (each row's correctness averaged over its seeds first)."""
    labels = _labels(better + worse)
    if labels is None or len(labels) < 2:
        return None
    rows = []
    for runs in (better, worse):
        right = _correct(runs, labels)
        if not right:
            return None
        rows.append(np.mean(right, axis=0))
    d = rows[0] - rows[1]
    return float(d.std(ddof=1) / np.sqrt(len(d)))


def discordance(first: dict, second: dict) -> dict | None:
    """How two single runs' classifications of the same particles split: both right, only the
    first, only the second, neither (counts), and McNemar's exact two-sided p-value (a binomial
    test on the particles only one of them gets right). ``either`` right is what no combination
    of the two could beat, so a large one beside two close accuracies says the runs read
    different things in the boxes. None without per-particle records on the same particles."""
    labels = _labels([first, second])
    right = None if labels is None else _correct([first, second], labels)
    if right is None:
        return None
    a, b = right
    only_first, only_second = int((a & ~b).sum()), int((~a & b).sum())
    from scipy.stats import binomtest

    discordant = only_first + only_second
    p = binomtest(only_first, discordant, 0.5).pvalue if discordant else 1.0
    return {
        "both": int((a & b).sum()),
        "only_first": only_first,
        "only_second": only_second,
        "neither": int((~a & ~b).sum()),
        "either": float((a | b).mean()),
        "mcnemar_p": float(p),
    }


def _miou(sums: np.ndarray) -> np.ndarray:
    """mIoU from summed flattened K×K confusions ``[..., K·K]`` (the mean over voxel classes with
    a union, as :class:`~dsmnet.training.metrics.Confusion` takes it)."""
    k = int(round(np.sqrt(sums.shape[-1])))
    m = sums.reshape(*sums.shape[:-1], k, k).astype(float)
    tp = np.diagonal(m, axis1=-2, axis2=-1)
    union = m.sum(-1) + m.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    return np.nanmean(iou, axis=-1)


def miou_se(better: list[dict], worse: list[dict], head: str = "seg", draws: int = 2000, seed: int = 0) -> float | None:
    """Bootstrap s.e. of the difference of the two rows' mean mIoU: the test particles are
    resampled with replacement, the same draw for every run, and each run's mIoU is recomputed
    from its resampled per-particle voxel confusions (mIoU is a ratio of sums, not a mean of
    per-particle values)."""
    labels = _labels(better + worse)
    if labels is None or len(labels) < 2:
        return None
    counts = []
    for runs in (better, worse):
        per = [(r["per_particle"] or {}).get(f"confusion_{head}") for r in runs]
        if not runs or any(p is None or len(p) != len(labels) for p in per):
            return None
        width = max((len(c) for p in per for c in p if c is not None), default=0)
        if not width:
            return None
        counts.append(np.array([[c if c is not None else [0] * width for c in p] for p in per]))  # [seeds, n, K·K]
    n = len(labels)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=draws).astype(float)
    a, b = (_miou(np.einsum("dn,snk->dsk", weights, c)).mean(1) for c in counts)
    return float(np.std(a - b, ddof=1))


def _read(path: Path) -> dict:
    from dsmnet.dataset.mrc import DataError

    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable metrics record ({exc})") from None
    if not isinstance(record, dict) or "per_particle" not in record or "metrics" not in record:
        raise DataError(f"{path}: no per-particle record (an evaluation's metrics.json, or a reference row's record)")
    return record


def paired(first: list[Path], second: list[Path]) -> list[dict]:
    """Each metric the two rows share: their means over the given runs (seeds), the paired
    difference and its standard error, and (one run each, accuracy) how the particles split."""
    from dsmnet.dataset.mrc import DataError

    a, b = [_read(p) for p in first], [_read(p) for p in second]
    rows = []
    for key, se in (("acc_cls", accuracy_se), ("miou_seg", miou_se)):
        if not all(key in r["metrics"] for r in a + b):
            continue
        ma, mb = (float(np.mean([r["metrics"][key] for r in runs])) for runs in (a, b))
        error = se(a, b)
        if error is None:
            raise DataError(f"{first[0]} and {second[0]}: not scored on the same particles, so they cannot be paired")
        split = discordance(a[0], b[0]) if key == "acc_cls" and len(a) == len(b) == 1 else None
        rows.append({"metric": key, "first": ma, "second": mb, "difference": ma - mb, "se": error, "particles": split})
    if not rows:
        raise DataError(f"{first[0]} and {second[0]}: no metric in common (acc_cls, miou_seg)")
    return rows


def compare(first: list[Path], second: list[Path]) -> list[str]:
    """:func:`paired` in words: the means, the difference ± 1 s.e. and whether it passes 2 s.e."""
    lines = []
    for r in paired(first, second):
        verdict = "beyond 2 s.e." if abs(r["difference"]) >= 2 * r["se"] else "within 2 s.e."
        lines.append(
            f"{r['metric']}: {r['first']:.3f} vs {r['second']:.3f}, difference {r['difference']:+.3f} "
            f"± {error_text(r['se'])} (1 s.e.; {verdict})"
        )
        split = r["particles"]
        if split:
            lines.append(
                f"particles: both right {split['both']}, only the first {split['only_first']}, "
                f"only the second {split['only_second']}, neither {split['neither']} "
                f"(either right {split['either']:.3f}; McNemar exact p = {split['mcnemar_p']:.2g})"
            )
    return lines


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet paired``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["paired", *sys.argv[1:]]))

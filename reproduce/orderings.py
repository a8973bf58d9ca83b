"""The paper's orderings re-read: for each pair of rows the paper orders (:data:`.scales.ORDERINGS`),
whether the study's rows hold it, and with what standard error.

Two sources of noise are in a difference between two rows: the test set's sampling (the same
particles for both, so paired particle by particle, :mod:`.paired`) and training's seed-to-seed
spread. With every row at several seeds the second is estimated from the seeds' own paired
differences, and the larger of the two decides: an ordering holds only beyond two of it.
"""

from __future__ import annotations

import math
import statistics

from dsmnet.reproduce.paired import accuracy_se, error_text, miou_se
from dsmnet.reproduce.report import _values, common_seeds
from dsmnet.reproduce.scales import ORDERINGS

KEYS = {"acc": "acc_cls", "miou": "miou_seg"}


def ordering_lines(results: dict) -> list[str]:
    """One line per ordering both of whose rows the study has: the rows' means (over the seeds
    both have), the verdict — held, did not hold, or not shown: within noise — the difference
    and its standard error, saying where the error comes from."""
    out = []
    for table, better, worse, metric in ORDERINGS:
        rows = results.get(table, {})
        if better not in rows or worse not in rows:
            continue
        ra, rb, restricted = common_seeds(rows[better], rows[worse])
        va, vb = _values(ra, KEYS[metric]), _values(rb, KEYS[metric])
        a = statistics.mean(va or [float("nan")])
        b = statistics.mean(vb or [float("nan")])
        se, how = _standard_error(rows, ra, rb, va, vb, metric)
        noise = se is not None and abs(a - b) < 2 * se
        # an ordering holds only beyond 2 s.e.; a difference within them shows neither way
        verdict = "not shown: within noise" if noise else "held" if a > b else "did not hold"
        if se is None and metric == "miou":
            verdict += " (one seed each: no standard error)"
        if len(va) > 1 and len(va) == len(vb):  # the same seeds, in the same order, for every row
            wins = sum(x > y for x, y in zip(va, vb))
            verdict += f" ({wins}/{len(va)} seeds ahead)" if noise else f" ({wins}/{len(va)} seeds)"
        line = f"- {table}: {better} {metric} {a:.3f} > {worse} {b:.3f}{restricted} — **{verdict}**"
        if se is not None:
            line += f"; difference {a - b:+.3f} ± {error_text(se)} (1 s.e.{how})"
        out.append(line)
    return out


def _standard_error(
    rows: dict[str, list[dict]], ra: list[dict], rb: list[dict], va: list[float], vb: list[float], metric: str
) -> tuple[float | None, str]:
    """The difference's standard error and where it comes from: paired over the test particles
    where the runs kept them (else the older, looser estimates), and, with both rows at the same
    two or more seeds, the seeds' spread of their paired differences when that is larger."""
    paired = (accuracy_se if metric == "acc" else miou_se)(ra, rb)
    if paired is not None:
        se, how = paired, f", paired over the {_particles(ra)} test particles"
    elif metric == "acc":
        se, how = _accuracy_se(ra, rb), ""
    else:
        return _seed_se(rows, va, vb), ", from the seeds' spread"
    if len(va) > 1 and len(va) == len(vb):
        differences = [x - y for x, y in zip(va, vb)]
        spread = statistics.stdev(differences) / math.sqrt(len(differences))
        shown = ", ".join(f"{d:+.3f}" for d in differences)
        if se is None or spread > se:
            alone = f"; test particles alone ± {error_text(se)}" if se is not None else ""
            return spread, f", from the {len(differences)} seeds' differences {shown}{alone}"
        how += f"; the seeds' differences {shown}"
    return se, how


def _particles(runs: list[dict]) -> int:
    return len(runs[0]["per_particle"]["label"])


def _seed_se(rows: dict[str, list[dict]], va: list[float], vb: list[float]) -> float | None:
    """Standard error of the difference of two rows' mean mIoU from the seed-to-seed spread, pooled
    over every row of the table run at several seeds (two seeds of one row give too rough an s.d.),
    or None when no row has several: the kept metrics hold no per-particle IoU to give one."""
    runs = [_values(r, "miou_seg") for r in rows.values()]
    variances = [statistics.variance(v) for v in runs if len(v) > 1]
    if not variances or not va or not vb:
        return None
    return math.sqrt(statistics.mean(variances) * (1 / len(va) + 1 / len(vb)))


def _accuracy_se(better: list[dict], worse: list[dict]) -> float | None:
    """Binomial standard error of the difference of two mean test accuracies, treating the rows'
    test sets as independent (they are the same particles, so this errs on the cautious side)."""

    def variance(runs: list[dict]) -> float | None:
        parts = []
        for r in runs:
            n = sum(map(sum, r.get("confusion_cls") or []))
            if not n or "acc_cls" not in r["metrics"]:
                return None
            p = r["metrics"]["acc_cls"]
            parts.append(p * (1 - p) / n)
        return sum(parts) / len(parts) ** 2 if parts else None

    va, vb = variance(better), variance(worse)
    return None if va is None or vb is None else math.sqrt(va + vb)

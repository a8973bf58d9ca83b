"""The study's report: Tables 1–3 beside the paper's figures, the paper's orderings with their
standard errors, per-class accuracy, learning curves, and the non-convergence rule (written once)."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from dsmnet.reproduce.paired import error_text
from dsmnet.reproduce.records import record_of
from dsmnet.reproduce.scales import AVERAGES, BASELINE, CAPTIONS, ORACLE, PAPER, SEG_BASELINE, TABLES, TITLES, Scale


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {error_text(statistics.stdev(values))}"


def reference_levels(results: dict[str, dict[str, list[dict]]], tables) -> dict[str, list[dict]]:
    """The classical baseline's and template matching's test results of each dataset the tables use,
    keyed ``"<dataset> · <reference>"`` (a learning curve's title names its dataset the same way): the
    lines a dataset's curves are read against (dataset B's lie far below A's)."""
    levels: dict[str, list[dict]] = {}
    for table in tables:
        for name in (BASELINE, AVERAGES, ORACLE):
            if got := results.get(table, {}).get(name):
                levels.setdefault(f"{TABLES[table][0]} · {name}", got)
    return levels


def _section(table: str, what: str, note: str, columns: list[str]) -> list[str]:
    """A report section's heading (the table's title, then ``what``), its note and its table's head."""
    title = TITLES.get(table, table) + (f": {what}" if what else "")
    return [
        f"## {title}",
        "",
        *([note, ""] if note else []),
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]


def per_class_lines(table: str, rows: dict[str, list[dict]]) -> list[str]:
    """Per-class test accuracy of every classifier row (first seed), classes as columns' rows."""
    have = {row: got for row, runs in rows.items() if (got := per_class_accuracy(runs[0]))}
    if len(have) < 2:
        return []
    names = list(next(iter(have.values())))
    lines = _section(table, "per-class test accuracy", "", ["class", *have])
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{have[row].get(name, float('nan')):.2f}" for row in have) + " |")
    for label, group in _by_mass(names):
        means = [float(np.mean([have[row].get(name, float("nan")) for name in group])) for row in have]
        lines.append(f"| **{label}** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    return [*lines, ""]


def per_class_accuracy(result: dict[str, Any]) -> dict[str, float] | None:
    """A classifier run's test accuracy per class (the reference rows': from their confusion)."""
    if result.get("per_class_accuracy_cls"):
        return result["per_class_accuracy_cls"]
    if result.get("confusion_cls") and result.get("classes"):
        pairs = zip(result["classes"], result["confusion_cls"])
        return {c: (r[i] / sum(r) if sum(r) else 0.0) for i, (c, r) in enumerate(pairs)}
    return None


def mass_halves(result: dict[str, Any]) -> list[tuple[str, float]]:
    """A classifier run's mean per-class test accuracy on the lighter and the heavier half of the
    classes by library mass, each with its count (``[("11 lightest", 0.38), ("11 heaviest", 0.88)]``);
    empty for a run without classes or with a class not in the library."""
    accuracy = per_class_accuracy(result) or {}
    return [
        (label.removeprefix("the ").split(" by ")[0].split(" (")[0], float(np.mean([accuracy[n] for n in group])))
        for label, group in _by_mass(list(accuracy))
    ]


def crowding_lines(table: str, rows: dict[str, list[dict]], test) -> list[str]:
    """Test accuracy of every classifier row (first seed) against crowding — the target's share of
    its noise-free box (``dsmTargetShare`` of the simulated test set; the rest is neighbours') — in
    thirds of the test particles, separately for the lighter and the heavier half of the classes:
    whether a row fails on a complex because neighbours crowd its box or because of the complex
    itself. Nothing when the test set has no shares or a row's particles are not the test set's."""
    from dsmnet.dataset import layout
    from dsmnet.dataset.star import read_star

    path = Path(test) / layout.PARTICLES
    if not path.is_file():  # no test set here (a report from kept records only): no table
        return []
    particles = read_star(path)
    if layout.TARGET_SHARE not in particles or layout.CLASS_NUMBER not in particles:
        return []
    labels = particles[layout.CLASS_NUMBER].to_numpy() - 1
    share = particles[layout.TARGET_SHARE].to_numpy(dtype=float)
    right = {}
    for row, runs in rows.items():
        per = runs[0].get("per_particle") or {}
        if "predicted_cls" in per and np.array_equal(per.get("label"), labels):
            right[row] = np.asarray(per["predicted_cls"]) == labels
    names = _class_names(rows)
    groups = _by_mass(names)
    if len(right) < 2 or not groups or len(names) != labels.max() + 1:
        return []
    note = "The target's share of its noise-free box (the rest is its neighbours'), in thirds of each half's test "
    lines = _section(table, "test accuracy against crowding", note + "particles; first seed of each row.",
                     ["complexes", "target's share", "particles", *right])  # fmt: skip
    for label, group in groups:
        member = np.isin(np.asarray(names)[labels], group)
        edges = np.quantile(share[member], [0, 1 / 3, 2 / 3, 1])
        for i in range(3):
            at = member & (share >= edges[i]) & ((share < edges[i + 1]) if i < 2 else (share <= edges[i + 1]))
            lines.append(
                f"| {label.split(' (')[0]} | {edges[i]:.3f}–{edges[i + 1]:.3f} | {int(at.sum())} | "
                + " | ".join(f"{ok[at].mean():.2f}" for ok in right.values())
                + " |"
            )
    return [*lines, ""]


def target_iou_lines(table: str, rows: dict[str, list[dict]]) -> list[str]:
    """Each segmentation row's target IoU (per particle, then averaged; first seed) on the lighter
    and the heavier half of the classes — whether the segmenters find the complexes the
    classifiers cannot name — and how large it draws them: its target voxels over the true ones.
    Nothing without per-particle 2-class confusions or class names."""
    names = _class_names(rows)
    have = {}
    for row, runs in rows.items():
        kept = (runs[0].get("per_particle") or {}) if runs else {}
        confusion = np.asarray(kept.get("confusion_seg") or [], dtype=float)
        if confusion.ndim == 2 and confusion.shape[1] == 4 and "label" in kept:  # [tn, fp, fn, tp] per particle
            have[row] = (confusion, np.asarray(kept["label"]))
    groups = _by_mass(names)
    if not have or not groups:
        return []
    note = (
        "Each test particle's IoU of its target's voxels, averaged over the particles of each half of the classes; "
        "in brackets the voxels the row gives the targets over their true voxels (below 1: drawn too small); "
    )
    lines = _section(table, "target IoU against mass", note + "first seed of each row.", ["complexes", *have])
    for label, group in groups:
        members = [names.index(n) for n in group]
        cells = []
        for confusion, labels in have.values():
            _, fp, fn, tp = confusion[np.isin(labels, members)].T
            iou = tp / np.maximum(fp + fn + tp, 1)
            cells.append(f"{iou.mean():.2f} ({(tp + fp).sum() / max((tp + fn).sum(), 1):.2f}×)")
        lines.append(f"| {label.split(' (')[0]} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _class_names(rows: dict[str, list[dict]]) -> list[str]:
    """The class names in the test set's label order, from the first row that names them (a
    reference row's ``classes``, a network's per-class accuracy)."""
    named = (r[0].get("classes") or list(r[0].get("per_class_accuracy_cls") or []) for r in rows.values() if r)
    return next((n for n in named if n), [])


def _by_mass(names: list[str]) -> list[tuple[str, list[str]]]:
    """The classes split into the lighter and the heavier half by their library mass (the small
    complexes are where the CNNs trail template matching); nothing when a class is not in the
    library."""
    from dsmnet.simulate.library import load_library

    library = load_library()
    if len(names) < 4 or any(n not in library for n in names):
        return []
    ranked = sorted(names, key=lambda n: library[n].mass_kda)
    half = len(ranked) // 2
    return [
        (f"the {half} lightest by library mass (mean)", ranked[:half]),
        (f"the {len(ranked) - half} heaviest (mean)", ranked[half:]),
    ]


def describe_scale(s: Scale) -> str:
    tta = ", each CNN's outputs averaged over the four wedge-preserving 180° turns (test-time augmentation)"
    return (
        f"Scale: {s.n} subtomograms per dataset, {s.classes} classes, {s.box}³ boxes at 10 Å/voxel, tomograms "
        f"{'×'.join(map(str, s.tomogram))}, SNR A {s.snr['A']} / B {s.snr['B']}; backbone widths "
        f"{', '.join(map(str, s.widths))}, classifier width {s.hidden}; batch {s.batch}, ≤ {s.epochs} epochs, "
        f"patience {s.patience}"
        + (f"; recipe {', '.join(f'{k} {v}' for k, v in s.recipe.items())}" if s.recipe else "")
        + (f", classifier dropout {s.dropout}" if s.dropout is not None else "")
        + f"; seeds {', '.join(map(str, s.seeds))} (mean ± standard deviation); "
        f"augmentation {s.augment}; classifier pooling {s.pool}. Trained on the 8:1:1 split's training part "
        f"(model selection on its validation part); **metrics on an independent test set of {s.test_n} "
        "subtomograms** simulated from other tomograms with another seed"
        + (tta if s.tta else "")
        + ". A row marked *did not converge* has "
        "test accuracy below 2/C or target IoU below 0.1. The paper column gives Liu et al.'s own figures "
        "(pixel accuracy / mIoU / object accuracy, %; * = the paper's 'fails to converge'). "
        f"{BASELINE}: shrinkage LDA on rotation-invariant features around the box centre (radial profile, "
        "power spectrum; `dsmnet.reproduce.baseline`), the simple baseline every CNN row is set against. "
        f"{SEG_BASELINE}: the smoothed box thresholded inside a centred sphere, the piece nearest the centre kept, "
        "σ, radius and level fitted for mIoU on 512 training particles (`dsmnet.reproduce.segbaseline`): the "
        "simple baseline every segmenting row is set against. "
        f"{ORACLE}: each box's maximum-likelihood class over {s.oracle_rotations} orientations of the {s.classes} "
        "true maps imaged as the data were (`dsmnet.reproduce.oracle`): not a rival, since it knows the "
        "structures, but a measure of what the boxes hold. "
        f"{AVERAGES}: the same search with each class's subtomogram average over the seed's training split, "
        "every particle turned back by its recorded pose and the wedge compensated: it learns from the "
        "networks' training particles but is told their orientations, which the networks are not."
    )


def why_failed(metrics: dict[str, Any], classes: int) -> list[str]:
    """The non-convergence rule (the paper's "fails to converge"): a classifier below twice chance
    accuracy (2/C) or a segmenter whose target IoU is below 0.1; empty when the run converged,
    else what it does instead (one class for every particle, no target voxels)."""
    why = []
    m = metrics["metrics"]
    if "acc_cls" in m and m["acc_cls"] < 2.0 / classes:
        confusion = metrics.get("confusion_cls")
        predicted = sum(1 for column in zip(*confusion) if sum(column)) if confusion else None
        if predicted == 1:
            why.append("predicts one class for every particle")
        else:
            why.append(f"predicts {predicted} classes" if predicted else f"accuracy {m['acc_cls']:.2f} < 2/C")
    iou = metrics.get("iou_seg")
    if iou and iou[1] < 0.1:
        why.append(f"target IoU {iou[1]:.2f}")
    return why


def failed(metrics: dict[str, Any], classes: int) -> bool:
    """Whether a run did not converge (:func:`why_failed` has a reason)."""
    return bool(why_failed(metrics, classes))


def budget_note(runs: list[dict]) -> str:
    """Where the training runs' best epochs fell: the note "still improving" when a run did not stop
    early (its best epoch came less than ``patience`` epochs before the budget's last), so a longer
    budget could have moved the row. Empty for rows without training runs (the reference rows)."""
    summaries = [record["summary"] for r in runs if (record := record_of(r))]
    late = [s for s in summaries if not s.get("stopped_early", True)]
    trained = [r for r in runs if "epoch" in r]  # a trained run's result names its checkpoint's epoch
    unrecorded = len(trained) - len(summaries)  # results kept before training records were
    missing = f"; {unrecorded}/{len(trained)} seeds kept without a training record" if unrecorded else ""
    if not late:
        return missing.removeprefix("; ")
    best = ", ".join(str(s["best_epoch"]) for s in summaries)
    share = f"{len(late)}/{len(summaries)} seeds"
    return f"best epoch {best} of {late[0]['epochs']}: still improving at the budget's end ({share}){missing}"


def revisions_line(results: dict[str, dict]) -> str:
    """Which code revisions trained the rows' runs (each run's summary lists one per session): a
    study whose rows were trained at different revisions says so, naming the runs of the rarer ones."""
    return _sessions_line(results, "revisions", "Code revisions that trained these runs")


def runtimes_line(results: dict[str, dict]) -> str:
    """The arithmetic each run was trained in (device, precision, layout, torch, the processor's
    kernels: ``Runtime.signature``), as :func:`revisions_line` gives the revisions; ``auto``
    precision differs by machine, so a study gathered on several says which rows ran how."""
    return _sessions_line(results, "runtimes", "Arithmetic that trained these runs")


def _sessions_line(results: dict[str, dict], key: str, title: str) -> str:
    by: dict[str, list[str]] = {}
    for label, result in results.items():
        record = record_of(result)
        found = record["summary"].get(key) if record else None
        for value in found or ["unrecorded"]:
            by.setdefault(value, []).append(label)
    if not by:
        return ""
    order = sorted(by, key=lambda r: (-len(by[r]), r))
    n = len(by[order[0]])
    parts = [f"{order[0]} ({n} run{'s' if n > 1 else ''})"]
    parts += [f"{r} ({', '.join(by[r])})" for r in order[1:]]
    return f"{title}: " + "; ".join(parts) + "."


def _values(runs: list[dict], key: str) -> list[float]:
    return [r["metrics"][key] for r in runs if key in r["metrics"]]


def seed_of(result: dict) -> int | None:
    """The seed a result was trained (or, for the classical baseline, split) with, where it says:
    its ``seed``, else its run folder's name (``…/seed<N>``); None for template matching."""
    if "seed" in result:
        return int(result["seed"])
    name = PurePath(str(result.get("run", ""))).name
    return int(name[4:]) if name.startswith("seed") and name[4:].isdigit() else None


def common_seeds(a: list[dict], b: list[dict]) -> tuple[list[dict], list[dict], str]:
    """Two rows' results restricted to the seeds both have, when both name their seeds and they
    differ (a study whose rows are still training: one row at seeds 0 and 1, another at 0 so far),
    and a note saying so; else the rows as they are and no note."""
    sa, sb = [seed_of(r) for r in a], [seed_of(r) for r in b]
    if None in sa or None in sb or set(sa) == set(sb):
        return a, b, ""
    both = sorted(set(sa) & set(sb))
    if not both:
        return a, b, ""
    keep = lambda runs, seeds: [r for r, s in zip(runs, seeds) if s in both]  # noqa: E731
    return (
        keep(a, sa),
        keep(b, sb),
        f" (seed{'s' if len(both) > 1 else ''} {', '.join(map(str, both))}: the seeds both rows have so far)",
    )


def _paper(table: str, row: str) -> str:
    """The paper's figures for a row of a table, as printed (pixel acc / mIoU / acc), or a dash."""
    figures = PAPER.get(table, {}).get(row)
    return " / ".join(figures) if figures else "—"


def table_lines(
    table: str, rows: dict[str, list[dict]], scale: Scale, unfinished: Sequence[str] = ()
) -> tuple[str, str]:
    """A table's Markdown and CSV: a line a row, its mean (± s.d. over seeds) and the paper's figures;
    a row still training at some seeds says which it has, and one of ``unfinished`` that has no
    finished run yet stands with no figures, so a table never passes over a planned row."""
    header = ["model", "pixel accuracy", "mIoU", "object accuracy", "paper (pixel acc / mIoU / acc)", "note"]
    caption = CAPTIONS.get(table, "").format(snr=scale.snr.get(TABLES[table][0], "?"))
    lines = _section(table, "", caption, header)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "seeds", "pixel_acc_mean", "miou_mean", "acc_mean", "pixel_acc", "miou", "acc", "failed"])
    for row, runs in rows.items():
        pa, miou, acc = _values(runs, "pixel_acc_seg"), _values(runs, "miou_seg"), _values(runs, "acc_cls")
        bad = [r for r in runs if failed(r, scale.classes)]
        why = sorted({w for r in bad for w in why_failed(r, scale.classes)})
        notes = [f"did not converge ({len(bad)}/{len(runs)} seeds: {'; '.join(why)})"] if bad else []
        seeds = sorted(s for r in runs if (s := seed_of(r)) is not None)
        if seeds and len(seeds) < len(scale.seeds):  # a row still training at its other seeds
            notes.append(f"seed {', '.join(map(str, seeds))} only (of {', '.join(map(str, scale.seeds))}) so far")
        note = "; ".join(notes + [n for n in [budget_note(runs)] if n])
        lines.append(f"| {row} | {_fmt(pa)} | {_fmt(miou)} | {_fmt(acc)} | {_paper(table, row)} | {note} |")
        mean = lambda v: f"{statistics.mean(v):.4f}" if v else ""  # noqa: E731
        writer.writerow([row, len(runs), mean(pa), mean(miou), mean(acc), pa, miou, acc, len(bad)])
    for row in dict.fromkeys(r for r in unfinished if r not in rows):
        lines.append(f"| {row} | — | — | — | {_paper(table, row)} | not finished at any seed yet (`status.md`) |")
    return "\n".join(lines) + "\n", buf.getvalue()

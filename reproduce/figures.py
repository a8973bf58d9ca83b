"""The study's pictures: learning curves against samples seen, and where the classifiers fall
short per class (accuracy against mass, confusion matrices ordered by mass)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsmnet.reproduce.records import record_of
from dsmnet.reproduce.report import mass_halves
from dsmnet.reproduce.scales import AVERAGES, BASELINE, ORACLE


def _classes_and_confusion(result: dict) -> tuple[list[str], np.ndarray] | None:
    """A classifier row's class names and confusion matrix (true class × predicted), or nothing."""
    confusion = result.get("confusion_cls")
    names = result.get("classes") or list(result.get("per_class_accuracy_cls") or {})
    if not confusion or len(names) != len(confusion):
        return None
    return names, np.asarray(confusion, dtype=float)


def per_class_figure(rows: dict[str, list[dict]], path: Path, compare: str | None = None) -> bool:
    """Where the classifiers fall short, in one picture: each row's per-class test accuracy against
    the complex's library mass (first seed; chance as a line), and the confusion matrices of the
    ``compare`` row (by default the most accurate network) and of template matching with the classes
    ordered by mass, so one sees whether the small complexes are confused with each other (read as
    'a small blob') or with everything. False (nothing written) without two classifier rows or
    when a class is not in the library."""
    from dsmnet.simulate.library import load_library

    have = {row: got for row, runs in rows.items() if runs and (got := _classes_and_confusion(runs[0]))}
    library = load_library()
    if len(have) < 2 or any(n not in library for names, _ in have.values() for n in names):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsmnet.core.fsutil import atomic_path

    if compare not in have:
        learned = [r for r in have if r not in (BASELINE, AVERAGES, ORACLE)]
        compare = max(learned, key=lambda r: np.trace(have[r][1]) / max(have[r][1].sum(), 1), default=None)
    shown = [r for r in (compare, ORACLE) if r in have]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(6 + 5.2 * len(shown), 5.2))
    ax = axes[0]
    markers = {BASELINE: ("s", "0.45"), AVERAGES: ("^", "k"), ORACLE: ("*", "k")}
    colours = iter(plt.get_cmap("tab10").colors)
    for row, (names, confusion) in have.items():
        accuracy = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
        marker, colour = markers.get(row, ("o", next(colours)))
        ax.scatter([library[n].mass_kda for n in names], accuracy, marker=marker, color=colour, s=28, label=row,
                   alpha=0.85)  # fmt: skip
    chance = 1 / len(next(iter(have.values()))[0])
    ax.axhline(chance, color="0.6", linestyle=":", linewidth=1)
    ax.annotate("chance", (0.99, chance), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("library mass (kDa)")
    ax.set_ylabel("test accuracy of the class")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for ax, row in zip(axes[1:], shown):
        names, confusion = have[row]
        order = sorted(range(len(names)), key=lambda i: library[names[i]].mass_kda)
        shares = confusion[np.ix_(order, order)] / np.maximum(confusion[order].sum(1, keepdims=True), 1)
        ax.imshow(shares, cmap="viridis", vmin=0, vmax=1)
        labels = [f"{names[i]} ({library[names[i]].mass_kda:.0f})" for i in order]
        ax.set_xticks(range(len(order)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(order)), labels, fontsize=6)
        ax.set_title(f"{row}: true class (rows) → predicted, lightest first", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")  # the long class names kept whole
    plt.close(fig)
    return True


def _halves(result: dict) -> str:
    """`` — test: 11 lightest 0.38, 11 heaviest 0.88`` for a classifier's result, else nothing."""
    halves = mass_halves(result)
    return " — test: " + ", ".join(f"{name} {value:.2f}" for name, value in halves) if halves else ""


def samples_per_epoch(record: dict) -> float | None:
    """A run's training samples per epoch, from its summary (runs since 2026-12-04)."""
    summary = record.get("summary") or {}
    if summary.get("samples_seen") and summary.get("epochs"):
        return summary["samples_seen"] / summary["epochs"]
    return None


def _reference_lines(ax, levels: dict[str, list[dict]]) -> None:
    """The reference rows' mean test accuracy as grey dashed lines, labelled (keys
    ``"<dataset> · <reference>"``, all of one dataset: the panel's)."""
    for name, seeds in levels.items():
        value, result = float(np.mean([r["metrics"]["acc_cls"] for r in seeds])), seeds[0]
        ax.axhline(value, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"{_dataset_of(name)[1]} (test) {value:.3f}{_halves(result)}", (0.99, value), fontsize=7,
                    xycoords=("axes fraction", "data"), va="bottom", ha="right", color="0.3",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})  # fmt: skip


def _dataset_of(title: str) -> tuple[str, str]:
    """(dataset, the rest) of a curve's or a reference line's title ``"<dataset> · …"``; ("", title)
    without one."""
    head, sep, rest = title.partition(" · ")
    return (head, rest) if sep else ("", title)


def _curve(axes, title: str, result: dict, colour, style: str, per_epoch: float) -> None:
    """One run's validation accuracy and mIoU (whichever it has) against samples seen, its best
    epoch marked."""
    record = record_of(result)
    if not record or not record["history"]:
        return
    best = record["summary"].get("best_epoch", 0)
    seen = samples_per_epoch(record) or per_epoch
    for ax, key in zip(axes, ("val_acc_cls", "val_miou_seg")):
        points = [(h["epoch"] * seen, h[key]) for h in record["history"] if key in h]
        if points:
            label = title + (_halves(result) if key == "val_acc_cls" else "")
            ax.plot(*zip(*points), label=label, color=colour, linestyle=style, linewidth=1.2)
            at = best * seen
            ax.plot([e for e, _ in points if e == at], [v for e, v in points if e == at], "o", color=colour)


def learning_curves(
    results: dict[str, dict], path: Path, levels: dict[str, list[dict]] | None = None, per_epoch: float = 1.0
) -> None:
    """Validation accuracy and mIoU of each row's run against the training samples it has seen
    (its best epoch marked; epochs where a run's record does not say), from the runs' training
    records keyed by title ``"<dataset> · <row> · seed<N>"`` — one pair of panels a dataset (their
    levels lie far apart), a row's colour the same in every panel, a line style per seed
    (:func:`.records.record_of`); results without a record are left out. Each classifier's
    legend entry gives its test accuracy on the lighter and the heavier half of the classes
    (:func:`.report.mass_halves`). ``levels``: reference rows' test results (one per seed) drawn as
    lines at their mean accuracy in their dataset's panel, with the first seed's halves (the
    classical baseline's and template matching's), keyed ``"<dataset> · <reference>"``
    (:func:`.report.reference_levels`); ``per_epoch``: the samples of an epoch for records made
    before runs counted them (the study's 8:1:1 split of its particles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsmnet.core.fsutil import atomic_path

    datasets = list(dict.fromkeys(_dataset_of(title)[0] for title in results)) or [""]
    fig, grid = plt.subplots(len(datasets), 2, figsize=(12, 5.5 * len(datasets)), squeeze=False, layout="constrained")
    tab20 = plt.get_cmap("tab20").colors  # 10 hues, each dark and light: a whole study's rows stay apart
    colours = tab20[::2] + tab20[1::2]  # the dark shades first
    rows: dict[str, tuple] = {}  # a row (its seeds, on every dataset) keeps one colour
    for title, result in results.items():
        dataset, rest = _dataset_of(title)
        row, _, seed = rest.rpartition(" · seed")
        colour = rows.setdefault(row or rest, colours[len(rows) % len(colours)])
        style = ("-", "--", ":", "-.")[int(seed) % 4 if row and seed.isdigit() else 0]
        _curve(grid[datasets.index(dataset)], rest, result, colour, style, per_epoch)  # the panel names the dataset
    for dataset, axes in zip(datasets, grid):
        _reference_lines(axes[0], {k: v for k, v in (levels or {}).items() if _dataset_of(k)[0] == dataset})
        for ax, label in zip(axes, ("validation object accuracy", "validation mIoU")):
            ax.set_xlabel("training samples seen (● best epoch, by validation loss)")
            ax.set_ylabel(label)
            ax.set_title(f"dataset {dataset}" if dataset else "", fontsize=9)
            ax.grid(alpha=0.3)
            if labels := ax.get_legend_handles_labels()[1]:  # below the axes: inside, a study's rows hid the curves
                ncol = 2 if len(labels) > 8 and max(map(len, labels)) <= 40 else 1  # short ones in two columns
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.14), frameon=False, ncol=ncol)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)

"""``dsmnet evaluate``: the paper's metrics on a split, per-class accuracy, the confusion matrix,
FSC of the recovered densities, and the paper's Fig. 3."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsmnet.core.fsutil import atomic_write_text, to_json
from dsmnet.core.rotations import angle_between, chosen_pose
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.losses.pose import pose_error
from dsmnet.training.ensemble import answered_by, load_for_use
from dsmnet.training.figures import confusion_figure, fsc_figure, slices_figure
from dsmnet.training.metrics import ThresholdSweep, fsc_curve, resolution
from dsmnet.training.options import SPLITS
from dsmnet.training.runtime import make_runtime
from dsmnet.training.validate import evaluate_split


def evaluate(
    run: str | Path,
    data_dir: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    device: str = "auto",
    figure_rows: int = 6,
    tta: bool = False,
    ensemble: Sequence[str | Path] = (),
    mask_threshold: float | None = None,
) -> dict[str, Any]:
    """Evaluate a run's best checkpoint on a dataset split; writes ``metrics.json`` and figures.

    ``split`` names a split of the run (the dataset must be the one it was trained on) or ``all``;
    ``tta`` averages every output over the four wedge-preserving 180° turns (:mod:`~dsmnet.training.tta`);
    ``ensemble`` names more runs whose outputs are averaged with ``run``'s
    (:mod:`~dsmnet.training.ensemble`; default folder ``RUN/evaluate-SPLIT-ensemble-N``);
    ``mask_threshold``: two-class masks drawn above it, not at their argmax (every evaluation gives
    each such head's mIoU at 0.10–0.90, ``mask_threshold_sweep``: fit one on a validation split)."""
    run = Path(run)
    rt = make_runtime(device)
    model, criterion, state, settings = load_for_use(run, rt, tta, ensemble, mask_threshold)
    spec_box = tuple(state["spec"]["input"]["shape"])
    data = load_dataset(data_dir, classes=state["classes"], box=spec_box)
    data.scale_density(settings.density_scale)  # metrics in the units it was trained in
    indices = _split_indices(split, data, state, run, data_dir)
    members = state.get("members", [])
    name = f"evaluate-{split}" + (f"-ensemble-{len(members)}" if members else "")
    out = Path(out) if out else (run if run.is_dir() else run.parent) / name
    picks = _figure_picks(data.labels[indices], figure_rows)
    sink = _Sink(model.targets, data, picks)
    sweep = ThresholdSweep()
    m = evaluate_split(model, criterion, data, indices, rt, 32, sink, mask_threshold, sweep)
    confusion = m.pop("_confusion")
    results: dict[str, Any] = {
        "run": str(run),
        "data": str(data_dir),
        "split": split,
        "particles": len(indices),
        "epoch": state["best_epoch"],
        "tta": "rot180x4" if tta else None,
        "mask_threshold": mask_threshold,
        "metrics": m,
        "mask_threshold_sweep": sweep.result(),
    }
    if members:  # every member's run and best epoch
        results["ensemble"] = answered_by(run, state)
    out.mkdir(parents=True, exist_ok=True)
    results.update(_by_head(confusion, model.targets, data.classes, out))
    results.update(sink.fsc(out))
    results["per_particle"] = {"label": [int(v) for v in data.labels[indices]], **sink.per_particle}
    results.update(_pose_by_class(results["per_particle"], data.classes))
    _figure(model.targets, sink.kept, data, indices, picks, out / "fig3.png")
    atomic_write_text(out / "metrics.json", to_json(results))
    results["out"] = str(out)
    return results


def _by_head(confusion: dict, targets_of: dict[str, str], classes: list[str], out: Path) -> dict[str, Any]:
    """Each class head's per-class accuracy and confusion matrix (and its figure), each mask head's
    per-class IoU."""
    results: dict[str, Any] = {}
    for head, conf in confusion.items():
        if targets_of[head] == "class":
            results[f"per_class_accuracy_{head}"] = dict(zip(classes, conf.per_class_accuracy()))
            results[f"confusion_{head}"] = conf.matrix.tolist()
            confusion_figure(conf.matrix.numpy(), classes, out / f"confusion_{head}.png")
        else:
            results[f"iou_{head}"] = conf.iou()
    return results


def _pose_by_class(per_particle: dict[str, list], classes: list[str]) -> dict[str, Any]:
    """Each pose head's medians over each class's particles: the angle to the recorded pose and
    the pose loss (a symmetric complex's angles are large where its loss is not)."""
    labels = np.asarray(per_particle["label"])
    results: dict[str, Any] = {}
    for key in [k for k in per_particle if k.startswith(("angle_", "pose_loss_"))]:
        values = np.array([np.nan if v is None else v for v in per_particle[key]], dtype=float)
        results[f"median_{key}"] = {
            name: float(np.nanmedian(values[labels == c])) if np.isfinite(values[labels == c]).any() else None
            for c, name in enumerate(classes)
        }
    return results


def _split_indices(split: str, data, state: dict, run: Path, data_dir) -> list[int]:
    """The particles of ``split``: all of the dataset's, or the run's own split (its dataset only)."""
    if split == "all":
        indices = list(range(len(data)))
    elif split not in SPLITS:
        raise DataError(f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
    elif data.fingerprint != state.get("data_fingerprint"):
        raise DataError(
            f"{data_dir}: not the dataset {run} was trained on, so its {split} split is unknown; use --split all"
        )
    else:
        indices = state["split"][split]
        for other in state.get("members", [])[1:]:
            if other["data_fingerprint"] != state.get("data_fingerprint") or other["split"] != state["split"]:
                raise DataError(
                    f"{other['run']}: trained on another split than {run}, so its {split} split may hold "
                    "particles a member trained on; evaluate the ensemble on an independent dataset with --split all"
                )
    if not indices:
        raise DataError(f"{data_dir}: the {split} split is empty")
    return indices


class _Sink:
    """Takes each batch's outputs: sums every density head's FSC curves (against the batch's true
    densities, as read for its loss), keeps the outputs of the figure's particles only — memory
    stays that of a batch — and, per particle, each class head's prediction and each mask head's
    K×K voxel confusion (``per_particle``: what a paired comparison of two runs on the same test
    particles needs)."""

    def __init__(self, targets_of: dict, data, picks: list[int]):
        self.targets_of, self.data = dict(targets_of), data
        self.picks = {j: row for row, j in enumerate(picks)}
        self.kept: dict[str, list[torch.Tensor | None]] = {h: [None] * len(picks) for h in self.targets_of}
        self.sums: dict[str, tuple[torch.Tensor, int]] = {}
        self.per_particle: dict[str, list] = {}

    def __call__(self, start: int, out: dict[str, torch.Tensor], targets: dict, present: dict) -> None:
        for head, pred in out.items():
            kind = self.targets_of[head]
            if kind == "class":
                self.per_particle.setdefault(f"predicted_{head}", []).extend(pred.argmax(1).tolist())
            elif kind == "pose":
                self._poses(head, pred, targets, present)
            elif kind == "mask":
                rows = self.per_particle.setdefault(f"confusion_{head}", [])
                has = present["mask"] if "mask" in targets else torch.zeros(len(pred), dtype=torch.bool)
                counts = per_particle_confusion(pred.argmax(1), targets["mask"], pred.shape[1]) if has.any() else None
                rows.extend(counts[i].tolist() if has[i] else None for i in range(len(pred)))
            for j in range(start, start + len(pred)):
                if j in self.picks:
                    self.kept[head][self.picks[j]] = pred[j - start].softmax(0) if kind == "class" else pred[j - start]
            if kind != "density" or "density" not in targets:
                continue
            has = present["density"]
            if has.any():
                curves = fsc_curve(pred[has][:, 0], targets["density"][has][:, 0])
                total, n = self.sums.get(head, (0.0, 0))
                self.sums[head] = (curves.sum(0) + total, n + len(curves))

    def _poses(self, head: str, pred: torch.Tensor, targets: dict, present: dict) -> None:
        """Per particle, the angle to its recorded pose (degrees, blind to symmetry) and the pose
        loss (the density turned to the prediction against the particle's: 0 for a pose the
        complex's symmetry cannot tell from its own); None where the particle lacks what it needs."""
        has = present["pose"] if "pose" in targets else torch.zeros(len(pred), dtype=torch.bool)
        pred = chosen_pose(pred)  # the pose the head answers (its best-scored hypothesis)
        angle = angle_between(pred, targets["pose"]).tolist() if has.any() else []
        both = has & present["density"] if "density" in targets else torch.zeros_like(has)
        miss = pose_error(pred, targets["pose"], targets["density"]).tolist() if both.any() else []
        self.per_particle.setdefault(f"angle_{head}", []).extend(a if h else None for a, h in zip(angle, has))
        self.per_particle.setdefault(f"pose_loss_{head}", []).extend(m if b else None for m, b in zip(miss, both))

    def fsc(self, out: Path) -> dict[str, Any]:
        """Per density head: the mean FSC curve, its resolutions at 0.5 and 0.143, and its figure."""
        results: dict[str, Any] = {}
        voxel = self.data.voxel_size
        for head, (total, n) in self.sums.items():
            mean = (total / n).numpy()
            results[f"fsc_{head}"] = {
                "curve": mean.tolist(),
                "resolution_0.5": resolution(mean, voxel, 0.5),
                "resolution_0.143": resolution(mean, voxel, 0.143),
                "voxel_size": voxel,
            }
            fsc_figure(mean, voxel, out / f"fsc_{head}.png")
        return results


def per_particle_confusion(pred: torch.Tensor, truth: torch.Tensor, k: int) -> torch.Tensor:
    """Each particle's K×K voxel confusion (rows truth, columns prediction), flattened: ``[N, K·K]``."""
    n = len(pred)
    idx = truth.reshape(n, -1).long() * k + pred.reshape(n, -1).long()
    idx = idx + torch.arange(n).unsqueeze(1) * (k * k)
    return torch.bincount(idx.reshape(-1), minlength=n * k * k).view(n, k * k)


def _figure_picks(labels, rows: int) -> list[int]:
    """Which particles (positions in the evaluated set) the figure shows: one per class first,
    so that it shows different complexes."""
    first: dict[int, int] = {}
    for j, label in enumerate(labels):
        first.setdefault(int(label), j)
    order = [first[k] for k in sorted(first)]
    chosen = set(order)
    return (order + [j for j in range(len(labels)) if j not in chosen])[:rows]


def _figure(targets_of, kept, data, indices, picks: list[int], path) -> None:
    """The paper's Fig. 3 for the ``picks`` (their outputs in ``kept``, one list per head)."""
    labels = data.labels[indices]
    seg = next((h for h, k in targets_of.items() if k == "mask"), None)
    rec = next((h for h, k in targets_of.items() if k == "density"), None)
    cls = next((h for h, k in targets_of.items() if k == "class"), None)

    def truth(kind, j):
        i = indices[j]
        if kind not in data.targets or not data.present[kind][i]:
            return None
        v = data.targets[kind][i]
        return (v[0] if v.dim() == 4 else v).numpy()

    titles = []
    for row, j in enumerate(picks):
        true = data.classes[labels[j]] if labels[j] >= 0 and data.classes else "?"
        guess = data.classes[int(kept[cls][row].argmax())] if cls else None
        titles.append(f"{true} → {guess}" if guess else true)
    slices_figure(
        np.stack([data.x[indices[j], 0].numpy() for j in picks]),
        [truth("density", j) for j in picks],
        [truth("mask", j) for j in picks],
        [kept[seg][row].argmax(0).numpy() if seg else None for row in range(len(picks))],
        [kept[rec][row][0].numpy() if rec else None for row in range(len(picks))],
        titles,
        path,
    )


def table(results: dict[str, Any]) -> str:
    """A results table for the terminal."""
    m = results["metrics"]
    members = results.get("ensemble")
    which = (
        f"an ensemble of {len(members)} runs, best epochs {', '.join(str(e['epoch']) for e in members)}"
        if members
        else f"best epoch {results['epoch']}"
    )
    threshold = results.get("mask_threshold")
    which += f", masks at a foreground threshold of {threshold}" if threshold is not None else ""
    lines = [f"{results['split']} split of {results['data']}: {results['particles']} particles ({which})"]
    for key, value in m.items():
        if key.startswith(("acc_", "pixel_acc_", "miou_", "mse_", "angle_")):
            lines.append(f"  {key:<20}{value:.4f}")
    for head, found in (results.get("mask_threshold_sweep") or {}).items():
        if results["split"] != "val":  # the best threshold is named on a validation split only, never where reported
            swept = f"{found['threshold'][0]:.2f}-{found['threshold'][-1]:.2f}"
            lines.append(f"  {head} mIoU at foreground thresholds {swept}: in metrics.json (fit one on the val split)")
            continue
        at_half = found["miou"][found["threshold"].index(0.5)]
        lines.append(
            f"  {head} mIoU at a foreground threshold of {found['best']:.2f}: {found['best_miou']:.4f} "
            f"(at 0.5: {at_half:.4f}; a threshold for --mask-threshold)"
        )
    for key, value in results.items():
        if key.startswith("fsc_"):
            lines.append(
                f"  {key:<20}resolution {value['resolution_0.5']:.1f} Å at FSC 0.5, "
                f"{value['resolution_0.143']:.1f} Å at 0.143"
            )
    return "\n".join(lines)

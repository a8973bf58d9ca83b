"""The paper's metrics and the loss of a model on a set of particles (validation, evaluation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dsmnet.core.rotations import angle_between, chosen_pose
from dsmnet.dataset.subtomograms import Subtomograms
from dsmnet.training.batches import prefetch
from dsmnet.training.metrics import Confusion, ThresholdSweep, at_threshold
from dsmnet.training.runtime import Runtime


@torch.no_grad()
def evaluate_split(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    data: Subtomograms,
    indices: list[int],
    rt: Runtime,
    batch_size: int,
    sink: Callable[[int, dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]], None]
    | None = None,
    mask_threshold: float | None = None,
    sweep: ThresholdSweep | None = None,
) -> dict[str, Any]:
    """Loss and the paper's metrics on ``indices``. With ``sink``, each batch's outputs (on the
    CPU, float), targets and which targets are present are handed to it with the batch's start in
    ``indices`` — nothing is kept here, so
    memory does not grow with the particles — and the confusion matrices are returned too
    (``_confusion``). ``mask_threshold``: two-class masks drawn where the foreground probability
    exceeds it (not at their argmax; the loss is the model's own); ``sweep`` is given every batch's
    outputs as the model made them (:class:`~dsmnet.training.metrics.ThresholdSweep`)."""
    model.eval()
    targets_of = dict(model.targets)
    confusion: dict[str, Confusion] = {}
    sums: dict[str, float] = {}
    n = 0
    kinds = None if sink is not None else getattr(criterion, "kinds", set(targets_of.values()))

    def load(start: int):  # the next batch is read while the model works on this one
        idx = torch.tensor(indices[start : start + batch_size])
        x, targets, present = data.batch(idx, kinds)
        if rt.device.type == "cuda":
            x = x.pin_memory()
        return start, idx, x, targets, present

    for start, idx, x, targets, present in prefetch(range(0, len(indices), batch_size), load):
        with rt.autocast():
            out = model(rt.input(x))
        out = {k: v.float() for k, v in out.items()}
        on_device = ({k: v.to(rt.device) for k, v in d.items()} for d in (targets, present))
        result = criterion(out, *on_device)  # the loss lives where the model does (CUDA included)
        out = {k: v.cpu() for k, v in out.items()}
        if sweep is not None:
            sweep.update(out, targets, present, targets_of)
        out = at_threshold(out, targets_of, mask_threshold)
        if sink is not None:
            sink(start, out, targets, present)
        b = len(idx)
        n += b
        sums["loss"] = sums.get("loss", 0.0) + float(result.total) * b
        for task, value in result.tasks.items():
            sums[f"loss_{task}"] = sums.get(f"loss_{task}", 0.0) + float(value) * b
        _score(out, targets, present, targets_of, confusion, sums)
    metrics = _metrics(sums, n, confusion, targets_of)
    if sink is not None:
        metrics["_confusion"] = confusion
    return metrics


def _score(out, targets, present, targets_of: dict[str, str], confusion: dict[str, Confusion], sums) -> None:
    """Adds one batch to the confusion matrices (classes, masks), the squared errors (densities) and
    the angles to the recorded poses (poses; degrees, a symmetric complex's equivalent poses counted as errors)."""
    for head, pred in out.items():
        kind = targets_of[head]
        if kind not in targets:
            continue
        has = present[kind]
        if kind in ("class", "mask"):
            k = pred.shape[1]
            conf = confusion.setdefault(head, Confusion(k))
            if has.any():
                conf.update(pred[has].argmax(1), targets[kind][has])
        elif kind == "pose" and has.any():  # the angle to the recorded pose, blind to symmetry
            angles = angle_between(chosen_pose(pred[has]), targets[kind][has])
            sums[f"angle_{head}"] = sums.get(f"angle_{head}", 0.0) + float(angles.sum())
            sums[f"n_{head}"] = sums.get(f"n_{head}", 0.0) + int(has.sum())
        elif has.any():
            err = ((pred[has] - targets[kind][has].reshape(pred[has].shape)) ** 2).flatten(1).mean(1)
            sums[f"mse_{head}"] = sums.get(f"mse_{head}", 0.0) + float(err.sum())
            sums[f"n_{head}"] = sums.get(f"n_{head}", 0.0) + int(has.sum())


def _metrics(sums: dict[str, float], n: int, confusion: dict[str, Confusion], targets_of) -> dict[str, Any]:
    """Mean losses over the ``n`` particles, accuracy and mIoU from the confusions, mean squared errors."""
    metrics: dict[str, Any] = {k: v / max(n, 1) for k, v in sums.items() if k.startswith("loss")}
    for head, conf in confusion.items():
        if targets_of[head] == "class":
            metrics[f"acc_{head}"] = conf.accuracy
        else:
            metrics[f"pixel_acc_{head}"] = conf.accuracy
            metrics[f"miou_{head}"] = conf.miou
    for key in [k for k in sums if k.startswith(("mse_", "angle_"))]:
        head = key.split("_", 1)[1]
        metrics[key] = sums[key] / max(sums[f"n_{head}"], 1)
    return metrics

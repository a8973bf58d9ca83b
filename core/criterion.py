"""The multi-task loss: per-task losses with missing targets left out, combined by a weighting."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Task:
    """What a weighting knows of a task: the spec's weight and its loss kind."""

    weight: float
    kind: str


@dataclass
class LossResult:
    """The total loss to optimise and each task's (unweighted) loss."""

    total: torch.Tensor
    tasks: dict[str, torch.Tensor]


class MultiTaskLoss(nn.Module):
    """Applies each head's loss to its target and combines them (the paper's eq. 2 by default).

    Each task's loss is the sum of its per-sample losses over the samples that have a target for
    it, divided by the batch size ``N``: a sample without a mask, say, contributes nothing to
    the segmentation loss but still counts in ``N``, as in ``L = (L_seg + α L_cls + β L_rec) / N``.

    Args:
        losses: per head, its loss module.
        targets: per head, the ground-truth kind it is trained on (``class``, ``mask``, ``density``,
            ``pose``).
        weighting: combines the per-task losses.

    A loss whose class names further kinds in ``reads`` (the pose loss reads the density) is given
    them after its target, in that order, and scores only the samples that have all of them.
    """

    def __init__(self, losses: Mapping[str, nn.Module], targets: Mapping[str, str], weighting: nn.Module):
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.targets = dict(targets)
        self.reads = {head: tuple(getattr(loss, "reads", ())) for head, loss in losses.items()}
        self.kinds = batch_kinds(self.targets, losses.values())
        self.weighting = weighting

    def forward(
        self,
        outputs: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        present: Mapping[str, torch.Tensor] | None = None,
    ) -> LossResult:
        """Args:
        outputs: the model's outputs, per head.
        targets: ground truths keyed by kind (``class``, ``mask``, ``density``).
        present: optional per kind a boolean ``[B]`` tensor, False where a sample has no target.
        """
        tasks = {}
        for head, loss in self.losses.items():
            pred = outputs[head]
            kinds = (self.targets[head], *self.reads[head])
            if any(kind not in targets for kind in kinds):
                tasks[head] = pred.sum() * 0.0
                continue
            given = [targets[kind] for kind in kinds]
            keep = None if present is None else _all_present(present, kinds)
            if keep is not None and keep.device.type != "cpu":  # on a GPU: weighted, not indexed (no host read)
                per = loss(pred, *given)
                if per.dim() == 1 and len(per) == len(keep):
                    tasks[head] = (per * keep.to(per.dtype)).sum() / outputs[head].shape[0]
                    continue
                keep = keep.cpu()  # a plugin loss that is not per sample: indexed as on the CPU
            if keep is not None and not keep.numpy().all():  # (read as the host array it is)
                if not keep.numpy().any():
                    tasks[head] = pred.sum() * 0.0
                    continue
                keep = keep.to(pred.device)
                pred, given = pred[keep], [t.to(pred.device)[keep] for t in given]
            tasks[head] = loss(pred, *given).sum() / outputs[head].shape[0]
        return LossResult(self.weighting(tasks), tasks)


def batch_kinds(targets: Mapping[str, str], losses: Iterable[Any]) -> set[str]:
    """The target kinds a batch must carry: each head's ``targets`` and those a loss reads besides
    its own (its optional ``reads``, e.g. the pose loss reads the density). ``losses`` may be loss
    classes (a plan, before any is built) or loss modules."""
    return set(targets.values()) | {k for loss in losses for k in getattr(loss, "reads", ())}


def _all_present(present: Mapping[str, torch.Tensor], kinds: tuple[str, ...]) -> torch.Tensor | None:
    """The samples that have every one of ``kinds`` (None: no kind's presence is known)."""
    known = [present[kind] for kind in kinds if kind in present]
    if not known:
        return None
    keep = known[0]
    for other in known[1:]:
        keep = keep & other.to(keep.device)
    return keep

"""The multi-task loss: per-task losses with missing targets left out, combined by a weighting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
        targets: per head, the ground-truth kind it is trained on (``class``, ``mask``, ``density``).
        weighting: combines the per-task losses.
    """

    def __init__(self, losses: Mapping[str, nn.Module], targets: Mapping[str, str], weighting: nn.Module):
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.targets = dict(targets)
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
            kind = self.targets[head]
            if kind not in targets:
                tasks[head] = pred.sum() * 0.0
                continue
            target = targets[kind]
            keep = None if present is None else present.get(kind)
            if keep is not None and keep.device.type != "cpu":  # on a GPU: weighted, not indexed (no host read)
                per = loss(pred, target)
                if per.dim() == 1 and len(per) == len(keep):
                    tasks[head] = (per * keep.to(per.dtype)).sum() / outputs[head].shape[0]
                    continue
                keep = keep.cpu()  # a plugin loss that is not per sample: indexed as on the CPU
            if keep is not None and not keep.numpy().all():  # (read as the host array it is)
                if not keep.numpy().any():
                    tasks[head] = pred.sum() * 0.0
                    continue
                keep = keep.to(pred.device)
                pred, target = pred[keep], target.to(pred.device)[keep]
            tasks[head] = loss(pred, target).sum() / outputs[head].shape[0]
        return LossResult(self.weighting(tasks), tasks)

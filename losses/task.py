"""Per-task losses, one value per sample."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dsmnet.core.types import Probability


class CrossEntropy(nn.Module):
    """Cross-entropy for class labels (``[B]``) or voxel labels (``[B, D, H, W]``, mean per sample).

    Args:
        label_smoothing: as in :func:`torch.nn.functional.cross_entropy`.
        class_weights: per-class weights (length = the head's classes), e.g. to up-weight the
            minority foreground voxels of a segmentation.
    """

    targets: ClassVar[frozenset[str]] = frozenset({"class", "mask"})
    kind: ClassVar[str] = "classification"

    def __init__(self, *, label_smoothing: Probability = 0.0, class_weights: tuple[float, ...] | None = None):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer(
            "class_weights", None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.class_weights is not None and self.class_weights.numel() != pred.shape[1]:
            raise ValueError(
                f"class_weights has {self.class_weights.numel()} entries but the head predicts {pred.shape[1]} classes"
            )
        loss = F.cross_entropy(
            pred.float(),
            target.long(),
            weight=self.class_weights,
            label_smoothing=self.label_smoothing,
            reduction="none",
        )
        return loss.flatten(1).mean(1) if loss.dim() > 1 else loss


class MSE(nn.Module):
    """Mean squared error per sample, for densities (the paper's structure-recovery loss)."""

    targets: ClassVar[frozenset[str]] = frozenset({"density"})
    kind: ClassVar[str] = "regression"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.reshape(pred.shape).to(pred.dtype)
        return F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(1)

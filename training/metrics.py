"""The paper's metrics: object accuracy, pixel accuracy and mIoU; FSC for structure recovery.

mIoU is the mean over the K voxel classes (target and background for DSM-Net) of each class's
IoU accumulated over all voxels of the evaluated split (dataset-level, not averaged per particle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Confusion:
    """A K×K confusion matrix (rows: truth, columns: prediction) accumulated over batches."""

    k: int
    matrix: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = torch.zeros(self.k, self.k, dtype=torch.int64)

    def update(self, pred: torch.Tensor, truth: torch.Tensor) -> None:
        idx = truth.reshape(-1).long() * self.k + pred.reshape(-1).long()
        self.matrix += torch.bincount(idx.cpu(), minlength=self.k * self.k).view(self.k, self.k)

    @property
    def accuracy(self) -> float:
        total = int(self.matrix.sum())
        return float(self.matrix.trace()) / total if total else float("nan")

    def per_class_accuracy(self) -> list[float]:
        rows = self.matrix.sum(1)
        return [float(self.matrix[i, i]) / int(rows[i]) if rows[i] else float("nan") for i in range(self.k)]

    def iou(self) -> list[float]:
        m = self.matrix
        tp = m.diag().double()
        union = m.sum(0).double() + m.sum(1).double() - tp
        return [float(t / u) if u > 0 else float("nan") for t, u in zip(tp, union)]

    @property
    def miou(self) -> float:
        values = [v for v in self.iou() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")


def fsc_curve(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Fourier shell correlation of each pair ``[N, D, H, W]`` (teamtomo's torch-fourier-shell-correlation)."""
    from torch_fourier_shell_correlation import fsc

    return torch.stack([fsc(p.float(), t.float()) for p, t in zip(pred, truth)])


def resolution(curve: np.ndarray, voxel_size: float, cutoff: float) -> float:
    """Resolution (Å) where the FSC first falls below ``cutoff`` (linear interpolation between
    shells; shell i is at frequency i / box cycles/voxel); the Nyquist limit if it never does."""
    n_shells = len(curve)
    box = 2 * (n_shells - 1)
    below = np.flatnonzero(curve < cutoff)
    below = below[below > 0]
    if not len(below):
        return 2 * voxel_size
    i = int(below[0])
    f0, f1 = curve[i - 1], curve[i]
    shell = i - 1 + (f0 - cutoff) / (f0 - f1) if f0 != f1 else i
    freq = shell / box
    return float(voxel_size / freq) if freq > 0 else float("inf")

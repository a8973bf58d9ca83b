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


SWEEP = tuple(round(0.05 * i, 2) for i in range(2, 19))  # foreground thresholds 0.10 … 0.90


def two_class_mask(kind: str, value: torch.Tensor) -> bool:
    """Whether a head's output is a target/background mask: what a foreground threshold applies to."""
    return kind == "mask" and value.shape[1] == 2


def at_threshold(out: dict[str, torch.Tensor], targets_of: dict[str, str], threshold: float | None):
    """The outputs with each two-class mask head's foreground logit lowered by logit(``threshold``),
    so that its argmax marks the voxels whose foreground probability exceeds ``threshold`` (argmax
    alone: 0.5); None leaves them as they are. Every later use — metrics, per-particle records,
    figures, written masks — then sees the thresholded masks."""
    if threshold is None:
        return out
    shift = float(np.log(threshold / (1.0 - threshold)))
    shifted = {}
    for head, value in out.items():
        if two_class_mask(targets_of[head], value):
            value = torch.cat([value[:, :1], value[:, 1:] - shift], 1)
        shifted[head] = value
    return shifted


class ThresholdSweep:
    """Each two-class mask head's voxel confusion at every foreground threshold of :data:`SWEEP`,
    over an evaluated split: where a segmenter trained with cross-entropy on a small target draws
    it too small (argmax = 0.5 is not the threshold of the best mIoU), fit one on a validation
    split and apply it with ``--mask-threshold``."""

    def __init__(self) -> None:
        self.confusions: dict[str, list[Confusion]] = {}

    def update(self, out: dict[str, torch.Tensor], targets, present, targets_of: dict[str, str]) -> None:
        for head, value in out.items():
            if not two_class_mask(targets_of[head], value) or "mask" not in targets or not present["mask"].any():
                continue
            has = present["mask"]
            foreground, truth = value[has].float().softmax(1)[:, 1], targets["mask"][has]
            for conf, t in zip(self.confusions.setdefault(head, [Confusion(2) for _ in SWEEP]), SWEEP):
                conf.update((foreground > t).long(), truth)

    def result(self) -> dict[str, dict]:
        """Per head: the thresholds, the mIoU at each, and the best of them."""
        found = {}
        for head, confusions in self.confusions.items():
            miou = [c.miou for c in confusions]
            best = int(np.nanargmax(miou))
            found[head] = {"threshold": list(SWEEP), "miou": miou, "best": SWEEP[best], "best_miou": miou[best]}
        return found


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

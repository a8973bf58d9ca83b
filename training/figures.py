"""Figures: training curves, the paper's Fig. 3 (input, truth and predictions side by side),
confusion matrices and FSC curves. PNG files, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dsmnet.core.fsutil import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return path


def training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Loss (train and validation) and validation metrics per epoch."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    metrics = sorted({k for h in history for k in h if k.startswith(("val_acc", "val_miou", "val_pixel"))})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(epochs, [h["train_loss"] for h in history], label="train")
    axes[0].plot(epochs, [h.get("val_loss", np.nan) for h in history], label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("total loss")
    axes[0].legend()
    for m in metrics:
        axes[1].plot(epochs, [h.get(m, np.nan) for h in history], label=m.removeprefix("val_"))
    axes[1].set_xlabel("epoch")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("validation")
    if metrics:
        axes[1].legend()
    return save_figure(fig, path)


def slices_figure(
    inputs: np.ndarray,
    truth_density: list[np.ndarray | None],
    truth_mask: list[np.ndarray | None],
    seg: list[np.ndarray | None],
    density: list[np.ndarray | None],
    titles: list[str],
    path: Path,
) -> Path:
    """Paper Fig. 3: central slices of input, true density, true mask, predicted mask and density."""
    plt = pyplot()
    columns = [
        ("input", inputs, "gray"),
        ("true density", truth_density, "gray"),
        ("true mask", truth_mask, "viridis"),
        ("predicted mask", seg, "viridis"),
        ("predicted density", density, "gray"),
    ]
    columns = [c for c in columns if any(v is not None for v in c[1])]
    rows = len(inputs)
    fig, axes = plt.subplots(rows, len(columns), figsize=(2.2 * len(columns), 2.2 * rows), squeeze=False)
    for r in range(rows):
        for c, (name, vols, cmap) in enumerate(columns):
            ax = axes[r, c]
            ax.axis("off")
            vol = vols[r]
            if vol is None:
                continue
            ax.imshow(vol[vol.shape[0] // 2], cmap=cmap)
            ax.set_title(f"{titles[r]}\n{name}" if c == 0 else name, fontsize=7)
    return save_figure(fig, path)


def confusion_figure(matrix: np.ndarray, classes: list[str], path: Path) -> Path:
    plt = pyplot()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(0.35 * n + 3, 0.35 * n + 2.5))
    rows = matrix.sum(1, keepdims=True)
    ax.imshow(matrix / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6)
    return save_figure(fig, path)


def fsc_figure(curve: np.ndarray, voxel_size: float, path: Path, label: str = "mean FSC") -> Path:
    plt = pyplot()
    box = 2 * (len(curve) - 1)
    freq = np.arange(len(curve)) / (box * voxel_size)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(freq, curve, label=label)
    for cut in (0.5, 0.143):
        ax.axhline(cut, ls="--", lw=0.8, color="grey")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    ax.legend()
    return save_figure(fig, path)

"""How a trained classifier reads its test boxes turned away from where they lie: object accuracy
on boxes rotated by fixed angles about random axes, the data's wedge re-imposed afterwards (the
view the ``rotate`` augmentation trains on) or the wedge turned with the box (a ``spin`` view).

It separates what a rotation costs: the resampling alone (``spin`` views: nothing is removed) or
the frequencies of the turned wedge as well (``rotate`` views).

Run: ``dsmnet views RUN --data TEST_DIR [--n 1200] [--angles 0,5,30,90]``
"""

from __future__ import annotations

import math
from pathlib import Path

ANGLES = (0, 5, 15, 30, 60, 90, 180)


def axis_angle(axis, theta: float):
    """The rotation matrix (float32 tensor) by ``theta`` radians about ``axis``."""
    import torch
    from scipy.spatial.transform import Rotation

    axis = axis.double() / axis.norm()
    return torch.from_numpy(Rotation.from_rotvec((axis * theta).numpy()).as_matrix()).float()


def turned_accuracy(run: Path, data_dir: Path, n: int, angles: tuple[float, ...], seed: int = 5) -> dict:
    """Accuracy on the first ``n`` particles of ``data_dir`` for each angle (degrees), re-masked
    (``rotate``) and not (``spin``); one random axis per particle and angle."""
    import torch

    from dsmnet.dataset.subtomograms import load_dataset
    from dsmnet.training.augment import measured_frequencies, rotated_batch
    from dsmnet.training.step import load_trained

    model, _, state = load_trained(run)
    data = load_dataset(data_dir, classes=state["classes"], box=tuple(state["spec"]["input"]["shape"]))
    n = min(n, len(data))
    labels = torch.as_tensor(data.labels[:n])
    measured = measured_frequencies(data.root, data.box, data.voxel_size)
    out: dict[str, dict[str, float]] = {"rotate": {}, "spin": {}}
    with torch.no_grad():
        for view, mask in (("rotate", measured), ("spin", None)):
            gen = torch.Generator().manual_seed(seed)  # the same axes for both views
            for deg in angles:
                correct = 0
                for start in range(0, n, 60):
                    idx = torch.arange(start, min(start + 60, n))
                    x, _, _ = data.batch(idx, [])
                    turns = torch.stack([axis_angle(torch.randn(3, generator=gen), math.radians(deg)) for _ in idx])
                    logits = model(rotated_batch({"x": x}, turns, mask)["x"])["cls"]
                    correct += int((logits.argmax(1) == labels[idx]).sum())
                out[view][f"{deg:g}"] = correct / n
    return {"run": str(run), "data": str(data_dir), "particles": n, "accuracy": out}


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet views``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["views", *sys.argv[1:]]))

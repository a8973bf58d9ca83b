"""The classical baseline every CNN row is put beside: a linear classifier on rotation-invariant
features taken around the box centre.

Features of each normalised subtomogram (a particle's orientation is random, so every feature is
invariant to rotations about the box centre):

- the radial profile — the mean and standard deviation of the voxels in each 1-voxel spherical
  shell around the centre, of the subtomogram smoothed with a Gaussian (σ = 1 voxel);
- the rotationally averaged power spectrum (log), shell by shell from the first: the zeroth is
  the power of the box's mean, which normalisation sets to zero, so all it held was floating-point
  rounding — a feature that differed between CPUs and moved ~100 of 3000 test predictions.

For a 34³ box that is 17 + 17 + 16 = 50 features. The classifier is scikit-learn's linear
discriminant analysis with Ledoit–Wolf shrinkage, fitted on the training split of the run's own
8:1:1 split and scored on the same test particles as the networks.

Run alone: ``dsmnet baseline --data DATASET [--test TEST_DATASET] [--seed 0]``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from dsmnet.dataset.subtomograms import load_dataset, stratified_split


def _shells(shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    centre = np.array(shape) // 2
    grid = np.indices(shape) - centre[:, None, None, None]
    r = np.sqrt((grid**2).sum(0)).round().astype(int)
    n = min(shape) // 2
    return np.minimum(r, n), n


# what a kept record was fitted on: one made with other features (before 2026-12-06, the spectrum's
# zeroth shell among them) is made again where the data are
FEATURES = "radial mean and spread of the smoothed box; log power spectrum from shell 1"


def features(volumes: np.ndarray) -> np.ndarray:
    """``[N, D, H, W]`` normalised subtomograms → ``[N, 3·(box/2) − 1]`` rotation-invariant features
    (the spectrum without its zeroth shell: the zero mean's power is rounding, not signal)."""
    shape = volumes.shape[1:]
    r, n = _shells(shape)
    flat_r = r.ravel()
    count = np.bincount(flat_r, minlength=n + 1)[:n]
    out = []
    for v in volumes:
        smooth = ndimage.gaussian_filter(v.astype(np.float64), 1.0).ravel()
        mean = np.bincount(flat_r, smooth, minlength=n + 1)[:n] / count
        sq = np.bincount(flat_r, smooth**2, minlength=n + 1)[:n] / count
        power = np.abs(np.fft.fftshift(np.fft.fftn(v))) ** 2
        spectrum = np.bincount(flat_r, power.ravel(), minlength=n + 1)[:n] / count
        out.append(np.concatenate([mean, np.sqrt(np.maximum(sq - mean**2, 0)), np.log(spectrum[1:] + 1e-12)]))
    return np.asarray(out)


@lru_cache(maxsize=4)
def _dataset_features(root: str, classes: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and class names of a dataset folder; read once per process (a study scores
    every seed on the same datasets)."""
    data = load_dataset(root, classes=list(classes) if classes else None)
    return features(data.x[:, 0].numpy()), data.labels, data.classes


def classical_baseline(data_dir: Path, seed: int, test_dir: Path | None = None) -> dict[str, Any]:
    """Fit the baseline on ``data_dir``'s training split (seeded like the runs); score it on that
    split's test particles, or on every particle of ``test_dir`` (an independent test set).

    Returns:
        A metrics record shaped like an evaluation's (``metrics.acc_cls``, ``confusion_cls``).
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, labels, classes = _dataset_features(str(data_dir), None)
    split = stratified_split(labels, seed)
    model = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
    model.fit(x[split["train"]], labels[split["train"]])
    if test_dir is not None:
        xt, yt, _ = _dataset_features(str(test_dir), tuple(classes))
    else:
        xt, yt = x[split["test"]], labels[split["test"]]
    predicted = model.predict(xt)
    k = len(classes)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (yt, predicted), 1)
    return {
        "run": f"classical baseline (shrinkage LDA on {x.shape[1]} rotation-invariant features)",
        "features": FEATURES,
        "data": str(test_dir or data_dir),
        "particles": int(len(yt)),
        "metrics": {"acc_cls": float((predicted == yt).mean())},
        "confusion_cls": confusion.tolist(),
        "classes": classes,
        "per_particle": {"label": yt.tolist(), "predicted_cls": predicted.tolist()},
    }


if __name__ == "__main__":  # the old entry point: an alias of ``dsmnet baseline``
    import sys

    from dsmnet.cli import main

    raise SystemExit(main(["baseline", *sys.argv[1:]]))

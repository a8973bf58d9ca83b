"""Unseen-structure discovery (paper §3.5, Fig. 4): a DSM-Net trained without one class clusters
that class's particles together by their classifier features and recovers its density.

- features: the classifier's last hidden layer (1024-d at the paper's scale) for every particle;
- k-means with k = the dataset's number of classes; the held-out class's share in its dominant
  cluster (how many of its particles land there) and that cluster's purity (how many of the
  cluster's particles are of the held-out class);
- a t-SNE map coloured by true class, the held-out class highlighted;
- recovery: the reconstructor's densities of the held-out particles against their true
  densities, the mean FSC curve and the resolution at FSC 0.5 and 0.143, and slices.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dsmnet.core.fsutil import atomic_dir, atomic_write_text
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.star import read_star, write_star
from dsmnet.dataset.subtomograms import load_dataset, read_classes
from dsmnet.training.figures import fsc_figure, pyplot, save_figure
from dsmnet.training.metrics import fsc_curve, resolution
from dsmnet.training.runtime import make_runtime
from dsmnet.training.step import load_trained


def without_class(src: Path, dst: Path, holdout: str) -> Path:
    """A dataset folder listing every particle of ``src`` but those of ``holdout`` (files are not copied)."""
    classes = read_classes(src) or []
    if holdout not in classes:
        raise DataError(f"{src}: no class {holdout!r} (classes: {', '.join(classes)})")
    table = read_star(src / layout.PARTICLES)
    keep = table[table[layout.CLASS_NAME] != holdout].copy()
    names = [c for c in classes if c != holdout]
    keep[layout.CLASS_NUMBER] = [names.index(n) + 1 for n in keep[layout.CLASS_NAME]]
    for column in (layout.IMAGE, layout.MASK, layout.DENSITY):
        if column in keep.columns:
            keep[column] = [os.path.relpath(src / p, dst) for p in keep[column]]
    with atomic_dir(dst, overwrite=True) as tmp:
        write_star(tmp / layout.PARTICLES, {"particles": keep})
        meta = json.loads((src / layout.CLASSES).read_text())
        kept = [c for c in meta if c["name"] != holdout]
        for i, c in enumerate(kept):
            c["number"] = i + 1
        (tmp / layout.CLASSES).write_text(json.dumps(kept, indent=1) + "\n")
    return dst


@torch.no_grad()
def _features(model, data, rt, cls_head: str, rec_head: str | None):
    """Every particle's classifier feature vector (numpy) and, with a density head, its recovered density."""
    feats, recs = [], []
    for start in range(0, len(data), 64):
        x = rt.input(data.x[start : start + 64])
        with rt.autocast():
            feats.append(model.features(x, cls_head).float().cpu())
            if rec_head is not None:
                recs.append(model(x)[rec_head].float().cpu())
    return torch.cat(feats).numpy(), (torch.cat(recs) if recs else None)


def _holdout_fsc(recovered: torch.Tensor, data, held: np.ndarray, holdout: str, out: Path) -> dict[str, Any]:
    """FSC of the held-out class's recovered densities against the true ones, with its figures."""
    pred = recovered[torch.from_numpy(held)][:, 0]
    truth = data.targets["density"][torch.from_numpy(held)][:, 0]
    curve = fsc_curve(pred, truth).numpy().mean(0)
    fsc_figure(curve, data.voxel_size, out / "fsc_holdout.png", label=f"{holdout}: recovered vs true")
    _recovery_figure(truth[:4].numpy(), pred[:4].numpy(), out / "recovery.png")
    return {
        "curve": curve.tolist(),
        "resolution_0.5": resolution(curve, data.voxel_size, 0.5),
        "resolution_0.143": resolution(curve, data.voxel_size, 0.143),
    }


def discover(
    run: str | Path, data_dir: str | Path, holdout: str, out: str | Path, device: str = "auto"
) -> dict[str, Any]:
    """Cluster features and recover the held-out class; writes ``discover.json`` and figures to ``out``."""
    from sklearn.cluster import KMeans
    from sklearn.manifold import TSNE

    rt = make_runtime(device)
    model, _, state = load_trained(Path(run), "best", rt)
    if holdout in state["classes"]:
        raise DataError(f"{run} was trained with {holdout!r}; train it on a dataset without that class")
    cls_head = next((h for h, k in model.targets.items() if k == "class"), None)
    rec_head = next((h for h, k in model.targets.items() if k == "density"), None)
    if cls_head is None:
        raise DataError(f"{run}: the model has no classification head, so no features to cluster")
    data = load_dataset(data_dir, box=tuple(state["spec"]["input"]["shape"]))
    if holdout not in data.classes:
        raise DataError(f"{data_dir}: no class {holdout!r} (classes: {', '.join(data.classes)})")
    features, recovered = _features(model, data, rt, cls_head, rec_head)
    labels = data.labels
    held = labels == data.classes.index(holdout)
    k = len(data.classes)
    clusters = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(features)
    dominant = int(np.bincount(clusters[held], minlength=k).argmax())
    in_dominant = int((clusters[held] == dominant).sum())
    result: dict[str, Any] = {
        "run": str(run),
        "holdout": holdout,
        "particles": int(len(labels)),
        "holdout_particles": int(held.sum()),
        "feature_dim": int(features.shape[1]),
        "k": k,
        "dominant_cluster": dominant,
        "holdout_share_in_dominant_cluster": in_dominant / max(int(held.sum()), 1),
        "dominant_cluster_purity": in_dominant / max(int((clusters == dominant).sum()), 1),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    embedding = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(features)
    _tsne_figure(embedding, labels, held, data.classes, holdout, out / "tsne.png")
    if recovered is not None and "density" in data.targets:
        result["fsc"] = _holdout_fsc(recovered, data, held, holdout, out)
    atomic_write_text(out / "discover.json", json.dumps(result, indent=1) + "\n")
    pd.DataFrame(
        {
            "class": [data.classes[i] for i in labels],
            "cluster": clusters,
            "tsne_x": embedding[:, 0],
            "tsne_y": embedding[:, 1],
        }
    ).to_csv(out / "clusters.csv", index=False)
    result["out"] = str(out)
    return result


def _tsne_figure(embedding, labels, held, classes, holdout, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab20", len(classes))
    for i, name in enumerate(classes):
        sel = (labels == i) & ~held
        if sel.any():
            ax.scatter(embedding[sel, 0], embedding[sel, 1], s=4, color=cmap(i), label=name)
    ax.scatter(embedding[held, 0], embedding[held, 1], s=14, color="black", marker="x", label=f"{holdout} (held out)")
    ax.set_title("t-SNE of classifier features")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=5, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    return save_figure(fig, path)


def _recovery_figure(truth: np.ndarray, pred: np.ndarray, path: Path) -> Path:
    plt = pyplot()
    n = len(truth)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.4), squeeze=False)
    for j in range(n):
        c = truth[j].shape[0] // 2
        axes[0, j].imshow(truth[j][c], cmap="gray")
        axes[1, j].imshow(pred[j][c], cmap="gray")
        axes[0, j].set_title("true", fontsize=8)
        axes[1, j].set_title("recovered", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    return save_figure(fig, path)

"""A picture of a dataset: a tomogram slice and, for several classes, central slices of the
subtomogram, the target mask and the target density."""

from __future__ import annotations

from pathlib import Path

from dsmnet.core.fsutil import atomic_path
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import read_mrc
from dsmnet.dataset.star import read_star


def write_preview(dataset: Path, png: Path, per_figure: int = 6) -> Path:
    """Render ``png`` from a dataset folder (atomically). Raises DataError if it is not a dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = read_star(dataset / layout.PARTICLES)
    picks = table.drop_duplicates(layout.CLASS_NUMBER).head(per_figure)
    tomos = sorted((dataset / "tomograms").glob("tomo_*[0-9].mrc"))
    rows = len(picks) + (1 if tomos else 0)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows), squeeze=False)
    r = 0
    if tomos:
        tomo, _ = read_mrc(tomos[0])
        labels, _ = read_mrc(tomos[0].with_name(tomos[0].stem + "_labels.mrc"))
        z = tomo.shape[0] // 2
        axes[0, 0].imshow(tomo[z], cmap="gray")
        axes[0, 0].set_title(f"{tomos[0].stem}, z = {z}", fontsize=8)
        clean, _ = read_mrc(tomos[0].with_name(tomos[0].stem + "_clean.mrc"))
        axes[0, 1].imshow(clean[z], cmap="gray")
        axes[0, 1].set_title("clean", fontsize=8)
        axes[0, 2].imshow(labels[z], cmap="tab20", interpolation="nearest")
        axes[0, 2].set_title("class labels", fontsize=8)
        r = 1
    for _, row in picks.iterrows():
        sub, _ = read_mrc(dataset / row[layout.IMAGE])
        c = sub.shape[0] // 2
        panels = [(sub, "gray", "subtomogram")]
        for col, cmap, title in ((layout.MASK, "viridis", "target mask"), (layout.DENSITY, "gray", "target density")):
            if isinstance(row.get(col), str) and row[col]:
                panels.append((read_mrc(dataset / row[col])[0], cmap, title))
        for j, (vol, cmap, title) in enumerate(panels):
            axes[r, j].imshow(vol[c], cmap=cmap)
            axes[r, j].set_title(f"{row[layout.CLASS_NAME]}: {title}" if j == 0 else title, fontsize=7)
        r += 1
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return png


def is_dataset(folder: Path) -> bool:
    return (folder / layout.PARTICLES).is_file() and (folder / layout.CLASSES).is_file()

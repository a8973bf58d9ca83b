"""Users' data: cut subtomograms from a tomogram at picked coordinates, and predict on them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dsmnet.core.fsutil import atomic_dir
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, read_mrc, write_mrc
from dsmnet.dataset.star import read_star, write_star
from dsmnet.training.data import load_dataset
from dsmnet.training.loop import load_trained
from dsmnet.training.runtime import make_runtime


def _fourier_resample(volume: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resample by cropping or zero-padding the centred spectrum (band-limited, mean kept)."""
    f = np.fft.fftshift(np.fft.fftn(volume))
    out = np.zeros(shape, complex)
    src, dst = [], []
    for n, m in zip(volume.shape, shape):
        k = min(n, m)
        src.append(slice(n // 2 - k // 2, n // 2 - k // 2 + k))
        dst.append(slice(m // 2 - k // 2, m // 2 - k // 2 + k))
    out[tuple(dst)] = f[tuple(src)]
    return (np.fft.ifftn(np.fft.ifftshift(out)).real * (np.prod(shape) / np.prod(volume.shape))).astype(np.float32)


def extract(
    tomogram: str | Path,
    picks: str | Path,
    out: str | Path,
    box: int = 40,
    voxel_size: float | None = None,
    rescale: bool = False,
    border: str = "skip",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Cut ``box``³ subtomograms centred at the STAR file's ``rlnCoordinateX/Y/Z`` (0-based voxel
    indices of the tomogram) into a dataset folder.

    Args:
        voxel_size: the voxel size (Å) the model wants; a tomogram at another size is an error
            unless ``rescale`` (Fourier resampling of the tomogram and the coordinates).
        border: ``skip`` boxes that cross the tomogram's border, or ``pad`` them with its mean.
    """
    tomogram, picks = Path(tomogram), Path(picks)
    if border not in ("skip", "pad"):
        raise DataError(f"border must be 'skip' or 'pad', got {border!r}")
    if box < 4 or box % 2:
        raise DataError(f"box must be even and ≥ 4, got {box}")
    volume, tomo_voxel = read_mrc(tomogram)
    table = read_star(picks)
    missing = [c for c in layout.COORDS if c not in table.columns]
    if missing:
        raise DataError(f"{picks}: no {', '.join(missing)} column(s): the particles' coordinates")
    if layout.TOMO in table.columns and table[layout.TOMO].nunique() > 1:
        table = table[table[layout.TOMO].astype(str) == tomogram.stem]
        if table.empty:
            raise DataError(f"{picks}: no particle has {layout.TOMO} = {tomogram.stem!r}")
    coords = table[list(layout.COORDS)].to_numpy(float)[:, ::-1]  # → z, y, x
    scale = 1.0
    if voxel_size is not None and tomo_voxel > 0 and abs(tomo_voxel - voxel_size) > 0.01 * voxel_size:
        if not rescale:
            raise DataError(
                f"{tomogram}: {tomo_voxel:g} Å/voxel, but the model takes {voxel_size:g} Å/voxel; "
                "pass --rescale to resample the tomogram"
            )
        scale = tomo_voxel / voxel_size
        shape = tuple(max(1, round(n * scale)) for n in volume.shape)
        volume = _fourier_resample(volume, shape)
        coords = coords * scale
    final_voxel = voxel_size if scale != 1.0 else (tomo_voxel or voxel_size or 1.0)
    centres = np.round(coords).astype(int)
    half = box // 2
    fill = float(volume.mean())
    rows, skipped = [], 0
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for (_, row), c in zip(table.iterrows(), centres):
            lo, hi = c - half, c + half
            inside = (lo >= 0).all() and (hi <= np.array(volume.shape)).all()
            if not inside and border == "skip":
                skipped += 1
                continue
            sub = np.full((box,) * 3, fill, np.float32)
            src = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, volume.shape))
            dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo))
            sub[dst] = volume[src]
            name = f"subtomograms/{len(rows) + 1:06d}.mrc"
            write_mrc(tmp / name, sub, final_voxel)
            record = row.to_dict()
            record.update(
                {
                    "rlnCoordinateX": float(c[2]),
                    "rlnCoordinateY": float(c[1]),
                    "rlnCoordinateZ": float(c[0]),
                    layout.TOMO: tomogram.stem,
                    layout.IMAGE: name,
                    "dsmPadded": int(not inside),
                }
            )
            rows.append(record)
        if not rows:
            raise DataError(f"{picks}: every box crosses the border of {tomogram} (try --border pad)")
        write_star(tmp / layout.PARTICLES, {"particles": pd.DataFrame(rows)})
    return {
        "extracted": len(rows),
        "skipped": skipped,
        "voxel_size": final_voxel,
        "rescaled": scale != 1.0,
        "out": str(out),
    }


def predict(
    run: str | Path,
    data_dir: str | Path,
    out: str | Path,
    device: str = "auto",
    batch_size: int = 32,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Predict classes (with probabilities), masks and densities for every subtomogram of a dataset folder."""
    rt = make_runtime(device)
    model, _, state = load_trained(Path(run), "best", rt)
    box = tuple(state["spec"]["input"]["shape"])
    data = load_dataset(data_dir, box=box, targets=False)
    want = state.get("voxel_size") or 0
    if want and data.voxel_size and abs(data.voxel_size - want) > 0.01 * want:
        raise DataError(
            f"{data_dir}: subtomograms are {data.voxel_size:g} Å/voxel, the model {want:g}; "
            f"re-extract with dsmnet extract --voxel-size {want:g} --rescale"
        )
    classes = state["classes"]
    unscale = 1.0 / state["settings"].get("density_scale", 1.0)  # densities back in the dataset's units
    rows = []
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp, torch.no_grad():
        for start in range(0, len(data), batch_size):
            x = data.x[start : start + batch_size]
            with rt.autocast():
                pred = model(rt.input(x))
            pred = {k: v.float().cpu() for k, v in pred.items()}
            for j in range(len(x)):
                i = start + j
                record = data.table.iloc[i].to_dict()
                record[layout.IMAGE] = os.path.relpath(Path(data_dir) / str(record[layout.IMAGE]), out)
                for head, value in pred.items():
                    kind = model.targets[head]
                    if kind == "class":
                        p = value[j].softmax(0)
                        k = int(p.argmax())
                        record.update(
                            {
                                layout.CLASS_NUMBER: k + 1,
                                layout.CLASS_NAME: classes[k],
                                "dsmClassProbability": float(p[k]),
                            }
                        )
                        record.update({f"dsmProb_{c}": float(v) for c, v in zip(classes, p)})
                    elif kind == "mask":
                        name = f"masks/{i + 1:06d}.mrc"
                        write_mrc(tmp / name, value[j].argmax(0).numpy().astype(np.int8), data.voxel_size)
                        record[layout.MASK] = name
                    else:
                        name = f"densities/{i + 1:06d}.mrc"
                        write_mrc(tmp / name, value[j, 0].numpy() * unscale, data.voxel_size)
                        record[layout.DENSITY] = name
                rows.append(record)
        write_star(tmp / "predictions.star", {"particles": pd.DataFrame(rows)})
        classes_json = [{"number": i + 1, "name": c} for i, c in enumerate(classes)]
        (tmp / layout.CLASSES).write_text(json.dumps(classes_json, indent=1) + "\n")
    return {"particles": len(rows), "out": str(out), "device": rt.describe()}

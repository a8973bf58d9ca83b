"""Prediction on users' data: classes with every class's probability, masks and densities.

Four kinds of input, all read lazily (a batch at a time, the next one read while the model runs):

* a dsmnet dataset folder (``particles.star`` + subtomograms, e.g. from ``dsmnet extract``);
* a folder of MRC subtomograms made by other tools;
* a STAR file with ``rlnImageName`` (RELION or Warp subtomograms; paths relative to the STAR
  file's folder or to the working directory, RELION's project folder);
* a tomogram and its picks (``--tomogram``/``--picks``, or ``--tomograms`` for picks from several
  tomograms): boxes are cut at the model's voxel size on the fly, and tomogram-sized label and
  density maps are written (:mod:`dsmnet.training.tomo_maps`).

Outputs: ``predictions.star`` (the input's blocks and columns kept, so it goes back into RELION,
with ``rlnClassNumber`` set to the prediction — an input class number is kept as
``dsmInputClassNumber`` — and ``dsmClassName``, ``dsmClassProbability`` and ``dsmProb_<class>``
added), ``classes/<class>.star`` (the particles predicted as each class) and ``classes.json``.
A subtomogram that cannot be predicted (NaN or infinite voxels, a constant box, the wrong size or
voxel size) is an error naming it, or with ``skip_bad`` it is left out and listed in ``skipped.star``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dsmnet.core.fsutil import atomic_dir
from dsmnet.core.progress import Progress
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, read_mrc, write_mrc
from dsmnet.dataset.picks import read_picks
from dsmnet.dataset.star import particles_block, read_star_blocks, write_star
from dsmnet.training.data import check_voxels, normalise
from dsmnet.training.extract import Box, boxes, check_voxel_size
from dsmnet.training.runtime import make_runtime
from dsmnet.training.step import load_trained


@dataclass
class Particle:
    """One subtomogram to predict: its row, a name for messages, and how to read it."""

    row: dict[str, Any]
    name: str
    path: Path | None = None  # an MRC subtomogram, read when its batch comes
    box: Box | None = None  # or a box cut from a tomogram
    volume: tuple[np.ndarray, float] | None = None  # or read already (in_memory)


def _image_path(name: str, star: Path) -> Path:
    if "@" in name:
        raise DataError(
            f"{star}: {layout.IMAGE} {name!r} is an image in a 2D stack (RELION-5's default "
            "subtomograms); predict from the tomogram instead (--tomogram/--tomograms with --picks), "
            "or extract 3D subtomograms (relion_tomo_subtomo without --stack2d)"
        )
    path = Path(name)
    if path.is_absolute():
        return path
    beside = star.parent / path
    return beside if beside.exists() or not path.exists() else path


def file_particles(source: Path) -> tuple[list[Particle], dict[str, Any], Path | None]:
    """The particles of a dataset folder, a folder of MRCs or a STAR file; the STAR file's blocks
    (to write back whole) and the dataset folder whose relative paths the output must rewrite
    (None for a folder of MRCs, whose paths are given whole, and for a STAR file, whose paths
    stay as RELION wrote them)."""
    if source.is_dir() and not (source / layout.PARTICLES).is_file():
        files = sorted(p for p in source.iterdir() if p.suffix in (".mrc", ".rec", ".map"))
        if not files:
            raise DataError(f"{source}: no {layout.PARTICLES} and no .mrc subtomograms")
        rows = [Particle({layout.IMAGE: str(p)}, str(p), path=p) for p in files]
        return rows, {}, None
    star = source / layout.PARTICLES if source.is_dir() else source
    if not star.exists():
        raise DataError(f"{source}: no such dataset folder, folder of MRC files or STAR file")
    blocks = read_star_blocks(star)
    table = particles_block(blocks, star)
    if table.empty:
        raise DataError(f"{star}: no particles table")
    if layout.IMAGE not in table.columns:
        raise DataError(
            f"{star}: no {layout.IMAGE} column (the subtomogram of each particle); for picks, "
            "give the tomogram: dsmnet predict RUN --tomogram T.mrc --picks P.star"
        )
    rows = []
    for _, row in table.iterrows():
        path = _image_path(str(row[layout.IMAGE]), star)
        rows.append(Particle(row.to_dict(), str(path), path=path))
    return rows, blocks, (source if source.is_dir() else None)  # a RELION STAR keeps its own paths


def _load(p: Particle) -> tuple[np.ndarray, float | None]:
    if p.volume is not None:
        return p.volume
    if p.box is not None:
        return p.box.volume, None
    return read_mrc(p.path)


def _batches(items: Iterable[Particle], size: int) -> Iterator[list[Particle]]:
    batch: list[Particle] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Reader:
    """Reads and checks a batch's subtomograms; bad ones are an error, or skipped with a reason."""

    def __init__(self, box: tuple[int, ...], voxel_size: float, skip_bad: bool):
        self.box, self.voxel_size, self.skip_bad = box, voxel_size, skip_bad

    def __call__(self, batch: list[Particle]) -> tuple[list[Particle], np.ndarray, list[tuple[Particle, str]]]:
        good, volumes, bad = [], [], []
        for p in batch:
            try:
                volume, vs = _load(p)
                self.check(p, volume, vs)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                bad.append((p, str(exc)))
                continue
            good.append(p)
            volumes.append(normalise(volume).astype(np.float32))
        x = np.stack(volumes)[:, None] if volumes else np.zeros((0, 1, *self.box), np.float32)
        return good, x, bad

    def check(self, p: Particle, volume: np.ndarray, vs: float | None) -> None:
        if tuple(volume.shape) != tuple(self.box):
            raise DataError(
                f"{p.name}: subtomogram is {'×'.join(map(str, volume.shape))}, but the model takes "
                f"{'×'.join(map(str, self.box))}"
            )
        want = self.voxel_size
        if vs and want and abs(vs - want) > 0.01 * want:
            raise DataError(
                f"{p.name}: {vs:g} Å/voxel, the model {want:g}; re-extract with "
                f"dsmnet extract --voxel-size {want:g}, or predict from the tomogram (--tomogram)"
            )
        check_voxels(volume, Path(p.name))


@dataclass
class _Source:
    """What to predict: the particles (streamed), their STAR blocks, and the tomograms if any."""

    items: Iterable[Particle]
    total: int
    blocks: dict[str, Any]
    voxel: float  # Å: the voxel size the boxes are at
    groups: list = field(default_factory=list)  # per tomogram its picks (for the maps)
    data_dir: Path | None = None

    @classmethod
    def of(cls, source, tomogram, picks, tomograms, box: int, want: float, rescale, border, in_memory, log) -> _Source:
        if picks is not None:
            if source is not None:
                raise DataError("give either subtomograms (DATA) or a tomogram's picks (--picks), not both")
            blocks = read_star_blocks(picks)  # read once: the picks, and the blocks to write back
            groups = read_picks(picks, tomogram, tomograms, blocks=blocks)
            voxel = want or groups[0].tomogram.voxel_size
            check_voxel_size(groups, voxel, rescale, log)
            items = (Particle(b.row, b.name, box=b) for g in groups for b in boxes(g, box, voxel, border))
            return cls(items, sum(len(g.rows) for g in groups), blocks, voxel, groups)
        if source is None:
            raise DataError("nothing to predict: give a dataset folder, a folder of MRCs or a STAR file, or --picks")
        if tomogram is not None or tomograms is not None:
            raise DataError("--tomogram/--tomograms need --picks (the particles' positions)")
        particles, blocks, data_dir = file_particles(Path(source))
        if in_memory:
            for p in particles:
                p.volume = read_mrc(p.path)
        return cls(particles, len(particles), blocks, want, [], data_dir)


def predict(
    run: str | Path,
    source: str | Path | None,
    out: str | Path,
    *,
    tomogram: str | Path | None = None,
    picks: str | Path | None = None,
    tomograms: str | Path | None = None,
    rescale: bool = True,
    border: str = "skip",
    skip_bad: bool = False,
    maps: bool = True,
    device: str = "auto",
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
    in_memory: bool = False,
    log=print,
) -> dict[str, Any]:
    """Predict every particle of ``source`` (or of ``picks`` in ``tomogram``/``tomograms``);
    ``in_memory`` reads every subtomogram file before predicting (the benchmark's comparison)."""
    from dsmnet.training.tomo_maps import TomogramMaps

    rt = make_runtime(device)
    model, _, state = load_trained(Path(run), "best", rt)
    box = tuple(state["spec"]["input"]["shape"])
    want = float(state.get("voxel_size") or 0.0)
    classes = state["classes"]
    unscale = 1.0 / state["settings"].get("density_scale", 1.0)  # densities back in the dataset's units
    src = _Source.of(source, tomogram, picks, tomograms, box[0], want, rescale, border, in_memory, log)
    reader = _Reader(box, want, skip_bad)
    skipped: list[tuple[Particle, str]] = []
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp, torch.no_grad(), ThreadPoolExecutor(1) as pool:
        paint = {id(g): TomogramMaps(g, tmp, classes, src.voxel) for g in src.groups} if maps else {}
        writer = _Writer(model, rt, classes, unscale, tmp, out, src.data_dir, paint, src.voxel)
        bar = Progress(src.total, "predict", "particles", log, enabled=progress)
        batches = _batches(src.items, batch_size)

        def read_next():  # cut or read, and check, the next batch (in the reader thread)
            batch = next(batches, None)
            return None if batch is None else (len(batch), *reader(batch))

        ahead = pool.submit(read_next)
        while (result := ahead.result()) is not None:
            ahead = pool.submit(read_next)  # the next batch is read while the model runs on this one
            n, good, x, bad = result
            skipped += bad
            writer(good, x)
            bar.update(n)
        bar.close()
        rows = writer.rows
        if not rows:
            raise DataError(f"{source or picks}: no particle could be predicted ({len(skipped)} skipped)")
        _write_tables(tmp, src.blocks, rows, skipped, classes)
        for maker in paint.values():
            maker.close()
    for _, why in skipped:
        log(f"skipped {why}")
    counts = pd.Series([r.get(layout.CLASS_NAME) for r in rows]).value_counts().to_dict()
    return {
        "particles": len(rows),
        "skipped": len(skipped),
        "classes": {str(k): int(v) for k, v in counts.items() if k is not None},
        "out": str(out),
        "device": rt.describe(),
        "maps": [str(out / m.relative) for m in paint.values()],
    }


class _Writer:
    """Turns a batch's outputs into table rows, and masks and densities into files or maps."""

    def __init__(self, model, rt, classes, unscale, tmp: Path, out: Path, data_dir: Path | None, paint, voxel: float):
        self.model, self.rt, self.classes, self.unscale = model, rt, classes, unscale
        self.targets = dict(model.targets)
        self.tmp, self.out, self.data_dir, self.paint, self.voxel = tmp, out, data_dir, paint, voxel
        self.rows: list[dict] = []

    def __call__(self, good: list[Particle], x: np.ndarray) -> None:
        if not good:
            return
        with self.rt.autocast():
            pred = self.model(self.rt.input(torch.from_numpy(x)))
        pred = {k: v.float().cpu() for k, v in pred.items()}
        for j, p in enumerate(good):
            self.rows.append(self._row(p, {head: value[j] for head, value in pred.items()}))

    def _row(self, p: Particle, pred: dict[str, torch.Tensor]) -> dict:
        record = dict(p.row)
        if self.data_dir is not None and layout.IMAGE in record:  # paths stay valid from the output folder
            record[layout.IMAGE] = os.path.relpath(self.data_dir / str(record[layout.IMAGE]), self.out)
        mask = density = None
        k, probability = None, 1.0
        for head, value in pred.items():
            kind = self.targets[head]
            if kind == "class":
                prob = value.softmax(0)
                if not torch.isfinite(prob).all():  # never a NaN probability in a STAR file
                    raise DataError(f"{p.name}: the model's class probabilities are not finite")
                k = int(prob.argmax())
                probability = float(prob[k])
                if layout.CLASS_NUMBER in record and "dsmInputClassNumber" not in record:
                    record["dsmInputClassNumber"] = record[layout.CLASS_NUMBER]
                record.update(
                    {layout.CLASS_NUMBER: k + 1, layout.CLASS_NAME: self.classes[k], "dsmClassProbability": probability}
                )
                record.update({f"dsmProb_{c}": float(v) for c, v in zip(self.classes, prob)})
            elif kind == "mask":
                mask = value.argmax(0).numpy().astype(np.int8)
            else:
                density = (value[0].numpy() * self.unscale).astype(np.float32)
        if p.box is not None and self.paint:
            self.paint[id(p.box.picks)].add(p.box, mask, density, k, probability)
            return record
        stem = f"{len(self.rows) + 1:06d}"
        if mask is not None:
            write_mrc(self.tmp / "masks" / f"{stem}.mrc", mask, self.voxel)
            record[layout.MASK] = f"masks/{stem}.mrc"
        if density is not None:
            write_mrc(self.tmp / "densities" / f"{stem}.mrc", density, self.voxel)
            record[layout.DENSITY] = f"densities/{stem}.mrc"
        return record


def _write_tables(tmp: Path, blocks: dict, rows: list[dict], skipped: list[tuple[Particle, str]], classes) -> None:
    """predictions.star (the input's other blocks kept), one STAR per predicted class, skipped.star."""
    name = (
        "particles"
        if "particles" in blocks or not blocks
        else next(k for k, v in blocks.items() if isinstance(v, pd.DataFrame))
    )
    table = pd.DataFrame(rows)

    def whole(particles: pd.DataFrame) -> dict:
        out = {k: v for k, v in blocks.items() if k != name}
        out[name] = particles
        return dict(sorted(out.items(), key=lambda kv: list(blocks).index(kv[0]) if kv[0] in blocks else len(blocks)))

    write_star(tmp / "predictions.star", whole(table))
    if layout.CLASS_NAME in table.columns:
        for cls, part in table.groupby(layout.CLASS_NAME, sort=False):
            write_star(tmp / "classes" / f"{cls}.star", whole(part.reset_index(drop=True)))
    if skipped:
        bad = pd.DataFrame([{**p.row, "dsmSkipReason": why} for p, why in skipped])
        write_star(tmp / "skipped.star", whole(bad))
    (tmp / layout.CLASSES).write_text(
        json.dumps([{"number": i + 1, "name": c} for i, c in enumerate(classes)], indent=1) + "\n"
    )

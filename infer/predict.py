"""Prediction on users' data: classes with every class's probability, masks and densities.

Four kinds of input (:mod:`dsmnet.infer.sources`), all read lazily (a batch at a time, the next
one read while the model runs):

* a dsmnet dataset folder (``particles.star`` + subtomograms, e.g. from ``dsmnet extract``);
* a folder of MRC subtomograms made by other tools;
* a STAR file with ``rlnImageName`` (RELION or Warp subtomograms; paths relative to the STAR
  file's folder or to the working directory, RELION's project folder);
* a tomogram and its picks (``--tomogram``/``--picks``, or ``--tomograms`` for picks from several
  tomograms): boxes are cut at the model's voxel size on the fly, and tomogram-sized label and
  density maps are written (:mod:`dsmnet.infer.tomo_maps`).

Outputs: ``predictions.star`` (the input's blocks and columns kept, so it goes back into RELION,
with ``rlnClassNumber`` set to the prediction — an input class number is kept as
``dsmInputClassNumber`` — and ``dsmClassName``, ``dsmClassProbability`` and ``dsmProb_<class>``
added), ``classes/<class>.star`` (the particles predicted as each class), ``classes.json`` and
``prediction.json`` (which runs and best epochs answered, with or without test-time turns, and
the code's revision).
A subtomogram that cannot be predicted (NaN or infinite voxels, a constant box, the wrong size or
voxel size) is an error naming it, or with ``skip_bad`` it is left out and listed in ``skipped.star``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dsmnet.core.fsutil import atomic_dir
from dsmnet.core.progress import Progress
from dsmnet.core.provenance import git_revision
from dsmnet.core.rotations import chosen_pose
from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError, write_mrc
from dsmnet.dataset.star import write_star
from dsmnet.dataset.subtomograms import check_voxels, normalise
from dsmnet.infer.extract import check_wedge
from dsmnet.infer.sources import Particle, Source, batches, load
from dsmnet.training.batches import prefetch
from dsmnet.training.ensemble import answered_by, load_for_use
from dsmnet.training.metrics import at_threshold
from dsmnet.training.runtime import make_runtime


class _Reader:
    """Reads and checks a batch's subtomograms; bad ones are an error, or skipped with a reason."""

    def __init__(self, box: tuple[int, ...], voxel_size: float, skip_bad: bool):
        self.box, self.voxel_size, self.skip_bad = box, voxel_size, skip_bad

    def __call__(self, batch: list[Particle]) -> tuple[list[Particle], np.ndarray, list[tuple[Particle, str]]]:
        good, volumes, bad = [], [], []
        for p in batch:
            try:
                volume, vs = load(p)
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
    tta: bool = False,
    ensemble: Sequence[str | Path] = (),
    log=print,
    picks_pixel_size: float | None = None,
    mask_threshold: float | None = None,
) -> dict[str, Any]:
    """Predict every particle of ``source`` (or of ``picks`` in ``tomogram``/``tomograms``); ``in_memory``
    reads every file first (the benchmark's comparison); ``tta`` averages over the four wedge-preserving 180°
    turns (4× the time); ``ensemble``: more runs to average with (:mod:`~dsmnet.training.ensemble`);
    ``mask_threshold``: two-class masks drawn above it, not at their argmax (0.5)."""
    from dsmnet.infer.tomo_maps import TomogramMaps

    rt = make_runtime(device)
    model, _, state, settings = load_for_use(Path(run), rt, tta, ensemble, mask_threshold)
    box, want, classes = tuple(state["spec"]["input"]["shape"]), float(state.get("voxel_size") or 0.0), state["classes"]
    unscale = 1.0 / settings.density_scale  # densities back in the dataset's units
    src = Source.of(source, tomogram, picks, tomograms, box[0], want, rescale, border, in_memory, log, picks_pixel_size)
    check_wedge(src.groups, settings.wedge, log, settings.wedge_axis)
    reader = _Reader(box, want, skip_bad)
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp, torch.no_grad():
        paint = {id(g): TomogramMaps(g, tmp, classes, src.voxel) for g in src.groups} if maps else {}
        writer = _Writer(model, rt, classes, unscale, tmp, out, src.data_dir, paint, src.voxel, mask_threshold)
        with Progress(src.total, "predict", "particles", log, enabled=progress) as bar:
            skipped = _read_ahead(batches(src.items, batch_size), reader, writer, bar)
        if not writer.count:
            raise DataError(f"{source or picks}: no particle could be predicted ({len(skipped)} skipped)")
        table = writer.table()
        _write_tables(tmp, src.blocks, table, skipped, classes)
        for maker in paint.values():
            maker.close()
        _made_by(tmp, run, state, tta, mask_threshold, source or picks, rt, writer.count, len(skipped))
    for _, why in skipped:
        log(f"skipped {why}")
    counts = table[layout.CLASS_NAME].value_counts().to_dict() if layout.CLASS_NAME in table else {}
    return {
        "particles": len(table),
        "skipped": len(skipped),
        "classes": {str(k): int(v) for k, v in counts.items() if k is not None},
        "out": str(out),
        "device": rt.describe(),
        "maps": [str(out / m.relative) for m in paint.values()],
    }


def _made_by(tmp: Path, run, state: dict, tta: bool, cut, source, rt, particles: int, skipped: int) -> None:
    """``prediction.json``: what made the predictions — the run (or an ensemble's runs) and best
    epoch, the test-time turns, the masks' threshold, the input, the device and dsmnet's revision
    — and how many."""
    made_by = {
        "runs": answered_by(run, state),
        "tta": "rot180x4" if tta else None,
        "mask_threshold": cut,
        "input": str(source),
        "particles": particles,
        "skipped": skipped,
        "device": rt.describe(),
        "dsmnet": git_revision(),
    }
    (tmp / "prediction.json").write_text(json.dumps(made_by, indent=1) + "\n")


class _Writer:
    """Runs the model on a batch; masks and densities go to files or maps as they come, and each
    particle's table row is kept as a reference into its input table plus its predicted class and
    probabilities (arrays), so memory does not grow with the rows' columns."""

    def __init__(self, model, rt, classes, unscale, tmp: Path, out: Path, data_dir: Path | None, paint, voxel, cut):
        self.model, self.rt, self.classes, self.unscale, self.cut = model, rt, classes, unscale, cut
        self.targets = dict(model.targets)
        self.tmp, self.out, self.data_dir, self.paint, self.voxel = tmp, out, data_dir, paint, voxel
        self.tables: dict[int, pd.DataFrame] = {}  # id → an input table the particles are rows of
        self.refs: list[np.ndarray] = []  # per batch: (table id, row position) of each particle
        self.probs: list[np.ndarray] = []  # per batch: every class's probability
        self.poses: list[np.ndarray] = []  # per batch: the predicted poses (a pose head's)
        self.files: set[str] = set()  # the per-particle outputs written: layout.MASK, layout.DENSITY
        self.count = 0

    def __call__(self, good: list[Particle], x: np.ndarray) -> None:
        if not good:
            return
        with self.rt.autocast():
            pred = self.model(self.rt.input(torch.from_numpy(x)))
        pred = at_threshold({k: v.float().cpu() for k, v in pred.items()}, self.targets, self.cut)
        kinds = {self.targets[head]: value for head, value in pred.items()}
        prob = kinds["class"].softmax(1) if "class" in kinds else None
        if prob is not None and not (finite := torch.isfinite(prob).all(1)).all():
            bad = good[int((~finite).nonzero()[0])]  # never a NaN probability in a STAR file
            raise DataError(f"{bad.name}: the model's class probabilities are not finite")
        masks = kinds["mask"].argmax(1).numpy().astype(np.int8) if "mask" in kinds else None
        densities = (kinds["density"][:, 0].numpy() * self.unscale).astype(np.float32) if "density" in kinds else None
        for j, p in enumerate(good):
            mask = None if masks is None else masks[j]
            density = None if densities is None else densities[j]
            self._files(p, self.count + j + 1, mask, density, prob[j] if prob is not None else None)
        for p in good:
            self.tables.setdefault(id(p.table), p.table)
        self.refs.append(np.array([(id(p.table), p.i) for p in good], dtype=np.int64))
        if prob is not None:
            self.probs.append(prob.numpy().astype(np.float32))
        if "pose" in kinds:
            self.poses.append(chosen_pose(kinds["pose"]).double().numpy())
        self.count += len(good)

    def _files(self, p: Particle, number: int, mask, density, prob) -> None:
        if p.box is not None and self.paint:
            k = int(prob.argmax()) if prob is not None else None
            self.paint[id(p.box.picks)].add(p.box, mask, density, k, float(prob[k]) if k is not None else 1.0)
            return
        for name, volume, folder in ((layout.MASK, mask, "masks"), (layout.DENSITY, density, "densities")):
            if volume is not None:
                write_mrc(self.tmp / folder / f"{number:06d}.mrc", volume, self.voxel)
                self.files.add(name)

    def table(self) -> pd.DataFrame:
        """The predicted particles' rows: their input columns (in prediction order), an input
        class number kept as ``dsmInputClassNumber``, then the predictions."""
        refs = np.concatenate(self.refs)
        parts = []
        for key, table in self.tables.items():
            at = np.flatnonzero(refs[:, 0] == key)
            parts.append(table.iloc[refs[at, 1]].set_axis(at))
        table = pd.concat(parts).sort_index() if len(parts) > 1 else parts[0].reset_index(drop=True)
        if self.data_dir is not None and layout.IMAGE in table:  # paths stay valid from the output folder
            table[layout.IMAGE] = [os.path.relpath(self.data_dir / str(n), self.out) for n in table[layout.IMAGE]]
        if self.probs:
            prob = np.concatenate(self.probs)
            k = prob.argmax(1)
            if layout.CLASS_NUMBER in table and "dsmInputClassNumber" not in table:
                table["dsmInputClassNumber"] = table[layout.CLASS_NUMBER]
            table[layout.CLASS_NUMBER] = k + 1
            table[layout.CLASS_NAME] = np.asarray(self.classes, dtype=object)[k]
            table["dsmClassProbability"] = prob[np.arange(len(k)), k].astype(float)
            for c, column in zip(self.classes, prob.T):
                table[f"dsmProb_{c}"] = column.astype(float)
        if self.poses:
            _write_poses(table, np.concatenate(self.poses))
        numbers = np.arange(1, len(table) + 1)
        for name, folder in ((layout.MASK, "masks"), (layout.DENSITY, "densities")):
            if name in self.files:
                table[name] = [f"{folder}/{n:06d}.mrc" for n in numbers]
        return table


def _write_poses(table: pd.DataFrame, poses: np.ndarray) -> None:
    """The predicted poses as ``rlnAngleRot/Tilt/Psi`` (ZYZ degrees, the reference of each class
    as the model learned it turned into the particle); input angles kept as ``dsmInputAngle…``."""
    from scipy.spatial.transform import Rotation

    angles = Rotation.from_matrix(poses).as_euler("ZYZ", degrees=True)
    for column, values in zip(layout.ANGLES, angles.T):
        kept = "dsmInput" + column.removeprefix("rln")
        if column in table and kept not in table:
            table[kept] = table[column]
        table[column] = values


def _read_ahead(batches: Iterator[list[Particle]], reader: _Reader, writer: _Writer, bar: Progress):
    """Predict every batch, the next one drawn (cut or read) and checked in a thread while the
    model runs on this one; the particles skipped, with why."""
    skipped: list[tuple[Particle, str]] = []
    for n, good, x, bad in prefetch(batches, lambda batch: (len(batch), *reader(batch)), depth=1):
        skipped += bad
        writer(good, x)
        bar.update(n)
    return skipped


def _write_tables(tmp: Path, blocks: dict, table: pd.DataFrame, skipped: list[tuple[Particle, str]], classes) -> None:
    """predictions.star (the input's other blocks kept), one STAR per predicted class, skipped.star."""
    name = (
        "particles"
        if "particles" in blocks or not blocks
        else next(k for k, v in blocks.items() if isinstance(v, pd.DataFrame))
    )

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

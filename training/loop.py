"""The training protocol of the paper (§3.2), resumable and distributed.

Adam (lr 1e-3, β = (0.9, 0.99)), batch 64, at most 100 epochs, early stopping after 15 epochs
without a lower validation loss; all from the spec's ``training`` section, overridable. Each
epoch ends with ``last.pt`` (everything needed to resume) and, when the validation loss
improved, ``best.pt``; both are written atomically, so a run killed at any moment loses at most
the epoch in progress. Shuffling and dropout are seeded per epoch, so a resumed run continues
exactly as the uninterrupted one would have.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dsmnet.core.build import build_loss, build_model, load_spec, plan
from dsmnet.core.fsutil import atomic_write_text
from dsmnet.core.progress import Progress
from dsmnet.core.spec import Spec
from dsmnet.dataset.mrc import DataError
from dsmnet.registry.errors import UserError
from dsmnet.training.augment import Augment, augment, measured_frequencies
from dsmnet.training.checkpoint import load_checkpoint, save_checkpoint
from dsmnet.training.data import Subtomograms, load_dataset, stratified_split
from dsmnet.training.metrics import Confusion
from dsmnet.training.runtime import Precision, Runtime, make_runtime


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (a NaN loss, a run folder in the way…); the message says why."""


@dataclass
class TrainConfig:
    """Run settings; ``None`` takes the spec's ``training`` value."""

    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    patience: int | None = None
    weight_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    augment: Augment = "none"
    precise_bn: int = 512
    prior_init: bool = True
    progress: bool = True
    in_memory: bool = False  # read every volume up front instead of a batch at a time

    def resolved(self, spec: Spec) -> dict[str, Any]:
        t = spec.training.model_dump()
        for key in ("lr", "batch_size", "epochs", "patience", "weight_decay"):
            value = getattr(self, key)
            if value is not None:
                t[key] = value
        return {
            **t,
            "seed": self.seed,
            "augment": self.augment,
            "precise_bn": self.precise_bn,
            "prior_init": self.prior_init,
        }


class TrainStep(torch.nn.Module):
    """Model and loss in one module, so DDP synchronises learned loss weights too."""

    def __init__(self, model: torch.nn.Module, criterion: torch.nn.Module):
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, x, targets, present):
        out = self.model(x)
        out = {k: v.float() for k, v in out.items()}
        return self.criterion(out, targets, present)


def fit_classes(spec: Spec, model_targets: dict[str, str], n_classes: int) -> tuple[Spec, list[str]]:
    """Set every classification head's ``classes`` to the dataset's number of classes."""
    data = spec.to_dict()
    notes = []
    for head, kind in model_targets.items():
        if kind == "class" and data["heads"][head].get("classes") != n_classes:
            data["heads"][head]["classes"] = n_classes
            notes.append(f"heads.{head}.classes set to {n_classes}, the dataset's number of classes")
    return (load_spec(data) if notes else spec), notes


def _chunks(indices: torch.Tensor, size: int = 256):
    for start in range(0, len(indices), size):
        yield indices[start : start + size]


def target_priors(data: Subtomograms, indices: list[int], classes: int) -> dict[str, torch.Tensor]:
    """What an untrained head should predict, from the training split: class frequencies,
    voxel class frequencies of the masks, mean density (only over particles that have the target;
    volumes are read a chunk at a time)."""
    idx = torch.tensor(indices)
    out: dict[str, torch.Tensor] = {}
    for kind, values in data.targets.items():
        has = idx[data.present[kind][idx]]
        if not len(has):
            continue
        if kind == "class":
            out[kind] = torch.bincount(values[has], minlength=classes).double() + 1.0
        elif kind == "mask":
            counts = sum(torch.bincount(values[c].flatten().long(), minlength=2).double() for c in _chunks(has))
            out[kind] = counts + 1.0
        else:
            total = sum(values[c].double().sum() for c in _chunks(has))
            out[kind] = total / (len(has) * math.prod(tuple(values.shape[1:])))
    return out


def density_scale(data: Subtomograms, indices: list[int]) -> float:
    """The factor that gives the training split's density targets unit standard deviation, so that
    the recovery loss (MSE) starts at the order of the cross-entropies (the paper weights the tasks
    "to keep the order of magnitude for three tasks at the same level"); 1 without densities."""
    if "density" not in data.targets:
        return 1.0
    idx = torch.tensor(indices)
    has = idx[data.present["density"][idx]]
    values = data.targets["density"]
    n = s1 = s2 = 0.0
    for c in _chunks(has):
        v = values[c].double()
        n, s1, s2 = n + v.numel(), s1 + float(v.sum()), s2 + float((v**2).sum())
    if n < 2:
        return 1.0
    std = math.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0) * n / (n - 1))
    return 1.0 / std if std > 0 else 1.0


def init_priors(model: torch.nn.Module, priors: dict[str, torch.Tensor]) -> list[str]:
    """Call ``init_prior`` on every head that has one (an optional part of the head protocol)."""
    done = []
    for head, kind in model.targets.items():
        init = getattr(model.heads[head], "init_prior", None)
        if init is not None and kind in priors:
            init(priors[kind])
            done.append(head)
    return done


@torch.no_grad()
def evaluate_split(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    data: Subtomograms,
    indices: list[int],
    rt: Runtime,
    batch_size: int,
    keep: bool = False,
) -> dict[str, Any]:
    """Loss and the paper's metrics on ``indices``; with ``keep``, the predictions too."""
    model.eval()
    targets_of = dict(model.targets)
    confusion: dict[str, Confusion] = {}
    sums: dict[str, float] = {}
    n = 0
    kept: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(indices), batch_size):
        idx = torch.tensor(indices[start : start + batch_size])
        x, targets, present = data.batch(idx)
        with rt.autocast():
            out = model(rt.input(x))
        out = {k: v.float() for k, v in out.items()}
        on_device = ({k: v.to(rt.device) for k, v in d.items()} for d in (targets, present))
        result = criterion(out, *on_device)  # the loss lives where the model does (CUDA included)
        out = {k: v.cpu() for k, v in out.items()}
        b = len(idx)
        n += b
        sums["loss"] = sums.get("loss", 0.0) + float(result.total) * b
        for task, value in result.tasks.items():
            sums[f"loss_{task}"] = sums.get(f"loss_{task}", 0.0) + float(value) * b
        for head, pred in out.items():
            kind = targets_of[head]
            if keep:
                kept.setdefault(head, []).append(pred.softmax(1) if kind == "class" else pred)
            if kind not in targets:
                continue
            has = present[kind]
            if kind in ("class", "mask"):
                k = pred.shape[1]
                conf = confusion.setdefault(head, Confusion(k))
                if has.any():
                    conf.update(pred[has].argmax(1), targets[kind][has])
            elif has.any():
                err = ((pred[has] - targets[kind][has].reshape(pred[has].shape)) ** 2).flatten(1).mean(1)
                sums[f"mse_{head}"] = sums.get(f"mse_{head}", 0.0) + float(err.sum())
                sums[f"n_{head}"] = sums.get(f"n_{head}", 0.0) + int(has.sum())
    metrics: dict[str, Any] = {k: v / max(n, 1) for k, v in sums.items() if k.startswith("loss")}
    for head, conf in confusion.items():
        if targets_of[head] == "class":
            metrics[f"acc_{head}"] = conf.accuracy
        else:
            metrics[f"pixel_acc_{head}"] = conf.accuracy
            metrics[f"miou_{head}"] = conf.miou
    for key in [k for k in sums if k.startswith("mse_")]:
        head = key.removeprefix("mse_")
        metrics[key] = sums[key] / max(sums[f"n_{head}"], 1)
    if keep:
        metrics["_predictions"] = {h: torch.cat(v) for h, v in kept.items()}
        metrics["_confusion"] = confusion
    return metrics


def prefetch(items, load, depth: int = 2):
    """``load(item)`` for each item, computed in a background thread up to ``depth`` items ahead
    and yielded in order (the next batch is read from disk and augmented while the model trains
    on this one). The loads run one at a time, in order, so seeded augmentation stays
    reproducible."""
    with ThreadPoolExecutor(1) as pool:
        queue: deque = deque()
        for item in items:
            queue.append(pool.submit(load, item))
            if len(queue) > depth:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive batches of ``size`` over ``n`` items; a lone last item joins
    the batch before it, since a batch of one cannot be batch-normalised in training mode."""
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


@torch.no_grad()
def precise_bn(model: torch.nn.Module, data: Subtomograms, indices: torch.Tensor, rt: Runtime, batch_size: int) -> None:
    """Recompute BatchNorm statistics as exact averages over ``indices`` with the current weights
    (Wu & Johnson's "precise BN"): the running averages lag a network that is still changing fast,
    and at low SNR the gap between batch and running statistics costs much validation accuracy."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not len(indices):
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for start, stop in batch_bounds(len(indices), batch_size):
        with rt.autocast():
            model(rt.input(data.x[indices[start:stop]]))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


@dataclass
class RunState:
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    initial: dict[str, float] = field(default_factory=dict)  # weighted per-task losses before training


def _prepare_run(out: Path, resume: bool, log=print) -> dict[str, Any] | None:
    last = out / "last.pt"
    if resume:
        if not last.is_file():  # killed before its first epoch ended, or never started
            log(f"{out}: nothing to resume (no last.pt yet); starting the run")
            return None
        return load_checkpoint(last)
    if last.is_file():
        raise TrainingError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    return None


def train(
    spec: Spec | str | Path,
    data_dir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    resume: bool = False,
    log=print,
) -> dict[str, Any]:
    """Train ``spec`` on a dataset folder into the run folder ``out``.

    Returns:
        A summary: best epoch, best validation loss, final metrics, the run folder.

    Raises:
        TrainingError: a NaN loss, a run folder in the way, nothing to resume.
        DataError / SpecError: bad data or spec, naming the file.
    """
    config = config or TrainConfig()
    out = Path(out)
    rt = make_runtime(config.device, config.precision)
    state = _prepare_run(out, resume, log)
    if state is not None:
        spec = load_spec(state["spec"])
        settings = dict(state["settings"])
        for key in ("epochs", "patience"):  # a resumed run may be given more time, nothing else
            if getattr(config, key) is not None:
                settings[key] = getattr(config, key)
        classes = state["classes"]
    else:
        spec = spec if isinstance(spec, Spec) else load_spec(spec)
        settings = config.resolved(spec)
        classes = None
    data = load_dataset(data_dir, classes=classes, box=spec.input.shape, in_memory=config.in_memory)
    classes = data.classes
    split = state["split"] if state is not None else stratified_split(data.labels, settings["seed"])
    if state is None:
        settings["density_scale"] = density_scale(data, split["train"])
    data.scale_density(settings.get("density_scale", 1.0))
    resolved = plan(spec)  # the model and the loss are built from this one resolution
    spec, notes = fit_classes(spec, resolved.targets, len(classes))
    if notes:
        resolved = plan(spec)
    for note in notes:
        log(f"note: {note}")
    missing = sorted(set(resolved.targets.values()) - set(data.targets))
    for kind in missing:
        log(f"note: the dataset has no {kind} targets; those heads get no training signal")
    torch.manual_seed(settings["seed"])
    model = rt.module(build_model(resolved))
    criterion = build_loss(resolved).to(rt.device)
    step = TrainStep(model, criterion)
    params = list(step.parameters())
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(settings["optimizer"])
    if opt_cls is not None:
        optimizer = opt_cls(
            params, lr=settings["lr"], betas=tuple(settings["betas"]), weight_decay=settings["weight_decay"]
        )
    else:
        optimizer = torch.optim.SGD(params, lr=settings["lr"], momentum=0.9, weight_decay=settings["weight_decay"])
    scaler = torch.amp.GradScaler(enabled=rt.dtype == torch.float16 and rt.device.type == "cuda")
    if state is not None:
        step.load_state_dict(state["step"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        run = RunState(state["epoch"], state["best_loss"], state["best_epoch"], state["bad_epochs"], state["history"])
        log(f"resuming {out} after epoch {run.epoch}")
    else:
        run = RunState()
        if settings.get("prior_init", False):
            done = init_priors(model, target_priors(data, split["train"], len(classes)))
            if done and rt.is_main:
                log(f"heads started from the training split's priors: {', '.join(done)}")
        if rt.is_main:
            initial = evaluate_split(model, criterion, data, split["train"][:256], rt, max(settings["batch_size"], 1))
            weights = {h: spec.losses[h].weight for h in spec.losses}
            run.initial = {h: initial[f"loss_{h}"] * weights[h] for h in weights if f"loss_{h}" in initial}
            log(
                "initial weighted losses (256 training particles): "
                + ", ".join(f"{h} {v:.3g}" for h, v in run.initial.items())
                + (f" (density target × {settings['density_scale']:.3g})" if "density" in data.targets else "")
            )
        if rt.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "spec.yaml", spec.to_yaml())
            atomic_write_text(out / "split.json", json.dumps(split) + "\n")
    trainer = step
    if rt.world > 1:
        trainer = torch.nn.parallel.DistributedDataParallel(
            step, device_ids=[rt.device.index] if rt.device.type == "cuda" else None
        )
    if not split["val"]:
        raise DataError(f"{data_dir}: too few particles for a validation split ({len(data)})")
    batch = settings["batch_size"]
    per_rank = max(1, batch // rt.world)
    if rt.is_main:
        log(
            f"training {spec.name} on {len(split['train'])} / validating on {len(split['val'])} particles "
            f"({rt.describe()}, batch {batch}, lr {settings['lr']}, ≤ {settings['epochs']} epochs, "
            f"patience {settings['patience']})"
        )
    augmenting = {True: "flip", False: "none"}.get(settings["augment"], settings["augment"])  # older runs: a bool
    measured = measured_frequencies(data.root, data.box, data.voxel_size) if augmenting == "rotate" else None
    started = time.perf_counter()
    while run.epoch < settings["epochs"] and run.bad_epochs < settings["patience"]:
        epoch = run.epoch + 1
        torch.manual_seed(settings["seed"] * 1_000_003 + epoch)
        gen = torch.Generator().manual_seed(settings["seed"] * 7919 + epoch)
        perm = torch.tensor(split["train"])[torch.randperm(len(split["train"]), generator=gen)]
        usable = len(perm) // rt.world * rt.world
        shard = perm[:usable][rt.rank :: rt.world]
        step.train()
        sums: dict[str, float] = {}
        seen = 0
        bounds = batch_bounds(len(shard), per_rank)
        bar = Progress(len(bounds), f"epoch {epoch}", "batches", log, enabled=config.progress and rt.is_main)
        t0 = time.perf_counter()

        def load(bounds: tuple[int, int], shard=shard, gen=gen):  # read and augment one batch
            idx = shard[bounds[0] : bounds[1]]
            x, targets, present = data.batch(idx)
            if augmenting != "none":
                moved = augment({"x": x, **targets}, augmenting, gen, measured)
                x, targets = moved.pop("x"), moved
            return bounds, idx, x, targets, present

        for (start, _), idx, x, targets, present in prefetch(bounds, load):
            x = rt.input(x)
            targets = {k: v.to(rt.device, non_blocking=True) for k, v in targets.items()}
            present = {k: v.to(rt.device, non_blocking=True) for k, v in present.items()}
            optimizer.zero_grad(set_to_none=True)
            with rt.autocast():
                result = trainer(x, targets, present)
            if not torch.isfinite(result.total):
                bad = [t for t, v in result.tasks.items() if not torch.isfinite(v)]
                raise TrainingError(
                    f"the loss became {float(result.total.detach())} at epoch {epoch}, batch {start // per_rank + 1} "
                    f"(tasks: {', '.join(bad) or 'weighting'}); lower the learning rate (now {settings['lr']}) "
                    f"or check the data. The last good state is in {out / 'last.pt'}"
                )
            scaler.scale(result.total).backward()
            scaler.step(optimizer)
            scaler.update()
            b = len(idx)
            seen += b
            sums["loss"] = sums.get("loss", 0.0) + float(result.total.detach()) * b
            for task, value in result.tasks.items():
                sums[f"loss_{task}"] = sums.get(f"loss_{task}", 0.0) + float(value.detach()) * b
            bar.update()
        bar.close()
        train_seconds = time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": epoch}
        record.update({f"train_{k}": v / max(seen, 1) for k, v in sums.items()})
        record["train_samples_per_s"] = seen * rt.world / train_seconds if train_seconds else 0.0
        stop = torch.zeros(1)
        if rt.is_main:
            if settings.get("precise_bn"):
                precise_bn(model, data, perm[: settings["precise_bn"]], rt, max(batch, 1))
            val = evaluate_split(model, criterion, data, split["val"], rt, max(batch, 1))
            record.update({f"val_{k}": v for k, v in val.items()})
            improved = val["loss"] < run.best_loss
            if improved:
                run.best_loss, run.best_epoch, run.bad_epochs = val["loss"], epoch, 0
            else:
                run.bad_epochs += 1
            run.epoch = epoch
            run.history.append(record)
            ckpt = {
                "spec": spec.to_dict(),
                "classes": classes,
                "settings": settings,
                "split": split,
                "epoch": run.epoch,
                "best_loss": run.best_loss,
                "best_epoch": run.best_epoch,
                "bad_epochs": run.bad_epochs,
                "history": run.history,
                "step": step.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "voxel_size": data.voxel_size,
                "data_fingerprint": data.fingerprint,
                "normalisation": "per-subtomogram zero mean, unit variance",
            }
            if improved:
                save_checkpoint(out / "best.pt", ckpt)
            save_checkpoint(out / "last.pt", ckpt)
            atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in run.history))
            shown = {k: v for k, v in record.items() if k.startswith("val_") and not k.startswith("val_loss_")}
            log(
                f"epoch {epoch}: train loss {record['train_loss']:.4f}, "
                + ", ".join(f"{k[4:]} {v:.4f}" for k, v in shown.items())
                + f", {record['train_samples_per_s']:.1f} samples/s"
                + (" *" if improved else "")
            )
            stop[0] = float(run.bad_epochs >= settings["patience"])
        else:
            run.epoch = epoch
        if rt.world > 1:
            dist.broadcast(stop, 0)
            if stop.item():
                break
    summary = {
        "run": str(out),
        "epochs": run.epoch,
        "best_epoch": run.best_epoch,
        "best_val_loss": run.best_loss,
        "stopped_early": run.bad_epochs >= settings["patience"],
        "initial_weighted_losses": run.initial,
        "seconds": time.perf_counter() - started,
        "notes": notes,
    }
    if rt.is_main:
        from dsmnet.training.figures import training_curves

        training_curves(run.history, out / "curves.png")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    if rt.world > 1:
        dist.barrier()
    return summary


def load_trained(
    run: Path, which: str = "best", rt: Runtime | None = None
) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """The model and loss of a run folder (or checkpoint file) in eval mode, placed for ``rt``
    (its device and memory layout; the CPU by default)."""
    from dsmnet.training.checkpoint import find_checkpoint

    state = load_checkpoint(find_checkpoint(Path(run), which))
    resolved = plan(state["spec"])
    step = TrainStep(build_model(resolved), build_loss(resolved))
    step.load_state_dict(state["step"])
    step.eval()
    if rt is None:
        return step.model, step.criterion, state
    return rt.module(step.model), step.criterion.to(rt.device), state

"""The training protocol of the paper (§3.2), resumable and distributed.

Adam (lr 1e-3, β = (0.9, 0.99)), batch 64, at most 100 epochs, early stopping after 15 epochs
without a lower validation loss; all from the spec's ``training`` section, overridable. Each
epoch ends with ``last.pt`` (everything needed to resume) and, when the validation loss
improved, ``best.pt``; both are written atomically, so a run killed at any moment loses at most
the epoch in progress. Shuffling and dropout are seeded per epoch, so a resumed run continues
exactly as the uninterrupted one would have.

The pieces live beside it: :mod:`~dsmnet.training.step` (the training step, loading a run),
:mod:`~dsmnet.training.priors` (class count, head priors, density scale, precise BN),
:mod:`~dsmnet.training.validate` (metrics on a split), :mod:`~dsmnet.training.batches`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dsmnet.core.build import build_loss, build_model, load_spec, plan
from dsmnet.core.fsutil import atomic_write_text
from dsmnet.core.progress import Progress
from dsmnet.core.provenance import git_revision
from dsmnet.core.spec import Spec
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import Subtomograms, available_memory, load_dataset, stratified_split
from dsmnet.training.augment import RESAMPLED, augment, dataset_microscope, measured_frequencies, wedge_turns
from dsmnet.training.batches import batch_bounds, prefetch
from dsmnet.training.checkpoint import find_checkpoint, save_checkpoint
from dsmnet.training.ema import WeightAverage
from dsmnet.training.fresh import FreshData
from dsmnet.training.priors import density_scale, fit_classes, init_priors, precise_bn, target_priors
from dsmnet.training.runtime import Runtime, keep_freed_memory, make_runtime
from dsmnet.training.settings import (
    MORE_TIME,
    RunState,
    TrainConfig,
    TrainingError,
    learning_rate,
    make_optimizer,
    plateau_scale,
    prepare_run,
)
from dsmnet.training.step import TrainStep, init_from
from dsmnet.training.validate import evaluate_split
from dsmnet.training.watch import CHECK_EVERY, FiniteWatch, rank_seed, total_norm


def _with_session(values: list[str], current: str) -> list[str]:
    """A run's per-session record (code revision, arithmetic) with this session's value added,
    unless the last session had the same."""
    return list(values) if values and values[-1] == current else [*values, current]


class _Run:
    """One training run: its data, model, optimiser and state, and what each epoch does."""

    def __init__(self, spec, data_dir, out: Path, config: TrainConfig, state: dict | None, log):
        self.out, self.config, self.log = out, config, log
        self.rt: Runtime = make_runtime(config.device, config.precision)
        self.revision, self.started = git_revision(), time.perf_counter()  # (started: reset where training begins)
        if state is None and config.init:  # a missing --init run is refused before the dataset is read
            find_checkpoint(Path(config.init))
        if state is not None:
            data = dict(state["spec"])
            self.settings = dict(state["settings"])
            for key in MORE_TIME:  # a resumed run may be given more time, nothing else
                if getattr(config, key) is not None and getattr(config, key) != self.settings[key]:
                    self.settings[key] = getattr(config, key)
                    data["training"] = {**data.get("training", {}), key: getattr(config, key)}
            spec = load_spec(data)
        else:
            spec = spec if isinstance(spec, Spec) else load_spec(spec)
            self.settings = config.resolved(spec)
        box = spec.input.shape
        self.data: Subtomograms = load_dataset(
            data_dir, classes=state["classes"] if state else None, box=box, in_memory=config.in_memory
        )
        self.split = state["split"] if state is not None else stratified_split(self.data.labels, self.settings["seed"])
        if not self.split["val"]:
            raise DataError(f"{data_dir}: too few particles for a validation split ({len(self.data)})")
        if state is None:
            self.settings["density_scale"] = density_scale(self.data, self.split["train"])
        self.data.scale_density(self.settings.get("density_scale", 1.0))
        if self.rt.device.type == "cpu":  # after the dataset is opened: its pass over every file stays out
            keep_freed_memory()
        self.spec, self.resolved, self.notes = self._fit(spec)
        if not config.in_memory and self.rt.is_main:
            self._say_if_it_fits()
        torch.manual_seed(self.settings["seed"])
        self.model = self.rt.module(build_model(self.resolved))
        self.criterion = build_loss(self.resolved).to(self.rt.device)
        self.step = TrainStep(self.model, self.criterion)
        self.optimizer = make_optimizer(self.settings, list(self.step.parameters()))
        self.scaler = torch.amp.GradScaler(enabled=self.rt.dtype == torch.float16 and self.rt.device.type == "cuda")
        self.run = self._restore(state) if state is not None else self._start()
        self.ema = self._average(state)
        self.trainer = self.step
        if self.rt.world > 1:
            ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
            self.trainer = torch.nn.parallel.DistributedDataParallel(self.step, device_ids=ids)
        kind = self.settings["augment"]
        self.augment = {True: "flip", False: "none"}.get(kind, kind)  # older runs: a bool
        if state is None:  # the wedge the model is trained for, for its test-time turns
            scope = dataset_microscope(self.data.root)
            self.settings["wedge"] = [scope.tilt_min, scope.tilt_max]
        self.turns = wedge_turns(self.settings.get("wedge"))
        self.fresh = (
            FreshData(
                self.data.root, self.out / "fresh", self.settings["seed"], len(self.split["train"]),
                self.data.classes, self.data.box, self.settings.get("density_scale", 1.0),
            )
            if self.settings.get("fresh")
            else None
        )  # fmt: skip
        self.epoch_data = self.data  # the set the epoch in progress trains on
        self.measured = (
            measured_frequencies(self.data.root, self.data.box, self.data.voxel_size).to(self.rt.device)
            if self.augment in RESAMPLED
            else None
        )

    def _say_if_it_fits(self) -> None:
        """One line when the volumes the heads train on would take under a quarter of the free
        memory: ``--in-memory`` then reads them once instead of every epoch."""
        kinds = {"x", *self.resolved.targets.values()}
        need = self.data.nbytes(kinds)
        free = available_memory()
        if need and free and need < free / 4:
            self.log(
                f"note: the dataset's volumes take {need / 2**30:.2f} GiB, {free / 2**30:.0f} GiB are free: "
                "--in-memory reads them once instead of every epoch"
            )

    def _fit(self, spec: Spec):
        """The spec with its class count fitted to the data, resolved once for model and loss."""
        resolved = plan(spec)
        spec, notes = fit_classes(spec, resolved.targets, len(self.data.classes))
        if notes:
            resolved = plan(spec)
        for note in notes:
            self.log(f"note: {note}")
        for kind in sorted(set(resolved.targets.values()) - set(self.data.targets)):
            self.log(f"note: the dataset has no {kind} targets; those heads get no training signal")
        return spec, resolved, notes

    def _average(self, state: dict | None) -> WeightAverage | None:
        """The run's weight average (``ema`` decay > 0), restored from a checkpoint's ``step``."""
        if not self.settings.get("ema"):
            return None
        ema = WeightAverage(self.step, self.settings["ema"])
        if state is not None and "live" in state:
            ema.load_state_dict(state["step"], state.get("ema_updates", 0))
        return ema

    def _restore(self, state: dict) -> RunState:
        self.step.load_state_dict(state.get("live", state["step"]))  # (with EMA, "step" holds the average)
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.log(f"resuming {self.out} after epoch {state['epoch']}")
        if any(self.settings[k] != state["settings"][k] for k in MORE_TIME) and self.rt.is_main:
            atomic_write_text(self.out / "spec.yaml", self.spec.to_yaml())
            self.log(f"budget now {self.settings['epochs']} epochs, patience {self.settings['patience']}")
        run = RunState(state["epoch"], state["best_loss"], state["best_epoch"], state["bad_epochs"], state["history"])
        run.lr_scale = state.get("lr_scale", 1.0)  # (none before the plateau schedule)
        run.initial = state.get("initial", {})  # (checkpoints before 2026-12-01 have none of these three)
        run.seconds = state.get("seconds", 0.0)
        run.revisions = _with_session(state.get("revisions", []), self.revision)
        run.runtimes = _with_session(state.get("runtimes", []), self.rt.signature())  # (none before 2026-12-03)
        return run

    def _start(self) -> RunState:
        run = RunState(revisions=[self.revision], runtimes=[self.rt.signature()])
        if self.settings.get("prior_init", False):  # on every rank, so that all start alike
            priors = target_priors(self.data, self.split["train"], len(self.data.classes))
            done = init_priors(self.model, priors)
            if done and self.rt.is_main:
                self.log(f"heads started from the training split's priors: {', '.join(done)}")
        if self.settings.get("init"):  # after the priors: a copied head replaces its prior start
            copied, fresh = init_from(self.model, Path(self.settings["init"]))
            if self.rt.is_main:
                left = f"; fresh: {', '.join(sorted({'.'.join(k.split('.')[:2]) for k in fresh}))}" if fresh else ""
                self.log(f"started from {self.settings['init']}: {copied} weight tensors copied{left}")
        if not self.rt.is_main:
            return run
        batch = max(self.settings["batch_size"], 1)
        initial = evaluate_split(self.model, self.criterion, self.data, self.split["train"][:256], self.rt, batch)
        weights = {h: self.spec.losses[h].weight for h in self.spec.losses}
        run.initial = {h: initial[f"loss_{h}"] * weights[h] for h in weights if f"loss_{h}" in initial}
        scale = f" (density target × {self.settings['density_scale']:.3g})" if "density" in self.data.targets else ""
        self.log(
            "initial weighted losses (256 training particles): "
            + ", ".join(f"{h} {v:.3g}" for h, v in run.initial.items())
            + scale
        )
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "spec.yaml", self.spec.to_yaml())
        atomic_write_text(self.out / "split.json", json.dumps(self.split) + "\n")
        return run

    def train_epoch(self, epoch: int) -> tuple[dict[str, Any], torch.Tensor]:
        """One pass over the training split (this rank's shard); the record and the permutation.
        The losses stay on the device, summed, and are read once at the epoch's end; whether
        they and the gradients are finite is read every :data:`CHECK_EVERY` batches."""
        rt, settings = self.rt, self.settings
        torch.manual_seed(rank_seed(settings["seed"] * 1_000_003 + epoch, rt.rank))  # dropout: each rank its own
        gen = torch.Generator().manual_seed(settings["seed"] * 7919 + epoch)
        data, train = self.data, self.split["train"]
        if self.fresh is not None:  # a new set simulated like the dataset, every particle of it for training
            data = self.fresh.get(epoch)
            train = list(range(len(data)))
        self.epoch_data = data
        perm = torch.tensor(train)[torch.randperm(len(train), generator=gen)]
        if rt.rank:  # the permutation is shared; each rank draws its own augmentation after it
            gen = torch.Generator().manual_seed(rank_seed(settings["seed"] * 7919 + epoch, rt.rank))
        shard = perm[: len(perm) // rt.world * rt.world][rt.rank :: rt.world]
        per_rank = max(1, settings["batch_size"] // rt.world)
        bounds = batch_bounds(len(shard), per_rank)
        self.step.train()
        sums: dict[str, torch.Tensor] = {}
        watch = FiniteWatch(epoch, self.settings["lr"], self.out / "last.pt")
        seen = 0
        started = time.perf_counter()

        kinds = set(self.resolved.targets.values())

        def load(b: tuple[int, int]):  # read and augment one batch (in the prefetch thread)
            idx = shard[b[0] : b[1]]
            x, targets, present = data.batch(idx, kinds)  # only the targets the heads train on
            if self.rt.device.type == "cuda":  # pinned, so that the copies to the GPU run alongside its work
                x, targets = x.pin_memory(), {k: v.pin_memory() for k, v in targets.items()}
            if self.augment != "none":
                if self.rt.device.type != "cpu":  # augmented where it trains: on a GPU, off the CPU
                    x = x.to(self.rt.device, non_blocking=True)
                    targets = {k: v.to(self.rt.device, non_blocking=True) for k, v in targets.items()}
                moved = augment({"x": x, **targets}, self.augment, gen, self.measured, self.turns)
                x, targets = moved.pop("x"), moved
            return b[0] // per_rank + 1, len(idx), x, targets, present

        enabled = self.config.progress and rt.is_main
        with Progress(len(bounds), f"epoch {epoch}", "batches", self.log, enabled=enabled) as bar:
            for number, b, x, targets, present in prefetch(bounds, load):
                lr = learning_rate(settings, epoch, (number - 1) / len(bounds), self.run.lr_scale)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                result, norm = self._step(x, targets, present)
                seen += b
                watch.add(number, result, norm)
                sums["loss"] = sums.get("loss", 0.0) + result.total.detach() * b
                for task, value in result.tasks.items():
                    sums[f"loss_{task}"] = sums.get(f"loss_{task}", 0.0) + value.detach() * b
                if number % CHECK_EVERY == 0:
                    watch.check()
                bar.update()
        watch.check()
        seconds = time.perf_counter() - started
        values = self._gathered(seen, list(sums.values()))  # one read
        seen = int(values.pop()) if self.rt.world > 1 else seen
        totals = dict(zip(sums, values, strict=True))
        record: dict[str, Any] = {"epoch": epoch}
        record.update({f"train_{k}": v / max(seen, 1) for k, v in totals.items()})
        record["train_samples_per_s"] = seen / seconds if seconds else 0.0
        record["lr"] = learning_rate(settings, epoch, 1.0, self.run.lr_scale)
        return record, perm

    def _gathered(self, seen: int, sums) -> list[float]:
        """The epoch's summed losses (over several ranks: summed over every rank's shard, and the
        samples seen last), read from the device in one go."""
        values = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.rt.device) for v in sums])
        if self.rt.world == 1:
            return values.tolist()
        both = torch.cat([values, self.rt.flag(seen)])
        dist.all_reduce(both)
        return both.tolist()

    def _step(self, x, targets, present):
        """One optimiser step, with no read from the device: the result and the gradients' norm
        (None where fp16's scaler watches them), for :class:`FiniteWatch`."""
        rt = self.rt
        x = rt.input(x)
        targets = {k: v.to(rt.device, non_blocking=True) for k, v in targets.items()}
        # ``present`` stays on the host: the loss decides there which particles have a target
        self.optimizer.zero_grad(set_to_none=True)
        with rt.autocast():
            result = self.trainer(x, targets, present)
        self.scaler.scale(result.total).backward()
        norm = None
        if not self.scaler.is_enabled():  # fp16's scaler skips a step with infinite gradients itself
            norm = total_norm([p.grad for p in self.step.parameters() if p.grad is not None])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update()
        return result, norm

    def validate_and_save(self, epoch: int, record: dict[str, Any], perm: torch.Tensor) -> None:
        """Precise BN, validation, early-stopping bookkeeping, checkpoints and the epoch's line."""
        run, batch = self.run, max(self.settings["batch_size"], 1)
        judged = self.step if self.ema is None else self.ema.module  # the weights validated and kept
        if self.ema is not None:
            self.ema.copy_buffers()
        if self.settings.get("precise_bn"):
            precise_bn(judged.model, self.epoch_data, perm[: self.settings["precise_bn"]], self.rt, batch)
        val = evaluate_split(judged.model, judged.criterion, self.data, self.split["val"], self.rt, batch)
        record.update({f"val_{k}": v for k, v in val.items()})
        if not math.isfinite(val["loss"]):
            raise TrainingError(
                f"the validation loss became {val['loss']} after epoch {epoch} (the training loss was "
                f"{record['train_loss']:.4g}); lower the learning rate (now {self.settings['lr']}) or check the "
                f"data. The last good state is in {self.out / 'last.pt'}"
            )
        improved = val["loss"] < run.best_loss
        if improved:
            run.best_loss, run.best_epoch, run.bad_epochs = val["loss"], epoch, 0
        else:
            run.bad_epochs += 1
        scale = plateau_scale(self.settings, run.lr_scale, run.bad_epochs)
        if scale != run.lr_scale:
            self.log(f"no lower validation loss for {run.bad_epochs} epochs: learning rate × {scale / run.lr_scale:g}")
            run.lr_scale = scale
        run.epoch = epoch
        run.history.append(record)
        ckpt = self._checkpoint()
        if improved:
            save_checkpoint(self.out / "best.pt", ckpt)
        save_checkpoint(self.out / "last.pt", ckpt)
        atomic_write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in run.history))
        shown = {k: v for k, v in record.items() if k.startswith("val_") and not k.startswith("val_loss_")}
        self.log(
            f"epoch {epoch}: train loss {record['train_loss']:.4f}, "
            + ", ".join(f"{k[4:]} {v:.4f}" for k, v in shown.items())
            + f", {record['train_samples_per_s']:.1f} samples/s"
            + (" *" if improved else "")
        )

    @property
    def seconds(self) -> float:
        """Training time so far, over every session of the run."""
        return self.run.seconds + time.perf_counter() - self.started

    def _checkpoint(self) -> dict[str, Any]:
        run = self.run
        return {
            "spec": self.spec.to_dict(),
            "classes": self.data.classes,
            "settings": self.settings,
            "split": self.split,
            "epoch": run.epoch,
            "best_loss": run.best_loss,
            "best_epoch": run.best_epoch,
            "bad_epochs": run.bad_epochs,
            "lr_scale": run.lr_scale,
            "history": run.history,
            "initial": run.initial,
            "revisions": run.revisions,
            "runtimes": run.runtimes,
            "seconds": self.seconds,
            "step": (self.step if self.ema is None else self.ema).state_dict(),  # what evaluation uses
            **({} if self.ema is None else {"live": self.step.state_dict(), "ema_updates": self.ema.updates}),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "voxel_size": self.data.voxel_size,
            "data_fingerprint": self.data.fingerprint,
            "normalisation": "per-subtomogram zero mean, unit variance",
        }

    def stop_everywhere(self) -> bool:
        """Rank 0's early-stopping decision and learning-rate scale, broadcast to every rank in a
        tensor on the run's device (NCCL, the process group of every GPU run, takes no CPU tensor)."""
        stop = self.rt.flag(self.rt.is_main and self.run.bad_epochs >= self.settings["patience"])
        decided = torch.cat([stop, self.rt.flag(self.run.lr_scale)])
        dist.broadcast(decided, 0)
        stop, self.run.lr_scale = decided.tolist()
        return bool(stop)

    @property
    def going(self) -> bool:
        return self.run.epoch < self.settings["epochs"] and self.run.bad_epochs < self.settings["patience"]


def _silent(_: str) -> None:
    pass


def _schedule(settings: dict[str, Any]) -> str:
    warmup = settings.get("warmup", 0)
    parts = (
        ([f"{warmup}-epoch warm-up"] if warmup else [])
        + (["cosine decay"] if settings.get("schedule", "constant") == "cosine" else [])
        + (
            [f"× {settings['plateau_factor']:g} per {settings['plateau_patience']} epochs without a lower val. loss"]
            if settings.get("schedule") == "plateau"
            else []
        )
        + ([f"EMA {settings['ema']:g}"] if settings.get("ema") else [])
    )
    return f" ({', '.join(parts)})" if parts else ""


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
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 speaks for the run
        log = _silent
    r = _Run(spec, data_dir, out, config, prepare_run(out, resume, log), log)
    s = r.settings
    if r.rt.is_main:
        log(
            f"training {r.spec.name} on {len(r.split['train'])} / validating on {len(r.split['val'])} particles "
            f"({r.rt.describe()}, batch {s['batch_size']}, lr {s['lr']}{_schedule(s)}, ≤ {s['epochs']} epochs, "
            f"patience {s['patience']})"
        )
    r.started = time.perf_counter()  # training time, as before: the dataset check and set-up left out
    while r.going:
        epoch = r.run.epoch + 1
        record, perm = r.train_epoch(epoch)
        if r.rt.is_main:
            r.validate_and_save(epoch, record, perm)
        else:
            r.run.epoch = epoch
        if r.rt.world > 1 and r.stop_everywhere():
            break
    summary = {
        "run": str(out),
        "epochs": r.run.epoch,
        "best_epoch": r.run.best_epoch,
        "best_val_loss": r.run.best_loss,
        "stopped_early": r.run.bad_epochs >= s["patience"],
        "initial_weighted_losses": r.run.initial,
        "seconds": r.seconds,
        "samples_seen": r.run.epoch * len(r.split["train"]),  # training samples, over every epoch and rank
        "core_hours": r.seconds * torch.get_num_threads() * r.rt.world / 3600,  # this run's threads × time
        "revisions": r.run.revisions,
        "runtimes": r.run.runtimes,
        "notes": r.notes,
    }
    if r.rt.is_main:
        from dsmnet.training.figures import training_curves

        training_curves(r.run.history, out / "curves.png")
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    if r.fresh is not None:
        r.fresh.close()
    if r.rt.world > 1:
        dist.barrier()
    r.rt.close()
    return summary

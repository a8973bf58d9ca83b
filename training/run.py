"""A training run's set-up and state: its settings (typed, resolved once), data and split, model,
optimiser and progress, built in a few named steps from the spec and the command line (a new run)
or from its checkpoint (a resumed one); and the checkpoint it writes after every epoch. What each
epoch does is :mod:`dsmnet.training.loop`'s."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from dsmnet.core.build import build_loss, build_model, load_spec, plan
from dsmnet.core.fsutil import atomic_write_text
from dsmnet.core.provenance import git_revision, utc_now
from dsmnet.core.spec import Spec
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import Subtomograms, load_dataset, stratified_split
from dsmnet.training.augment import RESAMPLED, dataset_microscope, measured_frequencies, wedge_turns
from dsmnet.training.checkpoint import find_checkpoint, load_weights
from dsmnet.training.ema import WeightAverage
from dsmnet.training.fresh import FreshData
from dsmnet.training.priors import density_scale, fit_classes, init_priors, target_priors
from dsmnet.training.runtime import Runtime, available_memory, keep_freed_memory, make_runtime
from dsmnet.training.settings import MORE_TIME, RunSettings, RunState, TrainConfig, finished_learning, make_optimizer
from dsmnet.training.step import TrainStep, init_from
from dsmnet.training.validate import evaluate_split


def _with_session(values: list[str], current: str) -> list[str]:
    """A run's per-session record (code revision, arithmetic) with this session's value added,
    unless the last session had the same."""
    return list(values) if values and values[-1] == current else [*values, current]


class Run:
    """One training run: its settings, data, model, optimiser and progress."""

    def __init__(self, spec, data_dir, out: Path, config: TrainConfig, state: dict | None, log):
        self.out, self.config, self.log = out, config, log
        self.rt: Runtime = make_runtime(config.device, config.precision)
        self.revision, self.started = git_revision(), time.perf_counter()  # (started: reset where training begins)
        self.cpu_started = time.process_time()
        spec = self._settle(spec, state)
        self._open_data(data_dir, state, spec.input.shape)
        self.spec, self.resolved, self.notes = self._fit(spec)
        if not config.in_memory and self.rt.is_main:
            self._say_if_it_fits()
        self._build()
        self.run: RunState = self._restore(state) if state is not None else self._start()
        self.ema = self._average(state)
        self.trainer = self._distributed()
        self._prepare_inputs(new=state is None)

    def _settle(self, spec, state: dict | None) -> Spec:
        """The run's spec and :class:`RunSettings`: a new run's from the spec and the command line,
        a resumed run's from its checkpoint (given more time if the command line asks)."""
        if state is None:
            if self.config.init:  # a missing --init run is refused before the dataset is read
                find_checkpoint(Path(self.config.init))
            spec = spec if isinstance(spec, Spec) else load_spec(spec)
            self.settings = RunSettings.new(spec, self.config)
            return spec
        data = dict(state["spec"])
        self.settings = RunSettings.from_dict(state["settings"])
        more = self.settings.with_more_time(self.config)  # a resumed run may be given more time, nothing else
        if more:
            self.settings = dataclasses.replace(self.settings, **more)
            data["training"] = {**data.get("training", {}), **more}
        return load_spec(data)

    def _open_data(self, data_dir, state: dict | None, box: tuple[int, ...]) -> None:
        """The dataset (its classes in the run's order), the split and the density targets' scale."""
        self.data: Subtomograms = load_dataset(
            data_dir,
            classes=state["classes"] if state else None,
            box=box,
            in_memory=self.config.in_memory,
        )
        self.split = state["split"] if state is not None else stratified_split(self.data.labels, self.settings.seed)
        if not self.split["val"]:
            raise DataError(f"{data_dir}: too few particles for a validation split ({len(self.data)})")
        if state is None:
            self.settings.density_scale = density_scale(self.data, self.split["train"])
        self.data.scale_density(self.settings.density_scale)
        if self.rt.device.type == "cpu":  # after the dataset is opened: its pass over every file stays out
            keep_freed_memory()

    def _fit(self, spec: Spec):
        """The spec with its class count fitted to the data, resolved once for model and loss."""
        resolved = plan(spec)
        spec, notes = fit_classes(spec, resolved.targets, len(self.data.classes))
        if notes:
            resolved = plan(spec)
        for note in notes:
            self.log(f"note: {note}")
        for kind in sorted(resolved.kinds - set(self.data.targets)):
            self.log(f"note: the dataset has no {kind} targets; those heads get no training signal")
        if "pose" in resolved.targets.values() and self.settings.augment == "flip":
            raise DataError(
                "--augment flip mirrors particles, which no pose describes: a pose head trains with "
                "rotate, mixed, spin, rot180 or none"
            )
        return spec, resolved, notes

    def _say_if_it_fits(self) -> None:
        """One line when the volumes the heads train on would take under a quarter of the free
        memory: ``--in-memory`` then reads them once instead of every epoch."""
        kinds = {"x", *self.resolved.kinds}
        need = self.data.nbytes(kinds)
        free = available_memory()
        if need and free and need < free / 4:
            self.log(
                f"note: the dataset's volumes take {need / 2**30:.2f} GiB, {free / 2**30:.0f} GiB are free: "
                "--in-memory reads them once instead of every epoch"
            )

    def _build(self) -> None:
        """Model and loss from the resolved spec (seeded), the training step and its optimiser."""
        torch.manual_seed(self.settings.seed)
        self.model = self.rt.module(build_model(self.resolved))
        self.criterion = build_loss(self.resolved).to(self.rt.device)
        self.step = TrainStep(self.model, self.criterion)
        self.optimizer = make_optimizer(self.settings, list(self.step.parameters()))
        self.scaler = torch.amp.GradScaler(enabled=self.rt.dtype == torch.float16 and self.rt.device.type == "cuda")

    def _average(self, state: dict | None) -> WeightAverage | None:
        """The run's weight average (``ema`` decay > 0), restored from a checkpoint's ``step``."""
        if not self.settings.ema:
            return None
        ema = WeightAverage(self.step, self.settings.ema)
        if state is not None and "live" in state:
            ema.load_state_dict(state["step"], state.get("ema_updates", 0))
        return ema

    def _distributed(self) -> torch.nn.Module:
        """What the epoch calls: the step, wrapped for data parallelism over several ranks."""
        if self.rt.world == 1:
            return self.step
        ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(self.step, device_ids=ids)

    def _prepare_inputs(self, new: bool) -> None:
        """Augmentation's inputs: the dataset's wedge (a new run's, kept for test-time turns), the
        frequencies the data hold; and the freshly simulated sets of ``--fresh-data``."""
        if new:  # the wedge the model is trained for, for its test-time turns
            scope = dataset_microscope(self.data.root)
            self.settings.wedge = (scope.tilt_min, scope.tilt_max)
            self.settings.wedge_axis = scope.tilt_axis
        self.turns = wedge_turns(self.settings.wedge, self.settings.wedge_axis)
        s, data = self.settings, self.data
        self.fresh = (
            FreshData(data.root, self.out / "fresh", s.seed, len(self.split["train"]), data.classes, data.box,
                      s.density_scale)
            if s.fresh
            else None
        )  # fmt: skip
        self.epoch_data = data  # the set the epoch in progress trains on
        self.measured = (
            measured_frequencies(data.root, data.box, data.voxel_size).to(self.rt.device)
            if s.augment in RESAMPLED
            else None
        )

    def _restore(self, state: dict) -> RunState:
        live = state.get("live", state["step"])  # (with EMA, "step" holds the average)
        load_weights(self.step, live, self.out / "last.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.log(f"resuming {self.out} after epoch {state['epoch']}")
        if any(getattr(self.settings, k) != state["settings"][k] for k in MORE_TIME) and self.rt.is_main:
            atomic_write_text(self.out / "spec.yaml", self.spec.to_yaml())
            self.log(f"budget now {self.settings.epochs} epochs, patience {self.settings.patience}")
        run = RunState(state["epoch"], state["best_loss"], state["best_epoch"], state["bad_epochs"], state["history"])
        run.lr_scale = state.get("lr_scale", 1.0)  # (none before the plateau schedule)
        run.initial = state.get("initial", {})  # (checkpoints before 2026-12-01 have none of these three)
        run.seconds = state.get("seconds", 0.0)
        # (before 2026-12-05 the cost was wall time × this process's threads: the best guess for those sessions)
        run.cpu_seconds = state.get("cpu_seconds", run.seconds * torch.get_num_threads())
        run.revisions = _with_session(state.get("revisions", []), self.revision)
        run.runtimes = _with_session(state.get("runtimes", []), self.rt.signature())  # (none before 2026-12-03)
        run.sessions = [*state.get("sessions", []), self._session(state["epoch"])]
        return run

    def _session(self, after_epoch: int) -> dict[str, Any]:
        """This session's entry in the run's record of sessions (:attr:`RunState.sessions`)."""
        return {
            "began": utc_now(),
            "after_epoch": after_epoch,
            "host": platform.node(),
            "revision": self.revision,
            "runtime": self.rt.signature(),
            "threads": torch.get_num_threads(),
        }

    def _start(self) -> RunState:
        run = RunState(revisions=[self.revision], runtimes=[self.rt.signature()], sessions=[self._session(0)])
        self._initial_weights()
        if not self.rt.is_main:
            return run
        batch = max(self.settings.batch_size, 1)
        initial = evaluate_split(self.model, self.criterion, self.data, self.split["train"][:256], self.rt, batch)
        weights = {h: self.spec.losses[h].weight for h in self.spec.losses}
        run.initial = {h: initial[f"loss_{h}"] * weights[h] for h in weights if f"loss_{h}" in initial}
        scale = f" (density target × {self.settings.density_scale:.3g})" if "density" in self.data.targets else ""
        self.log(
            "initial weighted losses (256 training particles): "
            + ", ".join(f"{h} {v:.3g}" for h, v in run.initial.items())
            + scale
        )
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "spec.yaml", self.spec.to_yaml())
        atomic_write_text(self.out / "split.json", json.dumps(self.split) + "\n")
        return run

    def _initial_weights(self) -> None:
        """A new run's start: heads from the training split's priors, then ``--init``'s weights."""
        if self.settings.prior_init:  # on every rank, so that all start alike
            priors = target_priors(self.data, self.split["train"], len(self.data.classes))
            done = init_priors(self.model, priors)
            if done and self.rt.is_main:
                self.log(f"heads started from the training split's priors: {', '.join(done)}")
        if self.settings.init:  # after the priors: a copied head replaces its prior start
            copied, fresh = init_from(self.model, Path(self.settings.init))
            if self.rt.is_main:
                left = f"; fresh: {', '.join(sorted({'.'.join(k.split('.')[:2]) for k in fresh}))}" if fresh else ""
                self.log(f"started from {self.settings.init}: {copied} weight tensors copied{left}")

    @property
    def seconds(self) -> float:
        """Training time so far, over every session of the run."""
        return self.run.seconds + time.perf_counter() - self.started

    @property
    def cpu_seconds(self) -> float:
        """CPU time so far, over every session: this process's threads (the readers' too) and the
        processes simulating ``--fresh-data``'s sets — what the run cost in core-seconds, whether
        it had the cores to itself or shared them with other runs."""
        fresh = self.fresh.cpu_seconds if self.fresh is not None else 0.0
        return self.run.cpu_seconds + time.process_time() - self.cpu_started + fresh

    @property
    def going(self) -> bool:
        return self.run.epoch < self.settings.epochs and finished_learning(self.settings, self.run) is None

    def checkpoint(self) -> dict[str, Any]:
        """Everything a resumed run, evaluation and prediction need (``step``: the weights they use)."""
        run = self.run
        return {
            "spec": self.spec.to_dict(),
            "classes": self.data.classes,
            "settings": self.settings.to_dict(),
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
            "sessions": run.sessions,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "step": (self.step if self.ema is None else self.ema).state_dict(),  # what evaluation uses
            **({} if self.ema is None else {"live": self.step.state_dict(), "ema_updates": self.ema.updates}),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "voxel_size": self.data.voxel_size,
            "data_fingerprint": self.data.fingerprint,
            "normalisation": "per-subtomogram zero mean, unit variance",
        }

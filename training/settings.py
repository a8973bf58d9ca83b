"""A training run's settings: what the caller asks for (:class:`TrainConfig`, ``None`` taking the
spec's ``training`` value), the run's progress (:class:`RunState`, saved in every checkpoint), the
run folder's check and the optimiser the settings name."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from dsmnet.core.spec import Spec, floor_problem
from dsmnet.registry.errors import UserError
from dsmnet.training.checkpoint import load_checkpoint
from dsmnet.training.options import Augment, Precision


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (a NaN loss, a run folder in the way…); the message says why."""


# what a resumed run may be given more of (nothing else of its settings changes)
MORE_TIME: tuple[str, ...] = ("epochs", "patience")


@dataclass
class TrainConfig:
    """What the caller asks of a run (the command line's flags); ``None`` takes the spec's
    ``training`` value. The first six fields concern the session (where and how it computes),
    the rest the run; :meth:`RunSettings.new` merges them with the spec, once."""

    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    patience: int | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: int | None = None
    ema: float | None = None
    min_lr: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    augment: Augment = "none"
    precise_bn: int = 512
    precise_bn_fixed: bool = False  # the same training particles for precise BN before every validation
    prior_init: bool = True
    progress: bool = True
    in_memory: bool = False  # read every volume up front instead of a batch at a time
    init: str | None = None  # a trained run (or checkpoint) whose fitting weights a new run starts from
    fresh: bool = False  # train each epoch on a set simulated afresh like the dataset (training.fresh)


# the spec's ``training`` fields a TrainConfig may override
OVERRIDES: tuple[str, ...] = (
    "lr", "batch_size", "epochs", "patience", "weight_decay", "schedule", "warmup", "ema", "min_lr",
)  # fmt: skip


@dataclass
class RunSettings:
    """One run's settings, typed: the spec's ``training`` section with the caller's overrides,
    and what the run measured at its start (``density_scale``, the dataset's ``wedge``). Saved in
    every checkpoint as a plain dict (:meth:`to_dict`); a checkpoint from before a field existed
    reads it at the value that reproduces what that run did (:meth:`from_dict`)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 100
    patience: int = 15
    schedule: str = "constant"  # (runs saved before schedules existed: constant)
    warmup: int = 0
    plateau_patience: int = 5
    plateau_factor: float = 0.2
    min_lr: float = 0.0  # the plateau schedule's floor (runs saved before it: none, 0)
    ema: float = 0.0
    seed: int = 0
    augment: str = "none"
    precise_bn: int = 0  # (runs saved before precise BN: none)
    precise_bn_fixed: bool = False  # (runs saved before it: a new sample each epoch)
    prior_init: bool = False
    init: str | None = None
    fresh: bool = False
    density_scale: float = 1.0  # the density targets' scale, measured on the training split
    wedge: tuple[float, float] | None = None  # the dataset's tilt range (runs before 2026-12-04: unknown)
    wedge_axis: str = "y"  # the box axis its tilt axis lies along (runs before 2026-12-05: y, the only one)

    @classmethod
    def new(cls, spec: Spec, config: TrainConfig) -> RunSettings:
        """A new run's settings: the spec's training section, overridden where ``config`` says."""
        values = spec.training.model_dump()
        values.update({k: getattr(config, k) for k in OVERRIDES if getattr(config, k) is not None})
        values.update(
            seed=config.seed, augment=config.augment, precise_bn=config.precise_bn,
            precise_bn_fixed=config.precise_bn_fixed,
            prior_init=config.prior_init, init=config.init, fresh=config.fresh,
        )  # fmt: skip
        problem = floor_problem(values["schedule"], values["lr"], values.get("min_lr"))
        if problem:
            raise TrainingError(f"{spec.name}: {problem} (the spec's training section with the command line's options)")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        """Settings from a checkpoint's dict, of any age: a missing field takes the value that
        reproduces the old run; ``augment`` saved as a bool (oldest runs) is ``flip`` or ``none``."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        if isinstance(known.get("augment"), bool):
            known["augment"] = "flip" if known["augment"] else "none"
        known["betas"] = tuple(known.get("betas", cls.betas))
        if known.get("wedge") is not None:
            known["wedge"] = tuple(known["wedge"])
        known["precise_bn"] = known.get("precise_bn") or 0
        known["min_lr"] = known.get("min_lr") or 0.0
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's form: every field, by name (a list for the wedge)."""
        values = asdict(self)
        values["wedge"] = list(self.wedge) if self.wedge is not None else None
        return values

    def with_more_time(self, config: TrainConfig) -> dict[str, int]:
        """The fields of :data:`MORE_TIME` a resumed run's ``config`` changes, at their new value."""
        return {k: getattr(config, k) for k in MORE_TIME if getattr(config, k) not in (None, getattr(self, k))}

    def describe(self) -> str:
        """The rate and its schedule, as a run's first line reads them."""
        parts = (
            ([f"{self.warmup}-epoch warm-up"] if self.warmup else [])
            + (["cosine decay"] if self.schedule == "cosine" else [])
            + (
                [f"× {self.plateau_factor:g} per {self.plateau_patience} epochs without a lower val. loss"]
                if self.schedule == "plateau"
                else []
            )
            + ([f"stop below {self.min_lr:g}"] if self.min_lr else [])
            + ([f"EMA {self.ema:g}"] if self.ema else [])
        )
        return f"lr {self.lr}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass
class RunState:
    epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    lr_scale: float = 1.0  # the plateau schedule's reductions so far (a product of plateau_factor)
    initial: dict[str, float] = field(default_factory=dict)  # weighted per-task losses before training
    revisions: list[str] = field(default_factory=list)  # the code's git revision in each session of the run
    runtimes: list[str] = field(default_factory=list)  # each session's Runtime.signature(), when it changed
    # every session of the run, as it began: when (UTC), after which epoch, on which machine, with
    # which code and arithmetic (none for sessions before 2026-12-07); what a study's sitting notes read
    sessions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time of the sessions before this one
    cpu_seconds: float = 0.0  # the CPU time they used, every thread and helper process counted

    def validated(self, settings: RunSettings, epoch: int, loss: float) -> bool:
        """Epoch ``epoch``'s validation loss into the early-stopping state (best loss and epoch,
        epochs without a lower one, the plateau schedule's scale); whether it was a new best. The
        training loop's bookkeeping, and a replay of a kept run's losses (``precise-bn/floor.py``)."""
        improved = loss < self.best_loss
        if improved:
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
        else:
            self.bad_epochs += 1
        self.lr_scale = plateau_scale(settings, self.lr_scale, self.bad_epochs)
        self.epoch = epoch
        return improved


def prepare_run(out: Path, resume: bool, log=print) -> dict[str, Any] | None:
    last = out / "last.pt"
    if resume:
        if not last.is_file():  # killed before its first epoch ended, or never started
            log(f"{out}: nothing to resume (no last.pt yet); starting the run")
            return None
        return load_checkpoint(last)
    if last.is_file():
        raise TrainingError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    return None


def learning_rate(settings: RunSettings, epoch: int, done: float, scale: float = 1.0) -> float:
    """The rate for a batch of ``epoch`` (1-based) when ``done`` (0–1) of the epoch's batches came
    before it: ``lr`` after a linear warm-up over ``warmup`` epochs, then constant or decaying
    along a cosine to zero at ``epochs``; times ``scale``, the plateau schedule's reductions so
    far (:func:`plateau_scale`)."""
    base, at, warmup = settings.lr * scale, epoch - 1 + done, settings.warmup
    if at < warmup:  # (a thousandth of an epoch added: the first batch moves the weights too)
        return base * (at + 1e-3) / warmup
    if settings.schedule == "cosine":
        span = max(settings.epochs - warmup, 1e-9)
        return base * 0.5 * (1 + math.cos(math.pi * min((at - warmup) / span, 1.0)))
    return base


def plateau_scale(settings: RunSettings, scale: float, bad_epochs: int) -> float:
    """The plateau schedule's scale after an epoch that left ``bad_epochs`` epochs without a lower
    validation loss: reduced by ``plateau_factor`` at every ``plateau_patience``-th of them."""
    if settings.schedule != "plateau" or not bad_epochs or bad_epochs % settings.plateau_patience:
        return scale
    return scale * settings.plateau_factor


def finished_learning(settings: RunSettings, run: RunState) -> str | None:
    """Why the run stops before its last epoch, or None while it learns on: ``patience`` epochs
    without a lower validation loss, or the plateau schedule's rate taken below ``min_lr``. Both
    read from what every checkpoint holds, so a run killed after its last epoch stops on resuming."""
    if run.bad_epochs >= settings.patience:
        return f"{run.bad_epochs} epochs without a lower validation loss"
    if settings.min_lr and settings.lr * run.lr_scale < settings.min_lr:
        return f"the rate ({settings.lr * run.lr_scale:.3g}) below min_lr {settings.min_lr:g}"
    return None


def make_optimizer(settings: RunSettings, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    adam = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(settings.optimizer)
    if adam is not None:
        return adam(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)
    return torch.optim.SGD(params, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)

"""A training run's settings: what the caller asks for (:class:`TrainConfig`, ``None`` taking the
spec's ``training`` value), the run's progress (:class:`RunState`, saved in every checkpoint), the
run folder's check and the optimiser the settings name."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dsmnet.core.spec import Spec
from dsmnet.registry.errors import UserError
from dsmnet.training.checkpoint import load_checkpoint
from dsmnet.training.options import Augment, Precision


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (a NaN loss, a run folder in the way…); the message says why."""


# what a resumed run may be given more of (nothing else of its settings changes)
MORE_TIME: tuple[str, ...] = ("epochs", "patience")


@dataclass
class TrainConfig:
    """Run settings; ``None`` takes the spec's ``training`` value."""

    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    patience: int | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: int | None = None
    ema: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: Precision = "auto"
    augment: Augment = "none"
    precise_bn: int = 512
    prior_init: bool = True
    progress: bool = True
    in_memory: bool = False  # read every volume up front instead of a batch at a time
    init: str | None = None  # a trained run (or checkpoint) whose fitting weights a new run starts from
    fresh: bool = False  # train each epoch on a set simulated afresh like the dataset (training.fresh)

    def resolved(self, spec: Spec) -> dict[str, Any]:
        t = spec.training.model_dump()
        for key in ("lr", "batch_size", "epochs", "patience", "weight_decay", "schedule", "warmup", "ema"):
            value = getattr(self, key)
            if value is not None:
                t[key] = value
        return {
            **t,
            "seed": self.seed,
            "augment": self.augment,
            "precise_bn": self.precise_bn,
            "prior_init": self.prior_init,
            "init": self.init,
            "fresh": self.fresh,
        }


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
    seconds: float = 0.0  # training time of the sessions before this one


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


def learning_rate(settings: dict[str, Any], epoch: int, done: float, scale: float = 1.0) -> float:
    """The rate for a batch of ``epoch`` (1-based) when ``done`` (0–1) of the epoch's batches came
    before it: ``lr`` after a linear warm-up over ``warmup`` epochs, then constant or decaying
    along a cosine to zero at ``epochs`` (runs saved before schedules existed: constant); times
    ``scale``, the plateau schedule's reductions so far (:func:`plateau_scale`)."""
    base, at = settings["lr"] * scale, epoch - 1 + done
    warmup = settings.get("warmup", 0)
    if at < warmup:  # (a thousandth of an epoch added: the first batch moves the weights too)
        return base * (at + 1e-3) / warmup
    if settings.get("schedule", "constant") == "cosine":
        span = max(settings["epochs"] - warmup, 1e-9)
        return base * 0.5 * (1 + math.cos(math.pi * min((at - warmup) / span, 1.0)))
    return base


def plateau_scale(settings: dict[str, Any], scale: float, bad_epochs: int) -> float:
    """The plateau schedule's scale after an epoch that left ``bad_epochs`` epochs without a lower
    validation loss: reduced by ``plateau_factor`` at every ``plateau_patience``-th of them."""
    if settings.get("schedule") != "plateau" or not bad_epochs or bad_epochs % settings["plateau_patience"]:
        return scale
    return scale * settings["plateau_factor"]


def make_optimizer(settings: dict[str, Any], params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    adam = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(settings["optimizer"])
    if adam is not None:
        return adam(params, lr=settings["lr"], betas=tuple(settings["betas"]), weight_decay=settings["weight_decay"])
    return torch.optim.SGD(params, lr=settings["lr"], momentum=0.9, weight_decay=settings["weight_decay"])

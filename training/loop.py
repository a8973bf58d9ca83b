"""The training protocol of the paper (§3.2), resumable and distributed.

Adam (lr 1e-3, β = (0.9, 0.99)), batch 64, at most 100 epochs, early stopping after 15 epochs
without a lower validation loss; all from the spec's ``training`` section, overridable. Each
epoch ends with ``last.pt`` (everything needed to resume) and, when the validation loss
improved, ``best.pt``; both are written atomically, so a run killed at any moment loses at most
the epoch in progress. Shuffling and dropout are seeded per epoch, so a resumed run continues
exactly as the uninterrupted one would have.

The pieces live beside it: :mod:`~dsmnet.training.run` (the run's set-up, state and checkpoint),
:mod:`~dsmnet.training.settings` (its typed settings), :mod:`~dsmnet.training.step` (the training
step, loading a run), :mod:`~dsmnet.training.priors` (class count, head priors, density scale,
precise BN), :mod:`~dsmnet.training.validate` (metrics on a split), :mod:`~dsmnet.training.batches`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dsmnet.core.fsutil import atomic_write_text, claimed
from dsmnet.core.progress import Progress
from dsmnet.core.provenance import utc_now
from dsmnet.core.spec import Spec
from dsmnet.dataset.subtomograms import Subtomograms
from dsmnet.training.augment import augment
from dsmnet.training.batches import batch_bounds, prefetch
from dsmnet.training.checkpoint import save_checkpoint
from dsmnet.training.priors import precise_bn
from dsmnet.training.run import Run
from dsmnet.training.settings import (
    TrainConfig,
    TrainingError,
    finished_learning,
    learning_rate,
    prepare_run,
)
from dsmnet.training.validate import evaluate_split
from dsmnet.training.watch import CHECK_EVERY, FiniteWatch, rank_seed, total_norm


def shuffled(indices: list[int], seed: int, epoch: int) -> tuple[torch.Tensor, torch.Generator]:
    """An epoch's order of ``indices``, drawn from the seed and the epoch alone (the same on every
    rank, and for every run at that seed), and the generator it was drawn from, which the epoch's
    augmentation draws on next."""
    gen = torch.Generator().manual_seed(seed * 7919 + epoch)
    return torch.tensor(indices)[torch.randperm(len(indices), generator=gen)], gen


class Training(Run):
    """A run and what each of its epochs does: train on this rank's shard, validate, keep."""

    def train_epoch(self, epoch: int) -> tuple[dict[str, Any], torch.Tensor]:
        """One pass over the training split (this rank's shard); the record and the permutation.
        The losses stay on the device, summed, and are read once at the epoch's end; whether
        they and the gradients are finite is read every :data:`CHECK_EVERY` batches."""
        rt, seed = self.rt, self.settings.seed
        torch.manual_seed(rank_seed(seed * 1_000_003 + epoch, rt.rank))  # dropout: each rank its own
        data, train = self.data, self.split["train"]
        if self.fresh is not None:  # a new set simulated like the dataset, every particle of it for training
            data = self.fresh.get(epoch)
            train = list(range(len(data)))
        self.epoch_data = data
        perm, gen = shuffled(train, seed, epoch)
        if rt.rank:  # the permutation is shared; each rank draws its own augmentation after it
            gen = torch.Generator().manual_seed(rank_seed(seed * 7919 + epoch, rt.rank))
        shard = perm[: len(perm) // rt.world * rt.world][rt.rank :: rt.world]
        per_rank = max(1, self.settings.batch_size // rt.world)
        bounds = batch_bounds(len(shard), per_rank)
        self.step.train()
        started = time.perf_counter()
        sums, seen = self._pass(epoch, bounds, self._loader(data, shard, per_rank, gen))
        seconds = time.perf_counter() - started
        values = self._gathered(seen, list(sums.values()))  # one read
        seen = int(values.pop()) if rt.world > 1 else seen
        record: dict[str, Any] = {"epoch": epoch}
        record.update({f"train_{k}": v / max(seen, 1) for k, v in zip(sums, values, strict=True)})
        record["train_samples_per_s"] = seen / seconds if seconds else 0.0
        record["lr"] = learning_rate(self.settings, epoch, 1.0, self.run.lr_scale)
        return record, perm

    def _loader(self, data, shard: torch.Tensor, per_rank: int, gen: torch.Generator):
        """Reads and augments one batch (in the prefetch thread): its number, size, input, targets."""
        kinds, device, kind = self.resolved.kinds, self.rt.device, self.settings.augment

        def load(b: tuple[int, int]):
            idx = shard[b[0] : b[1]]
            x, targets, present = data.batch(idx, kinds)  # only the targets the heads train on
            if device.type == "cuda":  # pinned, so that the copies to the GPU run alongside its work
                x, targets = x.pin_memory(), {k: v.pin_memory() for k, v in targets.items()}
            if kind != "none":
                if device.type != "cpu":  # augmented where it trains: on a GPU, off the CPU
                    x = x.to(device, non_blocking=True)
                    targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
                moved = augment({"x": x, **targets}, kind, gen, self.measured, self.turns)
                x, targets = moved.pop("x"), moved
            return b[0] // per_rank + 1, len(idx), x, targets, present

        return load

    def _pass(self, epoch: int, bounds: list[tuple[int, int]], load) -> tuple[dict[str, torch.Tensor], int]:
        """The epoch's optimiser steps: the losses summed on the device, and the samples seen."""
        sums: dict[str, torch.Tensor] = {}
        watch = FiniteWatch(epoch, self.settings.lr, self.out / "last.pt")
        seen = 0
        enabled = self.config.progress and self.rt.is_main
        with Progress(len(bounds), f"epoch {epoch}", "batches", self.log, enabled=enabled) as bar:
            for number, b, x, targets, present in prefetch(bounds, load):
                lr = learning_rate(self.settings, epoch, (number - 1) / len(bounds), self.run.lr_scale)
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
        return sums, seen

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

    def precise_bn_sample(self, perm: torch.Tensor) -> tuple[Subtomograms, torch.Tensor]:
        """The particles precise BN averages over before a validation: the first ``precise_bn`` of
        the epoch's permutation (a new sample each epoch), or, with ``precise_bn_fixed``, of one
        permutation of the training split drawn from the seed — the same particles every epoch,
        so that the validation loss moves only with the weights (a new sample moves it by an s.d.
        of 0.002–0.006 once the rate has all but stopped them; ``docs/results/evidence.md``)."""
        n = self.settings.precise_bn
        if not self.settings.precise_bn_fixed:
            return self.epoch_data, perm[:n]
        return self.data, shuffled(self.split["train"], self.settings.seed, 0)[0][:n]  # (epochs count from 1)

    def validate_and_save(self, epoch: int, record: dict[str, Any], perm: torch.Tensor) -> None:
        """Precise BN, validation, early-stopping bookkeeping, checkpoints and the epoch's line."""
        run, batch = self.run, max(self.settings.batch_size, 1)
        judged = self.step if self.ema is None else self.ema.module  # the weights validated and kept
        if self.ema is not None:
            self.ema.copy_buffers()
        if self.settings.precise_bn:
            precise_bn(judged.model, *self.precise_bn_sample(perm), self.rt, batch)
        val = evaluate_split(judged.model, judged.criterion, self.data, self.split["val"], self.rt, batch)
        record.update({f"val_{k}": v for k, v in val.items()})
        if not math.isfinite(val["loss"]):
            raise TrainingError(
                f"the validation loss became {val['loss']} after epoch {epoch} (the training loss was "
                f"{record['train_loss']:.4g}); lower the learning rate (now {self.settings.lr}) or check the "
                f"data. The last good state is in {self.out / 'last.pt'}"
            )
        scale = run.lr_scale
        improved = run.validated(self.settings, epoch, val["loss"])
        if run.lr_scale != scale:
            self.log(f"no lower validation loss for {run.bad_epochs} epochs: learning rate × {run.lr_scale / scale:g}")
        why = finished_learning(self.settings, run)
        if why:
            self.log(f"stopping after epoch {epoch}: {why}; best epoch {run.best_epoch}")
        # the run's wall and CPU seconds so far, over every session: an epoch's cost is the difference
        # of two rows, and a pause or shared cores show as wall time without CPU time
        record.update(seconds=self.seconds, cpu_seconds=self.cpu_seconds, ended=utc_now())
        run.history.append(record)
        ckpt = self.checkpoint()
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

    def stop_everywhere(self) -> bool:
        """Rank 0's early-stopping decision and learning-rate scale, broadcast to every rank in a
        tensor on the run's device (NCCL, the process group of every GPU run, takes no CPU tensor)."""
        stop = self.rt.flag(self.rt.is_main and finished_learning(self.settings, self.run) is not None)
        decided = torch.cat([stop, self.rt.flag(self.run.lr_scale)])
        dist.broadcast(decided, 0)
        stop, self.run.lr_scale = decided.tolist()
        return bool(stop)

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` holds: the run's outcome, its cost and its provenance."""
        r, cpu, why = self.run, self.cpu_seconds, finished_learning(self.settings, self.run)
        return {
            "run": str(self.out),
            "epochs": r.epoch,
            "best_epoch": r.best_epoch,
            "best_val_loss": r.best_loss,
            "stopped_early": why is not None,
            "stopped_because": why,  # (None: the budget's last epoch)
            "initial_weighted_losses": r.initial,
            "seconds": self.seconds,
            "samples_seen": r.epoch * len(self.split["train"]),  # training samples, over every epoch and rank
            "cpu_seconds": cpu,
            "core_hours": cpu * self.rt.world / 3600,  # CPU time, each rank's taken as this one's
            **({"gpu_hours": self.seconds * self.rt.world / 3600} if self.rt.device.type == "cuda" else {}),
            "revisions": r.revisions,
            "runtimes": r.runtimes,
            "sessions": r.sessions,
            "notes": self.notes,
        }


def _silent(_: str) -> None:
    pass


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
        BusyError: another process trains the same run folder (naming it).
        DataError / SpecError: bad data or spec, naming the file.
    """
    config = config or TrainConfig()
    out = Path(out)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 speaks for the run
        log = _silent
    r = Training(spec, data_dir, out, config, prepare_run(out, resume, log), log)
    with claimed(out) if r.rt.is_main else contextlib.nullcontext():  # one process trains a run folder at a time
        return _train(r, out, log)


def _train(r: Training, out: Path, log) -> dict[str, Any]:
    """The epochs of a set-up run until it stops, then its summary (``summary.json``, ``curves.png``)."""
    s = r.settings
    if r.rt.is_main:  # (with the run folder claimed) readable without loading a checkpoint: --status
        atomic_write_text(out / "sessions.json", json.dumps(r.run.sessions, indent=1) + "\n")
        log(
            f"training {r.spec.name} on {len(r.split['train'])} / validating on {len(r.split['val'])} particles "
            f"({r.rt.describe()}, batch {s.batch_size}, {s.describe()}, ≤ {s.epochs} epochs, patience {s.patience})"
        )
    r.started = time.perf_counter()  # training time, as before: the dataset check and set-up left out
    r.cpu_started = time.process_time()
    while r.going:
        epoch = r.run.epoch + 1
        record, perm = r.train_epoch(epoch)
        if r.rt.is_main:
            r.validate_and_save(epoch, record, perm)
        else:
            r.run.epoch = epoch
        if r.rt.world > 1 and r.stop_everywhere():
            break
    summary = r.summary()
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

"""What a training step leaves for later reading: whether its loss and gradients were finite,
checked every few batches in one read from the device instead of a read per step (each would
stop a GPU's queue of work), and the per-rank seeds of a distributed run."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from dsmnet.training.settings import TrainingError

CHECK_EVERY = 32  # batches between two reads of the finiteness flags (and at an epoch's end)


def rank_seed(seed: int, rank: int) -> int:
    """A rank's own seed derived from the run's: rank 0 keeps ``seed`` (a single-process run and
    rank 0 draw alike), every other rank another stream (its own augmentation and dropout)."""
    return seed if rank == 0 else (seed + 1_000_000_007 * rank) % (2**63 - 1)


def total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients together, on their device (no host read).
    ``torch.nn.utils.get_total_norm`` where torch has it (2.6 on), else the same sum."""
    if not grads:
        return torch.zeros(())
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:
        return get_total_norm(grads)
    norms = torch._foreach_norm(grads)
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))


class FiniteWatch:
    """The losses and gradient norms of the batches since the last :meth:`check`, held on the
    device; :meth:`check` reads them once and stops the run at the first batch whose loss or
    gradients were not finite, naming the epoch, the batch and the tasks. Nothing of the epoch
    in progress has been saved by then, so ``last.pt`` holds the last good state."""

    def __init__(self, epoch: int, lr: float, last: Path):
        self.epoch, self.lr, self.last = epoch, lr, last
        self.pending: list[tuple[int, torch.Tensor, list[str], torch.Tensor | None]] = []

    def add(self, number: int, result, norm: torch.Tensor | None) -> None:
        losses = torch.stack([result.total.detach().float(), *(v.detach().float() for v in result.tasks.values())])
        self.pending.append((number, losses, list(result.tasks), None if norm is None else norm.detach().float()))

    def check(self) -> None:
        if not self.pending:
            return
        rows = [
            torch.cat([losses, (norm if norm is not None else losses.new_zeros(())).reshape(1)])
            for _, losses, _, norm in self.pending
        ]
        width = max(len(r) for r in rows)
        values = torch.stack([torch.nn.functional.pad(r, (0, width - len(r))) for r in rows]).tolist()  # the read
        pending, self.pending = self.pending, []
        for (number, losses, tasks, norm), row in zip(pending, values, strict=True):
            total, per_task, grad = row[0], row[1 : 1 + len(tasks)], row[len(losses)]
            where = f"at epoch {self.epoch}, batch {number}"
            if not math.isfinite(total):
                bad = [t for t, v in zip(tasks, per_task, strict=True) if not math.isfinite(v)]
                raise TrainingError(
                    f"the loss became {total} {where} (tasks: {', '.join(bad) or 'weighting'}); lower the learning "
                    f"rate (now {self.lr}) or check the data. Nothing of this epoch was saved: the last good state "
                    f"is in {self.last}"
                )
            if norm is not None and not math.isfinite(grad):
                raise TrainingError(
                    f"the gradients became {grad} {where} (the loss was {total:.4g}). Lower the learning rate "
                    f"(now {self.lr}) or train in fp32 (--precision fp32). Nothing of this epoch was saved: the "
                    f"last good state is in {self.last}"
                )

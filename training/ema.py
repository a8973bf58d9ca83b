"""Weight averaging: an exponential moving average (EMA) of a model's weights, the copy a run
validates, keeps as ``best.pt`` and hands to evaluation and prediction.

The average starts as a copy of the model and after each optimiser step moves towards the live
weights by ``1 − d``, with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (so the
average is not dominated by the random start early in a run). Only parameters are averaged:
BatchNorm statistics are copied from the live model and then, like the live model's, measured
anew by precise BN before each validation, since averaged weights want their own statistics.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """An EMA of ``module``'s parameters, held in a copy of it (:attr:`module`)."""

    def __init__(self, module: torch.nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay lies in (0, 1), not {decay}")
        self.decay, self.updates = decay, updates
        self.live = module
        self.module = copy.deepcopy(module)
        self.module.requires_grad_(False)
        self._live = [p for p in module.parameters()]
        self._avg = [p for p in self.module.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights (after an optimiser step): on the device,
        without a host read."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._avg, [p.detach() for p in self._live], 1.0 - d)

    @torch.no_grad()
    def copy_buffers(self) -> None:
        """The live model's buffers (BatchNorm statistics) into the average, before precise BN."""
        for mine, theirs in zip(self.module.buffers(), self.live.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates

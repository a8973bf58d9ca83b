"""A training killed part-way, as Ctrl-C or a lost machine would kill it (shared by the tests of
resuming)."""

from __future__ import annotations

import pytest

from dsmnet.training import loop
from dsmnet.training.step import TrainStep


def train_killed_in_epoch_two(monkeypatch, *args, batches_per_epoch: int = 6, **kwargs) -> None:
    """``loop.train(*args, **kwargs)`` interrupted in the middle of its second epoch."""
    calls = {"n": 0}
    original = TrainStep.forward

    def dies_in_epoch_two(self, *a):
        calls["n"] += 1
        if calls["n"] == batches_per_epoch + batches_per_epoch // 2:
            raise KeyboardInterrupt
        return original(self, *a)

    monkeypatch.setattr(TrainStep, "forward", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        loop.train(*args, **kwargs)
    monkeypatch.setattr(TrainStep, "forward", original)

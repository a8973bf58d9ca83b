"""The training step (model and loss in one module) and loading a trained run."""

from __future__ import annotations

from pathlib import Path

import torch

from dsmnet.core.build import build_loss, build_model, plan
from dsmnet.training.checkpoint import find_checkpoint, load_checkpoint
from dsmnet.training.runtime import Runtime


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


def load_trained(
    run: Path, which: str = "best", rt: Runtime | None = None
) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """The model and loss of a run folder (or checkpoint file) in eval mode, placed for ``rt``
    (its device and memory layout; the CPU by default)."""
    state = load_checkpoint(find_checkpoint(Path(run), which))
    resolved = plan(state["spec"])
    step = TrainStep(build_model(resolved), build_loss(resolved))
    step.load_state_dict(state["step"])
    step.eval()
    if rt is None:
        return step.model, step.criterion, state
    return rt.module(step.model), step.criterion.to(rt.device), state

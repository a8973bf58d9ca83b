"""The training step (model and loss in one module), loading a trained run, and starting a new
run from a trained run's weights."""

from __future__ import annotations

from pathlib import Path

import torch

from dsmnet.core.build import build_loss, build_model, plan
from dsmnet.dataset.mrc import DataError
from dsmnet.training.checkpoint import find_checkpoint, load_checkpoint, load_weights
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
    path = find_checkpoint(Path(run), which)
    state = load_checkpoint(path)
    resolved = plan(state["spec"])
    step = TrainStep(build_model(resolved), build_loss(resolved))
    load_weights(step, state["step"], path)
    step.eval()
    if rt is None:
        return step.model, step.criterion, state
    return rt.module(step.model), step.criterion.to(rt.device), state


def init_from(model: torch.nn.Module, run: Path) -> tuple[int, list[str]]:
    """Copy into ``model`` every weight of a trained run's model (its ``best.pt``, or a checkpoint
    file) that has the same name and shape: fine-tuning, or pre-training on other data. What does
    not match (a head the trained run lacked, another class count) keeps its fresh start.

    Returns:
        The number of tensors copied and the names of those left fresh.

    Raises:
        DataError: no checkpoint, or another backbone than this model's, naming the file.
    """
    path = find_checkpoint(Path(run))
    trained = {k[len("model.") :]: v for k, v in load_checkpoint(path)["step"].items() if k.startswith("model.")}
    own = model.state_dict()
    fits = {k: v for k, v in trained.items() if k in own and own[k].shape == v.shape}
    backbone = {k for k in own if k.startswith("backbone.")} | {k for k in trained if k.startswith("backbone.")}
    if not backbone <= set(fits):
        raise DataError(
            f"{path}: its backbone does not fit this spec's (another backbone type or widths); "
            "--init needs a run of the same backbone (heads and decoder may differ)"
        )
    model.load_state_dict(fits, strict=False)
    return len(fits), sorted(k for k in own if k not in fits)

"""What a built network costs: parameters per part, forward FLOPs per sample, output shapes."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from dsmnet.core.model import MultiTaskNet


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def describe(model: MultiTaskNet) -> dict[str, Any]:
    """A summary of a model built from a spec, as plain data.

    FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one sample in eval
    mode (a multiply-add counts as 2 FLOPs).
    """
    spec = model.spec
    parts = {"backbone": count_parameters(model.backbone)}
    if model.decoder is not None:
        parts["decoder"] = count_parameters(model.decoder)
    parts.update({f"heads.{n}": count_parameters(h) for n, h in model.heads.items()})
    x = torch.zeros(1, spec.input.channels, *spec.input.shape)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    model.train(was_training)
    return {
        "name": spec.name,
        "input": [spec.input.channels, *spec.input.shape],
        "parameters": count_parameters(model),
        "parameters_by_part": parts,
        "gflops_per_sample": counter.get_total_flops() / 1e9,
        "outputs": {n: list(t.shape[1:]) for n, t in out.items()},
        "sources": {n: ("decoder" if s == "decoder" else f"backbone.{s}") for n, s in model.sources.items()},
        "targets": dict(model.targets),
    }

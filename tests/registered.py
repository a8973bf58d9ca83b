"""Helpers of the registry-wide tests (tests/backbones, decoders, heads, losses): every
registered component, from its defaults in a minimal spec, runs forward and backward."""

from __future__ import annotations

import torch

from dsmnet.registry import load_plugins

REGISTERED = load_plugins()  # for parametrising over every registered component at collection time


def small_params(component, **extra) -> dict:
    """A component's spec entry from its defaults, kept small so the registry-wide tests run in
    seconds (only parameters the component has are set)."""
    fields = component.params.model_fields
    params = {"type": component.name, **extra}
    for key, value in {"widths": [4, 8, 16], "hidden": [16], "classes": 3, "channels": 6}.items():
        if key in fields:
            params[key] = value
    return params


def loss_for(head) -> str:
    """The first registered loss that trains ``head``'s target."""
    return next(c.name for c in REGISTERED.loss if head.cls.target in c.cls.targets)


def make_target(kind: str, out: torch.Tensor) -> torch.Tensor:
    if kind == "class":
        return torch.randint(0, out.shape[1], (out.shape[0],))
    if kind == "mask":
        return torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]))
    if kind == "pose":
        from scipy.spatial.transform import Rotation

        return torch.from_numpy(Rotation.random(out.shape[0], random_state=0).as_matrix()).float()
    return torch.randn_like(out)


def check_learns(spec: dict, size: tuple[int, int, int]) -> dict:
    """Build ``spec`` (from defaults), run forward and backward on random input: every output
    finite, every parameter of the model and the loss gets a finite gradient. Returns the outputs."""
    import dsmnet

    spec = dsmnet.load_spec(spec, REGISTERED)
    model = dsmnet.build_model(spec, REGISTERED)
    criterion = dsmnet.build_loss(spec, REGISTERED)
    out = model(torch.randn(2, 1, *size))
    targets = {model.targets[h]: make_target(model.targets[h], v) for h, v in out.items()}
    for kind in criterion.kinds - set(targets):  # what a loss reads besides its head's target
        targets[kind] = make_target(kind, torch.rand(2, 1, *size))
    result = criterion(out, targets)
    result.total.backward()
    assert torch.isfinite(result.total)
    for head, value in out.items():
        assert torch.isfinite(value).all(), f"{head} output is not finite"
    for name, p in [*model.named_parameters(), *criterion.named_parameters()]:
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    return out

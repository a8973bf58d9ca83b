"""Every registered backbone × decoder × head builds, runs forward and backward, and trains every
parameter, at the paper's size and at odd sizes (timm-style: parametrised over the registries)."""

from __future__ import annotations

import itertools

import pytest
import torch

import dsmnet
from dsmnet.registry import load_plugins

REGISTRIES = load_plugins()
SIZES = [(16, 16, 16), (17, 19, 21), (33, 35, 16)]


def small(component, **extra):
    """Keep every component small so the whole matrix runs in seconds."""
    fields = component.params.model_fields
    params = {"type": component.name, **extra}
    for key, value in {"widths": [4, 8, 16], "hidden": [16], "classes": 3, "channels": 6}.items():
        if key in fields:
            params[key] = value
    return params


def make_target(kind: str, out: torch.Tensor) -> torch.Tensor:
    if kind == "class":
        return torch.randint(0, out.shape[1], (out.shape[0],))
    if kind == "mask":
        return torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]))
    return torch.randn_like(out)


def loss_for(head) -> str:
    return next(c.name for c in REGISTRIES.loss if head.cls.target in c.cls.targets)


CASES = [
    (b, d, h)
    for b, d, h in itertools.product(REGISTRIES.backbone, [None, *REGISTRIES.decoder], REGISTRIES.head)
    if d is not None or not h.cls.dense
]


@pytest.mark.parametrize(
    "backbone,decoder,head", CASES, ids=[f"{b.name}-{d.name if d else 'none'}-{h.name}" for b, d, h in CASES]
)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_forward_backward_every_parameter_learns(backbone, decoder, head, size):
    head_spec = small(head, **({"from": "decoder"} if decoder is not None else {}))
    spec = {
        "name": "combo",
        "input": {"shape": list(size), "channels": 1},
        "backbone": small(backbone),
        "heads": {"out": head_spec},
        "losses": {"out": {"type": loss_for(head)}},
    }
    if decoder is not None:
        spec["decoder"] = small(decoder)
    spec = dsmnet.load_spec(spec, REGISTRIES)
    model = dsmnet.build_model(spec, REGISTRIES)
    criterion = dsmnet.build_loss(spec, REGISTRIES)
    x = torch.randn(2, 1, *size)
    out = model(x)
    kind = model.targets["out"]
    if head.cls.dense:
        assert out["out"].shape[2:] == size
    result = criterion(out, {kind: make_target(kind, out["out"])})
    result.total.backward()
    assert torch.isfinite(out["out"]).all()
    assert torch.isfinite(result.total)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("name", ["dsmnet", "cls_subnet", "seg_subnet", "cls_rec", "cls_seg", "dsrf3d_v2", "ssn3d_ed"])
def test_shipped_specs_build_at_paper_size(name):
    spec = dsmnet.load_spec(name, REGISTRIES)
    assert spec.paper, "each shipped spec says which paper row it is"
    model = dsmnet.build_model(spec, REGISTRIES)
    out = model(torch.randn(2, 1, 40, 40, 40))
    for head, tensor in out.items():
        if model.targets[head] == "class":
            assert tensor.shape == (2, 22)
        else:
            assert tensor.shape[2:] == (40, 40, 40)

"""Every registered loss on every target it accepts, and every weighting over three tasks: one
loss per sample, finite, with gradients reaching the predictions and any learned weights."""

from __future__ import annotations

import pytest
import torch

from dsmnet.core.criterion import MultiTaskLoss, Task
from dsmnet.heads.pose import rotation_from_6d
from tests.registered import REGISTERED, make_target

SHAPES = {"class": (4, 3), "mask": (4, 2, 6, 6, 6), "density": (4, 1, 6, 6, 6), "pose": (4, 6)}
CASES = [(loss, target) for loss in REGISTERED.loss for target in sorted(loss.cls.targets)]


@pytest.mark.parametrize("loss,target", CASES, ids=[f"{c.name}-{t}" for c, t in CASES])
def test_loss_is_per_sample_and_differentiable(loss, target):
    """Also a loss that reads further targets (``reads``: the pose loss reads the density)."""
    leaf = torch.randn(*SHAPES[target], requires_grad=True)
    pred = rotation_from_6d(leaf) if target == "pose" else leaf  # a pose head answers rotations
    extra = [make_target(kind, torch.randn(*SHAPES[kind]).abs()) for kind in getattr(loss.cls, "reads", ())]
    value = loss.cls()(pred, make_target(target, pred), *extra)
    assert value.shape == (4,) and torch.isfinite(value).all() and (value >= 0).all()
    value.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


@pytest.mark.parametrize("weighting", list(REGISTERED.weighting), ids=lambda c: c.name)
def test_weighting_combines_every_task_and_learns_its_weights(weighting):
    tasks = {"cls": Task(1.0, "classification"), "seg": Task(10.0, "classification"), "rec": Task(1.0, "regression")}
    losses = {
        "cls": REGISTERED.loss.get("cross_entropy").cls(),
        "seg": REGISTERED.loss.get("cross_entropy").cls(),
        "rec": REGISTERED.loss.get("mse").cls(),
    }
    criterion = MultiTaskLoss(losses, {"cls": "class", "seg": "mask", "rec": "density"}, weighting.cls(tasks))
    outputs = {
        k: torch.randn(*SHAPES[t], requires_grad=True)
        for k, t in {"cls": "class", "seg": "mask", "rec": "density"}.items()
    }
    targets = {t: make_target(t, outputs[k]) for k, t in {"cls": "class", "seg": "mask", "rec": "density"}.items()}
    result = criterion(outputs, targets)
    assert set(result.tasks) == set(tasks) and torch.isfinite(result.total)
    result.total.backward()
    for name, out in outputs.items():
        assert out.grad is not None and out.grad.abs().sum() > 0, f"no gradient reaches {name}"
    for name, p in criterion.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name} got no gradient"

"""The multi-task loss: eq. 2 of the paper, missing targets, learned weighting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dsmnet
from tests.conftest import TINY

SPEC = {**TINY, "name": "t", "input": {"shape": [16, 16, 16]}}  # the shared tiny spec at 16³


def batch(n=4, size=16):
    out = {
        "cls": torch.randn(n, 3),
        "seg": torch.randn(n, 2, size, size, size),
        "rec": torch.randn(n, 1, size, size, size),
    }
    targets = {
        "class": torch.randint(0, 3, (n,)),
        "mask": torch.randint(0, 2, (n, size, size, size)),
        "density": torch.randn(n, 1, size, size, size),
    }
    return out, targets


def test_weighted_sum_is_equation_2(registries):
    loss = dsmnet.build_loss(SPEC, registries)
    out, t = batch()
    result = loss(out, t)
    l_cls = F.cross_entropy(out["cls"], t["class"])
    l_seg = F.cross_entropy(out["seg"], t["mask"])
    l_rec = F.mse_loss(out["rec"], t["density"])
    torch.testing.assert_close(result.tasks["cls"], l_cls)
    torch.testing.assert_close(result.tasks["seg"], l_seg)
    torch.testing.assert_close(result.tasks["rec"], l_rec)
    torch.testing.assert_close(result.total, l_cls + 10 * l_seg + l_rec)


def test_samples_without_a_target_contribute_nothing(registries):
    loss = dsmnet.build_loss(SPEC, registries)
    out, t = batch()
    t["mask"][2:] = 99  # garbage where absent: must not matter
    t["density"][2:] = float("nan")
    present = {"mask": torch.tensor([True, True, False, False]), "density": torch.tensor([True, True, False, False])}
    result = loss(out, t, present)
    expected_seg = F.cross_entropy(out["seg"][:2], t["mask"][:2], reduction="none").flatten(1).mean(1).sum() / 4
    torch.testing.assert_close(result.tasks["seg"], expected_seg)
    assert torch.isfinite(result.total)


def test_task_missing_from_the_batch_is_zero_but_keeps_the_graph(registries):
    loss = dsmnet.build_loss(SPEC, registries)
    out, t = batch()
    out = {k: v.requires_grad_() for k, v in out.items()}
    del t["density"]
    result = loss(out, t)
    assert result.tasks["rec"].item() == 0.0
    result.total.backward()
    assert out["rec"].grad is not None and out["rec"].grad.abs().sum() == 0


def test_uncertainty_weighting_learns_its_log_variances(registries):
    spec = {**SPEC, "weighting": {"type": "uncertainty", "init": 0.5}}
    loss = dsmnet.build_loss(spec, registries)
    params = dict(loss.named_parameters())
    assert set(params) == {"weighting.log_vars.cls", "weighting.log_vars.seg", "weighting.log_vars.rec"}
    out, t = batch()
    result = loss(out, t)
    s = 0.5
    expected = (
        1 * torch.exp(torch.tensor(-s)) * result.tasks["cls"]
        + 10 * torch.exp(torch.tensor(-s)) * result.tasks["seg"]
        + 0.5 * torch.exp(torch.tensor(-s)) * result.tasks["rec"]
        + 3 * s / 2
    )
    torch.testing.assert_close(result.total, expected)
    result.total.backward()
    assert all(p.grad is not None for p in params.values())


def test_class_weights_must_match_the_head(registries):
    spec = {**SPEC, "losses": {**SPEC["losses"], "seg": {"type": "cross_entropy", "class_weights": [1, 2, 3]}}}
    loss = dsmnet.build_loss(spec, registries)
    out, t = batch()
    with pytest.raises(ValueError, match="class_weights has 3 entries but the head predicts 2 classes"):
        loss(out, t)

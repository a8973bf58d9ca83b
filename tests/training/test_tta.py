"""Test-time augmentation over the four 180° turns: the averaged model is invariant (classes)
and equivariant (masks, densities) under every turn, and evaluation records it."""

from __future__ import annotations

import json

import pytest
import torch

from dsmnet.core.build import build_model, load_spec
from dsmnet.training.augment import turn
from dsmnet.training.evaluate import evaluate
from dsmnet.training.tta import ROT180, Turns
from tests.conftest import TINY


@pytest.fixture(scope="module")
def averaged():
    model = build_model(load_spec(TINY)).eval()
    return model, Turns(model)


@pytest.mark.parametrize("dims", ROT180[1:])
def test_averaged_model_is_invariant_and_equivariant_under_every_turn(averaged, dims):
    model, tta = averaged
    x = torch.randn(2, 1, 24, 24, 24)
    with torch.no_grad():
        plain, turned = tta(x), tta(turn(x, dims))
        single, single_turned = model(x), model(turn(x, dims))
    assert torch.allclose(turned["cls"], plain["cls"], atol=1e-5)  # the same class scores
    for head in ("seg", "rec"):  # masks and densities turned with the input
        assert torch.allclose(turn(turned[head], dims), plain[head], atol=1e-5)
    # the model alone is not invariant (else the test could not fail)
    assert not torch.allclose(single["cls"], single_turned["cls"], atol=1e-5)


def test_class_scores_are_log_probabilities(averaged):
    _, tta = averaged
    with torch.no_grad():
        out = tta(torch.randn(3, 1, 24, 24, 24))
    assert torch.allclose(out["cls"].exp().sum(1), torch.ones(3), atol=0.05)  # a geometric mean: near 1
    assert (out["cls"] <= 0).all()


def test_evaluate_with_tta_records_it(trained_run, small_data, tmp_path):
    r = evaluate(trained_run, small_data, "all", out=tmp_path / "tta", tta=True)
    saved = json.loads((tmp_path / "tta" / "metrics.json").read_text())
    assert saved["tta"] == "rot180x4" and 0.0 <= saved["metrics"]["acc_cls"] <= 1.0
    assert r["metrics"]["pixel_acc_seg"] > 0.5

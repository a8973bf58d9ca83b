"""Every registered backbone, from its defaults, under a classifier at even and odd sizes."""

from __future__ import annotations

import pytest

from tests.registered import REGISTERED, check_learns, small_params

SIZES = [(16, 16, 16), (17, 19, 21), (33, 35, 16)]


@pytest.mark.parametrize("backbone", list(REGISTERED.backbone), ids=lambda c: c.name)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_backbone_trains_every_parameter(backbone, size):
    classifier = REGISTERED.head.get("classifier")
    spec = {
        "name": "b",
        "input": {"shape": list(size)},
        "backbone": small_params(backbone),
        "heads": {"cls": small_params(classifier)},
        "losses": {"cls": {"type": "cross_entropy"}},
    }
    out = check_learns(spec, size)
    assert out["cls"].shape == (2, 3)


@pytest.mark.parametrize("backbone", list(REGISTERED.backbone), ids=lambda c: c.name)
def test_backbone_features_shrink_stage_by_stage(backbone):
    from dsmnet.core.shapes import ShapeSpec

    params = {k: v for k, v in small_params(backbone).items() if k != "type"}
    module = backbone.cls(ShapeSpec(1, 1, (32, 32, 32)), **params)
    shapes = list(module.output_shape().values())
    strides = [s.stride for s in shapes]
    assert strides == sorted(strides) and strides[-1] > 1

"""Every registered head (third-party ones included), from its defaults, on every source it can
read: the backbone's deepest map or, for dense heads, a decoder."""

from __future__ import annotations

import pytest

from tests.registered import REGISTERED, check_learns, loss_for, small_params

SIZES = [(16, 16, 16), (17, 19, 21)]


# a dense head needs a full-resolution input, so it reads a decoder only
CASES = [(h, d) for h in REGISTERED.head for d in (False, True) if d or not h.cls.dense]


@pytest.mark.parametrize(
    "head,through_decoder", CASES, ids=[f"{h.name}-{'decoder' if d else 'backbone'}" for h, d in CASES]
)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_head_trains_every_parameter(head, size, through_decoder):
    spec = {
        "name": "h",
        "input": {"shape": list(size)},
        "backbone": small_params(REGISTERED.backbone.get("resnet3d")),
        "heads": {"out": small_params(head, **({"from": "decoder"} if through_decoder else {}))},
        "losses": {"out": {"type": loss_for(head)}},
    }
    if through_decoder:
        spec["decoder"] = small_params(REGISTERED.decoder.get("deconv3d"))
    out = check_learns(spec, size)
    if head.cls.dense:
        assert out["out"].shape[2:] == size
    else:
        assert out["out"].shape == (2, 3)

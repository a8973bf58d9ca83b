"""Every registered head (third-party ones included), from its defaults, on every source it can
read: the backbone's deepest map or, for dense heads, a decoder."""

from __future__ import annotations

import pytest
import torch

from dsmnet.core.rotations import chosen_pose
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
    elif head.cls.target == "pose":  # its hypotheses, or one rotation: the pose it answers a rotation
        assert chosen_pose(out["out"]).shape == (2, 3, 3)
    else:  # class scores
        assert out["out"].shape == (2, 3)


def test_shell_pool_statistics_hold_in_fp32_under_autocast():
    from dsmnet.heads.classifier import ShellPool

    pool = ShellPool((6, 6, 6))
    torch.manual_seed(0)
    x = 100.0 + 0.01 * torch.randn(2, 3, 6, 6, 6)  # a large mean: E[x²] − E[x]² cancels to noise
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pool(x).reshape(2, 2, 3, pool.shells)  # [means of the 3 channels, their s.d.]
    flat, member = x.double().flatten(2), pool.member.double()  # the reference, in fp64, shell by shell
    for k in range(pool.shells):
        inside = flat[:, :, member[k] > 0]
        torch.testing.assert_close(got[:, 0, :, k].double(), inside.mean(2), rtol=1e-5, atol=1e-4)
        sd = (inside.var(2, unbiased=False) + 1e-6).sqrt()
        torch.testing.assert_close(got[:, 1, :, k].double(), sd, rtol=2e-2, atol=1e-3)

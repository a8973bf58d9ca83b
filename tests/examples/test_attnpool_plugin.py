"""The example third-party plugin, installed by `make test`, used through its real entry point
from a YAML spec through training steps."""

from __future__ import annotations

from pathlib import Path

import torch

import dsmnet

SPEC = Path(__file__).parents[2] / "examples" / "dsmnet-attnpool" / "dsmnet_attnpool.yaml"


def test_yaml_spec_with_third_party_head_trains():
    spec = dsmnet.load_spec(SPEC)
    model = dsmnet.build_model(spec)
    criterion = dsmnet.build_loss(spec)
    head = model.heads["cls"]
    assert type(head).__module__ == "dsmnet_attnpool"
    opt = torch.optim.Adam([*model.parameters(), *criterion.parameters()], lr=1e-3)
    x = torch.randn(4, 1, 40, 40, 40)
    targets = {
        "class": torch.tensor([0, 1, 2, 3]),
        "mask": (x[:, 0] > 0).long(),
        "density": x.clone(),
    }
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    for _ in range(3):
        opt.zero_grad()
        result = criterion(model(x), targets)
        result.total.backward()
        opt.step()
        losses.append(result.total.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert not torch.equal(before["heads.cls.score.weight"], head.score.weight)
    weights = head.attention(model.backbone(x)["s8"])
    torch.testing.assert_close(weights.flatten(1).sum(1), torch.ones(4))

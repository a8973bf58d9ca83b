"""``input.centre_prior``: the network reads a centred Gaussian beside the box (issue 31, item 6)."""

from __future__ import annotations

import pytest
import torch

import dsmnet
from dsmnet.core.errors import SpecError
from dsmnet.core.model import centre_weight


def _spec(prior: float | None, box: int = 20, bin: int = 1) -> dsmnet.Spec:
    spec = dsmnet.load_spec("dsmnet").to_dict()
    spec["input"].update(shape=[box] * 3, bin=bin)
    if prior is not None:
        spec["input"]["centre_prior"] = prior
    spec["backbone"]["widths"] = [4, 8, 8]
    spec["heads"]["cls"]["hidden"] = [16]
    return dsmnet.load_spec(spec)


def test_the_weight_peaks_at_the_extraction_centre_with_the_width_asked():
    w = centre_weight((20, 21, 34), 0.25)
    assert w.shape == (1, 1, 20, 21, 34)
    assert (w == w.max()).nonzero()[0].tolist() == [0, 0, 10, 10, 17]  # voxel n // 2, where boxes.py centres
    assert float(w.max()) == pytest.approx(1.0)
    # one σ (0.25 × 34 = 8.5 voxels) along the last axis: exp(-1/2); 17 voxels: exp(-2)
    assert float(w[0, 0, 10, 10, 17 + 8]) == pytest.approx(float(torch.exp(torch.tensor(-0.5 * (8 / 8.5) ** 2))))
    assert float(w[0, 0, 10, 10, 0]) == pytest.approx(float(torch.exp(torch.tensor(-2.0))), rel=1e-6)


def test_the_weight_is_made_once_per_box_and_training_leaves_it_as_it_was():
    assert centre_weight((20, 20, 20), 0.2) is centre_weight((20, 20, 20), 0.2)
    assert centre_weight((20, 20, 20), 0.2, dtype=torch.bfloat16) is not centre_weight((20, 20, 20), 0.2)
    before = centre_weight((20, 20, 20), 0.2).clone()
    model = dsmnet.build_model(_spec(0.2))
    out = model(torch.randn(2, 1, 20, 20, 20))
    sum(v.float().sum() for v in out.values()).backward()
    assert torch.equal(centre_weight((20, 20, 20), 0.2), before)
    assert not centre_weight((20, 20, 20), 0.2).requires_grad


def test_the_network_reads_the_prior_as_a_second_channel_and_the_box_still_has_one():
    torch.manual_seed(0)
    with_prior = dsmnet.build_model(_spec(0.2)).eval()
    first = next(m for m in with_prior.backbone.modules() if isinstance(m, torch.nn.Conv3d))
    assert first.in_channels == 2
    x = torch.randn(3, 1, 20, 20, 20)
    with torch.no_grad():
        out = with_prior(x)
        # the same weights on the box with the prior concatenated by hand, through the backbone alone
        by_hand = with_prior.backbone(torch.cat([x, centre_weight((20,) * 3, 0.2).expand(3, 1, 20, 20, 20)], 1))
    assert out["cls"].shape == (3, 22) and out["seg"].shape[-3:] == (20, 20, 20)
    deepest = next(reversed(by_hand))
    assert torch.allclose(with_prior.features(x, "cls"), with_prior.heads["cls"].features(by_hand[deepest]))


def test_the_prior_is_made_at_the_binned_size():
    model = dsmnet.build_model(_spec(0.2, box=24, bin=2)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 24, 24, 24))
    assert out["seg"].shape[-3:] == (24, 24, 24)


def test_a_spec_without_the_prior_reads_and_writes_as_before():
    spec = _spec(None)
    assert "centre_prior" not in spec.to_dict()["input"]
    assert spec.input.centre_prior is None
    first = next(m for m in dsmnet.build_model(spec).backbone.modules() if isinstance(m, torch.nn.Conv3d))
    assert first.in_channels == 1


@pytest.mark.parametrize("bad", [0, -0.1, 1.5])
def test_a_width_outside_the_box_is_refused_at_its_yaml_path(bad):
    data = _spec(None).to_dict()
    data["input"]["centre_prior"] = bad
    with pytest.raises(SpecError, match=r"input\.centre_prior"):
        dsmnet.load_spec(data)

"""The shipped specs build at the paper's size. (Every registered component is exercised on its
own in tests/backbones, tests/decoders, tests/heads and tests/losses.)"""

from __future__ import annotations

import pytest
import torch

import dsmnet
from dsmnet.registry import load_plugins

REGISTRIES = load_plugins()


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

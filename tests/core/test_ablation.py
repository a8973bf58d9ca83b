"""Ablations: head subsets reproduce Table 1's ResNet rows; loss-weight grids reproduce Table 3."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsmnet
from dsmnet.core.ablation import filename, generate, head_subsets
from dsmnet.core.errors import SpecError
from dsmnet.registry import load_plugins

REGISTRIES = load_plugins()
TABLE1 = {"cls_subnet": ("cls",), "seg_subnet": ("seg",), "cls_rec": ("cls", "rec"), "cls_seg": ("cls", "seg")}


def structure(spec) -> dict:
    """What makes the network: everything but its name, description and paper row."""
    data = spec.to_dict()
    for key in ("name", "description", "paper"):
        data.pop(key, None)
    return data


def test_subsets_of_dsmnet_are_the_seven_head_combinations():
    names = [v.name for v in head_subsets(dsmnet.load_spec("dsmnet", REGISTRIES), REGISTRIES)]
    assert names == [
        "dsmnet[cls]",
        "dsmnet[seg]",
        "dsmnet[rec]",
        "dsmnet[cls+seg]",
        "dsmnet[cls+rec]",
        "dsmnet[seg+rec]",
        "dsmnet[cls+seg+rec]",
    ]


@pytest.mark.parametrize("row,heads", TABLE1.items())
def test_subsets_reproduce_the_shipped_table1_resnet_rows(row, heads):
    variants = {
        v.name: v for v in generate(dsmnet.load_spec("dsmnet", REGISTRIES), subsets=True, registries=REGISTRIES)
    }
    variant = variants[f"dsmnet[{'+'.join(heads)}]"]
    assert structure(variant) == structure(dsmnet.load_spec(row, REGISTRIES))


def test_full_subset_is_dsmnet_itself():
    base = dsmnet.load_spec("dsmnet", REGISTRIES)
    full = generate(base, subsets=True, registries=REGISTRIES)[-1]
    assert structure(full) == structure(base)


def test_decoder_dropped_when_no_dense_head_is_left():
    cls_only = generate(dsmnet.load_spec("dsmnet", REGISTRIES), subsets=True, registries=REGISTRIES)[0]
    assert cls_only.decoder is None and list(cls_only.losses) == ["cls"]


def test_table3_loss_ratio_grid():
    base = dsmnet.load_spec("cls_seg", REGISTRIES)
    variants = generate(base, grid={"seg": [10, 100]}, registries=REGISTRIES)
    assert [v.name for v in variants] == ["cls_seg[seg=10]", "cls_seg[seg=100]"]
    assert [v.losses["seg"].weight for v in variants] == [10.0, 100.0]
    assert all(v.losses["cls"].weight == 1.0 for v in variants)


def test_grid_crossed_with_subsets_skips_heads_a_subset_lacks():
    variants = generate(
        dsmnet.load_spec("dsmnet", REGISTRIES), subsets=True, grid={"seg": [1, 100]}, registries=REGISTRIES
    )
    names = [v.name for v in variants]
    assert "dsmnet[cls]" in names and "dsmnet[cls+seg][seg=100]" in names and "dsmnet[cls+seg+rec][seg=1]" in names
    assert len(names) == len(set(names)) == 3 + 4 * 2


def test_grid_naming_an_unknown_loss_is_a_spec_error():
    with pytest.raises(SpecError, match=r"grid\.den: no loss named 'den' \(losses: cls, seg, rec\)"):
        generate(dsmnet.load_spec("dsmnet", REGISTRIES), grid={"den": [1]}, registries=REGISTRIES)


def test_negative_weight_is_a_spec_error():
    with pytest.raises(SpecError, match="grid.seg: weights must be"):
        generate(dsmnet.load_spec("dsmnet", REGISTRIES), grid={"seg": [-1]}, registries=REGISTRIES)


def test_filenames_are_shell_friendly():
    assert filename("dsmnet[cls+seg][seg=100]") == "dsmnet-cls+seg-seg=100.yaml"
    assert filename("dsmnet[seg=1,rec=10]") == "dsmnet-seg=1-rec=10.yaml"


@settings(max_examples=25, deadline=None)
@given(
    subsets=st.booleans(),
    grid=st.dictionaries(
        st.sampled_from(["cls", "seg", "rec"]),
        st.lists(st.floats(0, 1000, allow_nan=False).map(lambda w: round(w, 3)), min_size=1, max_size=3, unique=True),
        max_size=2,
    ),
)
def test_generation_is_deterministic_and_names_are_unique(subsets, grid):
    base = dsmnet.load_spec("dsmnet", REGISTRIES)
    first = generate(base, subsets=subsets, grid=grid, registries=REGISTRIES)
    second = generate(base, subsets=subsets, grid=grid, registries=REGISTRIES)
    assert [v.to_yaml() for v in first] == [v.to_yaml() for v in second]
    names = [v.name for v in first]
    assert len(names) == len(set(names))
    assert len({filename(n) for n in names}) == len(names)

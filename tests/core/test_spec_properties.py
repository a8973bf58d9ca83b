"""Property tests of the spec parser: round trips, and random mutations never crash it."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsmnet
from dsmnet.core.errors import SpecError
from dsmnet.core.spec import Spec, parse_yaml
from dsmnet.registry import load_plugins

REGISTRIES = load_plugins()
SHIPPED = ["dsmnet", "cls_subnet", "seg_subnet", "cls_rec", "cls_seg", "dsrf3d_v2", "ssn3d_ed"]

widths = st.lists(st.integers(1, 24), min_size=2, max_size=4)
weights = st.floats(0, 100, allow_nan=False, allow_infinity=False)


@st.composite
def valid_specs(draw) -> dict:
    backbone = draw(st.sampled_from(["resnet3d", "vgg3d"]))
    w = draw(widths)
    side = 2 ** (len(w) + (1 if backbone == "resnet3d" else 0))
    shape = [draw(st.integers(side, side + 9)) for _ in range(3)]
    heads, losses = {}, {}
    if draw(st.booleans()):
        pool = draw(st.sampled_from(["avg", "max", "flatten"]))
        heads["cls"] = {
            "type": "classifier",
            "classes": draw(st.integers(2, 30)),
            "hidden": draw(st.lists(st.integers(1, 64), max_size=2)),
            "dropout": draw(st.floats(0, 0.9)),
            "pool": pool,
        }
        losses["cls"] = {"type": "cross_entropy", "weight": draw(weights)}
    if draw(st.booleans()):
        heads["seg"] = {"type": "segmenter", "classes": draw(st.integers(2, 4))}
        losses["seg"] = {"type": "cross_entropy", "weight": draw(weights), "label_smoothing": draw(st.floats(0, 0.5))}
    if draw(st.booleans()) or not heads:
        heads["rec"] = {"type": "reconstructor", "activation": draw(st.sampled_from(["none", "softplus", "sigmoid"]))}
        losses["rec"] = {"type": "mse", "weight": draw(weights)}
    spec = {
        "name": draw(
            st.text(
                st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
                min_size=1,
                max_size=20,
            )
        ),
        "input": {"shape": shape, "channels": draw(st.integers(1, 3))},
        "backbone": {
            "type": backbone,
            "widths": w,
            "norm": draw(st.sampled_from(["batch", "instance", "group", "none"])),
        },
        "heads": heads,
        "losses": losses,
        "weighting": {"type": draw(st.sampled_from(["weighted_sum", "uncertainty"]))},
        "training": {"lr": draw(st.floats(1e-6, 1.0)), "batch_size": draw(st.integers(1, 512))},
    }
    if "seg" in heads or "rec" in heads:
        spec["decoder"] = draw(
            st.sampled_from(
                [{"type": "deconv3d", "skips": draw(st.booleans())}, {"type": "upsample3d", "mode": "nearest"}]
            )
        )
    return spec


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_yaml_round_trip(data):
    spec = dsmnet.load_spec(data, REGISTRIES)
    text = spec.to_yaml()
    again = Spec.from_dict(parse_yaml(text))
    assert again == spec
    assert again.to_yaml() == text


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.floats(-2, 200) | st.sampled_from([float("nan"), float("inf")]),
    st.sampled_from(["", "x", "resnet3d", "vgg3d", "deconv3d", "decoder", "backbone", "classifier", "mse", "s4"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "x", "weight"]), inner, max_size=2)
    ),
    max_leaves=4,
)


def paths(node, prefix=()):
    """Every path to a value in nested dicts/lists."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated_specs(draw) -> dict:
    data = copy.deepcopy(dsmnet.load_spec(draw(st.sampled_from(SHIPPED)), REGISTRIES).to_dict())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(data))[1:]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "from", "weight", "classes", "widths"]))] = draw(VALUES)
        else:
            parent[path[-1]] = draw(VALUES)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_random_mutations_build_or_raise_spec_error(data):
    try:
        spec = dsmnet.load_spec(data, REGISTRIES)
    except SpecError:
        return
    model = dsmnet.build_model(spec, REGISTRIES)
    dsmnet.build_loss(spec, REGISTRIES)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_round_trip(name):
    spec = dsmnet.load_spec(name, REGISTRIES)
    assert Spec.from_dict(parse_yaml(spec.to_yaml())) == spec

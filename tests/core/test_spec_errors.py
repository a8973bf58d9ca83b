"""A wrong spec names the YAML path, the bad value and the allowed ones."""

from __future__ import annotations

import pytest

import dsmnet
from dsmnet.core.errors import SpecError


def base() -> dict:
    return dsmnet.load_spec("dsmnet").to_dict()


def error_of(spec, registries) -> SpecError:
    with pytest.raises(SpecError) as info:
        dsmnet.load_spec(spec, registries)
    return info.value


DELETE = object()

# one change to the shipped DSM-Net spec (a YAML path and its new value, or DELETE), and what the
# message starts with and holds
ONE_CHANGE = {
    "a bad literal lists the allowed values": (
        ("heads", "cls", "pool"), "mean", "heads.cls.pool:", ["'avg', 'max', 'flatten' or 'shells'"]
    ),
    "an unknown parameter lists the allowed ones": (
        ("heads", "cls", "hiden"), [512], "heads.cls.hiden: unknown key; did you mean 'hidden'?",
        ["allowed: act, classes, dropout, hidden, norm, pool"],
    ),
    "an unknown top-level key": (("head",), {}, "head: unknown key; did you mean 'heads'?", ["backbone"]),
    "an unknown training key": (("training", "learning_rate"), 0.1, "training.learning_rate: unknown key", []),
    "a rate floor needs the plateau schedule": (
        ("training", "min_lr"), 1e-6, "training.min_lr:", ["floor for the plateau schedule", "schedule is constant"]
    ),
    "a loss must name a head": (
        ("losses", "den"), {"type": "mse"}, "losses.den: no head named 'den' (heads: cls, seg, rec)", []
    ),
    "every head needs a loss": (("losses", "rec"), DELETE, "heads.rec: head has no loss: add losses.rec", []),
    "a loss must fit its head's target": (
        ("losses", "rec", "type"), "cross_entropy", "losses.rec.type: loss 'cross_entropy' cannot train head 'rec'",
        ["allowed: mse"],
    ),
    "a dense head needs a decoder": (
        ("decoder",), DELETE, "", ["heads.seg.from: head 'seg' (segmenter) reads the decoder, but the spec has none"]
    ),
    "an unknown source lists the allowed ones": (
        ("heads", "cls", "from"), "backbone.s16", "heads.cls.from: unknown source 'backbone.s16'",
        ["allowed: backbone, backbone.s1, backbone.s2, backbone.s4, backbone.s8, decoder"],
    ),
    "an input too small for the backbone": (
        ("input", "shape"), [40, 40, 4], "input.shape: 40×40×4 is too small", ["downsamples 8×"]
    ),
    "a decoder's blocks are checked by the component": (
        ("decoder", "blocks"), [1], "decoder: decoder 'deconv3d': blocks: needs 3 entries", []
    ),
}  # fmt: skip


@pytest.mark.parametrize("change", ONE_CHANGE.values(), ids=ONE_CHANGE.keys())
def test_one_change_gives_one_clear_message(change, registries):
    path, value, starts, holds = change
    spec = base()
    parent = spec
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    msg = str(error_of(spec, registries))
    assert msg.startswith(starts) and all(part in msg for part in holds), msg


def test_unknown_component_suggests_close_match(registries):
    spec = base()
    spec["backbone"]["type"] = "resnet"
    err = error_of(spec, registries)
    assert str(err) == ("backbone.type: unknown backbone 'resnet'; did you mean 'resnet3d'? (allowed: resnet3d, vgg3d)")


def test_bad_parameter_value_names_path_value_and_rule(registries):
    spec = base()
    spec["heads"]["cls"]["dropout"] = 1.5
    err = error_of(spec, registries)
    assert err.problems[0][0] == ("heads", "cls", "dropout")
    assert "less than 1" in str(err) and "1.5" in str(err)


def test_several_problems_reported_at_once(registries):
    spec = base()
    spec["heads"]["seg"]["classes"] = 1
    spec["backbone"]["widths"] = []
    err = error_of(spec, registries)
    locs = {p[0] for p in err.problems}
    assert ("heads", "seg", "classes") in locs and ("backbone", "widths") in locs


def test_dense_head_cannot_read_a_coarse_feature(registries):
    spec = base()
    spec["heads"]["seg"]["from"] = "backbone.s8"
    spec["heads"]["rec"]["from"] = "backbone"
    del spec["decoder"]
    msg = str(error_of(spec, registries))
    assert "heads.seg.from" in msg and "stride 8" in msg


def test_decoder_without_a_reader(registries):
    spec = base()
    for head in ("seg", "rec"):
        del spec["heads"][head], spec["losses"][head]
    assert "decoder: no head reads the decoder" in str(error_of(spec, registries))


def test_input_bin_must_divide_the_box_and_leave_room_for_the_backbone(registries):
    spec = base()
    spec["input"]["bin"] = 3
    msg = str(error_of(spec, registries))
    assert msg == "input.bin: 40×40×40 does not divide by bin 3 (each side must be a multiple of it)"
    spec["input"]["shape"], spec["input"]["bin"] = [16, 16, 16], 4
    msg = str(error_of(spec, registries))
    assert msg.startswith("input.shape: 16×16×16, binned 4× to 4×4×4, is too small") and "downsamples 8×" in msg
    spec["input"]["bin"] = 0
    assert str(error_of(spec, registries)).startswith("input.bin: ")


def test_yaml_syntax_error_names_file_line_and_column(tmp_path, registries):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nbackbone: {type: resnet3d\nheads: {}\n")
    err = error_of(path, registries)
    assert str(err).startswith(f"{path}: line 3, column 6: invalid YAML")


def test_yaml_duplicate_key_is_an_error(tmp_path, registries):
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nname: y\n")
    assert "duplicate key 'name'" in str(error_of(path, registries))


def test_errors_from_a_file_name_the_file(tmp_path, registries):
    spec = base()
    spec["heads"]["seg"]["classes"] = 1
    path = tmp_path / "s.yaml"
    path.write_text(dsmnet.Spec.from_dict(spec).to_yaml())
    assert str(error_of(path, registries)).startswith(f"{path}: heads.seg.classes:")


def test_not_a_mapping(registries):
    assert "a spec must be a mapping, got list" in str(error_of([1, 2], registries))


def test_missing_file_and_not_builtin(registries):
    msg = str(error_of("nope.yaml", registries))
    assert msg.startswith("nope.yaml: no such file") and "dsmnet" in msg


def test_missing_required_sections(registries):
    err = error_of({"name": "x"}, registries)
    assert {p[0] for p in err.problems} == {("backbone",), ("heads",), ("losses",)}
    assert "required, but missing" in str(err)


@pytest.mark.parametrize("name", ["two\nlines", "nel\x85", "tab\there", "ls\u2028"])
def test_spec_name_must_be_one_printable_line(registries, name):
    """Names become run folders and YAML scalars; YAML reads U+0085/U+2028 as line breaks."""
    spec = base()
    spec["name"] = name
    err = error_of(spec, registries)
    assert err.problems[0][0] == ("name",)
    assert "one line of printable characters" in str(err)

"""Plugin discovery: built-ins and entry points through one path; broken plugins are contained."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch

from dsmnet.core.errors import PluginError
from dsmnet.registry import UnknownComponentError, hookimpl, load_plugins
from dsmnet.registry import plugins as plugins_mod
from dsmnet.registry.plugins import PluginSource, PluginWarning

BUILTINS = {
    ("backbone", "resnet3d"),
    ("backbone", "vgg3d"),
    ("decoder", "deconv3d"),
    ("decoder", "upsample3d"),
    ("head", "classifier"),
    ("head", "segmenter"),
    ("head", "reconstructor"),
    ("head", "pose"),
    ("loss", "cross_entropy"),
    ("loss", "mse"),
    ("loss", "turned_density"),
    ("weighting", "weighted_sum"),
    ("weighting", "uncertainty"),
}


def fake_plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


def with_third_party(monkeypatch, *modules_or_errors):
    """Install fake entry points (a module, or an exception raised on load) beside the real ones."""
    real = plugins_mod.entry_point_plugins()

    def sources():
        extra = []
        for i, item in enumerate(modules_or_errors):
            if isinstance(item, BaseException):

                def load(exc=item):
                    raise exc

                extra.append(PluginSource(f"broken{i}", load, "9.9", False))
            else:
                extra.append(PluginSource(item.__name__, lambda m=item: m, "1.0", False))
        return [*real, *extra]

    monkeypatch.setattr(plugins_mod, "entry_point_plugins", sources)


def test_builtins_are_registered_by_their_plugins(registries):
    found = {(c.kind, c.name) for c in registries.components() if c.plugin.startswith("dsmnet.")}
    assert found == BUILTINS
    assert registries.backbone.get("resnet3d").plugin == "dsmnet.backbones"


def test_third_party_entry_point_is_discovered(registries):
    component = registries.head.get("attnpool_classifier")
    assert component.plugin == "attnpool" and component.version == "0.1.0"


def test_unknown_name_suggests_close_matches(registries):
    with pytest.raises(UnknownComponentError, match=r"unknown backbone 'resnet3D'; did you mean 'resnet3d'\?"):
        registries.backbone.get("resnet3D")


def test_wildcard_listing(registries):
    assert registries.head.names("*classifier") == ["attnpool_classifier", "classifier"]


def test_env_var_restricts_third_party_plugins(monkeypatch):
    monkeypatch.setenv("DSMNET_LOAD_PLUGINS", "")
    registries = load_plugins()
    assert "attnpool_classifier" not in registries.head and "classifier" in registries.head
    monkeypatch.setenv("DSMNET_LOAD_PLUGINS", "attnpool")
    assert "attnpool_classifier" in load_plugins().head


def test_broken_plugin_warns_by_name_and_the_rest_load(monkeypatch):
    with_third_party(monkeypatch, ImportError("No module named 'missing_dep'"))
    with pytest.warns(
        PluginWarning, match="plugin 'broken0' failed to load: ImportError: No module named 'missing_dep'"
    ):
        registries = load_plugins()
    assert "resnet3d" in registries.backbone and "attnpool_classifier" in registries.head
    assert "broken0" in registries.failures


def test_strict_mode_makes_a_broken_plugin_an_error(monkeypatch):
    with_third_party(monkeypatch, RuntimeError("boom"))
    monkeypatch.setenv("DSMNET_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="plugin 'broken0' failed to load: RuntimeError: boom"):
        load_plugins()


def test_misspelled_hook_is_caught(monkeypatch):
    bad = fake_plugin("typo_plugin", register_head=lambda register: None)
    with_third_party(monkeypatch, bad)
    with pytest.warns(PluginWarning, match="typo_plugin.*register_head"):
        registries = load_plugins()
    assert "typo_plugin" in registries.failures


def test_wrong_hook_argument_is_caught(monkeypatch):
    bad = fake_plugin("argname_plugin", register_heads=lambda registrar: None)
    with_third_party(monkeypatch, bad)
    with pytest.warns(PluginWarning, match="argname_plugin.*registrar"):
        load_plugins()


def test_duplicate_name_is_an_error_naming_both_plugins(monkeypatch):
    class Other(torch.nn.Module):
        def __init__(self, in_shape):
            super().__init__()

    dup = fake_plugin("dup_plugin", register_backbones=lambda register: register("resnet3d", Other))
    with_third_party(monkeypatch, dup)
    with pytest.raises(
        PluginError,
        match="duplicate backbone 'resnet3d': registered by plugin 'dsmnet.backbones' and by plugin 'dup_plugin'",
    ):
        load_plugins()


class _HeadContract(torch.nn.Module):
    target, source, dense = "class", "backbone", False


def test_component_without_type_hints_is_rejected_whole(monkeypatch):
    class Untyped(_HeadContract):
        def __init__(self, in_shape, *, size=3):
            super().__init__()

    class Fine(_HeadContract):
        def __init__(self, in_shape, *, size: int = 3):
            super().__init__()

    def register_heads(register):
        register("fine_head", Fine)
        register("untyped_head", Untyped)

    with_third_party(monkeypatch, fake_plugin("untyped_plugin", register_heads=register_heads))
    with pytest.warns(PluginWarning, match="keyword argument 'size' has no type hint"):
        registries = load_plugins()
    assert "fine_head" not in registries.head  # nothing half-registered


def test_discovery_does_not_depend_on_what_was_imported():
    code = "from dsmnet.registry import load_plugins; print(sorted(c.name for c in load_plugins().components()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "resnet3d" in out and "attnpool_classifier" in out


@pytest.mark.parametrize(
    "attributes,message",
    [
        ({}, "no class attribute 'target' .*one of class, mask, density"),
        (
            {"target": "label", "source": "backbone", "dense": False},
            "target = 'label', not one of class, mask, density",
        ),
        ({"target": "class", "source": "encoder", "dense": False}, "source = 'encoder', not one of backbone, decoder"),
        ({"target": "class", "source": "backbone", "dense": "no"}, "dense = 'no', not True or False"),
    ],
)
def test_a_head_breaking_the_contract_is_refused_at_registration(monkeypatch, attributes, message):
    broken = type("Broken", (torch.nn.Module,), {**attributes, "__init__": lambda self, in_shape: None})
    with_third_party(monkeypatch, fake_plugin("broken_plugin", register_heads=lambda register: register("bad", broken)))
    with pytest.raises(PluginError, match="head 'bad' of plugin 'broken_plugin' breaks the head contract: " + message):
        load_plugins(strict=True)


def test_a_loss_breaking_the_contract_is_refused_at_registration(monkeypatch):
    broken = type("Broken", (torch.nn.Module,), {"targets": frozenset({"voxels"}), "kind": "regression"})
    with_third_party(monkeypatch, fake_plugin("broken_loss", register_losses=lambda register: register("bad", broken)))
    with pytest.raises(PluginError, match="loss 'bad' .* targets = frozenset.*not a non-empty set of class, mask"):
        load_plugins(strict=True)


def test_hooks_and_registries_come_from_the_one_list_of_kinds(registries):
    from dsmnet.registry import hookspecs
    from dsmnet.registry.kinds import KINDS

    assert [k.hook for k in KINDS] == [
        "register_backbones",
        "register_decoders",
        "register_heads",
        "register_losses",
        "register_weightings",
    ]
    for kind in KINDS:
        assert callable(getattr(hookspecs, kind.hook)) and getattr(registries, kind.name).kind == kind.name
    assert [r.kind for r in registries] == [k.name for k in KINDS]

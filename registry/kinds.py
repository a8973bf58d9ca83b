"""The component kinds, declared once: registries, hook names and hook specs derive from here.

Each kind names the hook a plugin implements to register components of it, and the contract a
component class must meet: class attributes and their allowed values. The contract is checked
once, when a component is registered, so that a third-party component that breaks it is a clear
:class:`~dsmnet.registry.errors.PluginError` at load time rather than a failure deep in a build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TARGETS = ("class", "mask", "density", "pose")  # what a head predicts and a loss scores
SOURCES = ("backbone", "decoder")  # what a head reads


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in allowed


def _targets(v: Any) -> bool:
    return isinstance(v, (set, frozenset, tuple)) and bool(v) and all(t in TARGETS for t in v)


@dataclass(frozen=True)
class Attribute:
    """A class attribute a component of some kind must have."""

    name: str
    valid: Callable[[Any], bool]
    allowed: str  # what the error message says is allowed


@dataclass(frozen=True)
class Kind:
    """A component kind: its name, what its components do, and their contract."""

    name: str
    doc: str
    contract: tuple[Attribute, ...] = field(default=())

    @property
    def hook(self) -> str:
        """The hook a plugin implements to register components of this kind."""
        plural = self.name + ("es" if self.name.endswith("s") else "s")
        return f"register_{plural}"

    def broken(self, cls: type) -> list[str]:
        """What ``cls`` lacks of this kind's contract (empty when it meets it)."""
        problems = []
        for attr in self.contract:
            if not hasattr(cls, attr.name):
                problems.append(f"no class attribute {attr.name!r} ({attr.allowed})")
            elif not attr.valid(getattr(cls, attr.name)):
                problems.append(f"{attr.name} = {getattr(cls, attr.name)!r}, not {attr.allowed}")
        return problems


KINDS: tuple[Kind, ...] = (
    Kind("backbone", "Register encoders: ``register('name', Module)``; they return a dict of feature maps."),
    Kind("decoder", "Register decoders that turn encoder features into one full-resolution map."),
    Kind(
        "head",
        "Register task heads (with ``target``, ``source`` and ``dense`` class attributes).",
        (
            Attribute("target", _one_of(TARGETS), f"one of {', '.join(TARGETS)}"),
            Attribute("source", _one_of(SOURCES), f"one of {', '.join(SOURCES)}"),
            Attribute("dense", lambda v: isinstance(v, bool), "True or False"),
        ),
    ),
    Kind(
        "loss",
        "Register per-task losses returning one loss per sample (``targets``, ``kind`` class attributes).",
        (
            Attribute("targets", _targets, f"a non-empty set of {', '.join(TARGETS)}"),
            Attribute("kind", _one_of(("classification", "regression")), "classification or regression"),
        ),
    ),
    Kind("weighting", "Register weightings that combine per-task losses into the total."),
)
BY_NAME = {k.name: k for k in KINDS}

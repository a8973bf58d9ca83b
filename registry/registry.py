"""Named component registries (after timm's and detectron2's: register, get, list)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from dsmnet.registry.errors import PluginError, UserError
from dsmnet.registry.kinds import BY_NAME, KINDS
from dsmnet.registry.params import params_model


@dataclass(frozen=True)
class Component:
    """A registered component: its class, its parameter model and where it came from."""

    kind: str
    name: str
    cls: type
    params: type[BaseModel]
    plugin: str
    version: str

    @classmethod
    def create(cls, kind: str, name: str, component: type, plugin: str, version: str) -> Component:
        """Describe ``component``, deriving its parameter model from its constructor.

        Raises:
            TypeError: a name that is not an identifier.
            PluginError: a class that breaks its kind's contract (see :mod:`dsmnet.registry.kinds`).
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"invalid {kind} name {name!r}: use letters, digits and underscores")
        problems = BY_NAME[kind].broken(component)
        if problems:
            raise PluginError(f"{kind} {name!r} of plugin {plugin!r} breaks the {kind} contract: {'; '.join(problems)}")
        return cls(kind, name, component, params_model(name, component), plugin, version)

    @property
    def doc(self) -> str:
        """First line of the class docstring."""
        return (self.cls.__doc__ or "").strip().split("\n")[0]


class UnknownComponentError(UserError, KeyError):
    """No component of that name; the message lists close matches and all names."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        self.message = f"unknown {kind} {name!r}{hint} (allowed: {', '.join(known) or 'none registered'})"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class Registry:
    """The components of one kind."""

    kind: str
    _items: dict[str, Component] = field(default_factory=dict)

    def add(self, component: Component) -> None:
        """Register a component; a name taken by another plugin is an error naming both."""
        name = component.name
        if name in self._items:
            other = self._items[name].plugin
            raise PluginError(
                f"duplicate {self.kind} {name!r}: registered by plugin {other!r} and by plugin {component.plugin!r}"
            )
        self._items[name] = component

    def get(self, name: str) -> Component:
        """The component called ``name``, or :class:`UnknownComponentError`."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownComponentError(self.kind, name, self.names()) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style wildcard."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[Component]:
        return iter(self._items[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._items)


class Registries:
    """One registry per component kind (``registries.backbone``, ``registries.head``…; see
    :data:`dsmnet.registry.kinds.KINDS`), filled by :func:`dsmnet.registry.load_plugins`."""

    def __init__(self) -> None:
        self.by_kind: dict[str, Registry] = {k.name: Registry(k.name) for k in KINDS}
        self.plugins: dict[str, str] = {}
        self.failures: dict[str, str] = {}

    def __getattr__(self, kind: str) -> Registry:
        try:
            return self.__dict__["by_kind"][kind]
        except KeyError:
            raise AttributeError(kind) from None

    def __iter__(self) -> Iterator[Registry]:
        return iter(self.by_kind.values())

    def components(self) -> list[Component]:
        """Every registered component, by kind then name."""
        return [c for registry in self for c in registry]

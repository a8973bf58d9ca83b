"""Plugin discovery: built-ins from plugins.toml and third-party entry points, through one path.

Nothing registers on import. :func:`load_plugins` imports each plugin module, registers it with
pluggy (which checks its hook implementations against :mod:`dsmnet.registry.hookspecs`), and calls
its hooks to fill a fresh :class:`~dsmnet.registry.registry.Registries`.

Environment:
    DSMNET_LOAD_PLUGINS: comma-separated names of the third-party plugins to load (empty: none);
        unset loads every installed one. Built-ins always load.
    DSMNET_STRICT_PLUGINS: ``1`` makes a plugin that fails to load an error instead of a warning.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.resources
import os
import tomllib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

import pluggy

from dsmnet.registry import hookspecs
from dsmnet.registry.errors import PluginError
from dsmnet.registry.kinds import KINDS
from dsmnet.registry.registry import Component, Registries

ENTRY_POINT_GROUP = "dsmnet"
ENV_LOAD = "DSMNET_LOAD_PLUGINS"
ENV_STRICT = "DSMNET_STRICT_PLUGINS"
HOOKS = {k.name: k.hook for k in KINDS}


class PluginWarning(UserWarning):
    """A third-party plugin failed to load and was skipped."""


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from: its name, how to import it, its version."""

    name: str
    load: Callable[[], ModuleType]
    version: str
    builtin: bool


def _version() -> str:
    try:
        return importlib.metadata.version("dsmnet")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def builtin_plugins() -> list[PluginSource]:
    """The built-in plugins listed in ``plugins.toml``."""
    text = importlib.resources.files("dsmnet").joinpath("plugins.toml").read_text()
    table = tomllib.loads(text).get("builtin", {})
    version = _version()
    return [
        PluginSource(name, functools.partial(importlib.import_module, module), version, True)
        for name, module in table.items()
    ]


def entry_point_plugins() -> list[PluginSource]:
    """Third-party plugins: the installed distributions' entry points in group ``dsmnet``."""
    sources = []
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        version = ep.dist.version if ep.dist is not None else "unknown"
        sources.append(PluginSource(ep.name, ep.load, version, False))
    return sources


def _selected(sources: list[PluginSource], only: Iterable[str] | None) -> list[PluginSource]:
    if only is None:
        env = os.environ.get(ENV_LOAD)
        if env is None:
            return sources
        only = [n.strip() for n in env.split(",") if n.strip()]
    wanted = set(only)
    return [s for s in sources if s.builtin or s.name in wanted]


def _stage(pm: pluggy.PluginManager, plugin: str, version: str) -> list[Component]:
    """Call one plugin's hooks and build its components (nothing is registered yet)."""
    staged: list[Component] = []
    for kind, hook_name in HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name != plugin:
                continue

            def register(name: str, cls: type, _kind: str = kind) -> None:
                staged.append(Component.create(_kind, name, cls, plugin, version))

            impl.function(**{arg: register for arg in impl.argnames})
    return staged


def load_plugins(*, only: Iterable[str] | None = None, strict: bool | None = None) -> Registries:
    """Discover every plugin and return the registries they fill.

    Args:
        only: names of third-party plugins to load (default: ``$DSMNET_LOAD_PLUGINS`` or all).
        strict: raise on a plugin that fails to load (default: ``$DSMNET_STRICT_PLUGINS == "1"``).

    Raises:
        PluginError: two plugins register the same name, a built-in fails, or (strict) any
            plugin fails to load.
    """
    if strict is None:
        strict = os.environ.get(ENV_STRICT, "") == "1"
    pm = pluggy.PluginManager("dsmnet")
    pm.add_hookspecs(hookspecs)
    registries = Registries()
    for source in _selected([*builtin_plugins(), *entry_point_plugins()], only):
        try:
            module = source.load()
            pm.register(module, name=source.name)
            try:
                pm.check_pending()
            except pluggy.PluginValidationError:
                pm.unregister(name=source.name)
                raise
            components = _stage(pm, source.name, source.version)
        except Exception as exc:  # a broken plugin must not take the others down
            if pm.has_plugin(source.name):
                pm.unregister(name=source.name)
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            message = f"plugin {source.name!r} failed to load: {why}"
            if strict or source.builtin:
                raise PluginError(message) from exc
            warnings.warn(f"{message}; skipped (set {ENV_STRICT}=1 to make this an error)", PluginWarning, stacklevel=2)
            registries.failures[source.name] = why
            continue
        for c in components:
            getattr(registries, c.kind).add(c)
        registries.plugins[source.name] = source.version
    return registries


@functools.cache
def default_registries() -> Registries:
    """The registries of :func:`load_plugins` with default settings, loaded once per process."""
    return load_plugins()

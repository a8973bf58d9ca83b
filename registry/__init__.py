"""Component registries and plugin discovery."""

from dsmnet.registry.hookspecs import hookimpl, hookspec
from dsmnet.registry.plugins import default_registries, load_plugins
from dsmnet.registry.registry import Component, Registries, Registry, UnknownComponentError

__all__ = [
    "Component",
    "Registries",
    "Registry",
    "UnknownComponentError",
    "default_registries",
    "hookimpl",
    "hookspec",
    "load_plugins",
]

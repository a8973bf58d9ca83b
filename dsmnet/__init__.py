"""dsmnet: multi-task deep learning on cryo-ET subtomograms, composed from YAML specs.

The public API is loaded lazily, so ``import dsmnet`` (and ``dsmnet --help``) stays fast:

- :func:`load_spec`, :func:`build_model`, :func:`build_loss` — spec → network and loss;
- :func:`load_plugins` — discover built-in and third-party components;
- :mod:`dsmnet.ablation` — generate variants of a spec;
- :data:`hookimpl` — the marker a plugin's hooks carry;
- :class:`SpecError` — every bad-spec error.

Examples:
    >>> import dsmnet
    >>> model = dsmnet.build_model(dsmnet.load_spec("dsmnet"))
    >>> sorted(model(torch.zeros(2, 1, 40, 40, 40)))
    ['cls', 'rec', 'seg']
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

try:  # the version is written once, in pyproject.toml
    __version__ = importlib.metadata.version("dsmnet")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "load_spec": "dsmnet.core.build",
    "build_model": "dsmnet.core.build",
    "build_loss": "dsmnet.core.build",
    "resolve": "dsmnet.core.build",
    "Spec": "dsmnet.core.spec",
    "SpecError": "dsmnet.core.errors",
    "PluginError": "dsmnet.core.errors",
    "load_plugins": "dsmnet.registry.plugins",
    "hookimpl": "dsmnet.registry.hookspecs",
    "ablation": None,
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dsmnet' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"dsmnet.core.{name}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

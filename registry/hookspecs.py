"""The hooks a dsmnet plugin implements (pluggy project ``dsmnet``).

Each hook receives ``register(name, component)``; ``component`` is an ``nn.Module`` class whose
positional arguments are inferred by the builder (what it reads) and whose keyword-only
arguments, with their type hints and defaults, are the parameters a spec may set.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("dsmnet")
hookimpl = pluggy.HookimplMarker("dsmnet")


@hookspec
def register_backbones(register):
    """Register encoders: ``register("name", Module)``; they return a dict of feature maps."""


@hookspec
def register_decoders(register):
    """Register decoders that turn encoder features into one full-resolution map."""


@hookspec
def register_heads(register):
    """Register task heads (with ``target``, ``source`` and ``dense`` class attributes)."""


@hookspec
def register_losses(register):
    """Register per-task losses returning one loss per sample."""


@hookspec
def register_weightings(register):
    """Register weightings that combine per-task losses into the total."""

"""The hooks a dsmnet plugin implements (pluggy project ``dsmnet``): one per component kind of
:data:`dsmnet.registry.kinds.KINDS` (``register_backbones``, ``register_decoders``,
``register_heads``, ``register_losses``, ``register_weightings``), generated from it.

Each hook receives ``register(name, component)``; ``component`` is an ``nn.Module`` class whose
positional arguments are inferred by the builder (what it reads) and whose keyword-only
arguments, with their type hints and defaults, are the parameters a spec may set.
"""

from __future__ import annotations

import pluggy

from dsmnet.registry.kinds import KINDS

hookspec = pluggy.HookspecMarker("dsmnet")
hookimpl = pluggy.HookimplMarker("dsmnet")


def _hookspec(name: str, doc: str):
    def hook(register):  # pluggy reads the argument names
        pass

    hook.__name__ = hook.__qualname__ = name
    hook.__doc__ = doc
    return hookspec(hook)


for _kind in KINDS:
    globals()[_kind.hook] = _hookspec(_kind.hook, _kind.doc)
del _kind

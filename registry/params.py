"""Derive a component's parameter model from its constructor, so a parameter is declared once."""

from __future__ import annotations

import inspect
import typing

from pydantic import BaseModel, ConfigDict, create_model


def params_model(name: str, component: type) -> type[BaseModel]:
    """A pydantic model of ``component``'s keyword-only constructor arguments.

    Positional arguments are what the builder infers (input shapes, task lists) and are not
    part of a spec. Unknown keys are rejected, so a typo names the allowed parameters.

    Raises:
        TypeError: a keyword-only argument has no type hint.
    """
    init = component.__init__
    hints = typing.get_type_hints(init, include_extras=True)
    fields = {}
    for param in inspect.signature(init).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.name not in hints:
            raise TypeError(f"{component.__qualname__}: keyword argument {param.name!r} has no type hint")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model = create_model(
        f"{component.__name__}Params",
        __config__=ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False),
        **fields,
    )
    model.__doc__ = f"Parameters of the {name!r} component."
    return model

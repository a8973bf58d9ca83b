"""Annotated parameter types shared by components; the registry turns them into validation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

PositiveInt = Annotated[int, Field(ge=1)]
Widths = Annotated[tuple[PositiveInt, ...], Field(min_length=1)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]

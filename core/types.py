"""Annotated parameter types shared by components; the registry turns them into validation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

PositiveInt = Annotated[int, Field(ge=1)]
Width = Annotated[int, Field(ge=1, le=4096)]
Widths = Annotated[tuple[Width, ...], Field(min_length=1, max_length=8)]
Classes = Annotated[int, Field(ge=2, le=100_000)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]

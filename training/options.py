"""The choices of the training and evaluation settings, declared once and free of heavy imports,
so that the CLI lists them without importing torch (``dsmnet --help`` answers at once)."""

from __future__ import annotations

from typing import Literal, get_args

Augment = Literal["none", "flip", "rot180", "rotate", "mixed", "spin"]
AUGMENTS: tuple[str, ...] = get_args(Augment)
Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Border = Literal["skip", "pad"]
BORDERS: tuple[str, ...] = get_args(Border)
SPLITS: tuple[str, ...] = ("train", "val", "test", "all")

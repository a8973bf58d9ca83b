"""Shape bookkeeping: what a component produces, so consumers infer their input channels."""

from __future__ import annotations

import math
from dataclasses import dataclass

Size3 = tuple[int, int, int]


@dataclass(frozen=True)
class ShapeSpec:
    """A feature map's description, detectron2-style.

    Attributes:
        channels: number of channels.
        stride: downsampling factor relative to the network input.
        size: spatial size (z, y, x) for the spec's input shape.
    """

    channels: int
    stride: int
    size: Size3

    @property
    def numel(self) -> int:
        """Elements per sample (channels × voxels)."""
        return self.channels * math.prod(self.size)


def halve(size: Size3) -> Size3:
    """Spatial size after a stride-2 step that rounds up (pool with ``ceil_mode``, or k3/p1/s2 conv).

    Rounding up keeps every size invertible by a stride-2 transposed convolution, so odd
    input sizes (33, 35) decode back to exactly the input size.
    """
    return tuple(-(-n // 2) for n in size)  # type: ignore[return-value]


def format_size(size: Size3) -> str:
    """``(40, 40, 40) -> '40×40×40'``."""
    return "×".join(str(n) for n in size)

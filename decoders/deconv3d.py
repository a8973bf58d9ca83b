"""The DSM-Net decoder shared by the segmentation and reconstruction heads (Liu et al., 2018, §2.2)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from dsmnet.core.blocks import Act, DeconvNormAct3d, Norm, ResidualBlock3d
from dsmnet.core.shapes import ShapeSpec

NonNegInt = Annotated[int, Field(ge=0)]


def paper_blocks(steps: int) -> tuple[int, ...]:
    """DSM-Net's layout: one residual block after the second-to-last upsampling step."""
    layout = [0] * steps
    layout[max(steps - 2, 0)] = 1
    return tuple(layout)


class Deconv3d(nn.Module):
    """Stride-2 3D transposed convolutions from the deepest encoder feature back to the input size.

    Each step doubles the size and halves toward the channels of the next-shallower encoder
    feature, whose map is added when ``skips`` is on. With the ResNet3d encoder at 40³:
    ``128@5³ → 64@10³ (+s4) → 32@20³ (+s2) → res(32) → 32@40³ (+s1)``, as in the paper's two
    deconvolutions, residual block and third deconvolution.

    Args:
        in_shapes: the encoder's features, shallow to deep; inferred by the builder.
        skips: add the encoder feature of the same size after each step.
        blocks: residual blocks after each step, deepest step first; by default the paper's
            layout (one block after the second-to-last step).
        norm: normalisation after each convolution.
        act: activation.
    """

    def __init__(
        self,
        in_shapes: dict[str, ShapeSpec],
        *,
        skips: bool = True,
        blocks: tuple[NonNegInt, ...] | None = None,
        norm: Norm = "batch",
        act: Act = "relu",
    ):
        super().__init__()
        names = list(in_shapes)
        shapes = list(in_shapes.values())
        if len(names) < 2:
            raise ValueError("needs an encoder with at least two feature maps")
        for a, b in zip(shapes, shapes[1:]):
            if b.stride != 2 * a.stride:
                raise ValueError(
                    f"needs encoder features whose strides double; got strides {[s.stride for s in shapes]}"
                )
        steps = len(names) - 1
        layout = paper_blocks(steps) if blocks is None else tuple(blocks)
        if len(layout) != steps:
            raise ValueError(f"blocks: needs {steps} entries (one per upsampling step), got {len(layout)}")
        self.targets = names[-2::-1]
        self.skips = skips
        self.ups = nn.ModuleList()
        self.blocks = nn.ModuleList()
        c = shapes[-1].channels
        for target, n in zip(self.targets, layout):
            out = in_shapes[target].channels
            self.ups.append(DeconvNormAct3d(c, out, norm=norm, act=act))
            self.blocks.append(nn.Sequential(*(ResidualBlock3d(out, norm=norm, act=act) for _ in range(n))))
            c = out
        self._out = ShapeSpec(c, shapes[0].stride, shapes[0].size)

    def output_shape(self) -> ShapeSpec:
        """The decoded map: the shallowest encoder feature's channels, stride and size."""
        return self._out

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        x = next(reversed(feats.values()))
        for target, up, block in zip(self.targets, self.ups, self.blocks):
            skip = feats[target]
            x = up(x, skip.shape[2:])
            if self.skips:
                x = x + skip
            x = block(x)
        return x

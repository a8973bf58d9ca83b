"""The SSN3D-ED decoder: interpolation upsampling with 1×1×1 skip additions (Liu et al., 2018)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dsmnet.core.blocks import Act, ConvNormAct3d, Norm
from dsmnet.core.shapes import ShapeSpec
from dsmnet.core.types import PositiveInt


class Upsample3d(nn.Module):
    """FCN-style decoder: the deepest feature is projected by a 1×1×1 convolution, interpolated up
    to each shallower encoder feature's size and summed with that feature's 1×1×1 projection.

    Args:
        in_shapes: the encoder's features, shallow to deep; inferred by the builder.
        channels: decoder width; by default the shallowest feature's channels.
        skips: add the projected encoder features (off: plain upsampling of the deepest one).
        refine: a 3×3×3 conv-norm-act after each step (SSN3D-ED's decoder convolutions).
        mode: interpolation mode.
        norm: normalisation in the refining convolutions.
        act: activation in the refining convolutions.
    """

    def __init__(
        self,
        in_shapes: dict[str, ShapeSpec],
        *,
        channels: PositiveInt | None = None,
        skips: bool = True,
        refine: bool = True,
        mode: Literal["trilinear", "nearest"] = "trilinear",
        norm: Norm = "batch",
        act: Act = "relu",
    ):
        super().__init__()
        names = list(in_shapes)
        if len(names) < 2:
            raise ValueError("needs an encoder with at least two feature maps")
        c = channels or in_shapes[names[0]].channels
        self.deepest = names[-1]
        self.targets = names[-2::-1]
        self.skips = skips
        self.mode = mode
        projected = self.targets + [self.deepest] if skips else [self.deepest]
        self.proj = nn.ModuleDict({n: nn.Conv3d(in_shapes[n].channels, c, 1) for n in projected})
        self.refine = nn.ModuleList(
            ConvNormAct3d(c, c, norm=norm, act=act) if refine else nn.Identity() for _ in self.targets
        )
        first = in_shapes[names[0]]
        self._out = ShapeSpec(c, first.stride, first.size)

    def output_shape(self) -> ShapeSpec:
        """The decoded map: ``channels`` at the shallowest feature's stride and size."""
        return self._out

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.proj[self.deepest](feats[self.deepest])
        for target, refine in zip(self.targets, self.refine):
            skip = feats[target]
            kwargs = {"align_corners": False} if self.mode == "trilinear" else {}
            x = F.interpolate(x, size=skip.shape[2:], mode=self.mode, **kwargs)
            if self.skips:
                x = x + self.proj[target](skip)
            x = refine(x)
        return x

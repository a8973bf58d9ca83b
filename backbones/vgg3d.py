"""The VGG-style 3D encoder of the single-task baselines DSRF3D-v2 and SSN3D-ED."""

from __future__ import annotations

import torch
from torch import nn

from dsmnet.core.blocks import Act, ConvNormAct3d, Norm
from dsmnet.core.shapes import ShapeSpec, halve
from dsmnet.core.types import PositiveInt, Widths


class VGG3d(nn.Module):
    """3D VGG encoder: per stage ``convs`` 3×3×3 convolutions then a stride-2 max-pool.

    DSRF3D-v2 (Che et al., 2018) and SSN3D-ED (Liu et al., 2018) use 32,32 → pool → 64,64 →
    pool → 128,128 → pool. Features: ``s1`` 32@40³, ``s2`` 64@20³, ``s4`` 128@10³ (each stage's
    last conv, before its pool) and ``s8`` 128@5³ (the final pool).

    Args:
        in_shape: the network input; inferred by the builder.
        widths: channels of each stage.
        convs: convolutions per stage (2 in both baselines).
        norm: normalisation after each convolution (DSRF3D-v2 uses batch normalisation).
        act: activation.
    """

    def __init__(
        self,
        in_shape: ShapeSpec,
        *,
        widths: Widths = (32, 64, 128),
        convs: PositiveInt = 2,
        norm: Norm = "batch",
        act: Act = "relu",
    ):
        super().__init__()
        stages = []
        c = in_shape.channels
        for w in widths:
            layers = []
            for _ in range(convs):
                layers.append(ConvNormAct3d(c, w, norm=norm, act=act))
                c = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool3d(2, 2, ceil_mode=True)
        size = in_shape.size
        shapes = {}
        for i, w in enumerate(widths):
            shapes[f"s{2**i}"] = ShapeSpec(w, 2**i, size)
            size = halve(size)
        shapes[f"s{2 ** len(widths)}"] = ShapeSpec(widths[-1], 2 ** len(widths), size)
        self._shapes = shapes

    def output_shape(self) -> dict[str, ShapeSpec]:
        """The features this encoder returns, shallow to deep."""
        return dict(self._shapes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        names = list(self._shapes)
        feats = {}
        for name, stage in zip(names, self.stages):
            x = stage(x)
            feats[name] = x
            x = self.pool(x)
        feats[names[-1]] = x
        return feats

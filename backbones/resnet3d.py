"""The DSM-Net shared encoder (Liu et al., BMVC 2018, §2.1)."""

from __future__ import annotations

import torch
from torch import nn

from dsmnet.core.blocks import Act, ConvNormAct3d, Norm, ResidualBlock3d
from dsmnet.core.shapes import ShapeSpec, halve
from dsmnet.core.types import PositiveInt, Widths


class ResNet3d(nn.Module):
    """3D ResNet encoder of DSM-Net.

    ``conv3(w0) → maxpool/2 → [res(w0)] → conv3/2(w1) → [res(w1)] → … → conv3/2(wn) → [res(wn)]``.
    With the paper's widths (32, 64, 128) and a 40³ input the features are ``s1`` 32@40³ (the
    stem, used as the finest skip), ``s2`` 32@20³, ``s4`` 64@10³ and ``s8`` 128@5³; the paper's
    final average pooling belongs to the classifier head (``pool: avg``).

    Args:
        in_shape: the network input (channels, stride 1, size); inferred by the builder.
        widths: channels of each stage; the paper uses 32, 64, 128.
        blocks: residual blocks per stage (the paper: 1).
        norm: normalisation after each convolution. The paper does not name one; ``batch``
            (as in He et al.'s residual blocks) is the default, ``none`` gives the bare network.
        act: activation (the paper: ReLU).

    Examples:
        >>> net = ResNet3d(ShapeSpec(1, 1, (40, 40, 40)))
        >>> {k: tuple(v.shape) for k, v in net(torch.zeros(2, 1, 40, 40, 40)).items()}["s8"]
        (2, 128, 5, 5, 5)
    """

    def __init__(
        self,
        in_shape: ShapeSpec,
        *,
        widths: Widths = (32, 64, 128),
        blocks: PositiveInt = 1,
        norm: Norm = "batch",
        act: Act = "relu",
    ):
        super().__init__()
        self.stem = ConvNormAct3d(in_shape.channels, widths[0], norm=norm, act=act)
        self.pool = nn.MaxPool3d(2, 2, ceil_mode=True)
        self.downs = nn.ModuleList(
            ConvNormAct3d(a, b, stride=2, norm=norm, act=act) for a, b in zip(widths, widths[1:])
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ResidualBlock3d(w, norm=norm, act=act) for _ in range(blocks))) for w in widths
        )
        size = in_shape.size
        shapes = {"s1": ShapeSpec(widths[0], 1, size)}
        for i, w in enumerate(widths):
            size = halve(size)
            shapes[f"s{2 ** (i + 1)}"] = ShapeSpec(w, 2 ** (i + 1), size)
        self._shapes = shapes

    def output_shape(self) -> dict[str, ShapeSpec]:
        """The features this encoder returns, shallow to deep."""
        return dict(self._shapes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        names = list(self._shapes)
        x = self.stem(x)
        feats = {names[0]: x}
        x = self.pool(x)
        for i, stage in enumerate(self.stages):
            if i:
                x = self.downs[i - 1](x)
            x = stage(x)
            feats[names[i + 1]] = x
        return feats

"""Small 3D building blocks shared by backbones and decoders (after MONAI's ``TwoConv``/``UpCat``).

Every block takes a ``norm`` name from :data:`NORMS`. Convolutions carry a bias only when no
normalisation follows them (a bias before BatchNorm is redundant).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from timm.layers import get_act_layer
from torch import nn

Norm = Literal["batch", "instance", "group", "none"]
Act = Literal["relu", "gelu", "silu", "leaky_relu", "elu"]


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """A 3D normalisation layer by name (``none`` gives identity)."""
    if norm == "batch":
        return nn.BatchNorm3d(channels)
    if norm == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if norm == "group":  # up to 8 groups, as many as divide the channels
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; allowed: batch, instance, group, none")


def act_layer(act: Act) -> nn.Module:
    """An activation by name, through timm's ``get_act_layer`` (works for 3D: it is elementwise)."""
    layer = get_act_layer(act)
    return layer(inplace=True) if act in ("relu", "leaky_relu", "elu", "silu") else layer()


class ConvNormAct3d(nn.Sequential):
    """Conv3d → norm → activation. ``padding`` defaults to "same" for odd kernels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        norm: Norm = "batch",
        act: Act | None = "relu",
    ):
        super().__init__(
            nn.Conv3d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                bias=norm == "none",
            ),
            norm_layer(norm, out_channels),
            act_layer(act) if act else nn.Identity(),
        )


class ResidualBlock3d(nn.Module):
    """The basic residual block of He et al. (2016) in 3D: two 3×3×3 convs and an identity skip.

    ``x -> conv-norm-act -> conv-norm -> (+x) -> act``; channels and size are preserved.
    """

    def __init__(self, channels: int, *, norm: Norm = "batch", act: Act = "relu"):
        super().__init__()
        self.conv1 = ConvNormAct3d(channels, channels, norm=norm, act=act)
        self.conv2 = ConvNormAct3d(channels, channels, norm=norm, act=None)
        self.act = act_layer(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + x)


class DeconvNormAct3d(nn.Module):
    """Stride-2 3×3×3 transposed convolution → norm → activation that doubles the size.

    The output size is taken from ``size`` at call time, so a size that was halved with rounding
    up (odd inputs) is restored exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: Norm = "batch", act: Act = "relu"):
        super().__init__()
        self.deconv = nn.ConvTranspose3d(in_channels, out_channels, 3, stride=2, padding=1, bias=norm == "none")
        self.norm = norm_layer(norm, out_channels)
        self.act = act_layer(act)

    def forward(self, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        return self.act(self.norm(self.deconv(x, output_size=list(size))))

"""Per-voxel heads on the shared decoder: segmentation and coarse structure recovery."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from dsmnet.core.shapes import ShapeSpec
from dsmnet.core.types import Classes
from dsmnet.heads.classifier import log_prior


class Segmenter(nn.Module):
    """A 1×1×1 convolution to per-voxel class logits (DSM-Net: 2 classes, target vs. not).

    Args:
        in_shape: what the head reads; inferred by the builder.
        classes: number of voxel classes.
    """

    target: ClassVar[str] = "mask"
    source: ClassVar[str] = "decoder"
    dense: ClassVar[bool] = True

    def __init__(self, in_shape: ShapeSpec, *, classes: Classes = 2):
        super().__init__()
        self.conv = nn.Conv3d(in_shape.channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    @torch.no_grad()
    def init_prior(self, prior: torch.Tensor) -> None:
        """Start from the training set's voxel class frequencies (Lin et al., 2017's prior
        initialisation). With ~1 % target voxels an untrained head otherwise spends thousands of
        Adam steps of at most ``lr`` each just moving its bias to the background prior."""
        self.conv.bias.copy_(log_prior(prior, self.conv.out_channels))


class Reconstructor(nn.Module):
    """A 1×1×1 convolution to a one-channel density, trained against the clean target density.

    Args:
        in_shape: what the head reads; inferred by the builder.
        activation: ``none`` for densities of either sign (the paper), ``softplus`` or
            ``sigmoid`` for non-negative or normalised ones.
    """

    target: ClassVar[str] = "density"
    source: ClassVar[str] = "decoder"
    dense: ClassVar[bool] = True

    def __init__(self, in_shape: ShapeSpec, *, activation: Literal["none", "softplus", "sigmoid"] = "none"):
        super().__init__()
        self.conv = nn.Conv3d(in_shape.channels, 1, 1)
        self.activation = {"none": nn.Identity, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid}[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))

    @torch.no_grad()
    def init_prior(self, prior: torch.Tensor) -> None:
        """Start from the training set's mean target density (through the inverse activation)."""
        mean = float(prior)
        if isinstance(self.activation, nn.Sigmoid):
            mean = float(torch.logit(torch.tensor(mean).clamp(1e-4, 1 - 1e-4)))
        elif isinstance(self.activation, nn.Softplus):
            mean = float(torch.tensor(max(mean, 1e-4)).expm1().log())
        self.conv.bias.fill_(mean)

"""Classification head: which complex is in the subtomogram."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from dsmnet.core.blocks import Act, act_layer
from dsmnet.core.shapes import ShapeSpec
from dsmnet.core.types import Classes, Probability, Width


def log_prior(frequencies: torch.Tensor, classes: int) -> torch.Tensor:
    """Centred log frequencies: the softmax biases under which an untrained head predicts the prior."""
    f = frequencies.double().flatten()
    if f.numel() > classes:
        raise ValueError(f"{f.numel()} class frequencies for {classes} classes")
    f = torch.cat([f, f.new_ones(classes - f.numel())])  # classes never seen: a pseudo-count of one
    log = (f / f.sum()).clamp_min(1e-6).log()
    return (log - log.mean()).float()


class ShellPool(nn.Module):
    """Each channel's mean and standard deviation over spherical shells about the map's centre.

    A subtomogram's particle sits at the box centre in a random orientation: shell statistics are
    invariant to rotations about the centre (up to the grid) yet keep how far from the centre a
    feature lies, which is what tells the target from its crowding neighbours — global pooling
    keeps neither, flattening keeps both but must learn every orientation. Shells are 1 voxel
    thick (distances rounded), up to the corners.
    """

    def __init__(self, size: tuple[int, ...]):
        super().__init__()
        grid = np.indices(size) - (np.array(size) - 1)[:, None, None, None] / 2  # numpy: built on any device
        shell = np.sqrt((grid**2).sum(0)).round().astype(int).ravel()
        weights = np.eye(shell.max() + 1, dtype=np.float32)[:, shell]
        weights = weights[weights.sum(1) > 0]  # an even side has no voxel at distance 0 (its row was 0/0: NaN)
        self.register_buffer("weights", torch.tensor(weights / weights.sum(1, keepdims=True)), persistent=False)
        self.register_buffer("member", torch.tensor(weights > 0, dtype=torch.float32), persistent=False)
        self.shells = len(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in fp32 whatever the autocast (its matmuls would run in bf16/fp16), and two passes: the
        # variance as the mean of squared deviations, never E[x²] − E[x]², which cancels
        with torch.autocast(x.device.type, enabled=False):
            flat = x.flatten(2).float()
            mean = flat @ self.weights.T
            var = (flat - mean @ self.member).square() @ self.weights.T
            return torch.cat([mean, (var + 1e-6).sqrt()], 1).flatten(1).to(x.dtype)


class Classifier(nn.Module):
    """Pool the encoder's deepest map, then fully connected layers with dropout, then class logits.

    DSM-Net (§2.2): global average pooling, FC 1024, dropout 0.7, softmax over 22 classes.
    DSRF3D-v2: flatten, FC 1024 and FC 1024 with dropout.

    Args:
        in_shape: what the head reads; inferred by the builder.
        classes: number of classes.
        hidden: widths of the hidden fully connected layers (their last output is the feature
            vector used for unseen-structure discovery).
        dropout: dropout after each hidden layer.
        pool: ``avg`` or ``max`` (global) pooling, ``flatten`` the whole map, or ``shells``
            (each channel's mean and s.d. over spherical shells about the centre, :class:`ShellPool`).
        act: activation after each hidden layer.
        norm: normalisation of each hidden layer before its activation: ``none`` (the papers'),
            ``batch`` (BatchNorm1d) or ``layer`` (LayerNorm). Without it a wide flattened input
            (DSRF3D-v2's) can kill every hidden ReLU early in training at low SNR: all logits then
            equal the biases and the loss sits at the prior's entropy.
    """

    target: ClassVar[str] = "class"
    source: ClassVar[str] = "backbone"
    dense: ClassVar[bool] = False

    def __init__(
        self,
        in_shape: ShapeSpec,
        *,
        classes: Classes = 22,
        hidden: tuple[Width, ...] = (1024,),
        dropout: Probability = 0.7,
        pool: Literal["avg", "max", "flatten", "shells"] = "avg",
        act: Act = "relu",
        norm: Literal["none", "batch", "layer"] = "none",
    ):
        super().__init__()
        width = in_shape.channels  # what the pool hands the first FC layer
        if pool == "avg":
            self.pool = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())
        elif pool == "max":
            self.pool = nn.Sequential(nn.AdaptiveMaxPool3d(1), nn.Flatten())
        elif pool == "shells":
            self.pool = ShellPool(in_shape.size)
            width = 2 * in_shape.channels * self.pool.shells
        else:
            self.pool, width = nn.Flatten(), in_shape.numel
        layers: list[nn.Module] = []
        for h in hidden:
            layers.append(nn.Linear(width, h, bias=norm != "batch"))  # BatchNorm's shift is the bias
            if norm == "batch":
                layers.append(nn.BatchNorm1d(h))
            elif norm == "layer":
                layers.append(nn.LayerNorm(h))
            layers += [act_layer(act), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, classes)
        self.feature_dim = width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The vector the logits are computed from (the paper's 1024-d feature)."""
        return self.body(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    @torch.no_grad()
    def init_prior(self, prior: torch.Tensor) -> None:
        """Start from the training set's class frequencies: logit biases = log frequency."""
        self.fc.bias.copy_(log_prior(prior, self.fc.out_features))

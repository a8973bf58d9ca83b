"""dsmnet plugin: a classifier head with attention pooling (Ilse et al., ICML 2018)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import Field
from torch import nn

from dsmnet import hookimpl


class AttnPoolClassifier(nn.Module):
    """Attention-pooled classifier: voxel scores → softmax weights → weighted mean → FC layers.

    Args:
        in_shape: what the head reads (inferred by dsmnet's builder).
        classes: number of classes.
        hidden: widths of the hidden fully connected layers.
        dropout: dropout after each hidden layer.
        temperature: softmax temperature of the voxel weights.
    """

    target: ClassVar[str] = "class"
    source: ClassVar[str] = "backbone"
    dense: ClassVar[bool] = False

    def __init__(
        self,
        in_shape,
        *,
        classes: Annotated[int, Field(ge=2)] = 22,
        hidden: tuple[Annotated[int, Field(ge=1)], ...] = (1024,),
        dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.7,
        temperature: Annotated[float, Field(gt=0.0)] = 1.0,
    ):
        super().__init__()
        self.score = nn.Conv3d(in_shape.channels, 1, 1)
        self.temperature = temperature
        layers: list[nn.Module] = []
        width = in_shape.channels
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(width, classes)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Per-voxel weights ``[B, 1, D, H, W]`` summing to 1 over the voxels."""
        scores = self.score(x).flatten(2) / self.temperature
        return torch.softmax(scores, dim=-1).view_as(x[:, :1])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        pooled = (self.attention(x) * x).flatten(2).sum(-1)
        return self.body(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@hookimpl
def register_heads(register):
    register("attnpool_classifier", AttnPoolClassifier)

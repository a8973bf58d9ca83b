"""The assembled network: one encoder, an optional shared decoder, named heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class MultiTaskNet(nn.Module):
    """Shared encoder → (decoder) → heads; ``forward`` returns ``{head_name: output}``.

    Args:
        backbone: returns an ordered dict of feature maps.
        decoder: turns those into one full-resolution map, or None.
        heads: the task heads by name.
        sources: per head, what it reads: ``"decoder"`` or a backbone feature name.
        targets: per head, what it predicts: ``class``, ``mask`` or ``density``.
        spec: the spec the network was built from (None for one assembled by hand).
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder: nn.Module | None,
        heads: Mapping[str, nn.Module],
        sources: Mapping[str, str],
        targets: Mapping[str, str],
        spec: Any = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.heads = nn.ModuleDict(heads)
        self.sources = dict(sources)
        self.targets = dict(targets)
        self.spec = spec

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)
        decoded = self.decoder(feats) if self.decoder is not None else None
        return {
            name: head(decoded if self.sources[name] == "decoder" else feats[self.sources[name]])
            for name, head in self.heads.items()
        }

    def features(self, x: torch.Tensor, head: str) -> torch.Tensor:
        """The feature vector a classification head computes its logits from."""
        src = self.sources[head]
        feats = self.backbone(x)
        inp = self.decoder(feats) if src == "decoder" else feats[src]
        return self.heads[head].features(inp)

"""The assembled network: one encoder, an optional shared decoder, named heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dsmnet.core.resample import fourier_resize, upsample_linear


class MultiTaskNet(nn.Module):
    """Shared encoder → (decoder) → heads; ``forward`` returns ``{head_name: output}``.

    Args:
        backbone: returns an ordered dict of feature maps.
        decoder: turns those into one full-resolution map, or None.
        heads: the task heads by name.
        sources: per head, what it reads: ``"decoder"`` or a backbone feature name.
        targets: per head, what it predicts: ``class``, ``mask`` or ``density``.
        spec: the spec the network was built from (None for one assembled by hand).
        bin: the network works on its input Fourier-cropped by this factor (``input.bin``);
            the outputs of its dense heads (``dense`` class attribute: per voxel) are
            interpolated back to the input's size.
    """

    def __init__(
        self,
        backbone: nn.Module,
        decoder: nn.Module | None,
        heads: Mapping[str, nn.Module],
        sources: Mapping[str, str],
        targets: Mapping[str, str],
        spec: Any = None,
        bin: int = 1,
    ):
        super().__init__()
        self.bin = int(bin)
        self.dense = frozenset(n for n, head in heads.items() if getattr(head, "dense", False))
        self.backbone = backbone
        self.decoder = decoder
        self.heads = nn.ModuleDict(heads)
        self.sources = dict(sources)
        self.targets = dict(targets)
        self.spec = spec

    def _binned(self, x: torch.Tensor) -> torch.Tensor:
        if self.bin == 1:
            return x
        size = tuple(n // self.bin for n in x.shape[-3:])
        return fourier_resize(x, size).to(x.dtype).contiguous(memory_format=_layout(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(self._binned(x))
        decoded = self.decoder(feats) if self.decoder is not None else None
        out = {
            name: head(decoded if self.sources[name] == "decoder" else feats[self.sources[name]])
            for name, head in self.heads.items()
        }
        if self.bin != 1:
            box = tuple(x.shape[-3:])
            out.update({n: upsample_linear(out[n], self.bin, box) for n in self.dense})
        return out

    def features(self, x: torch.Tensor, head: str) -> torch.Tensor:
        """The feature vector a classification head computes its logits from."""
        src = self.sources[head]
        feats = self.backbone(self._binned(x))
        inp = self.decoder(feats) if src == "decoder" else feats[src]
        return self.heads[head].features(inp)


def _layout(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)
    return torch.channels_last_3d if channels_last else torch.contiguous_format

"""The assembled network: one encoder, an optional shared decoder, named heads."""

from __future__ import annotations

import functools
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
        centre_prior: σ (a fraction of the box side) of a centred Gaussian the network reads as
            one more input channel (``input.centre_prior``), or None.
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
        centre_prior: float | None = None,
    ):
        super().__init__()
        self.bin = int(bin)
        self.centre_prior = centre_prior
        self.dense = frozenset(n for n, head in heads.items() if getattr(head, "dense", False))
        self.backbone = backbone
        self.decoder = decoder
        self.heads = nn.ModuleDict(heads)
        self.sources = dict(sources)
        self.targets = dict(targets)
        self.spec = spec

    def _encoded(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The backbone's features of the box (binned by ``bin``, the centre prior beside it)."""
        if self.bin != 1:
            size = tuple(n // self.bin for n in x.shape[-3:])
            x = fourier_resize(x, size).to(x.dtype).contiguous(memory_format=_layout(x))
        if self.centre_prior is not None:
            prior = centre_weight(tuple(x.shape[-3:]), self.centre_prior, x.device, x.dtype)
            x = torch.cat([x, prior.expand(len(x), 1, *x.shape[-3:])], 1).contiguous(memory_format=_layout(x))
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self._encoded(x)
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
        feats = self._encoded(x)
        inp = self.decoder(feats) if src == "decoder" else feats[src]
        return self.heads[head].features(inp)


@functools.lru_cache(maxsize=8)  # one box size, device and precision per model in practice: made once
def centre_weight(size: tuple[int, int, int], sigma: float, device=None, dtype=None) -> torch.Tensor:
    """A centred Gaussian over a box of ``size`` voxels, σ = ``sigma`` × each side, 1 at voxel
    ``n // 2`` of each side: where extraction puts a particle's centre (RELION's convention).
    Cached, so read-only: callers expand or concatenate it, never write into it."""
    axes = [((torch.arange(n, dtype=torch.float64) - n // 2) / (sigma * n)) ** 2 for n in size]
    r2 = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    return torch.exp(-r2 / 2).to(device=device, dtype=dtype or torch.float32)[None, None]


def _layout(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)
    return torch.channels_last_3d if channels_last else torch.contiguous_format

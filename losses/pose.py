"""The pose loss: a predicted orientation scored by the density it would put where the particle is.

For a particle whose clean density is ``D`` (the structure-recovery target: its class's reference
``M`` turned by its pose ``P``, ``D(p) = M(Pᵀp)``) and a predicted pose ``R``, the density the
prediction implies is ``M(Rᵀp) = D(P Rᵀ p)``: the particle's own density turned by ``P Rᵀ``.
The loss is its squared distance from ``D``, relative to ``D``'s power:

    L = ‖D ∘ (P Rᵀ) − D‖² / ‖D‖²      (0 when R = P; about 2 for an unrelated orientation)

A rotation that is a symmetry of the complex leaves ``D`` unchanged, so every pose a symmetric
complex cannot tell apart scores 0 — no symmetry group needs to be known, which is what makes the
loss usable on any class library. It needs no reference map either: the particle's density, which
DSM-Net's structure-recovery head already trains on, is all it reads. Gradients reach ``R``
through the trilinear resampling's grid (as in a spatial transformer).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from dsmnet.core.rotations import rotate_volumes


class TurnedDensity(nn.Module):
    """Per sample: how far the particle's density turned from its pose to the predicted one moves.

    Reads the ``pose`` target (``[B, 3, 3]``) and the ``density`` (``[B, 1, D, H, W]``); samples
    without either are left out of the loss.
    """

    targets: ClassVar[frozenset[str]] = frozenset({"pose"})
    reads: ClassVar[tuple[str, ...]] = ("density",)
    kind: ClassVar[str] = "regression"

    def forward(self, pred: torch.Tensor, pose: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            d = density.float().reshape(len(pred), 1, *density.shape[-3:])
            relative = pose.float() @ pred.float().transpose(1, 2)  # P Rᵀ
            turned = rotate_volumes(d, relative)
            power = d.square().flatten(1).sum(1).clamp_min(1e-12)
            return (turned - d).square().flatten(1).sum(1) / power

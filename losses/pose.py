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

A head answering several hypotheses with scores (:class:`~dsmnet.heads.pose.PoseHead`'s default)
is scored by its best hypothesis, plus the cross-entropy of its scores against which hypothesis
that was (multiple-choice learning): only the hypothesis nearest the pose is pulled to it, the
others stay where they can catch other particles' poses, and the scores learn to pick. A network
trained on 16 particles' poses alone finds 11–12 of them so (one hypothesis: 4–5;
``results/converged/pose/diverse.txt``). ``relax`` adds a share of every hypothesis's own loss
(relaxed winner-takes-all): each descends from its start, so the one in the pose's basin reaches
it even when another scores lower at first. On free poses it helps (16 of 16 against 9, the
tests), in a network it hurts (a share of 0.1: 2 of 16 — every hypothesis's pull reaches the
shared layers): off by default.

The loss is summed over the voxels of the lattice through the box's centre spaced ``stride``
(:func:`~dsmnet.core.rotations.lattice`; the density is turned at full resolution, only fewer
voxels are compared): stride 2 costs an eighth and is still exactly 0 at the pose and at its
symmetric equivalents. Evaluation scores poses with ``stride: 1``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from dsmnet.core.rotations import chosen_pose, lattice, pose_hypotheses, rotate_volumes
from dsmnet.core.types import PositiveInt


class TurnedDensity(nn.Module):
    """Per sample: how far the particle's density turned from its pose to the predicted one moves.

    Reads the ``pose`` target (``[B, 3, 3]``) and the ``density`` (``[B, 1, D, H, W]``); samples
    without either are left out of the loss. ``pred``: ``[B, 3, 3]``, or ``[B, K, 10]`` hypotheses
    with scores (:func:`~dsmnet.core.rotations.pose_hypotheses`): the best one's loss plus the
    scores' cross-entropy against it plus ``relax`` of every one's own.

    Args:
        stride: compare the densities on every ``stride``-th voxel along each axis, through the
            centre (1: every voxel, what evaluation scores with; 2: an eighth of the cost).
        relax: the share of the loss each hypothesis gets for its own pose (0, the default: the
            best one alone).
    """

    targets: ClassVar[frozenset[str]] = frozenset({"pose"})
    reads: ClassVar[tuple[str, ...]] = ("density",)
    kind: ClassVar[str] = "regression"

    def __init__(self, *, stride: PositiveInt = 2, relax: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0):
        super().__init__()
        self.stride, self.relax = stride, relax

    def forward(self, pred: torch.Tensor, pose: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        with torch.autocast(pred.device.type, enabled=False):
            turns, scores = pose_hypotheses(pred.float())
            each = self.each(turns, pose, density)
            if scores is None:
                return each[:, 0]
            best = each.min(1)
            own = (1 - self.relax) * best.values + self.relax * each.mean(1)
            return own + F.cross_entropy(scores, best.indices, reduction="none")

    def each(self, turns: torch.Tensor, pose: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        """``[B, K]``: the loss of each of the ``[B, K, 3, 3]`` poses ``turns``."""
        b, k = turns.shape[:2]
        d = density.float().reshape(b, 1, *density.shape[-3:])
        relative = pose.float()[:, None] @ turns.transpose(-1, -2)  # P Rᵀ, [B, K, 3, 3]
        turned = rotate_volumes(d.repeat_interleave(k, 0), relative.flatten(0, 1), stride=self.stride)
        own = lattice(d, self.stride)
        power = own.square().flatten(1).sum(1).clamp_min(1e-12)
        return (turned.unflatten(0, (b, k)) - own[:, None]).square().flatten(2).sum(2) / power[:, None]


def pose_error(pred: torch.Tensor, pose: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """The pose loss as a metric: ``[B]``, every voxel compared, of the pose a head answers (its
    best-scored hypothesis). What evaluation and the template-matching reference report."""
    with torch.no_grad():
        return TurnedDensity(stride=1)(chosen_pose(pred), pose, density)

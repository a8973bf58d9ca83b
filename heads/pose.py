"""Pose head: the particle's orientation, as the rotation that turns its class's reference into it.

A subtomogram's particle is its complex's reference map turned by a rotation ``P`` (RELION's
``rlnAngleRot/Tilt/Psi``: the reference actively rotated by ``Rotation.from_euler("ZYZ", …)``,
acting on (x, y, z)). The head regresses ``P`` in the continuous 6-d representation of Zhou et al.
(CVPR 2019: two 3-vectors, made orthonormal by Gram–Schmidt), which unlike Euler angles or
quaternions has no discontinuity for a network to straddle, and returns the ``[B, 3, 3]`` matrix.

Which rotation is right depends on the complex's symmetry (a proteasome's seven-fold axis makes
seven of them equally right); the head does not know it, and its loss
(:class:`~dsmnet.losses.pose.TurnedDensity`) does not need it.

**Hypotheses.** That loss has local minima: a single answer that starts far from a particle's pose
is caught before it gets there (from a random start only ~40 % of free poses reach it; a network
trained on 16 particles' poses alone memorises a quarter of them). So the head answers K
hypotheses (24 by default), hypothesis k its own 6-d turn composed after a fixed rotation S_k —
the K start spread over SO(3), every pose within 63° of one of them at K = 24 (the cube's group),
where a start always reaches the pose — and a score for each. The loss trains the best hypothesis
and teaches the scores which one that was (multiple-choice learning); the pose the head answers
is the best-scored one (:func:`~dsmnet.core.rotations.chosen_pose`). Output: ``[B, K, 10]`` (each
hypothesis's matrix, row-major, then its score logit), or ``[B, 3, 3]`` with ``hypotheses: 1``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dsmnet.core.blocks import Act, act_layer
from dsmnet.core.rotations import angle_between, spread_rotations
from dsmnet.core.shapes import ShapeSpec
from dsmnet.core.types import PositiveInt, Width

__all__ = ["PoseHead", "angle_between", "nearest_rotation", "rotation_from_6d"]  # angle_between: core.rotations


def rotation_from_6d(v: torch.Tensor) -> torch.Tensor:
    """``[B, 6]`` → ``[B, 3, 3]`` rotations: the first 3-vector normalised is the first column, the
    second made orthogonal to it and normalised the second, their cross product the third."""
    a, b = v.float().unflatten(1, (2, 3)).unbind(1)
    x = F.normalize(a, dim=1, eps=1e-6)
    y = F.normalize(b - (x * b).sum(1, keepdim=True) * x, dim=1, eps=1e-6)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=2)


def nearest_rotation(m: torch.Tensor) -> torch.Tensor:
    """The rotation nearest each ``[…, 3, 3]`` matrix (Frobenius; SVD with the determinant fixed to
    +1): what a mean of several predicted rotations is made back into."""
    u, _, vt = torch.linalg.svd(m.double())
    d = torch.ones_like(u[..., 0])
    d[..., -1] = torch.linalg.det(u @ vt).sign()
    return ((u * d[..., None, :]) @ vt).to(m.dtype)


class PoseHead(nn.Module):
    """Fully connected layers on the encoder's deepest map, then a rotation (6-d representation).

    Args:
        in_shape: what the head reads; inferred by the builder.
        hidden: widths of the hidden layers (each followed by BatchNorm and the activation).
        hypotheses: how many poses the head answers, each with a score (1: one pose, no score).
        pool: ``flatten`` (the default: where in the box a feature lies is what an orientation is
            read from) or ``avg`` (global pooling, which keeps no layout: a control).
        act: activation after each hidden layer.
    """

    target: ClassVar[str] = "pose"
    source: ClassVar[str] = "backbone"
    dense: ClassVar[bool] = False

    def __init__(
        self,
        in_shape: ShapeSpec,
        *,
        hidden: tuple[Width, ...] = (256,),
        hypotheses: PositiveInt = 24,
        pool: Literal["flatten", "avg"] = "flatten",
        act: Act = "relu",
    ):
        super().__init__()
        self.pool = nn.Flatten() if pool == "flatten" else nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())
        width = in_shape.numel if pool == "flatten" else in_shape.channels
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), act_layer(act)]
            width = h
        self.body = nn.Sequential(*layers)
        self.hypotheses = hypotheses
        self.fc = nn.Linear(width, 6 * hypotheses)
        self.score = nn.Linear(width, hypotheses) if hypotheses > 1 else None
        self.register_buffer("starts", spread_rotations(hypotheses).to(self.fc.weight.device))
        with torch.no_grad():  # each untrained hypothesis answers about its start, not a degenerate frame,
            self.fc.weight.mul_(0.1)  # and prefers none of them
            self.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]).repeat(hypotheses))
            if self.score is not None:
                self.score.weight.mul_(0.1)
                self.score.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.pool(x))
        own = rotation_from_6d(self.fc(h).reshape(-1, 6)).reshape(len(h), self.hypotheses, 3, 3)
        if self.score is None:
            return own[:, 0]
        turns = self.starts @ own  # hypothesis k: its own turn after its start S_k
        return torch.cat([turns.flatten(2), self.score(h).float()[..., None]], dim=2)

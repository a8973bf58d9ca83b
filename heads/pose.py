"""Pose head: the particle's orientation, as the rotation that turns its class's reference into it.

A subtomogram's particle is its complex's reference map turned by a rotation ``P`` (RELION's
``rlnAngleRot/Tilt/Psi``: the reference actively rotated by ``Rotation.from_euler("ZYZ", …)``,
acting on (x, y, z)). The head regresses ``P`` in the continuous 6-d representation of Zhou et al.
(CVPR 2019: two 3-vectors, made orthonormal by Gram–Schmidt), which unlike Euler angles or
quaternions has no discontinuity for a network to straddle, and returns the ``[B, 3, 3]`` matrix.

Which rotation is right depends on the complex's symmetry (a proteasome's seven-fold axis makes
seven of them equally right); the head does not know it, and its loss
(:class:`~dsmnet.losses.pose.TurnedDensity`) does not need it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dsmnet.core.blocks import Act, act_layer
from dsmnet.core.shapes import ShapeSpec
from dsmnet.core.types import Width


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


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle (degrees) of the rotation taking each ``a`` to ``b`` (``[…, 3, 3]``): the geodesic
    distance on SO(3), blind to symmetry."""
    cos = ((a.double().transpose(-1, -2) @ b.double()).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0))).to(a.dtype)


class PoseHead(nn.Module):
    """Fully connected layers on the encoder's deepest map, then a rotation (6-d representation).

    Args:
        in_shape: what the head reads; inferred by the builder.
        hidden: widths of the hidden layers (each followed by BatchNorm and the activation).
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
        self.fc = nn.Linear(width, 6)
        with torch.no_grad():  # an untrained head answers about the identity, not a degenerate frame
            self.fc.weight.mul_(0.1)
            self.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rotation_from_6d(self.fc(self.body(self.pool(x))))

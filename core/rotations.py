"""Rotations of volumes about their centre voxel, and rotations drawn uniformly: what the rotation
augmentations, the pose loss and subtomogram averaging turn particles with.

Every rotation here is about the voxel at index n // 2 of each axis, where the simulator,
``dsmnet extract`` and RELION put a particle's centre; matrices act on (x, y, z).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    """``[n, 3, 3]`` rotation matrices drawn uniformly from SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return (
        torch.stack(
            [
                1 - 2 * (y * y + z * z),
                2 * (x * y - z * w),
                2 * (x * z + y * w),
                2 * (x * y + z * w),
                1 - 2 * (x * x + z * z),
                2 * (y * z - x * w),
                2 * (x * z - y * w),
                2 * (y * z + x * w),
                1 - 2 * (x * x + y * y),
            ],
            dim=1,
        )
        .reshape(n, 3, 3)
        .float()
    )


def rotation_grid(rotations: torch.Tensor, shape: tuple[int, int, int], stride: int = 1) -> torch.Tensor:
    """The ``[N, D, H, W, 3]`` sampling grid (normalised (x, y, z), ``align_corners=False``) that
    turns a ``shape`` volume about the voxel at index n // 2 by each of ``rotations`` ``[N, 3, 3]``:
    ``g(p) = A (p - c) + c``. What ``F.affine_grid`` gives for the same matrices, built from one
    term per axis (the grid is affine in each index) instead of a matrix product per voxel.
    ``stride``: only the voxels of the lattice through the centre with that spacing
    (:func:`lattice`), ``stride``³ times fewer."""
    like = {"dtype": rotations.dtype, "device": rotations.device}
    axes = [(torch.arange(n // 2 % stride, n, stride, **like) * 2 + 1) / n - 1 for n in shape]  # z, y, x
    centre = torch.tensor([(2 * (n // 2) + 1) / n - 1 for n in shape[::-1]], **like)  # (x, y, z)
    shift = centre - rotations @ centre  # [N, 3]
    z, y, x = (axis[None, :, None] * rotations[:, None, :, j] for j, axis in ((2, axes[0]), (1, axes[1]), (0, axes[2])))
    return z[:, :, None, None] + y[:, None, :, None] + (x + shift[:, None])[:, None, None]


def rotate_volumes(
    v: torch.Tensor,
    rotations: torch.Tensor,
    mode: str = "bilinear",
    grid: torch.Tensor | None = None,
    stride: int = 1,
) -> torch.Tensor:
    """Rotate each ``[C, D, H, W]`` volume of ``v`` about the voxel at index n // 2 (zeros come in
    at the corners): ``out(p) = v(A (p - c) + c)`` for ``A`` = ``rotations`` ``[N, 3, 3]`` acting
    on (x, y, z), so a particle is turned by ``Aᵀ``. ``grid``: :func:`rotation_grid` of the same
    rotations, when several volumes are turned alike. ``stride``: the turned volume only at the
    voxels of :func:`lattice` (sampled from the whole of ``v``)."""
    grid = rotation_grid(rotations, tuple(v.shape[-3:]), stride) if grid is None else grid
    return F.grid_sample(v, grid.to(v.dtype), mode=mode, padding_mode="zeros", align_corners=False)


def lattice(v: torch.Tensor, stride: int) -> torch.Tensor:
    """The voxels of ``[…, D, H, W]`` volumes on the lattice through the centre voxel (index n // 2)
    spaced ``stride``: where :func:`rotate_volumes` with that ``stride`` samples."""
    d, h, w = v.shape[-3:]
    return v[..., d // 2 % stride :: stride, h // 2 % stride :: stride, w // 2 % stride :: stride]


def spread_rotations(k: int) -> torch.Tensor:
    """``[k, 3, 3]`` rotations spread over SO(3), the identity first: the 24 of the cube's group at
    k = 24 (every rotation within 62.8° of one of them), else the greedy farthest points among 4096
    uniform ones (fixed draw). Where a multi-hypothesis pose head's hypotheses start. Computed on
    the CPU whatever the default device (a model is dry-run built on ``meta``)."""
    with torch.device("cpu"):
        return _spread(k)


def _spread(k: int) -> torch.Tensor:
    if k == 24:
        eye = torch.eye(3)
        turns = [eye[list(p)] * torch.tensor(s)[:, None] for p in _PERMUTATIONS for s in _SIGNS]
        turns = [t for t in turns if torch.linalg.det(t) > 0]
        return torch.stack(sorted(turns, key=lambda t: -float(t.trace())))  # the identity first
    pool = random_rotations(4096, torch.Generator().manual_seed(0))
    chosen = [torch.eye(3)]
    nearest = angle_between(pool, chosen[0].expand_as(pool))
    while len(chosen) < k:
        chosen.append(pool[int(nearest.argmax())])
        nearest = torch.minimum(nearest, angle_between(pool, chosen[-1].expand_as(pool)))
    return torch.stack(chosen)


_PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
_SIGNS = tuple((a, b, c) for a in (1.0, -1.0) for b in (1.0, -1.0) for c in (1.0, -1.0))


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle (degrees) of the rotation taking each ``a`` to ``b`` (``[…, 3, 3]``): the geodesic
    distance on SO(3), blind to symmetry."""
    cos = ((a.double().transpose(-1, -2) @ b.double()).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0))).to(a.dtype)


def pose_hypotheses(pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A pose head's output as ``[B, K, 3, 3]`` rotations and ``[B, K]`` score logits: a
    multi-hypothesis head answers ``[B, K, 10]`` (each hypothesis's matrix, row-major, then its
    score), a single-hypothesis one ``[B, 3, 3]`` (K = 1, no scores)."""
    if pred.shape[-1] == 10:
        return pred[..., :9].unflatten(-1, (3, 3)), pred[..., 9]
    return pred[:, None], None


def chosen_pose(pred: torch.Tensor) -> torch.Tensor:
    """The ``[B, 3, 3]`` pose a pose head answers: its best-scored hypothesis (or its only one)."""
    turns, scores = pose_hypotheses(pred)
    if scores is None:
        return turns[:, 0]
    return turns[torch.arange(len(turns), device=turns.device), scores.argmax(1)]

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


def rotation_grid(rotations: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """The ``[N, D, H, W, 3]`` sampling grid (normalised (x, y, z), ``align_corners=False``) that
    turns a ``shape`` volume about the voxel at index n // 2 by each of ``rotations`` ``[N, 3, 3]``:
    ``g(p) = A (p - c) + c``. What ``F.affine_grid`` gives for the same matrices, built from one
    term per axis (the grid is affine in each index) instead of a matrix product per voxel."""
    like = {"dtype": rotations.dtype, "device": rotations.device}
    axes = [(torch.arange(n, **like) * 2 + 1) / n - 1 for n in shape]  # z, y, x voxel centres
    centre = torch.tensor([(2 * (n // 2) + 1) / n - 1 for n in shape[::-1]], **like)  # (x, y, z)
    shift = centre - rotations @ centre  # [N, 3]
    z, y, x = (axis[None, :, None] * rotations[:, None, :, j] for j, axis in ((2, axes[0]), (1, axes[1]), (0, axes[2])))
    return z[:, :, None, None] + y[:, None, :, None] + (x + shift[:, None])[:, None, None]


def rotate_volumes(
    v: torch.Tensor, rotations: torch.Tensor, mode: str = "bilinear", grid: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate each ``[C, D, H, W]`` volume of ``v`` about the voxel at index n // 2 (zeros come in
    at the corners): ``out(p) = v(A (p - c) + c)`` for ``A`` = ``rotations`` ``[N, 3, 3]`` acting
    on (x, y, z), so a particle is turned by ``Aᵀ``. ``grid``: :func:`rotation_grid` of the same
    rotations, when several volumes are turned alike."""
    grid = rotation_grid(rotations, tuple(v.shape[-3:])) if grid is None else grid
    return F.grid_sample(v, grid.to(v.dtype), mode=mode, padding_mode="zeros", align_corners=False)

"""Particle poses from a particles table's RELION angles (:mod:`dsmnet.dataset.layout`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError


def read_poses(table: pd.DataFrame, star: Path) -> tuple[torch.Tensor, np.ndarray]:
    """Each particle's pose (``[N, 3, 3]``, acting on (x, y, z); :mod:`dsmnet.dataset.layout`) and
    which particles have one (all three angles given and finite; the identity stands in elsewhere)."""
    from scipy.spatial.transform import Rotation

    given = table[list(layout.ANGLES)]
    angles = given.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    unread = np.isnan(angles) & ~given.map(lambda v: str(v).strip().lower() in ("nan", "")).to_numpy()
    if unread.any():
        row, col = (int(i[0]) for i in np.nonzero(unread))
        raise DataError(
            f"{star}: particle {row + 1} has {layout.ANGLES[col]} {given.iat[row, col]!r}, not a number of degrees"
        )
    has = np.isfinite(angles).all(1)
    poses = np.tile(np.eye(3), (len(table), 1, 1))
    if has.any():
        poses[has] = Rotation.from_euler("ZYZ", angles[has], degrees=True).as_matrix()
    return torch.from_numpy(poses).float(), has

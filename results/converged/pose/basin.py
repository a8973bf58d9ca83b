"""How far the pose loss pulls a prediction: poses found by gradient descent from turned starts.

    python results/converged/pose/basin.py [results/converged/data/A_test]

Sixteen test particles (one every ~190); for each start angle, each particle's pose is turned by
0.5–1× that angle about a random axis and handed to Adam on the 6-d representation (200 steps,
rate 0.02) with the turned-density loss. Prints the median loss at the start and the end and the
share that ends below 0.1 (the recorded pose or an equivalent one).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.heads.pose import rotation_from_6d
from dsmnet.losses.pose import TurnedDensity


def descend(start: torch.Tensor, pose: torch.Tensor, density: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """The poses Adam reaches from ``start`` on the loss against ``pose`` and ``density``."""
    loss = TurnedDensity(stride=1)
    six = torch.cat([start[:, :, 0], start[:, :, 1]], 1).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([six], lr=0.02)
    for _ in range(steps):
        optimiser.zero_grad()
        loss(rotation_from_6d(six), pose, density).sum().backward()
        optimiser.step()
    return rotation_from_6d(six.detach())


def main(data_dir: str = "results/converged/data/A_test") -> None:
    torch.set_num_threads(1)
    data = load_dataset(data_dir)
    _, targets, _ = data.batch(torch.arange(0, len(data), len(data) // 16)[:16], {"density", "pose"})
    pose, density = targets["pose"], targets["density"].float()
    loss = TurnedDensity(stride=1)
    for degrees in (30, 60, 90, 180):
        axes = Rotation.random(len(pose), random_state=1).as_rotvec()
        size = np.deg2rad(degrees) * np.random.default_rng(0).uniform(0.5, 1, (len(pose), 1))
        turns = Rotation.from_rotvec(axes / np.linalg.norm(axes, axis=1, keepdims=True) * size).as_matrix()
        start = pose @ torch.from_numpy(turns).float()
        found = descend(start, pose, density)
        with torch.no_grad():
            before, after = loss(start, pose, density), loss(found, pose, density)
        share = float((after < 0.1).float().mean())
        print(f"{degrees:3d}°: loss {before.median():.3f} → {after.median():.2e}, below 0.1: {share:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])

"""Why the pose row was stopped: a pose head cannot even memorise 16 particles' poses with the
turned-density loss — each output is caught in a local minimum of the loss.

    python results/converged/pose/trap.py [FOLDER]     # FOLDER: where the easy dataset is made

An easy dataset (three asymmetric complexes, 900 particles, SNR 1, light crowding, 32³ boxes;
~1 min to simulate) and a small DSM-Net with a pose head (widths 8, 16, 32). On the first 16
particles, without augmentation, Adam (rate 3e-3, 150 steps) trains the whole network on the
pose loss alone — once as it is, once with a second-moment term added (the particle's inertia
tensor turned by the relative rotation against its own, which a symmetry leaves unchanged and
which is smooth in the rotation). Prints, per seed, the share of the 16 whose pose loss ends
below 0.1 (their pose or an equivalent one found) and the median loss, the network in eval mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from dsmnet.core.build import build_model
from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.losses.pose import TurnedDensity
from dsmnet.simulate.generate import SimulationConfig, simulate
from dsmnet.specs import three_task


def moments(density: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` second moments (x, y, z) about the centre voxel of each positive density."""
    n = density.shape[-1]
    axis = torch.arange(n, dtype=torch.float32) - n // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    points = torch.stack([x, y, z], -1).reshape(-1, 3)
    weights = density.clamp_min(0).flatten(1)
    return torch.einsum("bn,ni,nj->bij", weights / weights.sum(1, keepdim=True), points, points)


def fit(x, pose, density, with_moments: bool, seed: int) -> torch.Tensor:
    """Each particle's pose loss after fitting the network to the 16 poses."""
    torch.manual_seed(seed)
    spec = easy_spec()
    spec["heads"]["pose"] = {"type": "pose", "hidden": [64]}
    spec["losses"]["pose"] = {"type": "turned_density", "weight": 1}
    model, loss, own = build_model(spec).train(), TurnedDensity(stride=1), moments(density)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        optimiser.zero_grad()
        predicted = model(x)["pose"]
        total = loss(predicted, pose, density).mean()
        if with_moments:
            relative = pose @ predicted.transpose(1, 2)
            turned = relative.transpose(1, 2) @ own @ relative
            total = total + ((turned - own) ** 2).sum((1, 2)).div((own**2).sum((1, 2))).mean()
        total.backward()
        optimiser.step()
    with torch.no_grad():
        return loss(model.eval()(x)["pose"], pose, density)


def easy_spec() -> dict:
    """The small DSM-Net both experiments train (the pose head added by each its own way)."""
    return three_task("easy", box=32, widths=[8, 16, 32], hidden=64, classes=3, batch=16, epochs=1)


def sixteen(folder: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The easy dataset's first 16 particles (simulated under ``folder`` first if need be): their
    boxes and their ``pose`` and ``density`` targets."""
    root = Path(folder) / "easy"
    if not (root / "particles.star").is_file():
        config = SimulationConfig(n=900, classes=["ribosome_6zu5", "mtor_4jsv", "tcr_hla_3kpr"], snr=1.0, seed=7,
                                  box=32, tomogram=(64, 192, 192), crowding=0.02)  # fmt: skip
        simulate(config, root, overwrite=True)
    x, targets, _ = load_dataset(root).batch(torch.arange(16), {"pose", "density"})
    return x, targets


def main(folder: str = "/tmp/dsmnet-pose-trap") -> None:
    torch.set_num_threads(1)
    x, targets = sixteen(folder)
    for with_moments in (False, True):
        for seed in (0, 1):
            ends = fit(x, targets["pose"], targets["density"].float(), with_moments, seed)
            label = "density + moments" if with_moments else "density"
            share = float((ends < 0.1).float().mean())
            print(f"{label:18s} seed {seed}: below 0.1 {share:.2f}, median {ends.median():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])

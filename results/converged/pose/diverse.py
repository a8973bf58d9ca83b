"""The way out, tried on ``trap.py``'s test with the engine's own pose head and loss: K hypotheses
that start apart (hypothesis k its own 6-d turn after a fixed rotation S_k; at K = 24 the cube's
group, every pose within 63° of a start, where ``basin.txt`` says a start reaches it), the best
one's loss, a score head told which one that was, and a share ``relax`` of every hypothesis's own
loss (relaxed winner-takes-all: each descends from its start). Same 16 particles, network,
optimiser and steps as ``trap.py``; the loss compared on every second voxel (``stride: 2``).

    python results/converged/pose/diverse.py [FOLDER]    # FOLDER as trap.py's

Prints, per setting and seed, the share of the 16 whose best hypothesis ends below 0.1 (the pose
or an equivalent one found), the share whose *chosen* one (the best-scored) does, and the chosen
one's median loss (every voxel), the network in eval mode.
"""

from __future__ import annotations

import sys

import torch
from trap import easy_spec, sixteen  # beside this script: the same network and particles

from dsmnet.core.build import build_model
from dsmnet.core.rotations import pose_hypotheses
from dsmnet.losses.pose import TurnedDensity, pose_error

SETTINGS = {  # label: (hypotheses, relax)
    "K =  1": (1, 0.0),
    "K = 24, best only": (24, 0.0),
    "K = 24, relax 0.1": (24, 0.1),
    "K = 24, relax 0.3": (24, 0.3),
}


def fit(x, pose, density, k: int, relax: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each particle's best and chosen hypothesis's pose loss after fitting the 16 poses."""
    torch.manual_seed(seed)
    spec = easy_spec()
    spec["heads"]["pose"] = {"type": "pose", "hidden": [64], "hypotheses": k}
    spec["losses"]["pose"] = {"type": "turned_density", "weight": 1, "relax": relax}
    model, loss = build_model(spec).train(), TurnedDensity(relax=relax)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        optimiser.zero_grad()
        loss(model(x)["pose"], pose, density).mean().backward()
        optimiser.step()
    with torch.no_grad():
        out = model.eval()(x)["pose"]
        best = TurnedDensity(stride=1).each(pose_hypotheses(out)[0], pose, density).min(1).values
        return best, pose_error(out, pose, density)


def main(folder: str = "/tmp/dsmnet-pose-trap") -> None:
    torch.set_num_threads(1)
    x, targets = sixteen(folder)
    for label, (k, relax) in SETTINGS.items():
        for seed in (0, 1):
            best, chosen = fit(x, targets["pose"], targets["density"].float(), k, relax, seed)
            print(
                f"{label:18s} seed {seed}: best below 0.1 {float((best < 0.1).float().mean()):.2f}, "
                f"chosen below 0.1 {float((chosen < 0.1).float().mean()):.2f}, chosen median {chosen.median():.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main(*sys.argv[1:2])

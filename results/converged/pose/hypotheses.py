"""The way out the next sitting takes, tried on ``trap.py``'s test: K pose hypotheses per particle,
each scored by the turned-density loss, the loss of the best of them trained (multiple-choice
learning). Same 16 particles, network, optimiser and steps as ``trap.py``.

    python results/converged/pose/hypotheses.py [FOLDER]    # FOLDER as trap.py's

Prints, for K = 1, 4, 8 and 16 and two seeds, the share of the 16 whose best hypothesis ends
below 0.1 and its median — an experiment on the encoder's features with a K-headed linear layer,
not yet the engine's pose head.
"""

from __future__ import annotations

import sys

import torch
from trap import easy_spec, sixteen  # beside this script: the same network and particles

from dsmnet.core.build import build_model
from dsmnet.heads.pose import rotation_from_6d
from dsmnet.losses.pose import TurnedDensity


def fit(x, pose, density, k: int, seed: int) -> torch.Tensor:
    """Each particle's best hypothesis's pose loss after fitting K hypotheses to the 16 poses."""
    torch.manual_seed(seed)
    model = build_model(easy_spec()).train()
    width = model._encoded(x[:2])["s8"].flatten(1).shape[1]
    head = torch.nn.Sequential(
        torch.nn.Linear(width, 64), torch.nn.BatchNorm1d(64), torch.nn.ReLU(), torch.nn.Linear(64, 6 * k)
    )
    loss = TurnedDensity(stride=1)
    optimiser = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)

    def losses() -> torch.Tensor:  # [16, K]
        six = head(model._encoded(x)["s8"].flatten(1)).reshape(len(x) * k, 6)
        turns = rotation_from_6d(six)
        return loss(turns, pose.repeat_interleave(k, 0), density.repeat_interleave(k, 0)).reshape(len(x), k)

    for _ in range(150):
        optimiser.zero_grad()
        losses().min(1).values.mean().backward()
        optimiser.step()
    model.eval(), head.eval()
    with torch.no_grad():
        return losses().min(1).values


def main(folder: str = "/tmp/dsmnet-pose-trap") -> None:
    torch.set_num_threads(1)
    x, targets = sixteen(folder)
    for k in (1, 4, 8, 16):
        for seed in (0, 1):
            ends = fit(x, targets["pose"], targets["density"].float(), k, seed)
            share = float((ends < 0.1).float().mean())
            print(f"K = {k:2d} seed {seed}: best below 0.1 {share:.2f}, median {ends.median():.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])

"""Weightings: how per-task losses are combined into the one that is optimised."""

from __future__ import annotations

import torch
from torch import nn

from dsmnet.core.criterion import Task


class WeightedSum(nn.Module):
    """The paper's eq. 2: ``L = Σ_t w_t L_t`` with fixed weights from the spec (cls:seg:rec = 1:10:1).

    Each ``L_t`` is already the sum over the batch divided by the batch size ``N``.
    """

    def __init__(self, tasks: dict[str, Task]):
        super().__init__()
        self.weights = {name: task.weight for name, task in tasks.items()}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[name] * loss for name, loss in losses.items())


class Uncertainty(nn.Module):
    """Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    With a learned ``s_t = log σ_t²`` per task: ``L = Σ_t c_t w_t exp(-s_t) L_t + s_t / 2``, where
    ``c_t`` is 1 for classification and 1/2 for regression losses (the paper's eqs. 7 and 10), and
    ``w_t`` are the spec's weights (priors; 1 gives the paper's form).

    Args:
        tasks: per task its weight and loss kind; inferred by the builder.
        init: initial ``s_t`` for every task.
    """

    def __init__(self, tasks: dict[str, Task], *, init: float = 0.0):
        super().__init__()
        self.log_vars = nn.ParameterDict({name: nn.Parameter(torch.tensor(float(init))) for name in tasks})
        self.scale = {name: task.weight * (0.5 if task.kind == "regression" else 1.0) for name, task in tasks.items()}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for name, loss in losses.items():
            s = self.log_vars[name]
            total = total + self.scale[name] * torch.exp(-s) * loss + 0.5 * s
        return total

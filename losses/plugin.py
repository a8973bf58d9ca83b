"""The built-in losses plugin (listed in plugins.toml)."""

from __future__ import annotations

from dsmnet.registry.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    from dsmnet.losses.pose import TurnedDensity
    from dsmnet.losses.task import MSE, CrossEntropy

    register("cross_entropy", CrossEntropy)
    register("mse", MSE)
    register("turned_density", TurnedDensity)


@hookimpl
def register_weightings(register):
    from dsmnet.losses.weighting import Uncertainty, WeightedSum

    register("weighted_sum", WeightedSum)
    register("uncertainty", Uncertainty)

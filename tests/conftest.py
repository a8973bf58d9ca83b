"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsmnet.registry import Registries, load_plugins
from dsmnet.simulate.generate import SimulationConfig, simulate
from dsmnet.specs import three_task


@pytest.fixture(scope="session")
def registries() -> Registries:
    return load_plugins()


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


CLASSES = ["ruvb_7pbl", "mjap_9x2o", "mtor_4jsv"]

TINY = three_task("tiny", box=24, widths=[4, 8, 16], hidden=16, classes=3, batch=8, epochs=2)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "small"
    config = SimulationConfig(n=60, classes=CLASSES, snr=0.5, seed=5, box=24, tomogram=(48, 96, 96), crowding=0.05)
    simulate(config, out)
    return out


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="session")
def trained_run(small_data, tiny_spec, tmp_path_factory) -> Path:
    """The tiny spec trained for 2 epochs on ``small_data`` (a run folder, shared: read it only)."""
    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_spec, small_data, out, TrainConfig(progress=False, epochs=2), log=lambda _: None)
    return out

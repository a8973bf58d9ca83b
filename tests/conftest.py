"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch

from dsmnet.registry import Registries, load_plugins


@pytest.fixture(scope="session")
def registries() -> Registries:
    return load_plugins()


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield

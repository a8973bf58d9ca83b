"""Unlimited data (``--fresh-data``): each epoch trains on a set simulated afresh like the dataset."""

from __future__ import annotations

import json

import pytest
import torch

from dsmnet.dataset.mrc import DataError
from dsmnet.training import run as run_module
from dsmnet.training.fresh import FreshData, made_like
from dsmnet.training.loop import train
from dsmnet.training.settings import TrainConfig


def test_each_epoch_trains_on_a_new_set_made_like_the_dataset(small_data, tiny_spec, tmp_path, monkeypatch):
    made = made_like(small_data)
    assert made.classes == json.loads((small_data / "simulation.json").read_text())["config"]["classes"]
    seen: list[list[str]] = []
    firsts: list[torch.Tensor] = []
    simulating: list[float] = []
    get = FreshData.get

    def recorded(self, epoch):
        data = get(self, epoch)
        seen.append([str(p) for p in data.x.paths])
        firsts.append(data.x[0])
        simulating.append(self.cpu_seconds)
        assert len(data) == 48 and data.classes == ["ruvb_7pbl", "mjap_9x2o", "mtor_4jsv"]
        return data

    monkeypatch.setattr(FreshData, "get", recorded)
    run = tmp_path / "run"
    config = TrainConfig(progress=False, precise_bn=32, fresh=True)
    train(tiny_spec, small_data, run, config, log=lambda _: None)
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["settings"]["fresh"] and state["epoch"] == 2
    assert len(seen) == 2 and "epoch-0001" in seen[0][0] and "epoch-0002" in seen[1][0]
    assert not torch.equal(firsts[0], firsts[1])  # new particles, poses and noise
    assert not (run / "fresh").exists()  # every set deleted once the run ends
    # validation stayed on the dataset's own split
    assert state["split"]["val"] and all("val_acc_cls" in r for r in state["history"])
    assert run_module.FreshData is FreshData
    # the simulator's CPU time (in its own process) is part of what the run cost
    assert 0 < simulating[0] < simulating[1] and state["cpu_seconds"] > simulating[1]


def test_fresh_data_needs_a_simulated_dataset(small_data, tmp_path):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(small_data, plain)
    (plain / "simulation.json").unlink()
    with pytest.raises(DataError, match="--fresh-data needs a dataset made by dsmnet simulate"):
        made_like(plain)

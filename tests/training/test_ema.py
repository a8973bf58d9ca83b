"""Weight averaging (EMA): what is validated and kept, and resuming a run that averages."""

from __future__ import annotations

import pytest
import torch

from dsmnet.training.ema import WeightAverage
from dsmnet.training.loop import train
from dsmnet.training.settings import TrainConfig
from dsmnet.training.step import load_trained
from tests.training.interrupt import train_killed_in_epoch_two


def test_the_average_follows_the_weights_with_its_decay():
    live = torch.nn.Linear(3, 2)
    ema = WeightAverage(live, 0.9)
    start = ema.module.weight.clone()
    with torch.no_grad():
        live.weight.add_(1.0)
    ema.update()  # first update: d = min(0.9, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.module.weight, d * start + (1 - d) * live.weight)
    assert not ema.module.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(live, 1.0)


def test_a_run_with_ema_keeps_the_average_and_resumes_to_the_same_result(small_data, tiny_spec, tmp_path, monkeypatch):
    config = TrainConfig(progress=False, precise_bn=32, ema=0.9)
    straight = tmp_path / "straight"
    train(tiny_spec, small_data, straight, config, log=lambda _: None)
    a = torch.load(straight / "last.pt", weights_only=True)
    assert a["settings"]["ema"] == 0.9 and a["ema_updates"] == 12  # 6 batches × 2 epochs
    weight = "model.backbone.stem.0.weight"
    assert not torch.equal(a["step"][weight], a["live"][weight])  # "step" is the average
    model, _, state = load_trained(straight, "last")  # what evaluation and prediction load
    torch.testing.assert_close(model.state_dict()["backbone.stem.0.weight"], a["step"][weight])

    killed = tmp_path / "killed"
    train_killed_in_epoch_two(monkeypatch, tiny_spec, small_data, killed, config, log=lambda _: None)
    train(tiny_spec, small_data, killed, config, resume=True, log=lambda _: None)
    b = torch.load(killed / "last.pt", weights_only=True)
    assert b["ema_updates"] == 12
    for part in ("step", "live"):
        for key, value in a[part].items():
            torch.testing.assert_close(b[part][key], value, msg=f"{part}: {key}")
    assert [r["val_loss"] for r in b["history"]] == pytest.approx([r["val_loss"] for r in a["history"]])

"""Precise BN's sample: a new one each epoch (the study's recipe), or the same particles every
epoch (``--fixed-precise-bn``), so that the validation loss of unchanged weights does not move."""

from __future__ import annotations

import torch

from dsmnet.training.loop import train
from dsmnet.training.settings import RunSettings, TrainConfig


def _val_losses(spec, data, out, fixed: bool) -> tuple[list[float], dict]:
    # a rate too small to move a bf16 or fp32 weight: every epoch validates the initial weights
    config = TrainConfig(progress=False, precise_bn=16, epochs=3, lr=1e-20, prior_init=False, precise_bn_fixed=fixed)
    train(spec, data, out, config, log=lambda _: None)
    state = torch.load(out / "last.pt", weights_only=True)
    return [r["val_loss"] for r in state["history"]], state


def test_a_fixed_sample_leaves_the_validation_loss_of_unchanged_weights_unchanged(small_data, tiny_spec, tmp_path):
    moving, _ = _val_losses(tiny_spec, small_data, tmp_path / "epoch", fixed=False)
    fixed, state = _val_losses(tiny_spec, small_data, tmp_path / "fixed", fixed=True)
    assert state["settings"]["precise_bn_fixed"] is True
    assert max(fixed) - min(fixed) < 1e-6  # the same statistics from the same particles
    assert max(moving) - min(moving) > 1e-4  # each epoch's sample its own statistics


def test_runs_saved_before_the_setting_keep_a_new_sample_each_epoch():
    assert RunSettings.from_dict({"precise_bn": 512}).precise_bn_fixed is False
    assert RunSettings.from_dict({"precise_bn": 512, "precise_bn_fixed": True}).precise_bn_fixed is True


def test_the_command_line_flag_reaches_the_run(monkeypatch, tmp_path):
    import dsmnet.training.loop
    from dsmnet.cli import main

    asked = []

    def fake_train(spec, data, out, config, resume=False):
        asked.append(config)
        return {"epochs": 1, "best_val_loss": 1.0, "best_epoch": 1, "stopped_early": False}

    monkeypatch.setattr(dsmnet.training.loop, "train", fake_train)
    for extra in ([], ["--fixed-precise-bn"]):
        assert main(["train", "dsmnet", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *extra]) == 0
    assert [config.precise_bn_fixed for config in asked] == [False, True]

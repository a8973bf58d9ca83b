"""Training: run folder, checkpoints, resume after a kill, NaN, missing targets, bad data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
import yaml

from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import load_dataset
from dsmnet.training import loop, run
from dsmnet.training.augment import (
    ROT180,
    augment,
    measured_frequencies,
    random_rotations,
    rotate_volumes,
    turn,
)
from dsmnet.training.batches import batch_bounds
from dsmnet.training.checkpoint import save_checkpoint
from dsmnet.training.loop import train
from dsmnet.training.priors import init_priors, target_priors
from dsmnet.training.runtime import make_runtime
from dsmnet.training.settings import RunSettings, TrainConfig, TrainingError, learning_rate, plateau_scale
from tests.training.interrupt import train_killed_in_epoch_two
from tests.training.said import said

QUIET = TrainConfig(progress=False, precise_bn=32)


def state_of(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)


def test_run_folder_and_safe_checkpoints(small_data, tiny_spec, tmp_path):
    run = tmp_path / "run"
    summary = train(tiny_spec, small_data, run, QUIET, log=lambda _: None)
    assert summary["epochs"] == 2
    for name in (
        "spec.yaml",
        "split.json",
        "metrics.jsonl",
        "sessions.json",
        "last.pt",
        "best.pt",
        "curves.png",
        "summary.json",
    ):
        assert (run / name).is_file(), name
    state = state_of(run)  # weights_only=True: plain data only
    assert state["classes"] == ["ruvb_7pbl", "mjap_9x2o", "mtor_4jsv"]
    assert state["spec"]["name"] == "tiny" and state["epoch"] == 2
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"val_acc_cls", "val_miou_seg", "val_pixel_acc_seg", "val_mse_rec"} <= set(history[-1])
    # the run's wall and CPU seconds so far, each epoch: its cost and any pause are read from two rows
    assert 0 < history[0]["seconds"] < history[1]["seconds"] <= summary["seconds"]
    assert 0 < history[0]["cpu_seconds"] < history[1]["cpu_seconds"] <= summary["cpu_seconds"]
    split = json.loads((run / "split.json").read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (48, 6, 6)


def test_an_existing_run_is_not_overwritten(small_data, tiny_spec, tmp_path):
    run = tmp_path / "run"
    train(tiny_spec, small_data, run, TrainConfig(progress=False, epochs=1), log=lambda _: None)
    with pytest.raises(TrainingError, match="already holds a run: add --resume"):
        train(tiny_spec, small_data, run, QUIET, log=lambda _: None)
    said = []
    train(
        tiny_spec, small_data, tmp_path / "other", TrainConfig(progress=False, epochs=1), resume=True, log=said.append
    )
    assert said[0] == f"{tmp_path / 'other'}: nothing to resume (no last.pt yet); starting the run"
    assert (tmp_path / "other" / "last.pt").is_file()


HOLD = """import sys, time
from dsmnet.core.fsutil import claimed
with claimed(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_folder_is_trained_by_one_process_at_a_time(small_data, tiny_spec, tmp_path, capsys):
    from dsmnet.cli import main
    from dsmnet.core.fsutil import BusyError

    run, more = tmp_path / "run", TrainConfig(progress=False, epochs=2)
    train(tiny_spec, small_data, run, TrainConfig(progress=False, epochs=1), log=lambda _: None)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process trains this run folder
        with pytest.raises(BusyError, match=rf"being trained by another process \(pid {holder.pid}\); wait"):
            train(tiny_spec, small_data, run, more, resume=True, log=lambda _: None)
        assert state_of(run)["epoch"] == 1 and len((run / "metrics.jsonl").read_text().splitlines()) == 1
        args = ["train", str(tiny_spec), "--data", str(small_data), "--out", str(run), "--resume", "--epochs", "2"]
        assert main([*args, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        busy = f"{run}: being trained by another process (pid {holder.pid}); wait for it to end or stop it"
        assert err == f"dsmnet: error: {busy}"
    finally:
        holder.kill()
        holder.wait()
    # killed while holding it: the lock went with the process, and the run resumes
    assert train(tiny_spec, small_data, run, more, resume=True, log=lambda _: None)["epochs"] == 2


def test_learning_rate_schedules():
    settings = RunSettings(lr=1e-3, epochs=10, warmup=2, schedule="cosine")
    rates = [learning_rate(settings, e, d) for e in range(1, 11) for d in (0.0, 0.5)]
    assert rates[0] < rates[1] < rates[2] < rates[3] < rates[4] == pytest.approx(1e-3)  # warm-up, then the peak
    assert all(a > b for a, b in zip(rates[4:], rates[5:]))  # then down all the way
    assert learning_rate(settings, 10, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(RunSettings(lr=1e-3, epochs=10, warmup=2), 7, 0.3) == 1e-3
    old = RunSettings.from_dict({"lr": 1e-3, "epochs": 10})  # runs saved before schedules: constant
    assert learning_rate(old, 1, 0.0) == 1e-3


def test_killed_run_resumes_to_the_same_result(small_data, tiny_spec, tmp_path, monkeypatch):
    cosine = TrainConfig(progress=False, precise_bn=32, schedule="cosine", warmup=1)  # resumed on the same curve
    straight = tmp_path / "straight"
    train(tiny_spec, small_data, straight, cosine, log=lambda _: None)

    killed = tmp_path / "killed"
    train_killed_in_epoch_two(monkeypatch, tiny_spec, small_data, killed, cosine, log=lambda _: None)
    assert state_of(killed)["epoch"] == 1  # lost only the epoch in progress
    first_session, first_cpu = state_of(killed)["seconds"], state_of(killed)["cpu_seconds"]
    assert not list(killed.glob(".*.tmp"))
    summary = train(tiny_spec, small_data, killed, cosine, resume=True, log=lambda _: None)
    a, b = state_of(straight), state_of(killed)
    assert b["epoch"] == 2 and [r["lr"] for r in b["history"]] == [r["lr"] for r in a["history"]]
    # the summary of a resumed run is whole: its initial losses, both sessions' time and code revision
    assert set(a["initial"]) == {"cls", "seg", "rec"}
    assert summary["initial_weighted_losses"] == pytest.approx(a["initial"])
    assert summary["seconds"] > first_session > 0
    assert summary["samples_seen"] == 2 * 48 and 0 < summary["core_hours"] < summary["seconds"] * 64 / 3600
    # the cost is CPU time (every thread, both sessions), not wall time × threads asked for
    assert summary["cpu_seconds"] > first_cpu > 0
    assert summary["core_hours"] == pytest.approx(summary["cpu_seconds"] / 3600)
    assert "gpu_hours" not in summary
    assert summary["revisions"] == b["revisions"] == a["revisions"] and len(a["revisions"]) == 1
    # and the arithmetic it ran in, once for both sessions on one machine
    assert summary["runtimes"] == b["runtimes"] == a["runtimes"] == [make_runtime("cpu").signature()]
    # each session recorded as it began (what a study's sitting notes read), and each epoch's end
    began = [(x["after_epoch"], x["revision"], x["threads"]) for x in b["sessions"]]
    assert began == [(0, a["revisions"][0], torch.get_num_threads()), (1, a["revisions"][0], torch.get_num_threads())]
    times = [b["sessions"][0]["began"], b["history"][0]["ended"], b["sessions"][1]["began"], b["history"][1]["ended"]]
    assert times == sorted(times)
    assert summary["sessions"] == b["sessions"] == json.loads((killed / "sessions.json").read_text())
    assert len(a["sessions"]) == 1 and a["sessions"][0]["runtime"] == a["runtimes"][0]
    assert a["history"][0]["lr"] > a["history"][1]["lr"] == pytest.approx(0.0, abs=1e-12)
    for key, value in a["step"].items():
        torch.testing.assert_close(b["step"][key], value, msg=key)


def test_nan_loss_stops_with_a_clear_message(small_data, tiny_spec, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    table = starfile.read(data / "particles.star")
    for name in table["dsmDensityName"]:  # subtomograms with NaN are refused on reading; targets are not
        with mrcfile.open(data / name, mode="r+") as mrc:
            mrc.data[0, 0, 0] = np.nan
    with pytest.raises(TrainingError, match=r"the loss became nan at epoch 1, batch 1 .*lower the learning rate"):
        train(tiny_spec, data, tmp_path / "run", QUIET, log=lambda _: None)


def test_infinite_gradients_stop_the_run_before_anything_is_saved(small_data, tiny_spec, tmp_path, monkeypatch):
    build_model = run.build_model

    def overflowing(*args, **kwargs):  # a finite loss whose gradient overflows
        model = build_model(*args, **kwargs)
        next(model.parameters()).register_hook(lambda g: g * float("inf"))
        return model

    monkeypatch.setattr(run, "build_model", overflowing)
    with pytest.raises(TrainingError, match=r"the gradients became (nan|inf) at epoch 1, batch 1 .*fp32"):
        train(tiny_spec, small_data, tmp_path / "run", QUIET, log=lambda _: None)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_validation_loss_that_is_not_finite_stops_the_run(small_data, tiny_spec, tmp_path, monkeypatch):
    evaluate_split = loop.evaluate_split  # (the first call is the run's start, in run)
    calls = []

    def nan_after_the_first(*args, **kwargs):  # the first call measures the initial losses
        calls.append(1)
        out = evaluate_split(*args, **kwargs)
        return {**out, "loss": float("nan")} if len(calls) > 1 else out

    monkeypatch.setattr(loop, "evaluate_split", nan_after_the_first)
    monkeypatch.setattr(run, "evaluate_split", nan_after_the_first)
    with pytest.raises(TrainingError, match=r"the validation loss became nan after epoch 1"):
        train(tiny_spec, small_data, tmp_path / "run", QUIET, log=lambda _: None)
    assert not (tmp_path / "run" / "best.pt").exists()


def test_missing_masks_and_densities_are_left_out(small_data, tiny_spec, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    table = starfile.read(data / "particles.star")
    table.loc[::2, "dsmMaskName"] = ""
    table = table.drop(columns=["dsmDensityName"])
    starfile.write(table, data / "particles.star", overwrite=True)
    notes = []
    summary = train(tiny_spec, data, tmp_path / "run", QUIET, log=notes.append)
    assert summary["epochs"] == 2
    assert any("no density targets" in n for n in notes)
    history = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert history["train_loss_rec"] == 0.0 and history["train_loss_seg"] > 0


def test_box_that_does_not_fit_the_spec(small_data, tmp_path):
    with pytest.raises(
        DataError, match=r"subtomograms/000001.mrc: subtomogram is 24×24×24, but the model takes 40×40×40"
    ):
        train("dsmnet", small_data, tmp_path / "run", QUIET, log=lambda _: None)


def test_corrupt_and_missing_mrc_name_the_file(small_data, tiny_spec, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    (data / "subtomograms" / "000003.mrc").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"000003.mrc: not a readable MRC file"):
        train(tiny_spec, data, tmp_path / "run", QUIET, log=lambda _: None)
    (data / "subtomograms" / "000003.mrc").unlink()
    with pytest.raises(DataError, match=r"000003.mrc: no such MRC file"):
        train(tiny_spec, data, tmp_path / "run2", QUIET, log=lambda _: None)


def test_classifier_adapts_to_the_datasets_classes(small_data, tmp_path):
    import yaml

    from tests.conftest import TINY

    spec = json.loads(json.dumps(TINY))
    spec["heads"]["cls"]["classes"] = 22
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    notes = []
    train(path, small_data, tmp_path / "run", TrainConfig(progress=False, epochs=1), log=notes.append)
    assert "note: heads.cls.classes set to 3, the dataset's number of classes" in notes
    assert state_of(tmp_path / "run")["spec"]["heads"]["cls"]["classes"] == 3


def test_heads_start_from_the_training_splits_priors(small_data, tiny_spec):
    """Segmenter biases = log voxel frequencies, reconstructor bias = mean density, classifier =
    log class frequencies; an untrained model then predicts the prior where features are zero."""
    from dsmnet.core.build import build_model
    from dsmnet.dataset.subtomograms import load_dataset, stratified_split

    data = load_dataset(small_data)
    train_idx = stratified_split(data.labels, 0)["train"]
    priors = target_priors(data, train_idx, len(data.classes))
    masks = data.targets["mask"][torch.tensor(train_idx)]
    fg = float(masks.float().mean())
    assert 0.001 < fg < 0.5
    assert float(priors["mask"][1] / priors["mask"].sum()) == pytest.approx(fg, rel=1e-3)
    density = data.targets["density"][torch.tensor(train_idx)]
    assert float(priors["density"]) == pytest.approx(float(density.double().mean()), rel=1e-6)

    model = build_model(tiny_spec)
    assert sorted(init_priors(model, priors)) == ["cls", "rec", "seg"]
    p = model.heads["seg"].conv.bias.detach().softmax(0)
    assert float(p[1]) == pytest.approx(fg, rel=0.01)
    assert float(model.heads["rec"].conv.bias.detach()) == pytest.approx(float(priors["density"]), rel=1e-5)
    counts = torch.bincount(data.targets["class"][torch.tensor(train_idx)], minlength=3).double() + 1
    assert torch.allclose(model.heads["cls"].fc.bias.detach().softmax(0).double(), counts / counts.sum(), atol=1e-5)


def test_prior_initialisation_is_recorded_and_can_be_switched_off(small_data, tiny_spec, tmp_path):
    lines = said(tiny_spec, small_data, tmp_path / "a", TrainConfig(progress=False, epochs=1))
    assert any("started from the training split's priors: cls, rec, seg" in m for m in lines)
    config = TrainConfig(progress=False, epochs=1, prior_init=False)
    assert not any("priors" in m for m in said(tiny_spec, small_data, tmp_path / "b", config))
    state = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert state["settings"]["prior_init"] is False


def test_a_new_run_starts_from_a_trained_runs_fitting_weights(small_data, tiny_spec, trained_run, tmp_path):
    """--init copies every weight of the same name and shape (the backbone, here); a head of
    another shape starts fresh; another backbone is refused naming the file."""
    import yaml

    from dsmnet.core.build import build_model
    from dsmnet.training.step import init_from, load_trained
    from tests.conftest import TINY

    trained, _, _ = load_trained(trained_run)
    other = json.loads(json.dumps(TINY))
    other["heads"] = {"cls": {"type": "classifier", "hidden": [32], "classes": 3}}
    other["losses"] = {"cls": {"type": "cross_entropy", "weight": 1}}
    other.pop("decoder")
    model = build_model(other)
    fresh_fc = model.heads["cls"].fc.weight.detach().clone()
    copied, fresh = init_from(model, trained_run)
    mine, theirs = model.state_dict(), trained.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs if k.startswith("backbone."))
    assert copied == sum(k.startswith("backbone.") for k in theirs) + sum(
        k.startswith("heads.cls.") and mine[k].shape == theirs[k].shape for k in theirs
    )
    assert "heads.cls.fc.weight" in fresh and torch.equal(model.heads["cls"].fc.weight, fresh_fc)

    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    lines = []
    train(
        path, small_data, tmp_path / "b", TrainConfig(progress=False, epochs=1, init=str(trained_run)), log=lines.append
    )
    assert any(
        m.startswith(f"started from {trained_run}: {copied} weight tensors copied; fresh: heads.cls") for m in lines
    )
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["settings"]["init"] == str(trained_run)

    wider = json.loads(json.dumps(other))
    wider["backbone"]["widths"] = [8, 16, 32]
    with pytest.raises(DataError, match=r"best\.pt: its backbone does not fit this spec's"):
        init_from(build_model(wider), trained_run)
    with pytest.raises(DataError, match="no best.pt in this run folder"):
        init_from(build_model(other), tmp_path / "nothing")


def test_batches_never_leave_a_lone_sample():
    assert batch_bounds(48, 16) == [(0, 16), (16, 32), (32, 48)]
    assert batch_bounds(49, 16) == [(0, 16), (16, 32), (32, 49)]
    assert batch_bounds(50, 16)[-1] == (48, 50)
    assert batch_bounds(1, 16) == [(0, 1)]
    assert batch_bounds(0, 16) == []


def test_batch_normalised_classifier_trains_with_a_remainder_of_one(small_data, tmp_path):
    """DSRF3D-v2's head: flattened map, BatchNorm1d in the hidden layers; 48 training particles in
    batches of 47 would leave a batch of one, which BatchNorm1d refuses in training mode."""
    import yaml

    from tests.conftest import TINY

    spec = json.loads(json.dumps(TINY))
    spec["heads"] = {
        "cls": {"type": "classifier", "hidden": [16, 16], "classes": 3, "pool": "flatten", "norm": "batch"}
    }
    spec["losses"] = {"cls": {"type": "cross_entropy", "weight": 1}}
    spec.pop("decoder")
    spec["training"]["batch_size"] = 47
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    summary = train(
        path, small_data, tmp_path / "run", TrainConfig(progress=False, epochs=1, precise_bn=48), log=lambda _: None
    )
    assert summary["epochs"] == 1
    body = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"]
    assert any("body.1.running_var" in k for k in body)


def test_classifier_norm_names_the_allowed_values(tmp_path):
    import yaml

    from dsmnet.core.build import build_model, load_spec
    from dsmnet.core.spec import SpecError
    from tests.conftest import TINY

    spec = json.loads(json.dumps(TINY))
    spec["heads"]["cls"]["norm"] = "group"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        SpecError, match=r"heads\.cls\.norm.*'none', 'batch', 'layer'|heads\.cls\.norm.*none.*batch.*layer"
    ):
        build_model(load_spec(path))


def test_rot180_augmentation_turns_the_molecule_and_keeps_its_hand_and_wedge():
    """A 180° rotation about z, y or x moves every target with the input, keeps the wedge's
    frequencies where they are, and never mirrors the molecule (an even number of flips)."""
    from dsmnet.simulate.imaging import Microscope, wedge_mask

    x = torch.randn(2, 1, 8, 8, 8)
    batch = {"x": x, "mask": (x[:, 0] > 0).long(), "density": x.clone(), "class": torch.tensor([0, 1])}
    gen = torch.Generator().manual_seed(0)
    wedge = wedge_mask((8, 8, 8), Microscope(), rfft=False)
    seen = set()
    for _ in range(40):
        out = augment(batch, "rot180", gen)
        assert torch.equal(out["class"], batch["class"])
        assert torch.equal(out["mask"], (out["x"][:, 0] > 0).long()) and torch.equal(out["density"], out["x"])
        dims = tuple(
            d
            for d in (-3, -2, -1)
            if not torch.equal(out["x"], batch["x"]) and torch.equal(out["x"], turn(batch["x"], (d,)))
        )
        assert not dims, "a single flip would mirror the molecule"
        flipped = [d for d in ((-2, -1), (-3, -1), (-3, -2)) if torch.equal(out["x"], turn(x, d))]
        seen.add(flipped[0] if flipped else ())
    assert seen == {(), (-2, -1), (-3, -1), (-3, -2)}
    # a volume measured through the wedge (tilt axis y) stays inside it after every 180° rotation
    v = torch.fft.ifftn(torch.fft.fftn(torch.randn(8, 8, 8)) * wedge).real
    for dims in ((-2, -1), (-3, -1), (-3, -2)):
        power = torch.fft.fftn(turn(v, dims)).abs() ** 2
        assert power[~wedge].sum() < 1e-8 * power[wedge].sum()


@pytest.mark.parametrize("kind", ["rotate", "mixed"])
def test_rotation_augmentations_keep_the_datas_wedge_and_move_the_targets(kind):
    """``rotate`` and ``mixed`` give every particle its own orientation, leave only the frequencies
    the data measures, and move the targets with the input; ``mixed`` turns about half of the
    particles by an exact 180° turn instead (nothing resampled)."""
    box = (12, 12, 12)
    measured = measured_frequencies(None, box, 10.0)
    x = torch.fft.irfftn(torch.fft.rfftn(torch.randn(40, 1, *box), dim=(-3, -2, -1)) * measured, s=box)
    x = (x - x.mean()) / x.std()
    batch = {"x": x, "density": x.clone(), "mask": (x[:, 0] > 0).long(), "class": torch.arange(40)}
    out = augment(batch, kind, torch.Generator().manual_seed(1), measured)
    assert torch.equal(out["class"], batch["class"])
    power = torch.fft.rfftn(out["x"], dim=(-3, -2, -1)).abs() ** 2
    assert power[..., ~measured].sum() < 1e-8 * power[..., measured].sum()
    exact = [i for i in range(40) if any(torch.equal(out["x"][i], turn(x[i : i + 1], d)[0]) for d in ROT180)]
    assert not exact if kind == "rotate" else 10 <= len(exact) <= 30
    corr = lambda a, b: float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])  # noqa: E731
    for i in range(40):  # the rotated wedge's frequencies are gone too: correlation ~0.8, not 1
        assert corr(out["x"][i], out["density"][i]) > 0.6 > 0.3 > abs(corr(out["x"][i], out["density"][i - 1]))
        assert i not in exact or torch.equal(out["density"][i], out["x"][i])
        assert ((out["mask"][i] > 0) == (out["density"][i, 0] > 0)).float().mean() > 0.8  # nearest vs trilinear


def test_spin_turns_each_particle_with_its_wedge_and_keeps_what_it_measured():
    """``spin`` rotates like ``rotate`` but re-masks nothing: the wedge turns with the particle (its
    frequencies now hold power), turning back recovers the box, and the targets move with it."""
    from dsmnet.core.rotations import random_rotations, rotate_volumes

    box = (16, 16, 16)
    measured = measured_frequencies(None, box, 10.0)
    smooth = torch.fft.irfftn(torch.fft.rfftn(torch.randn(12, 1, *box), dim=(-3, -2, -1)) * measured, s=box)
    x = (smooth - smooth.mean()) / smooth.std()
    batch = {"x": x, "density": x.clone(), "mask": (x[:, 0] > 0).long(), "class": torch.arange(12)}
    out = augment(batch, "spin", torch.Generator().manual_seed(3))
    again = augment(batch, "rotate", torch.Generator().manual_seed(3), measured)  # the same rotations
    power = torch.fft.rfftn(out["x"], dim=(-3, -2, -1)).abs() ** 2
    assert power[..., ~measured].sum() > 0.05 * power.sum()  # the wedge moved: not re-imposed
    rotations = random_rotations(12, torch.Generator().manual_seed(3))
    back = rotate_volumes(out["x"], rotations.transpose(1, 2))  # the inverse rotation
    core = (slice(None), 0, slice(5, 11), slice(5, 11), slice(5, 11))
    corr = lambda a, b: float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])  # noqa: E731
    for i in range(12):
        assert corr(back[core][i], x[core][i]) > 0.9  # twice resampled, nothing removed
        assert corr(out["x"][i], again["x"][i]) < 0.97  # rotate removed the turned wedge's frequencies
        assert corr(out["x"][i], out["density"][i]) > 0.99
        assert ((out["mask"][i] > 0) == (out["density"][i, 0] > 0)).float().mean() > 0.8
    assert torch.equal(out["class"], batch["class"])


@pytest.mark.parametrize("n", [8, 9])
def test_turns_and_rotations_keep_the_particle_centre_where_it_is(n):
    """The simulator, extract and RELION put a particle's centre at index n // 2: every 180° turn
    and every random rotation leaves that voxel in place (about the array's geometric centre an
    even box's particle would move by a voxel)."""
    centre = (n // 2,) * 3
    x = torch.zeros(1, 1, n, n, n)
    x[(0, 0, *centre)] = 1.0
    for dims in ROT180:
        assert turn(x, dims)[(0, 0, *centre)] == 1.0 and turn(turn(x, dims), dims).equal(x)
    rotations = random_rotations(16, torch.Generator().manual_seed(0))
    turned = rotate_volumes(x.expand(16, 1, n, n, n), rotations)
    assert torch.allclose(turned[(slice(None), 0, *centre)], torch.ones(16), atol=1e-5)


@pytest.mark.parametrize("shape", [(8, 8, 8), (6, 7, 9), (9, 6, 5)])
def test_the_rotation_grid_is_affine_grids_about_the_centre_voxel(shape):
    """``rotation_grid``, built one axis at a time, is ``F.affine_grid`` of ``[A | c - A c]``, and
    turning the input and density in one resampling call equals turning each alone."""
    import torch.nn.functional as F

    from dsmnet.training.augment import rotated_batch, rotation_grid

    rotations = random_rotations(5, torch.Generator().manual_seed(3))
    centre = torch.tensor([(2 * (n // 2) + 1) / n - 1 for n in shape[::-1]])
    theta = torch.cat([rotations, (centre - rotations @ centre)[..., None]], dim=2)
    expected = F.affine_grid(theta, [5, 1, *shape], align_corners=False)
    assert torch.allclose(rotation_grid(rotations, shape), expected, atol=1e-6)
    g = torch.Generator().manual_seed(4)
    batch = {"x": torch.randn(5, 1, *shape, generator=g), "density": torch.randn(5, 1, *shape, generator=g)}
    batch["mask"] = (batch["density"][:, 0] > 0).long()
    out = rotated_batch(batch, rotations, torch.ones(shape[0], shape[1], shape[2] // 2 + 1, dtype=torch.bool))
    alone = F.grid_sample(batch["density"], expected, align_corners=False)
    assert torch.allclose(out["density"], alone, atol=1e-5)
    assert torch.equal(
        out["mask"],
        F.grid_sample(batch["mask"][:, None].float(), expected, "nearest", align_corners=False)[:, 0].long(),
    )


@pytest.mark.parametrize("kind", ["none", "flip", "rot180", "rotate", "mixed", "spin"])
def test_augmentation_runs_where_the_batch_is(kind):
    """On a GPU the training loop augments on the device: every augmentation keeps its work on the
    batch's device (the meta device stands in for a GPU here: a CPU tensor mixed in would raise)."""
    box = (8, 8, 8)
    batch = {
        "x": torch.empty(6, 1, *box, device="meta"),
        "density": torch.empty(6, 1, *box, device="meta"),
        "mask": torch.empty(6, *box, dtype=torch.long, device="meta"),
        "class": torch.empty(6, dtype=torch.long, device="meta"),
    }
    out = augment(batch, kind, torch.Generator().manual_seed(0), measured_frequencies(None, box, 10.0))
    assert {k: (v.device.type, v.shape, v.dtype) for k, v in out.items()} == {
        k: ("meta", v.shape, v.dtype) for k, v in batch.items()
    }


def test_rotations_turn_a_molecule_as_the_simulator_does():
    """``rotate_volumes`` with ``Rᵀ`` is the simulator's active rotation by ``R`` (both trilinear)."""
    from scipy.spatial.transform import Rotation

    from dsmnet.simulate.crowding import rotate
    from dsmnet.simulate.library import load_library

    density = load_library()["pseudo_filament"].density
    for r in Rotation.random(3, random_state=4):
        expected = torch.from_numpy(rotate(density, r))
        m = torch.from_numpy(r.as_matrix()).float().T[None]
        got = rotate_volumes(torch.from_numpy(density)[None, None], m)[0, 0]
        assert torch.corrcoef(torch.stack([got.flatten(), expected.flatten()]))[0, 1] > 0.999


def test_density_target_is_scaled_so_the_three_losses_start_at_one_order(small_data, tiny_spec, tmp_path):
    logs = []
    summary = train(tiny_spec, small_data, tmp_path / "run", QUIET, log=logs.append)
    initial = summary["initial_weighted_losses"]
    assert set(initial) == {"cls", "seg", "rec"}
    assert max(initial.values()) < 10 * min(initial.values()), initial
    assert any(line.startswith("initial weighted losses") for line in logs)
    scale = state_of(tmp_path / "run")["settings"]["density_scale"]
    data = load_dataset(small_data)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert float(data.targets["density"][split["train"]].std()) * scale == pytest.approx(1.0, rel=1e-3)


def test_lazy_volumes_index_like_the_tensors_in_memory(small_data):
    lazy = load_dataset(small_data)
    held = load_dataset(small_data, in_memory=True)
    assert isinstance(held.x, torch.Tensor) and not isinstance(lazy.x, torch.Tensor)
    idx = torch.tensor([5, 0, 7])
    mask = torch.zeros(len(held), dtype=torch.bool)
    mask[[1, 4]] = True
    for index in (3, slice(2, 6), idx, idx.numpy(), [5, 0], mask, (slice(None), 0), (idx, 0), (4, 0)):
        assert torch.equal(lazy.x[index], held.x[index]), index
    for kind in ("mask", "density"):
        assert torch.equal(lazy.targets[kind][idx], held.targets[kind][idx])
    lazy.scale_density(2.0)
    held.scale_density(2.0)
    assert torch.equal(lazy.targets["density"][idx], held.targets["density"][idx])


def plateau_spec(tiny_spec: Path, tmp_path: Path, monkeypatch, epochs: int) -> Path:
    """The tiny spec with the plateau schedule (× 0.5 after each epoch without a lower validation
    loss, lr 1e-3), and a validation loss that rises every epoch after the run's start."""
    evaluate_split = loop.evaluate_split
    calls = []

    def rising(*args, **kwargs):  # the first call measures the initial losses (in run); then every epoch is worse
        calls.append(1)
        out = evaluate_split(*args, **kwargs)
        return {**out, "loss": float(len(calls))} if len(calls) > 1 else out

    monkeypatch.setattr(loop, "evaluate_split", rising)
    monkeypatch.setattr(run, "evaluate_split", rising)
    spec = yaml.safe_load(tiny_spec.read_text())
    spec["training"].update(
        schedule="plateau", plateau_patience=1, plateau_factor=0.5, epochs=epochs, lr=1e-3, patience=15
    )
    path = tmp_path / "plateau.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_plateau_schedule_lowers_the_rate_when_validation_stalls_and_resumes_with_it(
    small_data, tiny_spec, tmp_path, monkeypatch
):
    assert plateau_scale(RunSettings(schedule="plateau", plateau_patience=2, plateau_factor=0.5), 1.0, 2) == 0.5
    assert plateau_scale(RunSettings(schedule="plateau", plateau_patience=2, plateau_factor=0.5), 1.0, 3) == 1.0
    assert plateau_scale(RunSettings(schedule="constant", plateau_patience=2, plateau_factor=0.5), 1.0, 2) == 1.0
    path = plateau_spec(tiny_spec, tmp_path, monkeypatch, epochs=2)
    lines: list[str] = []
    train(path, small_data, tmp_path / "run", QUIET, log=lines.append)
    assert state_of(tmp_path / "run")["lr_scale"] == 0.5
    assert any("learning rate × 0.5" in line for line in lines)
    train(
        path,
        small_data,
        tmp_path / "run",
        TrainConfig(progress=False, precise_bn=32, epochs=3),
        resume=True,
        log=lines.append,
    )
    state = state_of(tmp_path / "run")
    assert [r["lr"] for r in state["history"]] == pytest.approx([1e-3, 1e-3, 5e-4])  # resumed at its reduced rate
    assert state["lr_scale"] == 0.25


def test_the_plateau_schedule_stops_once_its_rate_falls_below_min_lr_and_stays_stopped(
    small_data, tiny_spec, tmp_path, monkeypatch
):
    """The floor ends a run whose rate no longer moves the weights, though its patience is not
    used up; the stop is read from the checkpoint, so a resumed run given more epochs stays
    stopped. A floor without the plateau schedule (spec or command line) is refused in one line."""
    path = plateau_spec(tiny_spec, tmp_path, monkeypatch, epochs=6)
    lines: list[str] = []
    summary = train(path, small_data, tmp_path / "run", TrainConfig(progress=False, precise_bn=32, min_lr=3e-4),
                    log=lines.append)  # fmt: skip
    # epoch 1: best; 2: × 0.5 (5e-4); 3: × 0.5 (2.5e-4 < 3e-4), stop
    assert summary["epochs"] == 3 and summary["stopped_early"] and "below min_lr 0.0003" in summary["stopped_because"]
    assert any(line.startswith("stopping after epoch 3: the rate (0.00025) below min_lr") for line in lines)
    assert "stop below 0.0003" in next(line for line in lines if line.startswith("training "))
    again = train(path, small_data, tmp_path / "run", TrainConfig(progress=False, precise_bn=32, epochs=8),
                  resume=True, log=lines.append)  # fmt: skip
    assert again["epochs"] == 3 and len(state_of(tmp_path / "run")["history"]) == 3
    with pytest.raises(TrainingError, match="min_lr is a floor for the plateau schedule, and the schedule is cosine"):
        train(path, small_data, tmp_path / "cosine", TrainConfig(progress=False, schedule="cosine", min_lr=3e-4))


def test_min_lr_reaches_the_run_from_the_command_line_and_the_last_line_says_why_it_stopped(
    monkeypatch, tmp_path, capsys
):
    from dsmnet.cli import main

    asked = []

    def fake_train(spec, data, out, config, resume=False):
        asked.append(config)
        why = "the rate (9.6e-07) below min_lr 3e-06" if config.min_lr else None
        return {"epochs": 101, "best_val_loss": 1.5, "best_epoch": 96, "stopped_because": why}

    monkeypatch.setattr(loop, "train", fake_train)
    for extra in (["--schedule", "plateau", "--min-lr", "3e-6"], []):
        assert main(["train", "dsmnet", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *extra]) == 0
    assert [config.min_lr for config in asked] == [3e-6, None]
    done = [line for line in capsys.readouterr().out.splitlines() if line.startswith("done:")]
    assert done[0].endswith(f"at epoch 96 (stopped: the rate (9.6e-07) below min_lr 3e-06) → {tmp_path / 'run'}")
    assert done[1].endswith(f"at epoch 96 → {tmp_path / 'run'}")


# the settings a checkpoint held as its code wrote them: the long runs of 2026-12-04 (no
# ``fresh``, no ``wedge``), and the oldest runs (augment a bool, no schedule, no weight average)
SETTINGS_2026_12_04 = ("optimizer", "lr", "betas", "weight_decay", "batch_size", "epochs", "patience", "schedule",
                       "warmup", "plateau_patience", "plateau_factor", "ema", "seed", "augment", "precise_bn",
                       "prior_init", "init", "density_scale")  # fmt: skip
SETTINGS_OLDEST = ("optimizer", "lr", "betas", "weight_decay", "batch_size", "epochs", "patience", "seed", "augment",
                   "precise_bn", "prior_init")  # fmt: skip


@pytest.mark.parametrize("kept", [SETTINGS_2026_12_04, SETTINGS_OLDEST])
def test_a_checkpoint_written_before_the_typed_settings_resumes_and_predicts_alike(
    small_data, tiny_spec, tmp_path, kept
):
    """Runs in progress across the change: a checkpoint whose ``settings`` dict lacks the fields
    added since resumes to the same weights as one that has them, and evaluates alike."""
    from dsmnet.training.evaluate import evaluate
    from dsmnet.training.settings import RunSettings

    config = TrainConfig(progress=False, precise_bn=32, epochs=1, augment="flip")
    new, old = tmp_path / "new", tmp_path / "old"
    train(tiny_spec, small_data, new, config, log=lambda _: None)
    shutil.copytree(new, old)
    for name in ("last.pt", "best.pt"):
        state = torch.load(old / name, weights_only=True)
        state["settings"] = {k: v for k, v in state["settings"].items() if k in kept}
        if "schedule" not in kept:  # the oldest form: augment saved as a bool
            state["settings"]["augment"] = True
            for key in ("lr_scale", "initial", "revisions", "runtimes", "seconds", "sessions"):
                state.pop(key)
        save_checkpoint(old / name, state)
    assert RunSettings.from_dict(state_of(old)["settings"]).augment == "flip"
    more = TrainConfig(progress=False, precise_bn=32, epochs=2, augment="flip")
    for folder in (new, old):
        train(tiny_spec, small_data, folder, more, resume=True, log=lambda _: None)
    a, b = state_of(new), state_of(old)
    assert b["epoch"] == 2 and set(b["settings"]) == set(a["settings"])  # written back whole, in today's form
    scores = [evaluate(f, small_data, out=tmp_path / f"e-{f.name}")["metrics"] for f in (new, old)]
    if "density_scale" in kept:  # everything the run's arithmetic reads was saved: the same run
        assert a["history"][1]["val_loss"] == b["history"][1]["val_loss"] and scores[0] == scores[1]
        assert all(torch.equal(a["step"][k], b["step"][k]) for k in a["step"])
    else:  # the oldest runs trained on unscaled densities, and resume so
        assert b["settings"]["density_scale"] == 1.0 != a["settings"]["density_scale"]
        assert scores[1]["acc_cls"] >= 0

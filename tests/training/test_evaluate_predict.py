"""Evaluation metrics and figures; extraction from a tomogram and prediction on users' data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import torch

from dsmnet.dataset.mrc import DataError, write_mrc
from dsmnet.dataset.star import write_star
from dsmnet.infer.extract import extract
from dsmnet.infer.predict import predict
from dsmnet.training.evaluate import evaluate
from dsmnet.training.metrics import Confusion, resolution


@pytest.fixture
def run(trained_run) -> Path:
    return trained_run


def test_confusion_metrics():
    c = Confusion(2)
    import torch

    c.update(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0]))
    assert c.accuracy == pytest.approx(3 / 5)
    assert c.iou() == pytest.approx([1 / 3, 2 / 4])
    assert c.miou == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert c.per_class_accuracy() == pytest.approx([1 / 2, 2 / 3])


def test_resolution_interpolates_the_cutoff():
    curve = np.array([1.0, 0.9, 0.7, 0.3, 0.1])  # box 8: shell i at i/8 cycles/voxel
    assert resolution(curve, 10.0, 0.5) == pytest.approx(10.0 / (2.5 / 8))
    assert resolution(np.ones(5), 10.0, 0.5) == 20.0


def test_evaluate_writes_metrics_and_figures(run, small_data):
    results = evaluate(run, small_data, "test")
    out = Path(results["out"])
    metrics = json.loads((out / "metrics.json").read_text())
    m = metrics["metrics"]
    assert 0 <= m["acc_cls"] <= 1 and 0 <= m["miou_seg"] <= 1 and 0 <= m["pixel_acc_seg"] <= 1
    assert metrics["particles"] == 6
    assert set(metrics["per_class_accuracy_cls"]) == {"ruvb_7pbl", "mjap_9x2o", "mtor_4jsv"}
    assert np.array(metrics["confusion_cls"]).sum() == 6
    # per particle, what a paired comparison needs: they add up to the split's own metrics
    per = metrics["per_particle"]
    assert len(per["label"]) == len(per["predicted_cls"]) == len(per["confusion_seg"]) == 6
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (per["label"], per["predicted_cls"]), 1)
    assert confusion.tolist() == metrics["confusion_cls"]
    voxels = Confusion(2)
    voxels.matrix = torch.tensor(per["confusion_seg"]).sum(0).view(2, 2)
    assert voxels.miou == pytest.approx(m["miou_seg"]) and voxels.accuracy == pytest.approx(m["pixel_acc_seg"])
    assert '"predicted_cls": [' in (out / "metrics.json").read_text()  # a list of numbers is one line
    fsc = metrics["fsc_rec"]
    assert len(fsc["curve"]) == 13 and fsc["resolution_0.5"] >= 20.0
    for png in ("fig3.png", "confusion_cls.png", "fsc_rec.png"):
        assert (out / png).stat().st_size > 1000


def test_evaluate_refuses_a_split_of_another_dataset(run, small_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small_data, other)
    table = starfile.read(other / "particles.star").iloc[::-1]
    starfile.write(table, other / "particles.star", overwrite=True)
    with pytest.raises(DataError, match="not the dataset .* was trained on.*--split all"):
        evaluate(run, other, "test")
    assert evaluate(run, other, "all", tmp_path / "ev")["particles"] == 60


def test_class_names_must_match_the_checkpoint(run, small_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small_data, other)
    classes = json.loads((other / "classes.json").read_text())
    classes[0]["name"] = "something_else"
    (other / "classes.json").write_text(json.dumps(classes))
    with pytest.raises(DataError, match="classes.json: the class names .* do not match the model's"):
        evaluate(run, other, "all")


def make_tomogram(tmp_path: Path, small_data: Path, voxel: float = 10.0) -> tuple[Path, Path]:
    """A tomogram made of the dataset's clean tomogram, with picks at its particles' centres."""
    tomo = tmp_path / "tomo.mrc"
    shutil.copy(small_data / "tomograms" / "tomo_001.mrc", tomo)
    with mrcfile.open(tomo, mode="r+") as mrc:
        mrc.voxel_size = voxel
    table = starfile.read(small_data / "particles.star")
    picks = table[table["rlnTomoName"] == "tomo_001"][["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]]
    picks = pd.concat(
        [picks, pd.DataFrame({"rlnCoordinateX": [2.0], "rlnCoordinateY": [50.0], "rlnCoordinateZ": [20.0]})]
    )
    star = tmp_path / "picks.star"
    write_star(star, {"particles": picks})
    return tomo, star


def test_extract_then_predict(run, small_data, tmp_path):
    tomo, star = make_tomogram(tmp_path, small_data)
    r = extract(star, tmp_path / "subtomos", tomogram=tomo, box=24, voxel_size=10.0)
    assert r["skipped"] == 1 and r["extracted"] >= 1
    p = extract(star, tmp_path / "padded", tomogram=tomo, box=24, border="pad")
    assert p["skipped"] == 0 and p["extracted"] == r["extracted"] + 1
    result = predict(run, tmp_path / "subtomos", tmp_path / "pred")
    table = starfile.read(tmp_path / "pred" / "predictions.star")
    assert len(table) == r["extracted"]
    probs = table[[f"dsmProb_{c}" for c in ("ruvb_7pbl", "mjap_9x2o", "mtor_4jsv")]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert set(table["dsmClassName"]) <= {"ruvb_7pbl", "mjap_9x2o", "mtor_4jsv"}
    with mrcfile.open(tmp_path / "pred" / table["dsmMaskName"].iloc[0]) as mrc:
        assert mrc.voxel_size.x == pytest.approx(10.0) and mrc.data.shape == (24, 24, 24)
        assert set(np.unique(mrc.data)) <= {0, 1}
    with mrcfile.open(tmp_path / "pred" / table["dsmDensityName"].iloc[0]) as mrc:
        assert mrc.data.dtype == np.float32
    assert (tmp_path / "pred" / table["rlnImageName"].iloc[0]).is_file()
    assert result["particles"] == len(table)


def test_extract_voxel_size_mismatch_and_rescale(small_data, tmp_path):
    tomo, star = make_tomogram(tmp_path, small_data, voxel=5.0)
    with pytest.raises(DataError, match="5 Å/voxel, but the model takes 10 Å/voxel; drop --no-rescale"):
        extract(star, tmp_path / "a", tomogram=tomo, box=24, voxel_size=10.0, rescale=False)
    said = []
    r = extract(star, tmp_path / "b", tomogram=tomo, box=24, voxel_size=10.0, log=said.append)
    assert any("resampled to the model's 10 Å/voxel" in line for line in said)
    assert r["rescaled"] and r["voxel_size"] == 10.0
    with mrcfile.open(tmp_path / "b" / "subtomograms" / "000001.mrc") as mrc:
        assert mrc.voxel_size.x == pytest.approx(10.0)


def test_extract_needs_coordinates(small_data, tmp_path):
    star = tmp_path / "nocoords.star"
    write_star(star, {"particles": pd.DataFrame({"rlnAngleRot": [0.0]})})
    tomo = tmp_path / "t.mrc"
    write_mrc(tomo, np.zeros((32, 32, 32), np.float32), 10.0)
    with pytest.raises(DataError, match="nocoords.star: no particle coordinates: expected rlnCoordinateX"):
        extract(star, tmp_path / "x", tomogram=tomo, box=16)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value,message", [(np.nan, "NaN or infinite voxel"), (None, "a constant box")])
def test_a_bad_subtomogram_is_refused_naming_the_file(small_data, tmp_path, value, message):
    import shutil

    from dsmnet.dataset.mrc import DataError, read_mrc, write_mrc
    from dsmnet.dataset.subtomograms import load_dataset

    copy = tmp_path / "data"
    shutil.copytree(small_data, copy)
    path = sorted((copy / "subtomograms").glob("*.mrc"))[3]
    volume, voxel = read_mrc(path)
    if value is None:
        volume[:] = 1.5
    else:
        volume[5, 5, 5] = value
    write_mrc(path, volume, voxel)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(copy, targets=False)
    assert str(path) in str(err.value)


def test_a_binned_network_trains_evaluates_and_predicts_at_the_box_voxels(small_data, tmp_path):
    import yaml

    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig
    from tests.conftest import TINY

    spec = tmp_path / "binned.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "input": {"shape": [24, 24, 24], "bin": 2}}))
    run = tmp_path / "run"
    train(spec, small_data, run, TrainConfig(progress=False, epochs=1, augment="rotate"), log=lambda _: None)
    assert yaml.safe_load((run / "spec.yaml").read_text())["input"]["bin"] == 2
    m = json.loads((Path(evaluate(run, small_data, "test")["out"]) / "metrics.json").read_text())["metrics"]
    assert 0 <= m["miou_seg"] <= 1 and m["mse_rec"] >= 0
    predict(run, small_data, tmp_path / "pred")
    table = starfile.read(tmp_path / "pred" / "predictions.star")
    with mrcfile.open(tmp_path / "pred" / table["dsmMaskName"].iloc[0]) as mrc:
        assert mrc.data.shape == (24, 24, 24)


def test_a_network_with_the_centre_prior_trains_resumes_evaluates_and_predicts(small_data, tmp_path):
    import yaml

    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig
    from tests.conftest import TINY

    spec = tmp_path / "centre.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "input": {"shape": [24, 24, 24], "centre_prior": 0.2}}))
    run = tmp_path / "run"
    train(spec, small_data, run, TrainConfig(progress=False, epochs=1, augment="rotate"), log=lambda _: None)
    train(
        spec, small_data, run, TrainConfig(progress=False, epochs=2, augment="rotate"), resume=True, log=lambda _: None
    )
    assert yaml.safe_load((run / "spec.yaml").read_text())["input"]["centre_prior"] == 0.2
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    m = json.loads((Path(evaluate(run, small_data, "test", tta=True)["out"]) / "metrics.json").read_text())["metrics"]
    assert 0 <= m["acc_cls"] <= 1 and 0 <= m["miou_seg"] <= 1
    predict(run, small_data, tmp_path / "pred")
    assert len(starfile.read(tmp_path / "pred" / "predictions.star")) > 0


def test_a_mask_threshold_draws_the_voxels_above_it_and_leaves_other_heads():
    from dsmnet.training.metrics import at_threshold

    torch.manual_seed(1)
    out = {"seg": torch.randn(3, 2, 4, 4, 4), "cls": torch.randn(3, 5), "parts": torch.randn(3, 3, 4, 4, 4)}
    targets_of = {"seg": "mask", "cls": "class", "parts": "mask"}
    foreground = out["seg"].softmax(1)[:, 1]
    for t in (0.1, 0.35, 0.5, 0.9):
        cut = at_threshold(out, targets_of, t)
        assert torch.equal(cut["seg"].argmax(1), (foreground > t).long())
        assert cut["cls"] is out["cls"] and cut["parts"] is out["parts"]  # a class head, a 3-class mask
    assert at_threshold(out, targets_of, None) is out


def test_evaluate_sweeps_the_mask_threshold_and_applies_one(run, small_data, tmp_path):
    plain = evaluate(run, small_data, "val", out=tmp_path / "plain")
    found = plain["mask_threshold_sweep"]["seg"]
    assert found["threshold"][0] == 0.1 and found["threshold"][-1] == 0.9 and len(found["miou"]) == 17
    # at 0.5 the sweep reads what the argmax does; the best is the sweep's highest
    assert found["miou"][found["threshold"].index(0.5)] == pytest.approx(plain["metrics"]["miou_seg"], abs=1e-3)
    assert found["best_miou"] == max(found["miou"]) and found["best"] in found["threshold"]
    from dsmnet.training.evaluate import table

    said = f"seg mIoU at a foreground threshold of {found['best']:.2f}: {found['best_miou']:.4f}"
    assert f"{said} (at 0.5: " in table(plain) and "a threshold for --mask-threshold" in table(plain)
    on_test = table({**plain, "split": "test"})  # a test split never offers its best threshold
    assert "seg mIoU at foreground thresholds 0.10-0.90: in metrics.json (fit one on the val split)" in on_test
    assert "seg mIoU at a foreground threshold of" not in on_test
    cut = evaluate(run, small_data, "val", out=tmp_path / "cut", mask_threshold=found["best"])
    assert cut["metrics"]["miou_seg"] == pytest.approx(found["best_miou"], abs=1e-6)
    assert cut["metrics"]["loss"] == pytest.approx(plain["metrics"]["loss"])  # the model's own loss
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["mask_threshold"] == found["best"]
    low = evaluate(run, small_data, "val", out=tmp_path / "low", mask_threshold=0.1)["per_particle"]
    high = evaluate(run, small_data, "val", out=tmp_path / "high", mask_threshold=0.9)["per_particle"]
    drawn = [[fp + tp for _, fp, _, tp in particles] for particles in (low["confusion_seg"], high["confusion_seg"])]
    assert all(a >= b for a, b in zip(*drawn)) and sum(drawn[0]) > sum(drawn[1])


def test_predict_draws_masks_at_the_threshold_it_is_given(run, small_data, tmp_path):
    sizes = {}
    for t in (0.1, 0.9):
        predict(run, small_data, tmp_path / str(t), mask_threshold=t, maps=False, progress=False)
        table = starfile.read(tmp_path / str(t) / "predictions.star")
        with mrcfile.open(tmp_path / str(t) / table["dsmMaskName"].iloc[0]) as mrc:
            sizes[t] = int(mrc.data.sum())
        assert json.loads((tmp_path / str(t) / "prediction.json").read_text())["mask_threshold"] == t
    assert sizes[0.1] > sizes[0.9]


def test_a_mask_threshold_for_a_run_without_a_mask_head_is_refused_naming_the_run(small_data, tmp_path):
    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig
    from tests.conftest import TINY

    spec = {**TINY, "heads": {"cls": TINY["heads"]["cls"]}, "losses": {"cls": TINY["losses"]["cls"]}}
    spec.pop("decoder")
    train(spec, small_data, tmp_path / "cls", TrainConfig(progress=False, epochs=1), log=lambda _: None)
    message = r"cls: --mask-threshold 0\.3, but its heads draw no two-class mask: cls \(class\)"
    with pytest.raises(DataError, match=message):
        evaluate(tmp_path / "cls", small_data, "val", out=tmp_path / "e", mask_threshold=0.3)
    with pytest.raises(DataError, match=message):
        predict(tmp_path / "cls", small_data, tmp_path / "p", mask_threshold=0.3, progress=False)
    assert not (tmp_path / "p").exists()
    # a mask of three classes has no foreground/background threshold either: refused, its class count named
    spec = {**TINY, "heads": {**TINY["heads"], "seg": {**TINY["heads"]["seg"], "classes": 3}}}
    train(spec, small_data, tmp_path / "three", TrainConfig(progress=False, epochs=1), log=lambda _: None)
    with pytest.raises(DataError, match=r"three: --mask-threshold 0\.3, but .*seg \(mask, 3 classes\)"):
        evaluate(tmp_path / "three", small_data, "val", out=tmp_path / "e3", mask_threshold=0.3)

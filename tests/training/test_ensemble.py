"""Several runs as one model: the ensemble's scores are the members' log-probabilities averaged,
``predict`` and ``evaluate`` use it, and runs that answer another question are refused."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch

from dsmnet.core.build import build_model, load_spec
from dsmnet.dataset.mrc import DataError
from dsmnet.infer.predict import predict
from dsmnet.training.checkpoint import load_checkpoint, save_checkpoint
from dsmnet.training.ensemble import Ensemble
from dsmnet.training.evaluate import evaluate, table
from tests.conftest import TINY

CLASSES = ("ruvb_7pbl", "mjap_9x2o", "mtor_4jsv")


@pytest.fixture(scope="module")
def second_run(small_data, tiny_spec, tmp_path_factory) -> Path:
    """The tiny spec trained like ``trained_run`` but from seed 1 (another start and split)."""
    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig

    out = tmp_path_factory.mktemp("runs") / "tiny-seed1"
    train(tiny_spec, small_data, out, TrainConfig(progress=False, epochs=2, seed=1), log=lambda _: None)
    return out


def test_the_ensemble_averages_log_probabilities_and_densities():
    torch.manual_seed(0)
    a, b = build_model(load_spec(TINY)).eval(), build_model(load_spec(TINY)).eval()
    x = torch.randn(2, 1, 24, 24, 24)
    with torch.no_grad():
        out, one, two = Ensemble([a, b])(x), a(x), b(x)
    for head in ("cls", "seg"):
        want = (one[head].log_softmax(1) + two[head].log_softmax(1)) / 2
        assert torch.allclose(out[head], want, atol=1e-5)
    assert torch.allclose(out["rec"], (one["rec"] + two["rec"]) / 2, atol=1e-6)
    with torch.no_grad():  # densities in the first member's units
        scaled = Ensemble([a, b], density_factors=[1.0, 0.5])(x)
    assert torch.allclose(scaled["rec"], (one["rec"] + 0.5 * two["rec"]) / 2, atol=1e-6)
    assert not torch.allclose(one["cls"].log_softmax(1), two["cls"].log_softmax(1), atol=1e-3)  # else no test


def _probabilities(folder: Path) -> np.ndarray:
    table = starfile.read(folder / "predictions.star")
    return table[[f"dsmProb_{c}" for c in CLASSES]].to_numpy()


def test_predict_with_an_ensemble_gives_the_normalised_geometric_mean(trained_run, second_run, small_data, tmp_path):
    options = {"maps": False, "progress": False, "log": lambda _: None}
    one = _probabilities(Path(predict(trained_run, small_data, tmp_path / "one", **options)["out"]))
    two = _probabilities(Path(predict(second_run, small_data, tmp_path / "two", **options)["out"]))
    both = _probabilities(
        Path(predict(trained_run, small_data, tmp_path / "both", ensemble=[second_run], **options)["out"])
    )
    made_by = json.loads((tmp_path / "both" / "prediction.json").read_text())  # which models answered
    assert [m["run"] for m in made_by["runs"]] == [str(trained_run), str(second_run)] and made_by["tta"] is None
    assert [m["run"] for m in json.loads((tmp_path / "one" / "prediction.json").read_text())["runs"]] == [
        str(trained_run)
    ]
    geometric = np.sqrt(one * two)
    np.testing.assert_allclose(both, geometric / geometric.sum(1, keepdims=True), atol=2e-3)
    assert np.abs(one - two).max() > 0.01  # the members differ, so the average is not either one
    # densities averaged in the dataset's units, though each run scaled its target by its own factor
    d1, d2, de = (_density(tmp_path / name) for name in ("one", "two", "both"))
    np.testing.assert_allclose(de, (d1 + d2) / 2, atol=1e-3 * np.abs(d1).max())
    assert np.abs(d1 - d2).max() > 1e-2 * np.abs(d1).max()


def _density(folder: Path) -> np.ndarray:
    table = starfile.read(folder / "predictions.star")
    with mrcfile.open(folder / table["dsmDensityName"].iloc[0]) as mrc:
        return mrc.data.astype(np.float64)


def test_evaluate_an_ensemble_records_its_members(trained_run, second_run, small_data, tmp_path):
    r = evaluate(trained_run, small_data, "all", ensemble=[second_run])
    assert Path(r["out"]).name == "evaluate-all-ensemble-2"
    saved = json.loads((Path(r["out"]) / "metrics.json").read_text())
    assert [m["run"] for m in saved["ensemble"]] == [str(trained_run), str(second_run)]
    assert all(m["epoch"] >= 1 for m in saved["ensemble"]) and saved["particles"] == 60
    assert 0.0 <= saved["metrics"]["acc_cls"] <= 1.0 and saved["metrics"]["miou_seg"] > 0.3
    assert "(an ensemble of 2 runs, best epochs " in table(r).splitlines()[0]
    # members trained on other splits: their test split may hold particles the other trained on
    with pytest.raises(DataError, match="trained on another split than .*--split all"):
        evaluate(trained_run, small_data, "test", tmp_path / "mixed", ensemble=[second_run])


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda s: s.__setitem__("classes", list(reversed(s["classes"]))), "class names"),
        (lambda s: s.__setitem__("voxel_size", 2 * s["voxel_size"]), "voxel size"),
    ],
)
def test_a_member_that_answers_another_question_is_refused(trained_run, small_data, tmp_path, change, what):
    state = load_checkpoint(trained_run / "best.pt")
    state.pop("format")
    change(state)
    save_checkpoint(tmp_path / "other" / "best.pt", state)
    with pytest.raises(DataError, match=rf"other: its {what}: .* but .*'s: .*answer the same question"):
        evaluate(trained_run, small_data, "all", tmp_path / "ev", ensemble=[tmp_path / "other"])


def test_the_command_line_averages_runs_and_refuses_in_one_line(trained_run, second_run, small_data, tmp_path, capsys):
    from dsmnet.cli import main

    out = tmp_path / "cli"
    args = ["evaluate", str(trained_run), "--data", str(small_data), "--ensemble", str(second_run), "--out", str(out)]
    assert main([*args, "--split", "all", "--json"]) == 0
    assert [m["run"] for m in json.loads(capsys.readouterr().out)["ensemble"]] == [str(trained_run), str(second_run)]
    assert main([*args, "--split", "test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dsmnet: error: ") and "--split all" in err[0], err


def test_a_refusal_names_where_two_long_lists_of_names_differ():
    from dsmnet.training.ensemble import _shown

    names = [f"complex_{i}" for i in range(22)]
    other = [*names[:5], "something_else", *names[6:]]
    assert _shown(names, other) == "22 of them, 'complex_5' at position 6"
    assert _shown(names[:10], names) == "10 of them, nothing more"
    assert _shown([24, 24, 24], [34, 34, 34]) == "[24, 24, 24]"

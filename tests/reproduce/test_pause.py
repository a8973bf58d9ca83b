"""results/converged/pause.sh: the study's trainings stopped, with their helpers, while a command
runs alone, continued after it (also when it fails), and the pause written in each run's record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PAUSE = Path(__file__).resolve().parents[2] / "results" / "converged" / "pause.sh"

FAKE = """
import os, subprocess, sys, time
lock = sys.argv[2]
child = subprocess.Popen(["sleep", "120"])
with open(lock + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\\n{child.pid}\\n")
os.replace(lock + ".tmp", lock)
time.sleep(120)
"""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]  # R, S, T (stopped), …


@pytest.mark.skipif(not Path("/proc").is_dir() or sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("command_fails", [False, True])
def test_pause_stops_a_training_and_its_helper_and_records_it(tmp_path, command_fails):
    token = f"fake-training-{uuid.uuid4().hex}"
    run = tmp_path / "study" / "runs" / "A" / "row" / "seed0"
    run.mkdir(parents=True)
    finished = tmp_path / "study" / "runs" / "A" / "done" / "seed0"  # a finished run is not written to
    finished.mkdir(parents=True)
    (finished / "summary.json").write_text("{}")
    script = tmp_path / f"{token}.py"
    script.write_text(FAKE)
    fake = subprocess.Popen([sys.executable, str(script), token, str(run / ".lock")])
    try:
        for _ in range(200):
            if (run / ".lock").is_file():
                break
            time.sleep(0.05)
        pid, child = map(int, (run / ".lock").read_text().split())
        (finished / ".lock").write_text(f"{pid}\n")
        seen = tmp_path / "seen"
        check = f"cat /proc/{pid}/stat /proc/{child}/stat > {seen}" + ("; exit 3" if command_fails else "")
        env = {**os.environ, "STUDY": str(tmp_path / "study"), "PAUSE_MATCH": token}
        r = subprocess.run(
            ["bash", str(PAUSE), "a test, why", "bash", "-c", check], env=env, capture_output=True, text=True
        )
        assert r.returncode == (3 if command_fails else 0), r.stderr
        states = [line.rsplit(")", 1)[1].split()[0] for line in seen.read_text().splitlines()]
        assert states == ["T", "T"]  # the training and its helper, stopped while the command ran
        assert _state(pid) != "T" and _state(child) != "T"  # and continued after it
        assert "1 training(s) paused" in r.stderr and "a test, why" in r.stderr
        (pause,) = [json.loads(line) for line in (run / "pauses.jsonl").read_text().splitlines()]
        assert pause["why"] == "a test, why" and pause["from"] <= pause["to"] and pause["to"].endswith("Z")
        assert not (finished / "pauses.jsonl").exists()
    finally:
        fake.kill()
        for p in (run / ".lock").read_text().split()[1:] if (run / ".lock").is_file() else []:
            try:
                os.kill(int(p), 9)
            except ProcessLookupError:
                pass
        fake.wait()


def test_pause_needs_a_reason_and_a_command(tmp_path):
    r = subprocess.run(
        ["bash", str(PAUSE), "why"], env={**os.environ, "STUDY": str(tmp_path)}, capture_output=True, text=True
    )
    assert r.returncode == 2 and r.stderr.strip() == "usage: pause.sh WHY COMMAND [ARGS...]"

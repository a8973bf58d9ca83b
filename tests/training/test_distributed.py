"""DistributedDataParallel on the CPU: two processes with gloo, launched as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

import torch


def test_torchrun_two_processes_on_cpu(small_data, tiny_spec, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "dsmnet",
        "train",
        str(tiny_spec),
        "--data",
        str(small_data),
        "--out",
        str(run),
        "--epochs",
        "2",
        "--no-progress",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0/2" in proc.stdout and proc.stdout.count("done:") == 1
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2

"""The GPU set-up check (``python -m bench.gpu``): on a machine without CUDA it says so and
succeeds; with ``--device cpu`` its whole flow runs (train, resume, plain load, CPU evaluation
and prediction)."""

from __future__ import annotations

import subprocess
import sys

import torch

from bench import gpu


def test_without_cuda_it_says_so_and_exits_0():
    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, "-m", "bench.gpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA device" in proc.stdout


def test_the_whole_check_runs_on_the_cpu(tmp_path):
    result = gpu.run(device="cpu", n=220, data=str(tmp_path / "data"), batch=8)
    text = gpu.report(result)
    assert result["epochs"] == 2 and result["checkpoint_devices"] == ["cpu"] and result["resumed"]
    assert result["cpu_prediction_particles"] == 220
    assert "set-up OK" in text and "precision chosen by auto" in text

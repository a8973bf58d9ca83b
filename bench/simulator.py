"""Simulator throughput: preset A (3205 subtomograms, 22 classes, SNR 0.06) in ``fourier`` mode —
required ≤ 2 minutes and ≤ 8 GB on 2 cores — and ``projection`` mode (a 121-image tilt series per
tomogram, 128×256×256 tomograms, 400 subtomograms), each in a fresh process so its peak memory
is its own.

Run: ``python -m bench.simulator [--projection-n 400]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time, resource
from pathlib import Path
from dsmnet.simulate.generate import SimulationConfig, simulate
kw = json.loads(sys.argv[1])
t = time.perf_counter()
s = simulate(SimulationConfig.preset("A", **kw), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t, "n": s["subtomograms"], "snr": s["measured_snr"],
                  "tomograms": len(s["tomograms"]),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def run_one(**kw) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(kw), f"{tmp}/data"], capture_output=True, text=True, check=True
        ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["per_s"] = result["n"] / result["seconds"]
    return result


def run(projection_n: int = 400) -> dict:
    return {
        "fourier": run_one(mode="fourier"),
        "projection": run_one(mode="projection", n=projection_n, tomogram=[128, 256, 256]),
    }


def report(r: dict) -> str:
    f, p = r["fourier"], r["projection"]
    return "\n".join(
        [
            f"fourier    preset A: {f['n']} subtomograms in {f['seconds']:.1f} s = {f['per_s']:.1f}/s, "
            f"{f['tomograms']} tomograms of 200×400×400, peak {f['peak_gb']:.2f} GB, measured SNR {f['snr']:.4f} "
            "(required ≤ 120 s, ≤ 8 GB)",
            f"projection: {p['n']} subtomograms in {p['seconds']:.1f} s = {p['per_s']:.1f}/s, "
            f"{p['tomograms']} tomograms of 128×256×256, peak {p['peak_gb']:.2f} GB, measured SNR {p['snr']:.4f}",
            f"fourier / projection throughput: {f['per_s'] / p['per_s']:.1f}×",
        ]
    )


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

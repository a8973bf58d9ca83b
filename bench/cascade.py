"""DSM-Net's single pass against the cascade it replaces: DSRF3D-v2 (classification) followed by
SSN3D-ED (segmentation), both at 40³, forward in inference mode, measured side by side, each
model's peak memory measured in a fresh process.

Run: ``python -m bench.cascade [--batch 16] [--repeats 5]``
"""

from __future__ import annotations

import subprocess
import sys

import torch

import dsmnet
from bench.common import interleaved

CHILD = """
import sys, torch, dsmnet
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
model = dsmnet.build_model(dsmnet.load_spec(sys.argv[1])).eval()
x = torch.randn(int(sys.argv[2]), 1, 40, 40, 40)
with torch.inference_mode():
    model(x)  # warm-up: allocator pools, oneDNN primitives
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
with torch.inference_mode():
    model(x)
print(status("VmHWM") - base)
"""


def peak_mb(spec: str, batch: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, spec, str(batch)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(batch: int = 16, repeats: int = 5) -> dict:
    models = {n: dsmnet.build_model(dsmnet.load_spec(n)).eval() for n in ("dsmnet", "dsrf3d_v2", "ssn3d_ed")}
    x = torch.randn(batch, 1, 40, 40, 40)

    def single():
        with torch.inference_mode():
            models["dsmnet"](x)

    def cascade():
        with torch.inference_mode():
            models["dsrf3d_v2"](x)
            models["ssn3d_ed"](x)

    t = interleaved({"dsmnet": single, "cascade": cascade}, repeats)
    return {
        "batch": batch,
        "dsmnet_per_s": batch / t["dsmnet"],
        "cascade_per_s": batch / t["cascade"],
        "speedup": t["cascade"] / t["dsmnet"],
        "peak_mb": {n: peak_mb(n, batch) for n in models},
        "parameters": {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()},
    }


def report(r: dict) -> str:
    p = r["peak_mb"]
    return "\n".join(
        [
            f"forward at 40³, batch {r['batch']}: DSM-Net (3 tasks) {r['dsmnet_per_s']:.1f} samples/s, "
            f"DSRF3D-v2 + SSN3D-ED cascade (2 tasks) {r['cascade_per_s']:.1f} samples/s, "
            f"DSM-Net {r['speedup']:.2f}× the cascade's throughput",
            f"peak memory added by a forward pass (Linux VmHWM): DSM-Net {p['dsmnet']:.0f} MB, "
            f"DSRF3D-v2 {p['dsrf3d_v2']:.0f} MB, SSN3D-ED {p['ssn3d_ed']:.0f} MB",
            "parameters: " + ", ".join(f"{n} {v:,}" for n, v in r["parameters"].items()),
        ]
    )


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

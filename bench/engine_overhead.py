"""Spec-built DSM-Net forward vs the same network written by hand in plain PyTorch.

The engine (registry, spec, dict outputs) must cost nothing at run time: the ratio
hand-written time / engine time should be ≥ 0.98.

Run: ``python -m bench.engine_overhead [--batch 16] [--repeats 9]``
"""

from __future__ import annotations

import torch

import dsmnet
from bench.common import interleaved
from bench.handwritten import HandDSMNet


def run(batch: int = 16, repeats: int = 9) -> dict:
    torch.manual_seed(0)
    engine = dsmnet.build_model(dsmnet.load_spec("dsmnet")).eval()
    hand = HandDSMNet().eval()
    x = torch.randn(batch, 1, 40, 40, 40)

    def fwd(model):
        def call():
            with torch.inference_mode():
                model(x)

        return call

    # three warm-up calls each: the first calls build oneDNN primitives (in a suite run, one warm-up
    # left the hand-written side 1.5× slow)
    t = interleaved({"engine": fwd(engine), "hand": fwd(hand)}, repeats, warmup=3)
    return {
        "batch": batch,
        "engine_s": t["engine"],
        "hand_s": t["hand"],
        "engine_samples_per_s": batch / t["engine"],
        "hand_samples_per_s": batch / t["hand"],
        "ratio": t["hand"] / t["engine"],
    }


def report(r: dict) -> str:
    return (
        f"DSM-Net forward, batch {r['batch']} at 40³: engine {r['engine_samples_per_s']:.1f} samples/s, "
        f"hand-written {r['hand_samples_per_s']:.1f} samples/s, ratio hand/engine time = {r['ratio']:.3f} "
        "(≥ 0.98 required)"
    )


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

"""``python -m bench``: every benchmark in one go; the report goes to ``results/bench.md``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench import augment, cascade, engine_overhead, loader, memory, pose, simulator, training, workers
from bench.common import machine
from dsmnet.core.fsutil import atomic_write_text
from dsmnet.core.provenance import git_revision
from dsmnet.registry.errors import run_command

SUITE = {
    "Engine overhead (spec-built vs hand-written DSM-Net forward)": engine_overhead,
    "DSM-Net vs the DSRF3D-v2 + SSN3D-ED cascade": cascade,
    "Training throughput vs the matmul peak": training,
    "The rotate augmentation and a classifier's batch loading vs the first version": augment,
    "A pose head's cost in a DSM-Net training step": pose,
    "Simulator": simulator,
    "Parallel single-threaded trainings vs one on all cores (reproduce's workers)": workers,
    "Memory and throughput as the dataset grows (lazy vs in memory)": memory,
    "The data path alone: samples/s at 40³ with masks and densities (lazy vs in memory)": loader,
}


def main() -> None:
    raise SystemExit(run_command(_main, "python -m bench"))


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/bench.md"))
    args = parser.parse_args()
    lines = ["# dsmnet benchmarks", "", f"`python -m bench` at {git_revision()}; {machine()}.", ""]
    for title, module in SUITE.items():
        start = time.perf_counter()
        text = module.report(module.run())
        print(f"## {title}\n{text}\n", flush=True)
        lines += [
            f"## {title}",
            "",
            f"`python -m bench.{module.__name__.split('.')[-1]}` ({time.perf_counter() - start:.0f} s)",
            "",
            "```",
            text,
            "```",
            "",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Timing helpers shared by the benchmarks: interleaved repetitions, medians, one machine line."""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import time
from collections.abc import Callable
from types import ModuleType

import torch

from dsmnet.registry.errors import run_command


def machine() -> str:
    """What the figures were measured on."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matrix-multiply throughput of this machine (GFLOP/s), the peak to set others against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = interleaved({"mm": lambda: a @ b}, repeats)["mm"]
    return 2 * n**3 / t / 1e9


def main(module: ModuleType) -> None:
    """The command line every benchmark module shares: an ``--option`` for each keyword argument
    of its ``run()`` (same name, type and default), then its ``report()`` printed; Ctrl-C or a
    closed pipe end it in one line (``run_command``), as every dsmnet command does."""
    prog = f"python -m {module.__spec__.name if module.__spec__ else module.__name__}"
    raise SystemExit(run_command(lambda: _main(module, prog), prog))


def _main(module: ModuleType, prog: str) -> None:
    parser = argparse.ArgumentParser(
        prog=prog, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, param in inspect.signature(module.run).parameters.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(param.default), default=param.default)
    args = parser.parse_args()
    print(machine())
    print(module.report(module.run(**vars(args))))

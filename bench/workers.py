"""One training on every core vs one single-threaded training per core, side by side.

``dsmnet reproduce`` runs its trainings on parallel workers that split the cores between them
(``reproduce/study.py::run_jobs``). This benchmark measures why, at the mini scale's sizes
(34³, widths 16/32/64, batch 16): the training step of three rows (Cls subnet, DSM-Net,
SSN3D-ED) is timed

- alone: one process using all cores (``torch.set_num_threads(cores)``);
- side by side: ``cores`` processes, one thread each, started together on the same step;
  their samples/s are summed;
- oversubscribed: ``more`` single-threaded processes on the same cores (several study
  invocations side by side, or ``--workers`` above the core count), summed likewise.

The ratio side-by-side / alone is the study's speed-up from running jobs in parallel; the ratio
oversubscribed / side-by-side says whether more trainings than cores cost throughput.

Run: ``python -m bench.workers [--steps 6] [--more 5]`` (``--more 0`` skips the oversubscribed case)
"""

from __future__ import annotations

import multiprocessing
import os
import time

import torch

from bench.common import machine

ROWS = {"Cls subnet": ("cls",), "DSM-Net": ("cls", "seg", "rec"), "SSN3D-ED": None}


def _spec(row: str):
    from dsmnet.reproduce.scales import SCALES, variant

    heads = ROWS[row]
    return variant("dsmnet" if heads else "ssn3d_ed", heads, {}, SCALES["mini"])


def training_step(spec):
    """One training step of the engine for ``spec`` on a random batch (as training runs it:
    bf16 autocast where the CPU has it, channels-last, Adam), as a callable, and its batch size."""
    from dsmnet.core.build import build_loss, build_model
    from dsmnet.training.runtime import keep_freed_memory, make_runtime
    from dsmnet.training.step import TrainStep

    torch.manual_seed(0)
    rt = make_runtime("cpu")
    keep_freed_memory()  # as training does
    model = build_model(spec)
    step = rt.module(TrainStep(model, build_loss(spec)))
    opt = torch.optim.Adam(step.parameters(), 1e-3, betas=(0.9, 0.99))
    batch, box = spec.training.batch_size, spec.input.shape
    x = rt.input(torch.randn(batch, 1, *box))
    every = {
        "class": torch.randint(0, 22, (batch,)),
        "mask": torch.randint(0, 2, (batch, *box)),
        "density": torch.randn(batch, 1, *box),
    }
    targets = {k: every[k] for k in set(model.targets.values())}

    def one() -> None:
        with rt.autocast():
            loss = step(x, targets, None)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()

    return one, batch


def _throughput(row: str, threads: int, steps: int, barrier=None) -> float:
    """Samples/s of the engine's training step for one row at the mini scale."""
    torch.set_num_threads(threads)
    one, batch = training_step(_spec(row))
    for _ in range(2):
        one()
    if barrier is not None:
        barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return batch * steps / (time.perf_counter() - start)


def _side_by_side_worker(args) -> float:
    row, steps, barrier = args
    return _throughput(row, 1, steps, barrier)


def side_by_side(row: str, workers: int, steps: int) -> float:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(workers)
        with context.Pool(workers) as pool:
            return sum(pool.map(_side_by_side_worker, [(row, steps, barrier)] * workers))


def run(steps: int = 6, more: int = 5) -> dict:
    cores = os.cpu_count() or 1
    out = {"cores": cores, "more": more, "rows": {}}
    for row in ROWS:
        alone = _throughput(row, cores, steps)
        together = side_by_side(row, cores, steps) if cores > 1 else alone
        out["rows"][row] = {"alone": alone, "side_by_side": together, "ratio": together / alone}
        if more > cores:
            crowded = side_by_side(row, more, steps)
            out["rows"][row] |= {"oversubscribed": crowded, "crowded_ratio": crowded / together}
    return out


def report(r: dict) -> str:
    crowded = any("oversubscribed" in v for v in r["rows"].values())
    lines = [
        f"mini scale (34³, widths 16/32/64, batch 16), training step; {machine()}",
        f"{'row':<11} {'1 process × ' + str(r['cores']) + ' threads':>24} "
        f"{str(r['cores']) + ' processes × 1 thread':>24} {'ratio':>6}"
        + (
            f" {str(r['more']) + ' processes × 1 thread':>24} {'/ ' + str(r['cores']) + ' processes':>14}"
            if crowded
            else ""
        ),
    ]
    for row, v in r["rows"].items():
        line = f"{row:<11} {v['alone']:>18.1f} smp/s {v['side_by_side']:>18.1f} smp/s {v['ratio']:>6.2f}"
        if "oversubscribed" in v:
            line += f" {v['oversubscribed']:>18.1f} smp/s {v['crowded_ratio']:>14.2f}"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from bench.common import main

    main(sys.modules[__name__])

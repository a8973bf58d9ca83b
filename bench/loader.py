"""The data path alone, no model: samples/s that training's loader delivers at 40³ with images,
masks and densities (augmentation excluded: on a GPU it runs on the device).

A simulated dataset of ``n`` 40³ subtomograms (22 classes, SNR 0.06, no tomograms) is made once
into ``--data`` (default ``/tmp/dsmnet-bench-loader``) and reused. Each path reads every particle
once in batches of ``batch`` in a shuffled order, through the training loop's own reader
(:func:`dsmnet.training.batches.prefetch` over ``Subtomograms.batch``), the page cache warm:

- ``lazy``: the files read when a batch asks for them, a batch's files side by side on a
  pool of reader threads, each re-read with one ``np.fromfile`` (the default);
- ``lazy, first version``: one thread, every file through ``mrcfile.open`` (before 2026-12-04);
- ``in memory``: every volume read up front (``dsmnet train --in-memory``).

Goals (issue 33): ≥ 1,500 samples/s lazily and ≥ 4,000 in memory on a 2-core machine, so that
a GPU training DSM-Net at several thousand samples/s is not kept waiting.

Run: ``python -m bench.loader [--n 2048] [--batch 64] [--repeats 3]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from bench.common import main
from dsmnet.dataset.mrc import read_mrc
from dsmnet.dataset.subtomograms import Volumes, load_dataset, normalise
from dsmnet.training.batches import batch_bounds, prefetch

KINDS = ("class", "mask", "density")


class _FirstVersion(Volumes):
    """The reader before the fast path: one thread, ``mrcfile.open`` per file."""

    def read(self, i: int) -> np.ndarray:
        volume, _ = read_mrc(self.paths[i], dtype=self.dtype)
        if self.kind == "x":
            volume = normalise(volume).astype(np.float32)
        return volume.reshape(self.item_shape)

    def __getitem__(self, index):
        return torch.from_numpy(np.stack([self.read(int(i)) for i in index]))


def _dataset(path: str, n: int):
    from pathlib import Path

    from dsmnet.simulate.generate import SimulationConfig, simulate
    from dsmnet.simulate.preview import is_dataset

    root = Path(path)
    if not is_dataset(root):
        print(f"simulating {n} subtomograms of 40³ into {root} (once)", file=sys.stderr)
        simulate(SimulationConfig(n=n, classes=22, snr=0.06, seed=3, box=40, write_tomograms=False), root)
    return root


def _epoch(data, batch: int) -> float:
    """Seconds to deliver every particle once, in a shuffled order, as training reads them."""
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    bounds = batch_bounds(len(perm), batch)
    pin = torch.cuda.is_available()

    def load(b):
        x, targets, present = data.batch(perm[b[0] : b[1]], KINDS)
        if pin:
            x, targets = x.pin_memory(), {k: v.pin_memory() for k, v in targets.items()}
        return x, targets, present

    start = time.perf_counter()
    for _ in prefetch(bounds, load):
        pass
    return time.perf_counter() - start


def run(n: int = 2048, batch: int = 64, repeats: int = 3, data: str = "/tmp/dsmnet-bench-loader") -> dict:
    root = _dataset(data, n)
    lazy = load_dataset(root)
    first = load_dataset(root)
    first.x = _FirstVersion(first.x.paths, first.x.item_shape, "x")
    first.targets = {
        k: _FirstVersion(v.paths, v.item_shape, v.kind) if isinstance(v, Volumes) else v
        for k, v in first.targets.items()
    }
    started = time.perf_counter()
    memory = load_dataset(root, in_memory=True)
    load_seconds = time.perf_counter() - started
    paths = {"lazy": lazy, "lazy, first version": first, "in memory": memory}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for d in paths.values():  # one pass each first: the page cache warm for all
        _epoch(d, batch)
    for _ in range(repeats):
        for name, d in paths.items():
            times[name].append(_epoch(d, batch))
    rates = {k: len(lazy) / float(np.median(v)) for k, v in times.items()}
    return {"n": len(lazy), "batch": batch, "rates": rates, "load_seconds": load_seconds, "repeats": repeats}


def report(r: dict) -> str:
    rates = r["rates"]
    lines = [
        f"{r['n']} subtomograms of 40³ with masks and densities, batch {r['batch']}, median of {r['repeats']} "
        "passes each (page cache warm):",
        "",
        "| path | samples/s | goal |",
        "|---|---|---|",
        f"| lazy (parallel readers, np.fromfile) | {rates['lazy']:,.0f} | ≥ 1,500 |",
        f"| lazy, first version (one thread, mrcfile) | {rates['lazy, first version']:,.0f} | — |",
        f"| in memory | {rates['in memory']:,.0f} | ≥ 4,000 |",
        "",
        f"Lazy / first version: {rates['lazy'] / rates['lazy, first version']:.2f}×. Reading the dataset into "
        f"memory took {r['load_seconds']:.1f} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.modules[__name__])

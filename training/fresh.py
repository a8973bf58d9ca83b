"""Unlimited data: a training set drawn afresh from the simulator every epoch (``--fresh-data``).

The dataset's ``simulation.json`` says how it was made (classes, box, imaging, SNR, crowding);
each epoch trains on a new dataset made the same way with a seed of its own — new particles,
poses, neighbours and noise, as many particles as the training split holds — while validation
(and so model selection and early stopping) stays on the dataset's own validation split. The next
epoch's set is simulated in a background process while this one trains, and each set is deleted
once its epoch is over. The seeds follow from the dataset's, the run's and the epoch, so a resumed
run trains on the very sets the uninterrupted one would have.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from dsmnet.dataset import layout
from dsmnet.dataset.mrc import DataError
from dsmnet.dataset.subtomograms import Subtomograms, load_dataset


def _one_thread() -> None:  # the worker: one thread, beside a training that has the cores
    import torch

    torch.set_num_threads(1)


def _simulate(config, folder: str) -> float:  # in the worker process
    import time

    from dsmnet.simulate.generate import simulate

    started = time.process_time()
    simulate(config, Path(folder), overwrite=True)
    return time.process_time() - started  # its CPU time: part of what the run costs


def made_like(root: Path):
    """The :class:`SimulationConfig` a dataset was made with, from its ``simulation.json``."""
    from dsmnet.simulate.generate import SimulationConfig

    path = Path(root) / layout.SIMULATION
    try:
        return SimulationConfig.from_dict(json.loads(path.read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: --fresh-data needs a dataset made by dsmnet simulate (its simulation.json: {exc})"
        ) from None


class FreshData:
    """The training sets of a run's epochs, each simulated like the dataset at ``root``."""

    def __init__(self, root: Path, work: Path, run_seed: int, n: int, classes: list[str], box, density_scale: float):
        self.config = replace(made_like(root), n=n, write_tomograms=False)
        self.work, self.run_seed = Path(work), run_seed
        self.classes, self.box, self.density_scale = classes, tuple(box), density_scale
        self.pending: dict[int, Future] = {}
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
        self.cpu_seconds = 0.0  # the CPU time of the sets simulated for this session's epochs

    def seed(self, epoch: int) -> int:
        return (self.config.seed * 1_000_003 + self.run_seed * 10_007 + epoch + 1) % (2**32)

    def folder(self, epoch: int) -> Path:
        return self.work / f"epoch-{epoch:04d}"

    def _request(self, epoch: int) -> None:
        if epoch not in self.pending:
            config = replace(self.config, seed=self.seed(epoch))
            self.pending[epoch] = self.pool.submit(_simulate, config, str(self.folder(epoch)))

    def get(self, epoch: int) -> Subtomograms:
        """Epoch ``epoch``'s training set (waiting for it if need be); the next one is started."""
        self._request(epoch)
        self.cpu_seconds += self.pending.pop(epoch).result()
        self._request(epoch + 1)
        for old in self.work.glob("epoch-*"):
            if old.name < self.folder(epoch).name:
                shutil.rmtree(old, ignore_errors=True)
        data = load_dataset(self.folder(epoch), classes=self.classes, box=self.box)
        data.scale_density(self.density_scale)
        return data

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.work, ignore_errors=True)

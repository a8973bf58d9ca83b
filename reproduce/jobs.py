"""The study's jobs: simulating its datasets once, training (or resuming, or reusing) and
evaluating each row, on worker processes that die with the study."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsmnet.core.build import load_spec
from dsmnet.core.fsutil import atomic_write_text, to_json
from dsmnet.core.spec import Spec
from dsmnet.registry.errors import UserError
from dsmnet.reproduce.records import kept_unless_run, same_dataset
from dsmnet.reproduce.scales import Scale
from dsmnet.simulate.generate import SimulationConfig, simulate
from dsmnet.simulate.imaging import Microscope
from dsmnet.simulate.preview import is_dataset
from dsmnet.training.evaluate import evaluate
from dsmnet.training.loop import train
from dsmnet.training.settings import MORE_TIME, TrainConfig


class StudyError(UserError, RuntimeError):
    """The output folder holds results of a different study (scale, spec or data)."""


SEEDS = {"A": 11, "B": 12, "A_test": 21, "B_test": 22}  # every dataset its own tomograms and noise


def datasets(scale: Scale, out: Path, log=print, simulate_missing: bool = True) -> dict[str, Path]:
    """Datasets A and B of the scale and their independent test sets (``A_test``, ``B_test``:
    other tomograms, another seed), simulated once; an existing one made otherwise is an error.
    Without ``simulate_missing`` a missing one is only named (a report redrawn from kept results)."""
    paths = {}
    wanted_sets = [(name, snr, scale.n) for name, snr in scale.snr.items()]
    wanted_sets += [(f"{name}_test", snr, scale.test_n) for name, snr in scale.snr.items()]
    for name, snr, n in wanted_sets:
        path = out / "data" / name
        config = SimulationConfig(
            n=n,
            classes=scale.classes,
            snr=snr,
            seed=SEEDS[name],
            box=scale.box,
            tomogram=scale.tomogram,
            write_tomograms=False,
        )
        if is_dataset(path):
            made = json.loads((path / "simulation.json").read_text()).get("config", {})
            wanted = json.loads(json.dumps(dataclasses.asdict(config)))
            if isinstance(made.get("microscope"), dict):  # settings added since it was made: at their defaults
                made["microscope"] = {**json.loads(json.dumps(Microscope().as_dict())), **made["microscope"]}
            differ = sorted(k for k in wanted if made.get(k) != wanted[k])
            if differ:
                raise StudyError(
                    f"{path} was simulated with other settings ({', '.join(f'{k}: {made.get(k)}' for k in differ)}; "
                    f"scale {scale.name} wants {', '.join(f'{k}: {wanted[k]}' for k in differ)}); "
                    "use another --out or remove it"
                )
        elif simulate_missing:
            log(f"simulating dataset {name} (SNR {snr}) → {path}")
            simulate(config, path, overwrite=True)
        else:
            log(f"{path} not simulated: its rows' kept results stand in for it")
        paths[name] = path
    return paths


def _budget_grows(trained: Spec, wanted: Spec, run: Path) -> bool:
    """Whether the study's row gives the run in ``run`` a larger budget (more epochs or patience),
    so that it trains on from where it ended: with the per-epoch seeding and a constant rate that
    gives the run a fresh start with that budget would have been. Any other difference, or a
    smaller budget, is refused."""
    a, b = trained.to_dict(), wanted.to_dict()
    for d in (a, b):
        d["heads"] = {h: {k: v for k, v in p.items() if k != "classes"} for h, p in d["heads"].items()}
    had, wants = ({k: d["training"].pop(k) for k in MORE_TIME} for d in (a, b))
    if a != b:
        raise StudyError(f"{run} holds a run of another spec than this study's row; use another --out or remove it")
    if any(wants[k] < had[k] for k in MORE_TIME):
        raise StudyError(
            f"{run} was trained with a larger budget (epochs {had['epochs']}, patience {had['patience']}) than this "
            f"study's (epochs {wants['epochs']}, patience {wants['patience']}); use another --out or remove it"
        )
    if wants != had and a["training"].get("schedule", "constant") == "cosine":
        raise StudyError(f"{run}: a cosine schedule's curve depends on its epochs, so it cannot be given more")
    return wants != had


def kept_result(job: Job, out: Path) -> dict[str, Any] | None:
    """A row's result kept in ``out/metrics`` when its run folder is gone (:mod:`.records`), if it
    is this row's: a kept spec of another row is refused, and so is a larger budget, since the
    run cannot train on without its checkpoints."""
    kept = kept_unless_run(out, job.run, job.test, job.tta)
    spec = ((kept or {}).get("training") or {}).get("spec")
    if spec is not None and _budget_grows(load_spec(spec), load_spec(job.spec), job.run):
        raise StudyError(
            f"{job.run}: this study gives the run a larger budget, but only its kept result is left "
            "(its checkpoints are gone); remove that result from metrics/ to train the run again"
        )
    return kept


def run_row(
    spec: Spec | dict,
    data: Path,
    run: Path,
    seed: int,
    log=print,
    evaluate_test: bool = True,
    test: Path | None = None,
    augment: str = "none",
    tta: bool = False,
    fresh: bool = False,
) -> dict[str, Any]:
    """Train (or resume, or reuse) and evaluate one row for one seed (with ``tta``, averaged over
    the four 180° turns; with ``fresh``, each epoch on a training set simulated afresh)."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    longer = (run / "spec.yaml").is_file() and _budget_grows(load_spec(run / "spec.yaml"), spec, run)
    if not (run / "summary.json").is_file() or longer:
        resume = (run / "last.pt").is_file()
        budget = {k: getattr(spec.training, k) for k in MORE_TIME}  # a finished run given more: it goes on
        config = TrainConfig(seed=seed, augment=augment, progress=False, fresh=fresh, **budget)
        train(spec, data, run, config, resume=resume, log=lambda m: log("   ", m))
    if not evaluate_test:
        return {}
    source, split, folder = scoring(run, data, test, tta)
    metrics = scored(run, source, folder)
    if metrics is not None:
        return metrics
    result = evaluate(run, source, split, out=folder, tta=tta)
    return json.loads((Path(result["out"]) / "metrics.json").read_text())


def scoring(run: Path, data: Path, test: Path | None, tta: bool) -> tuple[Path, str, Path]:
    """Where a row's run is scored: on the independent test set (every particle of it), else on
    the run's own test split — (dataset, split, output folder inside the run)."""
    source, split, folder = (test, "all", "evaluate-independent") if test else (data, "test", "evaluate-test")
    return source, split, run / (folder + ("-tta" if tta else ""))


def scored(run: Path, source: Path, folder: Path) -> dict[str, Any] | None:
    """The run's test metrics in ``folder`` if they were computed on ``source`` since its last
    best checkpoint, else None."""
    done, best = folder / "metrics.json", run / "best.pt"
    if not (done.is_file() and best.is_file() and done.stat().st_mtime >= best.stat().st_mtime):
        return None
    metrics = json.loads(done.read_text())
    return metrics if same_dataset(metrics.get("data"), source) else None


def _kept_or_made(path: Path, test: Path, current, make, also: tuple[Path, ...] = ()) -> dict[str, Any] | None:
    """A reference row's record kept at ``path`` when it was scored on ``test`` and still answers:
    ``current(found)`` says it was made as a record is made now, or the data are not here to make it
    again (then it stands). Else ``make()`` it now and keep it there — or None when nothing stands
    and the data it needs (``test`` and ``also``) are not here: a report redrawn from kept records
    leaves the row out."""
    found = json.loads(path.read_text()) if path.is_file() else {}
    here = all(is_dataset(d) for d in (test, *also))
    if same_dataset(found.get("data"), test) and (current(found) or not here):
        return found
    if not here:
        return None
    result = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_json(result))
    return result


def baseline(data: Path, seed: int, test: Path, folder: Path) -> dict[str, Any] | None:
    """The classical baseline row for one seed (cached in ``folder``)."""
    from dsmnet.reproduce.baseline import FEATURES, classical_baseline

    same_features = lambda found: found.get("features") == FEATURES  # noqa: E731
    return _kept_or_made(folder / f"seed{seed}.json", test, same_features, lambda: classical_baseline(data, seed, test))


def seg_baseline(data: Path, seed: int, test: Path, folder: Path) -> dict[str, Any] | None:
    """The classical segmentation baseline row for one seed (cached in ``folder``; a record fitted
    on another grid is fitted again)."""
    from dsmnet.reproduce.segbaseline import classical_segmentation, grid_record

    same_grid = lambda found: found.get("grid") == grid_record()  # noqa: E731
    return _kept_or_made(folder / f"seed{seed}.json", test, same_grid, lambda: classical_segmentation(data, seed, test))


def template_matching(
    test: Path, rotations: int, folder: Path, log=print, averages: tuple[Path, int] | None = None
) -> dict[str, Any] | None:
    """The template-matching reference row on a test set, cached in ``folder``: with the true maps
    (seed-independent), or with ``averages`` ``(data, seed)``, the class averages of that seed's
    training split of ``data`` (one record a seed)."""
    from_data, seed = averages if averages is not None else (None, 0)

    def match() -> dict[str, Any]:
        from dsmnet.reproduce.oracle import template_matching as search  # scipy and the library: only to compute

        made = "the true maps" if from_data is None else f"the class averages of {from_data} (split seed {seed})"
        log(f"template matching with {made} on {test} ({rotations} rotations)")
        return search(test, rotations, averages_from=from_data, split_seed=seed)

    def current(found: dict) -> bool:  # the same search, with the per-particle answers paired statistics need
        same = from_data is None or (same_dataset(found.get("train"), from_data) and found.get("split_seed") == seed)
        return found.get("rotations") == rotations and "per_particle" in found and same

    name = "template_matching.json" if from_data is None else f"template_matching_averages_seed{seed}.json"
    return _kept_or_made(folder / name, test, current, match, () if from_data is None else (from_data,))


@dataclass(frozen=True)
class Job:
    """One training run of the study (rows sharing a spec, dataset and seed share the job)."""

    run: Path
    spec: dict
    data: Path
    seed: int
    title: str
    cost: float  # training GFLOPs per sample, to start the longest jobs first
    evaluate: bool = True
    test: Path | None = None
    augment: str = "none"
    tta: bool = False
    fresh: bool = False  # each epoch's training set simulated afresh like the data (training.fresh)

    def __call__(self, log) -> dict[str, Any]:
        return run_row(
            self.spec, self.data, self.run, self.seed, log, self.evaluate, self.test, self.augment, self.tta, self.fresh
        )


def run_cost(spec: Spec) -> float:
    from dsmnet.core.build import build_model
    from dsmnet.core.summary import describe

    return describe(build_model(spec))["gflops_per_sample"]


def _worker_init(threads: int, parent: int) -> None:
    import torch

    _die_with_parent(parent)
    torch.set_num_threads(threads)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to end this worker when the study process dies (killed, or stopped by a batch
    system): a pool worker otherwise trains on, orphaned, holding a core. Its run resumes from
    ``last.pt`` when the study is started again. A no-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _run_job(job: Job) -> dict[str, Any]:
    prefix = f"[{job.title}]"
    return job(lambda *m: print(prefix, *m, flush=True))


def run_jobs(jobs: list[Job], workers: int, log=print, threads: int | None = None) -> dict[Path, dict[str, Any]]:
    """Run the jobs, longest first, on ``workers`` processes that share the cores between them,
    each training on ``threads`` threads (default: the cores ÷ ``workers``).

    On a CPU two single-threaded trainings side by side do 1.3–1.6× the work of one using both
    cores (small 3D convolutions scale poorly across threads); see ``bench/README.md``. Two
    invocations side by side must say ``threads=1`` each: with torch's default (every core) they
    ran 4 threads on 2 cores, each at 19–21 samples/s against 45–48 (DSM-Net, 2026-12-05).
    """
    jobs = sorted(jobs, key=lambda j: -j.cost)
    results: dict[Path, dict[str, Any]] = {}
    if workers <= 1:
        if threads:
            import torch

            torch.set_num_threads(threads)
        for i, job in enumerate(jobs):
            log(f"[{i + 1}/{len(jobs)}] {job.title}")
            results[job.run] = job(log)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(threads, os.getpid())
    ) as pool:
        futures = {}
        started = time.perf_counter()
        for job in jobs:
            log(f"queued {job.title}")
            futures[pool.submit(_run_job, job)] = job
        for future in as_completed(futures):
            job = futures[future]
            try:
                results[job.run] = future.result()
            except Exception as err:
                for other in futures:
                    other.cancel()  # queued jobs are dropped; the one running elsewhere finishes its run
                if isinstance(err, UserError):
                    raise StudyError(f"{job.title} ({job.run}) failed: {err}") from err
                raise  # a bug: its traceback, not a one-line message
            log(f"[{len(results)}/{len(jobs)}] finished {job.title} ({(time.perf_counter() - started) / 60:.0f} min)")
    return results


def default_workers() -> int:
    """Two workers on a multi-core CPU, one on a GPU (one model saturates it)."""
    import torch

    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1

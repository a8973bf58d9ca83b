"""``dsmnet reproduce``: the paper's Tables 1–3 as configurations of one engine.

Every row is a variant generated from the base specs by :mod:`dsmnet.core.ablation` (head
subsets of DSM-Net, loss-weight grids), rescaled to the chosen scale, trained under the same
budget and seeds on the same simulated datasets, and evaluated on the same held-out test split.

A model **did not converge** (the paper's "fails to converge") when, on the test split, its
classifier is below twice chance accuracy (2/C) or its segmenter's target-class IoU is below 0.1
(it predicts background everywhere).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsmnet.core.ablation import weight_grid, with_heads
from dsmnet.core.build import load_spec, plan
from dsmnet.core.fsutil import atomic_write_text
from dsmnet.core.spec import Spec
from dsmnet.registry.errors import UserError
from dsmnet.simulate.generate import SimulationConfig, simulate
from dsmnet.simulate.preview import is_dataset
from dsmnet.training.evaluate import evaluate
from dsmnet.training.loop import TrainConfig, train


@dataclass(frozen=True)
class Scale:
    """Everything that differs between the paper's settings and a CPU-sized run; the same for every row."""

    name: str
    n: int
    box: int
    tomogram: tuple[int, int, int]
    widths: tuple[int, ...]
    hidden: int
    batch: int
    epochs: int
    patience: int
    seeds: tuple[int, ...]
    classes: int = 22
    snr: dict[str, float] = field(default_factory=lambda: {"A": 0.06, "B": 0.01})
    augment: str = "rotate"  # a random rotation per particle, the wedge kept (see training.augment)
    pool: str | None = "flatten"  # every classifier flattens into a batch-normalised FC layer; None: each spec's own
    test_n: int = 3000  # the independent test set: other tomograms, another seed


SCALES = {
    "paper": Scale("paper", 3205, 40, (200, 400, 400), (32, 64, 128), 1024, 64, 100, 15, (0, 1), pool=None),
    # The paper's 3205 particles (~146 per class); 34³ is the smallest even box holding the largest
    # complex (cct_4v8r, 33 voxels across at 10 Å); half the paper's widths; the paper's classifier
    # width (its cost is negligible); batch 16 gives 160 updates per epoch. At this size the
    # models are data-limited, not step-limited: with 80 particles per class the Cls subnet
    # overfits after ~18 epochs at 0.33 validation accuracy, with 146 per class it passes 0.37 by
    # epoch 7 for fewer samples seen. With rot180 augmentation (4 orientations per particle) the
    # Cls subnet still overfit by epoch ~12 (validation accuracy 0.47, results/mini-rot180); with
    # "rotate" (every orientation) it was still learning at epoch 23 (0.51). ≤ 30 epochs,
    # patience 6: one DSM-Net run takes ~50 minutes on one core.
    "mini": Scale("mini", 3205, 34, (160, 320, 320), (16, 32, 64), 1024, 16, 30, 6, (0,)),
}

# (row, base spec, heads kept or None for the whole base, loss-weight grid)
TABLE1 = [
    ("DSRF3D-v2", "dsrf3d_v2", None, {}),
    ("Cls subnet", "dsmnet", ("cls",), {}),
    ("SSN3D-ED", "ssn3d_ed", None, {}),
    ("Seg subnet", "dsmnet", ("seg",), {}),
    ("Cls+Rec", "dsmnet", ("cls", "rec"), {}),
    ("Cls+Seg", "dsmnet", ("cls", "seg"), {}),
    ("DSM-Net", "dsmnet", ("cls", "seg", "rec"), {}),
]
TABLE2 = [r for r in TABLE1 if r[0] in ("DSRF3D-v2", "SSN3D-ED", "Cls subnet", "Seg subnet", "DSM-Net")]
# the 1:1 and 1:10 rows are DSM-Net's own weights, i.e. Table 1's Cls+Rec and Cls+Seg runs (reused)
TABLE3 = [
    ("Cls+Rec 1:1", "dsmnet", ("cls", "rec"), {}),
    ("Cls+Rec 1:10", "dsmnet", ("cls", "rec"), {"rec": [10.0]}),
    ("Cls+Seg 1:10", "dsmnet", ("cls", "seg"), {}),
    ("Cls+Seg 1:100", "dsmnet", ("cls", "seg"), {"seg": [100.0]}),
]
TABLES = {"table1": ("A", TABLE1), "table2": ("B", TABLE2), "table3": ("A", TABLE3)}
# the paper's own figures (pixel acc, mIoU, object acc; %), from ../shared/paper/tables.md;
# "*" = the paper marks the model as failing to converge, "-" = not applicable
PAPER = {
    "table1": {
        "DSRF3D-v2": ("-", "-", "*"),
        "Cls subnet": ("-", "-", "76.24"),
        "SSN3D-ED": ("98.99", "84.68", "-"),
        "Seg subnet": ("99.03", "87.07", "-"),
        "Cls+Rec": ("-", "-", "81.87"),
        "Cls+Seg": ("99.22", "88.70", "84.37"),
        "DSM-Net": ("99.21", "89.00", "93.75"),
    },
    "table2": {
        "DSRF3D-v2": ("-", "-", "*"),
        "SSN3D-ED": ("98.15", "76.43", "-"),
        "Cls subnet": ("-", "-", "43.75"),
        "Seg subnet": ("98.37", "79.70", "-"),
        "DSM-Net": ("98.59", "81.40", "53.12"),
    },
    "table3": {
        "Cls+Rec 1:1": ("-", "-", "81.56"),
        "Cls+Rec 1:10": ("-", "-", "81.87"),
        "Cls+Seg 1:10": ("99.22", "88.70", "84.37"),
        "Cls+Seg 1:100": ("99.23", "88.63", "82.81"),
    },
}
# the orderings the paper reports, as (better row, worse row, metric)
ORDERINGS = [
    ("table1", "DSM-Net", "Cls subnet", "acc"),
    ("table1", "DSM-Net", "DSRF3D-v2", "acc"),
    ("table1", "Cls subnet", "DSRF3D-v2", "acc"),
    ("table1", "DSM-Net", "Seg subnet", "miou"),
    ("table1", "DSM-Net", "SSN3D-ED", "miou"),
    ("table1", "Seg subnet", "SSN3D-ED", "miou"),
    ("table1", "Cls+Seg", "Cls subnet", "acc"),
    ("table1", "Cls+Rec", "Cls subnet", "acc"),
    ("table2", "DSM-Net", "Cls subnet", "acc"),
    ("table2", "DSM-Net", "Seg subnet", "miou"),
    # not the paper's: every CNN classifier against the classical baseline
    ("table1", "DSM-Net", "Classical (LDA)", "acc"),
    ("table1", "Cls subnet", "Classical (LDA)", "acc"),
    ("table2", "DSM-Net", "Classical (LDA)", "acc"),
]


def scaled(spec: Spec, scale: Scale) -> Spec:
    """The spec at ``scale``: box, backbone widths, classifier width, batch, epochs, patience.
    Classification heads are found by their registered target; only the parameters a head has
    are set."""
    resolved = plan(spec)
    data = spec.to_dict()
    data["input"]["shape"] = [scale.box] * 3
    data["backbone"]["widths"] = list(scale.widths)
    for name, part in resolved.heads.items():
        if part.component.cls.target != "class":
            continue
        head, accepts = data["heads"][name], part.component.params.model_fields
        if "hidden" in accepts:
            head["hidden"] = [scale.hidden] * len(head.get("hidden", [1024]))
        head["classes"] = scale.classes
        if scale.pool is not None and "pool" in accepts:
            head["pool"] = scale.pool
            if "norm" in accepts:
                head["norm"] = "batch" if scale.pool == "flatten" else head.get("norm", "none")
    data.setdefault("training", {}).update(batch_size=scale.batch, epochs=scale.epochs, patience=scale.patience)
    return load_spec(data)


def variant(base: str, heads: tuple[str, ...] | None, grid: dict, scale: Scale) -> Spec:
    """One row's spec, made from its base spec by the ablation generator's two steps: the head
    subset, then the loss weights (one value per loss)."""
    spec = load_spec(base)
    if heads is not None:
        spec = with_heads(spec, heads)
    if grid:
        spec = weight_grid(spec, {k: v[:1] for k, v in grid.items()})[0]
    return scaled(spec, scale)


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


class StudyError(UserError, RuntimeError):
    """The output folder holds results of a different study (scale, spec or data)."""


SEEDS = {"A": 11, "B": 12, "A_test": 21, "B_test": 22}  # every dataset its own tomograms and noise


def datasets(scale: Scale, out: Path, log=print) -> dict[str, Path]:
    """Datasets A and B of the scale and their independent test sets (``A_test``, ``B_test``:
    other tomograms, another seed), simulated once; an existing one made otherwise is an error."""
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
            differ = sorted(k for k in wanted if made.get(k) != wanted[k])
            if differ:
                raise StudyError(
                    f"{path} was simulated with other settings ({', '.join(f'{k}: {made.get(k)}' for k in differ)}; "
                    f"scale {scale.name} wants {', '.join(f'{k}: {wanted[k]}' for k in differ)}); "
                    "use another --out or remove it"
                )
        else:
            log(f"simulating dataset {name} (SNR {snr}) → {path}")
            simulate(config, path, overwrite=True)
        paths[name] = path
    return paths


def failed(metrics: dict[str, Any], classes: int) -> bool:
    """The stated non-convergence criterion."""
    m = metrics["metrics"]
    if "acc_cls" in m and m["acc_cls"] < 2.0 / classes:
        return True
    iou = metrics.get("iou_seg")
    return bool(iou and iou[1] < 0.1)


def run_row(
    spec: Spec | dict,
    data: Path,
    run: Path,
    seed: int,
    log=print,
    evaluate_test: bool = True,
    test: Path | None = None,
    augment: str = "none",
) -> dict[str, Any]:
    """Train (or resume, or reuse) and evaluate one row for one seed."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    if (run / "spec.yaml").is_file():
        trained = load_spec(run / "spec.yaml").to_dict()
        trained["heads"] = {h: {k: v for k, v in p.items() if k != "classes"} for h, p in trained["heads"].items()}
        wanted = spec.to_dict()
        wanted["heads"] = {h: {k: v for k, v in p.items() if k != "classes"} for h, p in wanted["heads"].items()}
        if trained != wanted:
            raise StudyError(f"{run} holds a run of another spec than this study's row; use another --out or remove it")
    if not (run / "summary.json").is_file():
        resume = (run / "last.pt").is_file()
        config = TrainConfig(seed=seed, augment=augment, progress=False)
        train(spec, data, run, config, resume=resume, log=lambda m: log("   ", m))
    if not evaluate_test:
        return {}
    # on the independent test set (every particle of it), else on the run's own test split
    source, split, folder = (test, "all", "evaluate-independent") if test else (data, "test", "evaluate-test")
    done = run / folder / "metrics.json"
    if done.is_file() and done.stat().st_mtime >= (run / "best.pt").stat().st_mtime:
        metrics = json.loads(done.read_text())
        if metrics.get("data") == str(source):  # evaluated on this dataset since the last best checkpoint
            return metrics
    result = evaluate(run, source, split, out=run / folder)
    return json.loads((Path(result["out"]) / "metrics.json").read_text())


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


HOLDOUT = "pseudo_groel"
BASELINE = "Classical (LDA)"
BASELINE_TABLES = ("table1", "table2")


def baseline(data: Path, seed: int, test: Path, folder: Path) -> dict[str, Any]:
    """The classical baseline row for one seed (cached in ``folder``)."""
    from dsmnet.reproduce.baseline import classical_baseline

    path = folder / f"seed{seed}.json"
    if path.is_file():
        found = json.loads(path.read_text())
        if found.get("data") == str(test):
            return found
    result = classical_baseline(data, seed, test)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    return result


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

    def __call__(self, log) -> dict[str, Any]:
        return run_row(self.spec, self.data, self.run, self.seed, log, self.evaluate, self.test, self.augment)


def _cost(spec: Spec) -> float:
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


def run_jobs(jobs: list[Job], workers: int, log=print) -> dict[Path, dict[str, Any]]:
    """Run the jobs, longest first, on ``workers`` processes that share the cores between them.

    On a CPU two single-threaded trainings side by side do 1.3–1.6× the work of one using both
    cores (small 3D convolutions scale poorly across threads); see ``bench/README.md``.
    """
    jobs = sorted(jobs, key=lambda j: -j.cost)
    results: dict[Path, dict[str, Any]] = {}
    if workers <= 1:
        for i, job in enumerate(jobs):
            log(f"[{i + 1}/{len(jobs)}] {job.title}")
            results[job.run] = job(log)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
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


def reproduce(
    scale_name: str,
    out: Path,
    log=print,
    tables: tuple[str, ...] = tuple(TABLES),
    with_discovery: bool = True,
    seeds: tuple[int, ...] | None = None,
    workers: int | None = None,
    rows: tuple[str, ...] | None = None,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run the study at a scale; writes ``table{1,2,3}.md/.csv``, ``summary.md`` and every run's
    test ``metrics/…json`` into ``out``. ``rows`` keeps only the rows of those names;
    ``report_only`` trains nothing and reports the runs that have finished."""
    scale = SCALES[scale_name]
    if seeds:
        scale = dataclasses.replace(scale, seeds=tuple(seeds))
    workers = workers or default_workers()
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    paths = datasets(scale, out, log)
    command = f"dsmnet reproduce --scale {scale_name} --out {out}" + (
        f" --seeds {','.join(map(str, seeds))}" if seeds else ""
    )
    if tuple(tables) != tuple(TABLES):
        command += f" --tables {','.join(tables)}"
    if rows:
        command += " --rows '" + ",".join(rows) + "'"
    if not with_discovery:
        command += " --no-discover"
    revision = _git_revision()
    # every (table, row, seed) → its run folder; identical runs (Table 3's 1:1 and 1:10 rows) are one job
    plan: dict[str, list[tuple[str, Path]]] = {}
    jobs: dict[Path, Job] = {}
    for table in tables:
        dataset, table_rows = TABLES[table]
        for row, base, heads, grid in table_rows:
            if rows and row not in rows:
                continue
            spec = variant(base, heads, grid, scale)
            cost = _cost(spec)
            for seed in scale.seeds:
                run = out / "runs" / dataset / spec.name.replace("[", "-").replace("]", "") / f"seed{seed}"
                plan.setdefault(table, []).append((row, run))
                title = f"{dataset} · {row} · seed {seed}"
                test = paths[f"{dataset}_test"]
                jobs.setdefault(run, Job(run, spec.to_dict(), paths[dataset], seed, title, cost, True, test, scale.augment))
    discovery_run = None
    if with_discovery:
        from dsmnet.reproduce.discover import without_class

        reduced = without_class(paths["A"], out / "data" / f"A_without_{HOLDOUT}", HOLDOUT)
        spec = variant("dsmnet", None, {}, scale)
        discovery_run = out / "runs" / f"A_without_{HOLDOUT}" / "dsmnet" / f"seed{scale.seeds[0]}"
        title = f"discovery · DSM-Net without {HOLDOUT} · seed {scale.seeds[0]}"
        jobs[discovery_run] = Job(
            discovery_run, spec.to_dict(), reduced, scale.seeds[0], title, _cost(spec), False, None, scale.augment
        )
    if report_only:  # redraw from the finished runs; train nothing
        finished = {run: j for run, j in jobs.items() if (run / "summary.json").is_file()}
        for job in jobs.values():
            if job.run not in finished:
                log(f"not finished, left out: {job.title}")
        jobs = finished
        if discovery_run is not None and discovery_run not in jobs:
            discovery_run = None
        command += " --report"
    log(f"{len(jobs)} training runs on {workers} worker(s)")
    metrics = run_jobs(list(jobs.values()), workers, log)
    plan = {t: [(row, run) for row, run in entries if run in metrics] for t, entries in plan.items()}

    results: dict[str, dict[str, list[dict]]] = {}
    summary = [f"# Reproduction at scale `{scale_name}`", "", "", "", _describe(scale), ""]
    for table in tables:
        results[table] = {}
        dataset = TABLES[table][0]
        if table in BASELINE_TABLES:
            results[table][BASELINE] = [
                baseline(paths[dataset], seed, paths[f"{dataset}_test"], out / "metrics" / dataset / "baseline")
                for seed in scale.seeds
            ]
        for row, run in plan.get(table, []):
            results[table].setdefault(row, []).append(metrics[run])
            keep = out / "metrics" / dataset / run.parent.name / f"{run.name}.json"
            keep.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(keep, json.dumps(metrics[run], indent=1) + "\n")
        md, csv_text = _table(table, results[table], scale)
        atomic_write_text(out / f"{table}.md", md)
        atomic_write_text(out / f"{table}.csv", csv_text)
        summary += [md, ""]
    summary += ["## The paper's orderings", ""] + _orderings(results) + [""]
    for table in tables:
        summary += _per_class(table, results[table])
    curves = {f"{TABLES[t][0]} · {row}": run for t in tables for row, run in plan.get(t, [])}
    if curves:
        learning_curves(curves, out / "learning_curves.png")
        summary += [
            "Learning curves (validation accuracy and mIoU per epoch, every run): `learning_curves.png`.",
            "",
        ]
    found = None
    if discovery_run is not None:
        from dsmnet.reproduce.discover import discover

        found = discover(discovery_run, paths["A"], HOLDOUT, out / "discover")
        fsc = found.get("fsc", {})
        summary += [
            f"## Unseen-structure discovery ({HOLDOUT} held out)",
            "",
            f"k-means (k = {found['k']}) on {found['feature_dim']}-d classifier features of all {found['particles']} "
            f"particles: {found['holdout_share_in_dominant_cluster']:.2f} of the {found['holdout_particles']} held-out "
            f"particles fall in one cluster, whose purity is {found['dominant_cluster_purity']:.2f}. Recovered "
            f"densities of the held-out particles: FSC 0.5 at {fsc.get('resolution_0.5', float('nan')):.1f} Å, "
            f"0.143 at {fsc.get('resolution_0.143', float('nan')):.1f} Å. Figures: `discover/tsne.png`, "
            "`discover/recovery.png`, `discover/fsc_holdout.png`.",
            "",
        ]
    seconds = time.perf_counter() - start
    total, invocations = _add_wall_time(out, seconds)
    summary[2] = (
        f"Command: `{command}`; git revision {revision}; wall time {total / 60:.1f} min on {workers} worker(s)"
        + (
            f", summed over the {invocations} invocations that built these results (this one: {seconds / 60:.1f} min)."
            if invocations > 1
            else "."
        )
    )
    atomic_write_text(out / "summary.md", "\n".join(summary))
    return {"out": str(out), "seconds": seconds, "results": results, "discovery": found}


def _per_class(table: str, rows: dict[str, list[dict]]) -> list[str]:
    """Per-class test accuracy of every classifier row (first seed), classes as columns' rows."""
    have = {row: runs[0]["per_class_accuracy_cls"] for row, runs in rows.items() if runs[0].get("per_class_accuracy_cls")}
    if BASELINE in rows and rows[BASELINE][0].get("confusion_cls"):
        confusion = rows[BASELINE][0]["confusion_cls"]
        names = rows[BASELINE][0]["classes"]
        have = {BASELINE: {c: (r[i] / sum(r) if sum(r) else 0.0) for i, (c, r) in enumerate(zip(names, confusion))},
                **have}
    if len(have) < 2:
        return []
    names = list(next(iter(have.values())))
    lines = [f"## {table.replace('table', 'Table ')}: per-class test accuracy", "",
             "| class | " + " | ".join(have) + " |", "|---|" + "---|" * len(have)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{have[row].get(name, float('nan')):.2f}" for row in have) + " |")
    return [*lines, ""]


def learning_curves(runs: dict[str, Path], path: Path) -> None:
    """Validation accuracy and mIoU per epoch of each run (its best epoch marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsmnet.core.fsutil import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, (title, run) in enumerate(runs.items()):
        colour = colours[n % len(colours)]
        history_file = run / "metrics.jsonl"
        if not history_file.is_file():
            continue
        history = [json.loads(line) for line in history_file.read_text().splitlines()]
        best = json.loads((run / "summary.json").read_text())["best_epoch"] if (run / "summary.json").is_file() else 0
        for ax, key in zip(axes, ("val_acc_cls", "val_miou_seg")):
            points = [(h["epoch"], h[key]) for h in history if key in h]
            if points:
                ax.plot(*zip(*points), label=title, color=colour)
                ax.plot([e for e, _ in points if e == best], [v for e, v in points if e == best], "o", color=colour)
    for ax, label in zip(axes, ("validation object accuracy", "validation mIoU")):
        ax.set_xlabel("epoch (● best, by validation loss)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _add_wall_time(out: Path, seconds: float) -> tuple[float, int]:
    """The study's wall time so far, kept in ``study.json`` across invocations: an interrupted and
    resumed study, or one re-run to redraw its tables, reports the time all its parts took."""
    path = out / "study.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    state = {"seconds": state.get("seconds", 0.0) + seconds, "invocations": state.get("invocations", 0) + 1}
    atomic_write_text(path, json.dumps(state, indent=1) + "\n")
    return state["seconds"], state["invocations"]


def _describe(s: Scale) -> str:
    return (
        f"Scale: {s.n} subtomograms per dataset, {s.classes} classes, {s.box}³ boxes at 10 Å/voxel, tomograms "
        f"{'×'.join(map(str, s.tomogram))}, SNR A {s.snr['A']} / B {s.snr['B']}; backbone widths "
        f"{', '.join(map(str, s.widths))}, classifier width {s.hidden}; batch {s.batch}, ≤ {s.epochs} epochs, "
        f"patience {s.patience}; seeds {', '.join(map(str, s.seeds))} (mean ± standard deviation); "
        f"augmentation {s.augment}; classifier pooling {s.pool}. Trained on the 8:1:1 split's training part "
        f"(model selection on its validation part); **metrics on an independent test set of {s.test_n} "
        "subtomograms** simulated from other tomograms with another seed. A row marked *did not converge* has "
        "test accuracy below 2/C or target IoU below 0.1. The paper column gives Liu et al.'s own figures "
        "(pixel accuracy / mIoU / object accuracy, %; * = the paper's 'fails to converge'). "
        f"{BASELINE}: shrinkage LDA on 51 rotation-invariant features around the box centre "
        "(`dsmnet.reproduce.baseline`), the simple baseline every CNN row is set against."
    )


def why_failed(metrics: dict[str, Any], classes: int) -> list[str]:
    """What a non-converged run does instead: one class for every particle, no target voxels."""
    why = []
    confusion = metrics.get("confusion_cls")
    if confusion and metrics["metrics"].get("acc_cls", 1.0) < 2.0 / classes:
        predicted = sum(1 for column in zip(*confusion) if sum(column))
        why.append("predicts one class for every particle" if predicted == 1 else f"predicts {predicted} classes")
    iou = metrics.get("iou_seg")
    if iou and iou[1] < 0.1:
        why.append(f"target IoU {iou[1]:.2f}")
    return why


def _values(runs: list[dict], key: str) -> list[float]:
    return [r["metrics"][key] for r in runs if key in r["metrics"]]


def _table(table: str, rows: dict[str, list[dict]], scale: Scale) -> tuple[str, str]:
    header = ["model", "pixel accuracy", "mIoU", "object accuracy", "paper (pixel acc / mIoU / acc)", "note"]
    lines = [f"## {table.replace('table', 'Table ')}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "seeds", "pixel_acc_mean", "miou_mean", "acc_mean", "pixel_acc", "miou", "acc", "failed"])
    for row, runs in rows.items():
        pa, miou, acc = _values(runs, "pixel_acc_seg"), _values(runs, "miou_seg"), _values(runs, "acc_cls")
        bad = [r for r in runs if failed(r, scale.classes)]
        why = sorted({w for r in bad for w in why_failed(r, scale.classes)})
        note = f"did not converge ({len(bad)}/{len(runs)} seeds: {'; '.join(why)})" if bad else ""
        figures = PAPER.get(table, {}).get(row)
        paper = " / ".join(figures) if figures else "—"
        lines.append(f"| {row} | {_fmt(pa)} | {_fmt(miou)} | {_fmt(acc)} | {paper} | {note} |")
        mean = lambda v: f"{statistics.mean(v):.4f}" if v else ""  # noqa: E731
        writer.writerow([row, len(runs), mean(pa), mean(miou), mean(acc), pa, miou, acc, len(bad)])
    return "\n".join(lines) + "\n", buf.getvalue()


def _orderings(results: dict) -> list[str]:
    out = []
    key = {"acc": "acc_cls", "miou": "miou_seg"}
    for table, better, worse, metric in ORDERINGS:
        rows = results.get(table, {})
        if better not in rows or worse not in rows:
            continue
        va, vb = _values(rows[better], key[metric]), _values(rows[worse], key[metric])
        a = statistics.mean(va or [float("nan")])
        b = statistics.mean(vb or [float("nan")])
        verdict = "held" if a > b else "did not hold"
        if len(va) > 1 and len(va) == len(vb):  # the same seeds, in the same order, for every row
            wins = sum(x > y for x, y in zip(va, vb))
            verdict += f" ({wins}/{len(va)} seeds)"
        line = f"- {table}: {better} {metric} {a:.3f} > {worse} {b:.3f} — **{verdict}**"
        se = _accuracy_se(rows[better], rows[worse]) if metric == "acc" else None
        if se is not None:
            line += f"; difference {a - b:+.3f} ± {se:.3f} (1 s.e.)" + (", within noise" if abs(a - b) < 2 * se else "")
        out.append(line)
    return out


def _accuracy_se(better: list[dict], worse: list[dict]) -> float | None:
    """Binomial standard error of the difference of two mean test accuracies, treating the rows'
    test sets as independent (they are the same particles, so this errs on the cautious side)."""

    def variance(runs: list[dict]) -> float | None:
        parts = []
        for r in runs:
            n = sum(map(sum, r.get("confusion_cls") or []))
            if not n or "acc_cls" not in r["metrics"]:
                return None
            p = r["metrics"]["acc_cls"]
            parts.append(p * (1 - p) / n)
        return sum(parts) / len(parts) ** 2 if parts else None

    va, vb = variance(better), variance(worse)
    return None if va is None or vb is None else math.sqrt(va + vb)

"""``dsmnet reproduce``: the paper's Tables 1–3 as configurations of one engine.

Every row is a variant generated from the base specs by :mod:`dsmnet.core.ablation` (head
subsets of DSM-Net, loss-weight grids), rescaled to the chosen scale, trained under the same
budget and seeds on the same simulated datasets, and evaluated on the same held-out test split.

A model **did not converge** (the paper's "fails to converge") when, on the test split, its
classifier is below twice chance accuracy (2/C) or its segmenter's target-class IoU is below 0.1
(it predicts background everywhere).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dsmnet.core.fsutil import atomic_write_text, to_json
from dsmnet.core.provenance import git_revision
from dsmnet.dataset.subtomograms import stratified_split
from dsmnet.reproduce.clock import StudyClock
from dsmnet.reproduce.figures import learning_curves, per_class_figure
from dsmnet.reproduce.jobs import (
    Job,
    StudyError,
    baseline,
    datasets,
    default_workers,
    kept_result,
    run_cost,
    run_jobs,
    seg_baseline,
    template_matching,
)
from dsmnet.reproduce.orderings import ordering_lines
from dsmnet.reproduce.records import kept_path, run_dataset, same_dataset, with_record
from dsmnet.reproduce.report import (
    crowding_lines,
    describe_scale,
    per_class_lines,
    reference_levels,
    revisions_line,
    runtimes_line,
    table_lines,
    target_iou_lines,
)
from dsmnet.reproduce.scales import (
    AVERAGES,
    BASELINE,
    BASELINE_TABLES,
    HOLDOUT,
    ORACLE,
    PAPER_TABLES,
    SCALES,
    SEG_BASELINE,
    TABLES,
    Scale,
    row_spec,
    variant,
)


def _command(scale_name: str, out: Path, seeds, tables, rows, with_discovery: bool) -> str:
    """The command line that makes these results (for the summary)."""
    command = f"dsmnet reproduce --scale {scale_name} --out {out}" + (
        f" --seeds {','.join(map(str, seeds))}" if seeds else ""
    )
    if tuple(tables) != PAPER_TABLES:
        command += f" --tables {','.join(tables)}"
    if rows:
        command += " --rows '" + ",".join(rows) + "'"
    if not with_discovery:
        command += " --no-discover"
    return command


def plan_runs(scale: Scale, out: Path, paths: dict[str, Path], tables, rows) -> tuple[dict, dict[Path, Job]]:
    """Every (table, row, seed) → its run folder, and one job per run folder (identical runs, such
    as Table 3's 1:1 and 1:10 rows, are one job)."""
    plan: dict[str, list[tuple[str, Path]]] = {}
    jobs: dict[Path, Job] = {}
    for table in tables:
        dataset, table_rows = TABLES[table]
        for entry in table_rows:
            row = entry[0]
            if rows and row not in rows:
                continue
            spec, fresh = row_spec(entry, scale)
            cost = run_cost(spec)
            for seed in scale.seeds:
                run = out / "runs" / dataset / spec.name.replace("[", "-").replace("]", "") / f"seed{seed}"
                plan.setdefault(table, []).append((row, run))
                title = f"{dataset} · {row} · seed {seed}"
                test = paths[f"{dataset}_test"]
                job = Job(run, spec.to_dict(), paths[dataset], seed, title, cost, True, test, scale.augment, scale.tta,
                          fresh=fresh)  # fmt: skip
                jobs.setdefault(run, job)
    return plan, jobs


def discovery_folder(scale: Scale, out: Path) -> Path:
    return out / "runs" / f"A_without_{HOLDOUT}" / "dsmnet" / f"seed{scale.seeds[0]}"


def _discovery_job(scale: Scale, out: Path, paths: dict[str, Path]) -> Job:
    """DSM-Net trained on dataset A without the held-out class (paper §3.5)."""
    from dsmnet.reproduce.discover import without_class

    reduced = without_class(paths["A"], out / "data" / f"A_without_{HOLDOUT}", HOLDOUT)
    spec = variant("dsmnet", None, {}, scale)
    run, seed = discovery_folder(scale, out), scale.seeds[0]
    title = f"discovery · DSM-Net without {HOLDOUT} · seed {seed}"
    return Job(run, spec.to_dict(), reduced, seed, title, run_cost(spec), False, None, scale.augment)


def _kept_discovery(scale: Scale, out: Path, log) -> dict | None:
    """Discovery's kept result (``discover/discover.json``, with its run's training record) when
    the run folder is gone; None while the run is there (discovery is redone from it)."""
    path = out / "discover" / "discover.json"
    if (discovery_folder(scale, out) / "summary.json").is_file() or not path.is_file():
        return None
    found = json.loads(path.read_text())
    if found.get("holdout") != HOLDOUT:
        return None
    log(f"discovery reused from {path} (its run folder gone)")
    return found


def _finished(jobs: dict[Path, Job], log) -> dict[Path, Job]:
    finished = {run: j for run, j in jobs.items() if (run / "summary.json").is_file()}
    for job in jobs.values():
        if job.run not in finished:
            log(f"not finished, left out: {job.title}")
    return finished


def _test_here(result: dict, run: Path, paths: dict[str, Path]) -> dict[str, str]:
    """``data`` naming where the run's test set is now, if the result was scored on it."""
    test = paths.get(f"{run_dataset(run)}_test")
    return {"data": str(test)} if test is not None and same_dataset(result.get("data"), test) else {}


def _references(scale: Scale, out: Path, paths, dataset: str, log) -> dict[str, list[dict]]:
    """The reference rows of a dataset's table: the classical baselines (each split seed's, named by
    its seed), template matching with the true maps (seed-independent) and with each split seed's
    training averages, each cached under ``out/metrics/<dataset>``; a row neither kept nor to be
    made (its data not here) is left out, and said so."""
    data, test, kept = paths[dataset], paths[f"{dataset}_test"], out / "metrics" / dataset
    rotations = scale.oracle_rotations

    def seeded(record: dict | None, seed: int) -> dict | None:
        return None if record is None else {**record, "seed": seed}

    rows = {
        BASELINE: [seeded(baseline(data, s, test, kept / "baseline"), s) for s in scale.seeds],
        SEG_BASELINE: [seeded(seg_baseline(data, s, test, kept / "baseline_seg"), s) for s in scale.seeds],
        ORACLE: [template_matching(test, rotations, kept / "oracle", log)],
        AVERAGES: [seeded(template_matching(test, rotations, kept / "oracle", log, (data, s)), s) for s in scale.seeds],
    }
    for name, records in rows.items():
        if None in records:  # neither kept nor to be made: its data are not here (a report from kept records)
            log(f"{dataset} · {name}: not kept and its data not here, left out")
    return {name: made for name, records in rows.items() if (made := [r for r in records if r is not None])}


def _report_tables(
    scale: Scale, out: Path, paths, tables, plan, metrics, log=print, waiting: dict[str, list[str]] | None = None
) -> tuple[dict, list[str]]:
    """Tables 1–3 with the baseline and template-matching rows, the orderings, per-class accuracy
    and the learning curves; every run's test metrics kept in ``out/metrics``. ``waiting``: each
    table's rows whose runs have not finished (listed in the table as such when none of a row's has)."""
    results: dict[str, dict[str, list[dict]]] = {}
    summary: list[str] = []
    # each result as it is kept: naming its run folder and test set in this study folder (perhaps
    # moved since it was scored), with the run's training record while the folder is there
    metrics = {run: with_record({**m, "run": str(run), **_test_here(m, run, paths)}, run) for run, m in metrics.items()}
    references: dict[str, dict] = {}  # by dataset: Table 1 and beyond share dataset A's
    for table in tables:
        dataset = TABLES[table][0]
        if table in BASELINE_TABLES and dataset not in references:
            references[dataset] = _references(scale, out, paths, dataset, log)
        results[table] = dict(references[dataset]) if table in BASELINE_TABLES else {}
        for row, run in plan.get(table, []):
            results[table].setdefault(row, []).append(metrics[run])
            keep = kept_path(out, run)
            keep.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(keep, to_json(metrics[run]))
        md, csv_text = table_lines(table, results[table], scale, (waiting or {}).get(table, ()))
        atomic_write_text(out / f"{table}.md", md)
        atomic_write_text(out / f"{table}.csv", csv_text)
        summary += [md, ""]
    summary += ["## The paper's orderings", ""] + ordering_lines(results) + [""]
    for table in tables:
        rows, test = results[table], paths[f"{TABLES[table][0]}_test"]
        summary += per_class_lines(table, rows) + crowding_lines(table, rows, test) + target_iou_lines(table, rows)
        if per_class_figure(rows, out / f"{table}_per_class.png"):
            summary += [
                f"Per-class test accuracy against library mass, and the most accurate network's and template "
                f"matching's confusion matrices, lightest class first: `{table}_per_class.png`.",
                "",
            ]
    labels: dict[Path, str] = {}  # one curve per run: a run two rows share (Table 3's 1:1, 1:10) under its first
    for t in tables:
        for row, run in plan.get(t, []):
            labels.setdefault(run, f"{TABLES[t][0]} · {row} · {run.name}")
    curves = {label: metrics[run] for run, label in labels.items()}
    levels = reference_levels(results, tables)
    if curves:  # (an epoch of a record made before runs counted their samples: the 8:1:1 split's training part)
        per_epoch = len(stratified_split(np.arange(scale.n) % scale.classes, 0)["train"])
        learning_curves(curves, out / "learning_curves.png", levels, per_epoch)
        summary += [
            "Learning curves (validation accuracy and mIoU against training samples seen, every run, a pair of "
            "panels a dataset; its classical baseline's and template matching's test accuracy as lines): "
            "`learning_curves.png`.",
            "",
            revisions_line(curves),
            "",
            runtimes_line(curves),
            "",
        ]
    return results, summary


def _discovery(run: Path, paths: dict[str, Path], out: Path) -> dict:
    """Discovery on the trained run; its result kept with the run's training record."""
    from dsmnet.reproduce.discover import discover

    found = with_record(discover(run, paths["A"], HOLDOUT, out / "discover"), run)
    atomic_write_text(out / "discover" / "discover.json", json.dumps(found, indent=1) + "\n")
    return found


def _discovery_lines(found: dict) -> list[str]:
    fsc = found.get("fsc", {})
    return [
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


def _what_to_run(scale: Scale, out: Path, paths, jobs: dict, with_discovery: bool, report_only: bool, log):
    """The jobs left to run (the discovery run among them, if its result is not kept), the rows
    reused from their kept results, the discovery run and its kept result; with ``report_only``
    only the finished runs, and an error if there is nothing to report."""
    discovery_run, discovered = None, _kept_discovery(scale, out, log) if with_discovery else None
    trained = (discovery_folder(scale, out) / "summary.json").is_file()
    if with_discovery and discovered is None and (trained or not report_only):  # a report trains nothing
        job = _discovery_job(scale, out, paths)
        discovery_run, jobs[job.run] = job.run, job
    kept = {run: result for run, job in jobs.items() if (result := kept_result(job, out)) is not None}
    if kept:
        log(f"{len(kept)} run(s) reused from their kept results in {out / 'metrics'} (run folders gone)")
    jobs = {run: job for run, job in jobs.items() if run not in kept}
    if report_only:  # redraw from the finished runs; train nothing
        jobs = _finished(jobs, log)
        discovery_run = discovery_run if discovery_run in jobs else None
        if not jobs and not kept and discovered is None:
            raise StudyError(
                f"{out}: nothing to report (no kept results in {out / 'metrics'} and no finished runs); "
                "run the study without --report first"
            )
    return jobs, kept, discovery_run, discovered


def scale_at(name: str, seeds: tuple[int, ...] | None) -> Scale:
    """The scale of that name, at the seeds given (else its own)."""
    return dataclasses.replace(SCALES[name], seeds=tuple(seeds)) if seeds else SCALES[name]


def reproduce(
    scale_name: str,
    out: Path,
    log=print,
    tables: tuple[str, ...] = PAPER_TABLES,
    with_discovery: bool = True,
    seeds: tuple[int, ...] | None = None,
    workers: int | None = None,
    rows: tuple[str, ...] | None = None,
    report_only: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run the study at a scale; writes ``table{1,2,3}.md/.csv``, ``summary.md`` and every run's
    test ``metrics/…json`` into ``out``. ``rows`` keeps only the rows of those names;
    ``report_only`` trains nothing and reports the runs that have finished."""
    scale = scale_at(scale_name, seeds)
    workers = workers or default_workers()
    clock = StudyClock(out)
    if not report_only:  # a report needs a study folder there already, and a refused one leaves none
        out.mkdir(parents=True, exist_ok=True)
    paths = datasets(scale, out, log, simulate_missing=not report_only)
    command = _command(scale_name, out, seeds, tables, rows, with_discovery)
    revision = git_revision()
    plan, jobs = plan_runs(scale, out, paths, tables, rows)
    jobs, kept, discovery_run, discovered = _what_to_run(scale, out, paths, jobs, with_discovery, report_only, log)
    command += " --report" if report_only else ""
    clock.begin()  # from here on the invocation counts in the study's wall time, even if it is killed
    try:
        log(f"{len(jobs)} training runs on {workers} worker(s)")
        metrics = {**kept, **run_jobs(list(jobs.values()), workers, log, threads)}
        waiting = {t: [row for row, run in entries if run not in metrics] for t, entries in plan.items()}
        plan = {t: [(row, run) for row, run in entries if run in metrics] for t, entries in plan.items()}
        results, lines = _report_tables(scale, out, paths, tables, plan, metrics, log, waiting)
        summary = [f"# Reproduction at scale `{scale_name}`", "", "", "", describe_scale(scale), "", *lines]
        if discovery_run is not None:
            discovered = _discovery(discovery_run, paths, out)
        if discovered is not None:
            summary += _discovery_lines(discovered)
        seconds = time.time() - clock.start
        total, invocations = clock.end()
        summary[2] = f"Command: `{command}`; git revision {revision}; wall time {total / 60:.1f} min" + (
            f", summed over the {invocations} invocations that built these results "
            f"(this one: {seconds / 60:.1f} min on {workers} worker(s))."
            if invocations > 1
            else f" on {workers} worker(s)."
        )
        atomic_write_text(out / "summary.md", "\n".join(summary))
        return {"out": str(out), "seconds": seconds, "results": results, "discovery": discovered}
    finally:
        clock.end()  # an interrupted invocation closes its span too (a no-op after the first)

"""The paper's experiments: ``reproduce``, ``discover``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsmnet.cli.base import UsageError, command, flags


def _reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale",
        default="converged",
        help="converged (the study of record: 34³ boxes, half the paper's widths, every run trained until early "
        "stopping fires with the recipe of results/mini/experiments; 1-3 core-hours a training, several sittings, "
        "runs resume), mini (the same at <= 30 epochs, patience 6: a quicker look whose rows stop short of "
        "learning) or paper (the paper's settings, for a GPU)",
    )
    p.add_argument("--out", required=True, help="results folder (runs inside it are reused and resumed)")
    p.add_argument(
        "--tables",
        help="comma-separated tables: table1,table2,table3 (the paper's, the default) and beyond (rows beyond "
        "the paper: DSM-Net with a centre prior, on fresh data every epoch, with both, with the paper's widths)",
    )
    p.add_argument("--no-discover", action="store_true", help="skip the unseen-structure experiment")
    p.add_argument("--rows", help="comma-separated subset of the rows, by name (e.g. 'Cls subnet,DSM-Net')")
    p.add_argument("--report", action="store_true", help="train nothing: redraw the tables from the finished runs")
    p.add_argument(
        "--status",
        action="store_true",
        help="train nothing: say where each planned run stands (not started, training at epoch N, stopped, "
        "scored) and write it to OUT/status.md",
    )
    p.add_argument("--seeds", help="comma-separated seeds (default: the scale's; mean ± spread over several)")
    p.add_argument(
        "--workers",
        type=int,
        help="trainings run side by side, sharing the CPU cores (default: 2 on a multi-core CPU, 1 on a GPU)",
    )
    flags(p, "threads")  # per training (default: the cores / --workers)


def _seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1``: distinct non-negative integers."""
    try:
        seeds = tuple(int(v) for v in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise UsageError(f"--seeds {text!r}: expected distinct non-negative integers, comma-separated (e.g. 0,1)")
    return seeds


@command("reproduce", arguments=_reproduce_arguments)
def cmd_reproduce(args: argparse.Namespace) -> int:
    """the paper's Tables 1-3 and unseen-structure discovery"""
    from dsmnet.reproduce.study import PAPER_TABLES, SCALES, TABLES, reproduce

    if args.scale not in SCALES:
        raise UsageError(f"unknown scale {args.scale!r} (allowed: {', '.join(SCALES)})")
    tables = tuple(t.strip() for t in args.tables.split(",")) if args.tables else PAPER_TABLES
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise UsageError(f"unknown table {unknown[0]!r} (allowed: {', '.join(TABLES)})")
    seeds = _seeds(args.seeds) if args.seeds else None
    known = {r[0] for t in TABLES.values() for r in t[1]}
    rows = tuple(r.strip() for r in args.rows.split(",")) if args.rows else None
    if rows and any(r not in known for r in rows):
        bad = next(r for r in rows if r not in known)
        raise UsageError(f"unknown row {bad!r} (allowed: {', '.join(sorted(known))})")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {args.workers})")
    if args.status and args.report:
        raise UsageError(
            "--status and --report: give one (--status says where the runs stand, --report redraws tables)"
        )
    if args.status:
        from dsmnet.reproduce.status import status_line, study_status

        statuses = study_status(
            args.scale, Path(args.out), tables=tables, with_discovery=not args.no_discover, seeds=seeds, rows=rows
        )
        for s in statuses:
            print(status_line(s))
        print(f"→ {Path(args.out) / 'status.md'}")
        return 0
    r = reproduce(
        args.scale,
        Path(args.out),
        tables=tables,
        with_discovery=not args.no_discover,
        seeds=seeds,
        workers=args.workers,
        threads=args.threads,
        rows=rows,
        report_only=args.report,
    )
    print(f"done in {r['seconds'] / 60:.1f} min → {r['out']}/summary.md")
    return 0


def _discover_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run trained without the held-out class")
    p.add_argument("--data", required=True, help="dataset folder including the held-out class")
    p.add_argument("--holdout", required=True, help="the held-out class name")
    p.add_argument("--out", required=True, help="output folder")
    flags(p, "device", "threads")


@command("discover", arguments=_discover_arguments)
def cmd_discover(args: argparse.Namespace) -> int:
    """cluster features and recover a class the run never saw"""
    from dsmnet.reproduce.discover import discover

    r = discover(args.run, args.data, args.holdout, args.out, args.device)
    print(
        f"{r['holdout']}: {r['holdout_share_in_dominant_cluster']:.2f} of its {r['holdout_particles']} particles in "
        f"cluster {r['dominant_cluster']} (purity {r['dominant_cluster_purity']:.2f})"
        + (f"; recovered density FSC 0.5 at {r['fsc']['resolution_0.5']:.1f} Å" if "fsc" in r else "")
        + f" → {r['out']}"
    )
    return 0

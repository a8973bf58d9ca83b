"""The study's measuring tools: ``baseline``, ``template-match``, ``paired``, ``views``,
``separability`` (each also reachable as its old ``python -m dsmnet.reproduce.<module>``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsmnet.cli.base import UsageError, command, flags, print_json


def _data(args: argparse.Namespace) -> Path:
    """``--data``, or the positional folder the old ``python -m`` tools took."""
    data = args.data or args.data_positional
    if not data:
        raise UsageError("--data is required: a dataset folder")
    return Path(data)


def _data_arguments(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--data", help=help)
    p.add_argument("data_positional", nargs="?", help=argparse.SUPPRESS)  # python -m …baseline DATA


def _record_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="also write the record (per-particle predictions included) as JSON")
    flags(p, "json")


def _kept(r: dict, out: str | None) -> dict:
    """A measured record, also written to ``--out`` (per-particle predictions included) when given."""
    from dsmnet.core.fsutil import atomic_write_text, to_json

    if out:
        atomic_write_text(Path(out), to_json(r))
    return r


def _report_reference(r: dict, as_json: bool) -> int:
    """A reference row (LDA, template matching): its accuracy per class."""
    if as_json:
        print_json({k: r[k] for k in ("run", "data", "particles", "classes", "metrics")})
        return 0
    print(f"{r['run']}: object accuracy {r['metrics']['acc_cls']:.3f} on {r['particles']} particles of {r['data']}")
    for i, (name, row) in enumerate(zip(r["classes"], r["confusion_cls"])):
        print(f"  {name:32s} {row[i] / max(sum(row), 1):.2f}")
    return 0


def _report_poses(r: dict, as_json: bool) -> int:
    """The pose reference: median angle and pose loss, overall and per class."""
    if as_json:
        print_json({k: r[k] for k in ("run", "data", "particles", "metrics", "per_class")})
        return 0
    m = r["metrics"]
    print(f"{r['run']}: median angle {m['median_angle']:.1f}°, median pose loss {m['median_pose_loss']:.3f} "
          f"on {r['particles']} particles of {r['data']}")  # fmt: skip
    for name, row in r["per_class"].items():
        print(f"  {name:32s} {row['angle']:6.1f}°  {row['pose_loss']:.3f}")
    return 0


def _report_segmentation(r: dict, as_json: bool) -> int:
    """The segmentation baseline: its scores and fitted parameters."""
    if as_json:
        print_json(r)
        return 0
    m, f = r["metrics"], r["fitted"]
    print(f"{r['run']}: mIoU {m['miou_seg']:.3f}, pixel accuracy {m['pixel_acc_seg']:.3f}, target IoU "
          f"{r['iou_seg'][1]:.3f} on {r['particles']} particles of {r['data']}")  # fmt: skip
    print(f"  fitted on {f['on']}: σ {f['sigma']}, radius {f['radius']}, level {f['level']} × the box's s.d.")
    return 0


def _baseline_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p, "the dataset folder to fit on (its seeded 8:1:1 split's training part)")
    p.add_argument("--test", help="an independent test set (default: the split's test part)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, as the runs' --seed (default 0)")
    p.add_argument(
        "--segmentation",
        action="store_true",
        help="the segmentation baseline instead: the smoothed box thresholded inside a centred sphere, σ, radius "
        "and level fitted for mIoU (needs masks)",
    )
    _record_arguments(p)


@command("baseline", arguments=_baseline_arguments)
def cmd_baseline(args: argparse.Namespace) -> int:
    """the classical baselines: LDA on rotation-invariant shell features (or, --segmentation, a fitted
    threshold about the centre), fitted on a training split"""
    test = Path(args.test) if args.test else None
    if args.segmentation:
        from dsmnet.reproduce.segbaseline import classical_segmentation

        return _report_segmentation(_kept(classical_segmentation(_data(args), args.seed, test), args.out), args.json)
    from dsmnet.reproduce.baseline import classical_baseline

    return _report_reference(_kept(classical_baseline(_data(args), args.seed, test), args.out), args.json)


def _template_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p, "a simulated dataset folder (its imaging settings make the templates)")
    p.add_argument("--rotations", type=int, default=2000, help="rotations searched per template (default 2000)")
    p.add_argument(
        "--averages-from",
        metavar="DIR",
        help="templates: the class averages of this simulated dataset's training split, each particle turned "
        "back by its recorded pose (default: the true maps)",
    )
    p.add_argument(
        "--split-seed", type=int, default=0, help="whose training split --averages-from averages (default 0)"
    )
    p.add_argument(
        "--poses",
        action="store_true",
        help="find each box's pose with its own class's true map and score it against the recorded pose "
        "(the reference for a pose head) instead of classifying",
    )
    flags(p, "threads")  # minutes of one core a dataset: beside trainings, give it 1
    _record_arguments(p)


@command("template-match", arguments=_template_arguments)
def cmd_template_match(args: argparse.Namespace) -> int:
    """the reference that knows the answer: the true structures (or the training split's class averages)
    imaged as the data, searched over rotations"""
    from dsmnet.reproduce.oracle import template_matching

    if args.rotations < 1:
        raise UsageError(f"--rotations must be at least 1, got {args.rotations}")
    log = (lambda _m: None) if args.json else print
    if args.poses:
        if args.averages_from:
            raise UsageError("--poses searches the true maps; it takes no --averages-from")
        from dsmnet.reproduce.poses import template_poses

        return _report_poses(_kept(template_poses(_data(args), args.rotations, log=log), args.out), args.json)
    found = template_matching(
        _data(args), args.rotations, log=log, averages_from=args.averages_from, split_seed=args.split_seed
    )
    return _report_reference(_kept(found, args.out), args.json)


def _paired_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("first", help="metrics.json of the first row (a,b,… for several seeds)")
    p.add_argument("second", help="metrics.json of the second row")
    flags(p, "json")


@command("paired", arguments=_paired_arguments)
def cmd_paired(args: argparse.Namespace) -> int:
    """the paired difference of two rows scored on the same test particles (± 1 s.e., McNemar)"""
    from dsmnet.reproduce.paired import compare, paired

    runs = [[Path(p) for p in arg.split(",")] for arg in (args.first, args.second)]
    if args.json:
        print_json(paired(*runs))
    else:
        print("\n".join(compare(*runs)))
    return 0


def _views_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a trained run folder (its best.pt)")
    p.add_argument("--data", required=True, help="test dataset folder")
    p.add_argument("--n", type=int, default=1200, help="particles (the first n; default 1200)")
    p.add_argument("--angles", default="0,5,15,30,60,90,180", help="degrees, comma-separated")
    p.add_argument("--out", help="write the JSON here too")
    flags(p, "json")


@command("views", arguments=_views_arguments)
def cmd_views(args: argparse.Namespace) -> int:
    """accuracy of a run on its test particles turned by given angles, re-masked and not"""
    from dsmnet.core.fsutil import atomic_write_text, to_json
    from dsmnet.reproduce.views import turned_accuracy

    try:
        angles = tuple(float(a) for a in args.angles.split(","))
    except ValueError:
        raise UsageError(
            f"--angles {args.angles!r}: expected numbers of degrees, comma-separated (e.g. 0,30,90)"
        ) from None
    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    text = to_json(turned_accuracy(Path(args.run), Path(args.data), args.n, angles))
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text, end="")
    return 0


def _separability_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snr", type=float, default=0.06, help="signal-to-noise ratio (default 0.06)")
    p.add_argument("--box", type=int, default=34, help="box side in voxels (default 34)")
    p.add_argument("--rotations", type=int, default=600, help="rotations per structure (default 600)")
    flags(p, "json")


@command("separability", arguments=_separability_arguments)
def cmd_separability(args: argparse.Namespace) -> int:
    """the ideal observer: how far apart each library structure is from its nearest (d′)"""
    from dsmnet.reproduce.separability import separability
    from dsmnet.simulate.library import load_library

    if not args.snr > 0:
        raise UsageError(f"--snr must be > 0, got {args.snr}")
    if args.box < 8:
        raise UsageError(f"--box must be at least 8 voxels, got {args.box}")
    if args.rotations < 2:
        raise UsageError(f"--rotations must be at least 2, got {args.rotations}")
    rows = list(separability(list(load_library().values()), args.snr, args.box, args.rotations))
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"| {r['name']} | {r['nearest']} | {r['d_prime']:.1f} |")
    return 0

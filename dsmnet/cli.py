"""The ``dsmnet`` command line. Heavy modules are imported inside each command, so that
``dsmnet --help`` answers at once.

Exit codes: 0 success, 2 bad input (a clear one-line message, no traceback), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dsmnet.registry.errors import UserError


class UsageError(UserError):
    """Bad command-line input, reported as ``dsmnet: error: …`` with exit code 2."""


_COMMANDS: list[tuple[tuple, dict, Callable[[argparse.ArgumentParser], None], Callable]] = []


def command(*names: str, arguments: Callable[[argparse.ArgumentParser], None], **kwargs):
    """Register a subcommand: its name and help, the function adding its arguments (written just
    above its handler), and the handler."""

    def register(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        _COMMANDS.append((names, kwargs, arguments, handler))
        return handler

    return register


PICKS_HELP = (
    "STAR file of picks: RELION-4 rlnCoordinateX/Y/Z (0-based pixels of the tomogram) or RELION-5 "
    "rlnCenteredCoordinateX/Y/ZAngst (Å from the tomogram's centre), detected from the columns"
)
TOMOGRAMS_HELP = (
    "a folder of tomograms named after rlnTomoName, or a RELION tomograms.star (picks from several tomograms)"
)


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def _plugins_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


@command("plugins", help="list every registered component: kind, name, plugin, version", arguments=_plugins_arguments)
def cmd_plugins(args: argparse.Namespace) -> int:
    from dsmnet.registry import load_plugins

    registries = load_plugins()
    rows = [
        {"kind": c.kind, "name": c.name, "plugin": c.plugin, "version": c.version, "doc": c.doc}
        for c in registries.components()
    ]
    if args.json:
        _print_json({"components": rows, "failed": registries.failures})
        return 0
    widths = [max(len(r[k]) for r in rows) for k in ("kind", "name", "plugin", "version")]
    for r in rows:
        cells = [r[k].ljust(w) for k, w in zip(("kind", "name", "plugin", "version"), widths)]
        print("  ".join(cells), r["doc"], sep="  ")
    for name, why in registries.failures.items():
        print(f"failed plugin {name}: {why}", file=sys.stderr)
    return 0


def _build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a spec file, or a built-in spec's name (e.g. dsmnet)")
    p.add_argument("--json", action="store_true", help="print JSON")


@command(
    "build", help="validate a spec, build it, print parameters, GFLOPs and output shapes", arguments=_build_arguments
)
def cmd_build(args: argparse.Namespace) -> int:
    from dsmnet.core.build import build_model, load_spec
    from dsmnet.core.summary import describe

    spec = load_spec(args.spec)
    info = describe(build_model(spec))
    if args.json:
        _print_json(info)
        return 0
    print(f"{info['name']}: input {'×'.join(map(str, info['input'][1:]))} × {info['input'][0]} channel(s)")
    print(f"  parameters      {info['parameters']:,}")
    for part, n in info["parameters_by_part"].items():
        print(f"    {part:<14}{n:,}")
    print(f"  GFLOPs/sample   {info['gflops_per_sample']:.3f} (forward)")
    for head, shape in info["outputs"].items():
        print(f"  {head:<16}{info['targets'][head]:<8} from {info['sources'][head]:<14} → {shape}")
    return 0


def _parse_grid(items: Sequence[str]) -> dict[str, list[float]]:
    grid: dict[str, list[float]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            grid[key] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--grid {item!r}: expected HEAD=W1,W2,… (e.g. seg=1,10,100)") from None
    return grid


def _ablate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the base spec (file or built-in name)")
    p.add_argument("--subsets", action="store_true", help="every non-empty subset of the heads")
    p.add_argument("--grid", action="append", metavar="HEAD=W1,W2", help="loss weights to try (repeatable)")
    p.add_argument("--out", required=True, help="folder for the variant specs")
    p.add_argument("--json", action="store_true", help="print JSON")


@command("ablate", help="write variant specs: head subsets and loss-weight grids", arguments=_ablate_arguments)
def cmd_ablate(args: argparse.Namespace) -> int:
    from dsmnet.core.ablation import filename, generate
    from dsmnet.core.build import load_spec
    from dsmnet.core.fsutil import atomic_write_text

    grid = _parse_grid(args.grid or [])
    if not args.subsets and not grid:
        raise UsageError("nothing to generate: pass --subsets and/or --grid HEAD=W1,W2,…")
    variants = generate(load_spec(args.spec), subsets=args.subsets, grid=grid)
    out = Path(args.out)
    written = []
    for v in variants:
        path = out / filename(v.name)
        atomic_write_text(path, f"# generated by: dsmnet ablate {' '.join(sys.argv[2:])}\n" + v.to_yaml())
        written.append({"name": v.name, "path": str(path), "heads": list(v.heads)})
    if args.json:
        _print_json(written)
    else:
        for w in written:
            print(f"{w['name']:<40} {w['path']}")
    return 0


def _shape(text: str) -> tuple[int, int, int]:
    try:
        z, y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected Z,Y,X voxels (e.g. 200,400,400), got {text!r}") from None
    return z, y, x


def _classes(text: str) -> int | list[str]:
    return int(text) if text.isdigit() else [c.strip() for c in text.split(",") if c.strip()]


def _simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="A", help="A (SNR 0.06) or B (SNR 0.01): 3205 subtomograms of 22 classes")
    p.add_argument("--out", help="the dataset folder to write")
    p.add_argument("--n", type=int, help="number of subtomograms (balanced over the classes)")
    p.add_argument("--classes", type=_classes, help="how many library classes (the first N), or names a,b,c")
    p.add_argument("--snr", type=float, help="signal-to-noise ratio")
    p.add_argument("--seed", type=int, help="random seed (same seed, same bytes)")
    p.add_argument("--box", type=int, help="subtomogram side in voxels (default 40)")
    p.add_argument("--tomogram", type=_shape, help="tomogram shape Z,Y,X in voxels (default 200,400,400)")
    p.add_argument("--crowding", type=float, help="volume fraction inside molecules (default 0.05)")
    p.add_argument(
        "--mode", choices=["fourier", "projection"], help="imaging: fourier (fast) or projection (tilt series)"
    )
    p.add_argument("--no-tomograms", action="store_true", help="do not write the whole tomograms")
    p.add_argument("--preview", help="write a PNG of what was made (alone: of the dataset the PNG lies in)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")


@command(
    "simulate",
    help="simulate crowded tomograms and extract subtomograms with ground truth",
    arguments=_simulate_arguments,
)
def cmd_simulate(args: argparse.Namespace) -> int:
    from dsmnet.simulate.generate import SimulationConfig, simulate
    from dsmnet.simulate.preview import is_dataset, write_preview

    if args.out is None:
        if args.preview is None:
            raise UsageError("give --out DIR (where to write the dataset) and/or --preview PNG")
        folder = Path(args.preview).parent
        if not is_dataset(folder):
            raise UsageError(f"{folder} is not a dataset: simulate one with --out {folder} first")
        print(write_preview(folder, Path(args.preview)))
        return 0
    config = SimulationConfig.preset(
        args.preset,
        n=args.n,
        classes=args.classes,
        snr=args.snr,
        seed=args.seed,
        box=args.box,
        tomogram=args.tomogram,
        crowding=args.crowding,
        mode=args.mode,
        write_tomograms=False if args.no_tomograms else None,
    )
    summary = simulate(config, Path(args.out), overwrite=args.overwrite, progress=print)
    print(
        f"wrote {summary['subtomograms']} subtomograms of {len(summary['per_class'])} classes to {args.out} "
        f"in {summary['seconds']:.1f} s (measured SNR {summary['measured_snr']:.4f})"
    )
    if args.preview:
        print(write_preview(Path(args.out), Path(args.preview)))
    return 0


def _structures_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "add"])
    p.add_argument("file", nargs="?", help="with add: a PDB or mmCIF file")
    p.add_argument("--name", help="with add: the class name")
    p.add_argument("--assembly", help="with add: a biological assembly id from the file")
    p.add_argument("--voxel-size", type=float, default=10.0, help="Å per voxel (default 10)")
    p.add_argument("--box", type=int, default=40, help="the largest structure accepted, in voxels (default 40)")
    p.add_argument(
        "--library", help="user library folder (default $DSMNET_LIBRARY or ~/.local/share/dsmnet/structures)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")


@command("structures", help="the structure library: list, or add your own PDB/mmCIF", arguments=_structures_arguments)
def cmd_structures(args: argparse.Namespace) -> int:
    from dsmnet.simulate.library import add_structure, load_library, user_library_dir

    library = Path(args.library) if args.library else None
    if args.action == "add":
        if not args.file or not args.name:
            raise UsageError("usage: dsmnet structures add FILE --name NAME")
        s = add_structure(
            Path(args.file),
            args.name,
            library=library,
            voxel_size=args.voxel_size,
            max_box=args.box,
            assembly=args.assembly,
        )
        print(
            f"added {s.name}: {s.mass_kda} kDa, {s.box}³ voxels at {s.voxel_size} Å → {library or user_library_dir()}"
        )
        return 0
    rows = [
        {
            "name": s.name,
            "kind": s.kind,
            "mass_kda": s.mass_kda,
            "box": s.box,
            "voxel_size": s.voxel_size,
            "description": s.description,
        }
        for s in load_library(library).values()
    ]
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:<30}{r['kind']:<8}{r['mass_kda']:>9.1f} kDa {r['box']:>4}³  {r['description']}")
    return 0


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a spec file or built-in name")
    p.add_argument("--data", required=True, help="dataset folder (particles.star + MRC files)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics, figures")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--lr", type=float, help="learning rate (spec default: 1e-3)")
    p.add_argument("--batch-size", type=int, help="global batch size (spec default: 64)")
    p.add_argument("--epochs", type=int, help="maximum epochs (spec default: 100)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (spec default: 15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, shuffling and initialisation")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1…")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="autocast dtype")
    p.add_argument(
        "--augment",
        nargs="?",
        const="rot180",
        default="none",
        choices=("none", "flip", "rot180", "rotate"),
        help="wedge-preserving augmentation: rot180 (the default when given: 180° rotations about z, y or x, "
        "keeping the molecule's hand), flip (random flips, which also mirror it) or rotate (a random rotation "
        "per particle, then only the data's measured frequencies kept: wedge and band limit)",
    )
    p.add_argument(
        "--no-prior-init",
        action="store_true",
        help="start heads from zero biases instead of the training split's class/voxel frequencies and mean density",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


@command("train", help="train a spec on a dataset (the paper's protocol by default)", arguments=_train_arguments)
def cmd_train(args: argparse.Namespace) -> int:
    from dsmnet.training.loop import TrainConfig, train

    config = TrainConfig(
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        augment=args.augment,
        prior_init=not args.no_prior_init,
        progress=not args.no_progress,
    )
    summary = train(args.spec, args.data, args.out, config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"done: {summary['epochs']} epochs, best validation loss {summary['best_val_loss']:.4f} at epoch "
            f"{summary['best_epoch']}{' (early stop)' if summary['stopped_early'] else ''} → {args.out}"
        )
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or checkpoint file)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="train, val, test (of the run's split) or all")
    p.add_argument("--out", help="output folder (default RUN/evaluate-SPLIT)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON")


@command("evaluate", help="metrics, confusion matrix, FSC and figures of a trained run", arguments=_evaluate_arguments)
def cmd_evaluate(args: argparse.Namespace) -> int:
    from dsmnet.training.evaluate import evaluate, table

    results = evaluate(args.run, args.data, args.split, args.out, args.device)
    print(
        json.dumps({k: v for k, v in results.items() if not k.startswith(("confusion", "fsc"))}, indent=1)
        if args.json
        else table(results)
    )
    print(f"wrote {results['out']}")
    return 0


def _tomogram_arguments(p: argparse.ArgumentParser) -> None:
    """What extract and predict share: where the tomograms are, their voxel size, the border."""
    p.add_argument("--tomograms", help=TOMOGRAMS_HELP)
    p.add_argument(
        "--no-rescale", action="store_true", help="refuse a tomogram at another voxel size instead of resampling"
    )
    p.add_argument("--border", default="skip", choices=["skip", "pad"], help="picks whose box crosses the border")


def _extract_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("tomogram", nargs="?", help="tomogram MRC (or give --tomograms)")
    p.add_argument("picks", help=PICKS_HELP)
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--box", type=int, default=40, help="box side in voxels (default 40)")
    p.add_argument(
        "--voxel-size", type=float, default=10.0, help="voxel size of the boxes in Å (default 10, the model's)"
    )
    _tomogram_arguments(p)
    p.add_argument("--rescale", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--overwrite", action="store_true")


@command(
    "extract",
    help="cut subtomograms from tomograms at picked positions, at the model's voxel size",
    arguments=_extract_arguments,
)
def cmd_extract(args: argparse.Namespace) -> int:
    from dsmnet.training.extract import extract

    r = extract(
        args.picks,
        args.out,
        tomogram=args.tomogram,
        tomograms=args.tomograms,
        box=args.box,
        voxel_size=args.voxel_size,
        rescale=not args.no_rescale,
        border=args.border,
        overwrite=args.overwrite,
    )
    print(
        f"extracted {r['extracted']} subtomograms ({r['skipped']} skipped at the border; {r['convention']} picks) "
        f"at {r['voxel_size']:g} Å → {r['out']}"
    )
    return 0


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or checkpoint file)")
    p.add_argument(
        "data", nargs="?", help="a dataset folder, a folder of MRC subtomograms or a STAR file with rlnImageName"
    )
    p.add_argument("--tomogram", help="the tomogram the --picks are in (boxes cut at the model's voxel size)")
    p.add_argument("--picks", help=PICKS_HELP)
    p.add_argument("--out", required=True, help="folder for predictions.star, per-class STARs and maps")
    _tomogram_arguments(p)
    p.add_argument(
        "--skip-bad", action="store_true", help="skip (and list in skipped.star) subtomograms that cannot be predicted"
    )
    p.add_argument("--no-maps", action="store_true", help="no tomogram-sized label and density maps")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true")


@command(
    "predict",
    help="classes, masks and densities for subtomograms, or for a tomogram's picks (with label maps)",
    arguments=_predict_arguments,
)
def cmd_predict(args: argparse.Namespace) -> int:
    from dsmnet.training.predict import predict

    if args.data is None and args.picks is None:
        raise UsageError("predict needs DATA (a dataset folder, a folder of MRCs or a STAR file) or --picks")
    r = predict(
        args.run,
        args.data,
        args.out,
        tomogram=args.tomogram,
        picks=args.picks,
        tomograms=args.tomograms,
        rescale=not args.no_rescale,
        border=args.border,
        skip_bad=args.skip_bad,
        maps=not args.no_maps,
        device=args.device,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    classes = ", ".join(f"{k} {v}" for k, v in sorted(r["classes"].items(), key=lambda kv: -kv[1])[:5])
    print(
        f"predicted {r['particles']} particles ({r['skipped']} skipped) on {r['device']} → {r['out']}/predictions.star"
        + (f"; most predicted: {classes}" if classes else "")
    )
    for m in r["maps"]:
        print(f"label map {m}")
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo", help="demo folder (default demo/)")
    p.add_argument("--fresh", action="store_true", help="start over instead of reusing demo/ parts")


@command(
    "demo", help="simulate, train DSM-Net, evaluate: the main job end to end (make demo)", arguments=_demo_arguments
)
def cmd_demo(args: argparse.Namespace) -> int:
    from dsmnet.training.demo import run_demo

    return run_demo(Path(args.out), fresh=args.fresh)


def _reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default="mini", help="mini (CPU, ≤ 90 min) or paper (the paper's settings, for a GPU)")
    p.add_argument("--out", required=True, help="results folder (runs inside it are reused and resumed)")
    p.add_argument("--tables", help="comma-separated subset of table1,table2,table3")
    p.add_argument("--no-discover", action="store_true", help="skip the unseen-structure experiment")
    p.add_argument("--rows", help="comma-separated subset of the rows, by name (e.g. 'Cls subnet,DSM-Net')")
    p.add_argument("--report", action="store_true", help="train nothing: redraw the tables from the finished runs")
    p.add_argument("--seeds", help="comma-separated seeds (default: the scale's; mean ± spread over several)")
    p.add_argument(
        "--workers",
        type=int,
        help="trainings run side by side, sharing the CPU cores (default: 2 on a multi-core CPU, 1 on a GPU)",
    )


@command("reproduce", help="the paper's Tables 1-3 and unseen-structure discovery", arguments=_reproduce_arguments)
def cmd_reproduce(args: argparse.Namespace) -> int:
    from dsmnet.reproduce.study import SCALES, TABLES, reproduce

    if args.scale not in SCALES:
        raise UsageError(f"unknown scale {args.scale!r} (allowed: {', '.join(SCALES)})")
    tables = tuple(t.strip() for t in args.tables.split(",")) if args.tables else tuple(TABLES)
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise UsageError(f"unknown table {unknown[0]!r} (allowed: {', '.join(TABLES)})")
    seeds = tuple(int(v) for v in args.seeds.split(",")) if args.seeds else None
    known = {r[0] for t in TABLES.values() for r in t[1]}
    rows = tuple(r.strip() for r in args.rows.split(",")) if args.rows else None
    if rows and any(r not in known for r in rows):
        bad = next(r for r in rows if r not in known)
        raise UsageError(f"unknown row {bad!r} (allowed: {', '.join(sorted(known))})")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {args.workers})")
    r = reproduce(
        args.scale,
        Path(args.out),
        tables=tables,
        with_discovery=not args.no_discover,
        seeds=seeds,
        workers=args.workers,
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
    p.add_argument("--device", default="auto")


@command("discover", help="cluster features and recover a class the run never saw", arguments=_discover_arguments)
def cmd_discover(args: argparse.Namespace) -> int:
    from dsmnet.reproduce.discover import discover

    r = discover(args.run, args.data, args.holdout, args.out, args.device)
    print(
        f"{r['holdout']}: {r['holdout_share_in_dominant_cluster']:.2f} of its {r['holdout_particles']} particles in "
        f"cluster {r['dominant_cluster']} (purity {r['dominant_cluster_purity']:.2f})"
        + (f"; recovered density FSC 0.5 at {r['fsc']['resolution_0.5']:.1f} Å" if "fsc" in r else "")
        + f" → {r['out']}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsmnet",
        description="Multi-task deep learning on cryo-ET subtomograms (DSM-Net), composed from YAML specs.",
    )
    from dsmnet import __version__

    parser.add_argument("--version", action="version", version=f"dsmnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for names, kwargs, arguments, handler in _COMMANDS:
        p = sub.add_parser(*names, **kwargs)
        arguments(p)
        p.set_defaults(func=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"dsmnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dsmnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

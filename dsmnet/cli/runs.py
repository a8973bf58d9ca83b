"""Commands on trained runs: ``train``, ``evaluate``, ``predict``, ``demo``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dsmnet.cli.base import PICKS_HELP, UsageError, command, flags, tomogram_arguments, tomogram_options
from dsmnet.training.options import AUGMENTS, PRECISIONS


def _mask_threshold(args: argparse.Namespace) -> float | None:
    """``--mask-threshold``, strictly between 0 and 1 (or not given)."""
    value = args.mask_threshold
    if value is not None and not 0.0 < value < 1.0:
        raise UsageError(f"--mask-threshold: expected a probability strictly between 0 and 1 (e.g. 0.35), got {value}")
    return value


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a spec file or built-in name")
    p.add_argument("--data", required=True, help="dataset folder (particles.star + MRC files)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics, figures")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--lr", type=float, help="learning rate (spec default: 1e-3)")
    p.add_argument("--batch-size", type=int, help="global batch size (spec default: 64)")
    p.add_argument("--epochs", type=int, help="maximum epochs (spec default: 100)")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (spec default: 15)")
    p.add_argument(
        "--schedule",
        choices=("constant", "cosine", "plateau"),
        help="learning rate over the run: constant (the paper's), a cosine decay to zero at --epochs, or plateau "
        "(× training.plateau_factor, 0.2, after every training.plateau_patience, 5, epochs without a lower "
        "validation loss; for a run that ends by early stopping)",
    )
    p.add_argument("--warmup", type=int, help="epochs of linear learning-rate warm-up (spec default: 0)")
    p.add_argument(
        "--min-lr",
        type=float,
        help="with the plateau schedule: stop once a reduction takes the rate below this (e.g. a thousandth of "
        "--lr; a rate that small no longer moves the weights; spec default: none, only --patience stops)",
    )
    p.add_argument(
        "--ema",
        type=float,
        help="validate, keep and use an exponential moving average of the weights with this decay per step "
        "(e.g. 0.999; spec default: 0, off)",
    )
    p.add_argument(
        "--fixed-precise-bn",
        action="store_true",
        help="recompute the BatchNorm statistics before each validation from the same training particles every "
        "epoch (default: a new sample each epoch, the study's recipe), so that late in a run the validation loss "
        "moves only with the weights and early stopping is not restarted by the sample's noise",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split, shuffling and initialisation")
    flags(p, "device", "threads")
    p.add_argument("--precision", default="auto", choices=PRECISIONS, help="autocast dtype")
    _training_data_arguments(p)


def _training_data_arguments(p: argparse.ArgumentParser) -> None:
    """How ``train`` starts and what it trains on: augmentation, initial weights, fresh data, memory."""
    p.add_argument(
        "--augment",
        nargs="?",
        const="rot180",
        default="none",
        choices=AUGMENTS,
        help="augmentation: rot180 (the default when given: 180° rotations about z, y or x, "
        "keeping the molecule's hand and the wedge), flip (random flips, which also mirror it), rotate (a random "
        "rotation per particle, then only the data's measured frequencies kept: wedge and band limit), mixed (each "
        "particle rotated, or with probability 1/2 turned by 180°, which loses nothing) or spin (a random "
        "rotation per particle, its wedge turned with it: nothing re-masked)",
    )
    p.add_argument(
        "--no-prior-init",
        action="store_true",
        help="start heads from zero biases instead of the training split's class/voxel frequencies and mean density",
    )
    p.add_argument(
        "--init",
        metavar="RUN",
        help="start from a trained run's weights (its best.pt, or a checkpoint file): every weight of the same "
        "name and shape is copied, the rest start fresh (fine-tuning, pre-training on other data)",
    )
    p.add_argument(
        "--fresh-data",
        action="store_true",
        help="train each epoch on a set simulated afresh like the dataset (its simulation.json: same classes, "
        "imaging and SNR; new particles, poses, neighbours and noise), validating on the dataset's own split",
    )
    p.add_argument(
        "--in-memory",
        action="store_true",
        help="read every volume once, before training, instead of each batch's files every epoch "
        "(the run says when the dataset fits)",
    )
    flags(p, "no-progress")


@command("train", arguments=_train_arguments)
def cmd_train(args: argparse.Namespace) -> int:
    """train a spec on a dataset (the paper's protocol by default)"""
    from dsmnet.training.loop import train
    from dsmnet.training.settings import TrainConfig

    config = TrainConfig(
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        patience=args.patience,
        schedule=args.schedule,
        warmup=args.warmup,
        ema=args.ema,
        min_lr=args.min_lr,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        augment=args.augment,
        prior_init=not args.no_prior_init,
        precise_bn_fixed=args.fixed_precise_bn,
        progress=not args.no_progress,
        init=args.init,
        in_memory=args.in_memory,
        fresh=args.fresh_data,
    )
    summary = train(args.spec, args.data, args.out, config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        why = f" (stopped: {summary['stopped_because']})" if summary.get("stopped_because") else ""
        print(
            f"done: {summary['epochs']} epochs, best validation loss {summary['best_val_loss']:.4f} at epoch "
            f"{summary['best_epoch']}{why} → {args.out}"
        )
    return 0


ENSEMBLE_HELP = (
    "more runs whose outputs are averaged with RUN's (same heads, classes, box and voxel size; "
    "two seeds of one row: +0.004 accuracy measured)"
)
MASK_THRESHOLD_HELP = (
    "draw two-class masks where the foreground probability exceeds T, not at their argmax (0.5); "
    "`dsmnet evaluate --split val` names the best (segmenters draw small targets too small: 0.3-0.4 measured)"
)
TTA_HELP = "average every output over the four wedge-preserving 180° turns (4× the time; +0.01–0.02 accuracy measured)"


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or checkpoint file)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="train, val, test (of the run's split) or all")
    p.add_argument("--out", help="output folder (default RUN/evaluate-SPLIT, or RUN/evaluate-SPLIT-ensemble-N)")
    p.add_argument("--tta", action="store_true", help=TTA_HELP)
    p.add_argument("--ensemble", nargs="+", default=[], metavar="RUN", help=ENSEMBLE_HELP)
    p.add_argument("--mask-threshold", type=float, metavar="T", help=MASK_THRESHOLD_HELP)
    flags(p, "device", "threads", "json")


@command("evaluate", arguments=_evaluate_arguments)
def cmd_evaluate(args: argparse.Namespace) -> int:
    """metrics, confusion matrix, FSC and figures of a trained run"""
    from dsmnet.training.evaluate import evaluate, table

    results = evaluate(
        args.run, args.data, args.split, args.out, args.device, tta=args.tta, ensemble=args.ensemble,
        mask_threshold=_mask_threshold(args),
    )  # fmt: skip
    if args.json:  # stdout holds the JSON alone, for a pipe; the per-particle records stay in metrics.json
        brief = {k: v for k, v in results.items() if not k.startswith(("confusion", "fsc", "per_particle"))}
        print(json.dumps(brief, indent=1))
        print(f"wrote {results['out']}", file=sys.stderr)
    else:
        print(table(results))
        print(f"wrote {results['out']}")
    return 0


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or checkpoint file)")
    p.add_argument(
        "data", nargs="?", help="a dataset folder, a folder of MRC subtomograms or a STAR file with rlnImageName"
    )
    p.add_argument("--tomogram", help="the tomogram the --picks are in (boxes cut at the model's voxel size)")
    p.add_argument("--picks", help=PICKS_HELP)
    p.add_argument("--out", required=True, help="folder for predictions.star, per-class STARs and maps")
    tomogram_arguments(p)
    p.add_argument(
        "--skip-bad", action="store_true", help="skip (and list in skipped.star) subtomograms that cannot be predicted"
    )
    p.add_argument("--no-maps", action="store_true", help="no tomogram-sized label and density maps")
    p.add_argument("--tta", action="store_true", help=TTA_HELP)
    p.add_argument("--ensemble", nargs="+", default=[], metavar="RUN", help=ENSEMBLE_HELP)
    p.add_argument("--mask-threshold", type=float, metavar="T", help=MASK_THRESHOLD_HELP)
    flags(p, "device", "threads")
    p.add_argument("--batch-size", type=int, default=32)
    flags(p, "no-progress", "overwrite")


@command("predict", arguments=_predict_arguments)
def cmd_predict(args: argparse.Namespace) -> int:
    """classes, masks and densities for subtomograms, or for a tomogram's picks (with label maps)"""
    from dsmnet.infer.predict import predict

    if args.data is None and args.picks is None:
        raise UsageError("predict needs DATA (a dataset folder, a folder of MRCs or a STAR file) or --picks")
    r = predict(
        args.run,
        args.data,
        args.out,
        tomogram=args.tomogram,
        picks=args.picks,
        skip_bad=args.skip_bad,
        maps=not args.no_maps,
        device=args.device,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        tta=args.tta,
        ensemble=args.ensemble,
        mask_threshold=_mask_threshold(args),
        **tomogram_options(args),
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


@command("demo", arguments=_demo_arguments)
def cmd_demo(args: argparse.Namespace) -> int:
    """simulate, train DSM-Net, evaluate: the main job end to end (make demo)"""
    from dsmnet.reproduce.demo import run_demo

    return run_demo(Path(args.out), fresh=args.fresh)

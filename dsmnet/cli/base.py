"""What every command module shares: the command registry, the CLI's user error, common help."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from dsmnet.registry.errors import UserError
from dsmnet.training.options import BORDERS


class UsageError(UserError):
    """Bad command-line input, reported as ``dsmnet: error: …`` with exit code 2."""


COMMANDS: list[tuple[tuple, dict, Callable[[argparse.ArgumentParser], None], Callable]] = []


def command(*names: str, arguments: Callable[[argparse.ArgumentParser], None], **kwargs):
    """Register a subcommand: its name, the function adding its arguments (written just above its
    handler), and the handler, whose docstring is the command's help."""

    def register(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        kwargs.setdefault("help", " ".join((handler.__doc__ or "").split()))
        COMMANDS.append((names, kwargs, arguments, handler))
        return handler

    return register


PICKS_HELP = (
    "STAR file of picks: RELION-4 rlnCoordinateX/Y/Z (0-based pixels of the tomogram) or RELION-5 "
    "rlnCenteredCoordinateX/Y/ZAngst (Å from the tomogram's centre), detected from the columns"
)
TOMOGRAMS_HELP = (
    "a folder of tomograms named after rlnTomoName, or a RELION tomograms.star (picks from several tomograms)"
)


# the flags several commands share, one name and one meaning each (``--data`` and ``--out`` are
# written at each command: what they hold differs)
FLAGS: dict[str, dict] = {
    "json": {"action": "store_true", "help": "print the result as JSON"},
    "overwrite": {"action": "store_true", "help": "replace an existing --out folder"},
    "device": {"default": "auto", "help": "auto (CUDA if available), cpu, cuda, cuda:1…"},
    "no-progress": {"action": "store_true", "help": "no progress bars"},
    "threads": {
        "type": int,
        "help": "CPU threads (default: every core). Two runs side by side: 1 each, else each runs ~2x slower "
        "(measured: 4 threads on 2 cores)",
    },
}


def apply_threads(args: argparse.Namespace) -> None:
    """``--threads N``: torch's CPU threads for this command (a worker process is given its own)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be at least 1 (got {threads})")
    import torch

    torch.set_num_threads(threads)


def flags(p: argparse.ArgumentParser, *names: str) -> None:
    """Adds the shared flags ``names`` (keys of :data:`FLAGS`) to a command."""
    for name in names:
        p.add_argument(f"--{name}", **FLAGS[name])


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


def tomogram_arguments(p: argparse.ArgumentParser) -> None:
    """What extract and predict share: where the tomograms are, their voxel size, the border."""
    p.add_argument("--tomograms", help=TOMOGRAMS_HELP)
    p.add_argument(
        "--no-rescale", action="store_true", help="refuse a tomogram at another voxel size instead of resampling"
    )
    p.add_argument("--border", default="skip", choices=BORDERS, help="picks whose box crosses the border")
    p.add_argument(
        "--picks-pixel-size",
        type=float,
        metavar="ANGSTROM",
        help="RELION-4 coordinates are in pixels of this size (default: read from the files: unbinned tilt-series "
        "pixels where the optics table or tomograms.star gives rlnTomoTiltSeriesPixelSize, else the tomogram's)",
    )


def tomogram_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of extract and predict that :func:`tomogram_arguments` adds."""
    if args.picks_pixel_size is not None and not args.picks_pixel_size > 0:
        raise UsageError(f"--picks-pixel-size must be a positive size in Å, not {args.picks_pixel_size}")
    return {
        "tomograms": args.tomograms,
        "rescale": not args.no_rescale,
        "border": args.border,
        "picks_pixel_size": args.picks_pixel_size,
    }

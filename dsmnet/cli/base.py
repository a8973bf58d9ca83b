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
    """Register a subcommand: its name and help, the function adding its arguments (written just
    above its handler), and the handler."""

    def register(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
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

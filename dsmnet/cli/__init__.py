"""The ``dsmnet`` command line. Heavy modules are imported inside each command, so that
``dsmnet --help`` answers at once.

Exit codes (:func:`dsmnet.registry.errors.run_command`): 0 success, 2 bad input (a clear one-line
message, no traceback), 130 Ctrl-C, 1 a closed output pipe or anything else.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from dsmnet.cli.base import COMMANDS, apply_threads
from dsmnet.registry.errors import run_command

# isort: off
# each module registers its commands; in this order they are listed by ``dsmnet --help``
from dsmnet.cli import specs, data, runs, study, tools  # noqa: F401, E402
# isort: on


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsmnet",
        description="Multi-task deep learning on cryo-ET subtomograms (DSM-Net), composed from YAML specs.",
    )
    from dsmnet import __version__

    parser.add_argument("--version", action="version", version=f"dsmnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for names, kwargs, arguments, handler in COMMANDS:
        p = sub.add_parser(*names, **kwargs)
        arguments(p)
        p.set_defaults(func=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func

    def run() -> int:
        apply_threads(args)
        return func(args)

    return run_command(run, "dsmnet")


if __name__ == "__main__":
    raise SystemExit(main())

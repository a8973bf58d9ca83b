"""The one base of every error a user can cause, at the bottom of the layering (registry → core →
components → simulate → training → reproduce → cli), so that each layer's errors derive from it
without importing upwards, and the CLI catches this class and nothing else: one line, exit 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input, a bad spec or plugin, an output in the way: the message says what and where."""


class PluginError(UserError, RuntimeError):
    """A plugin could not be loaded, or two plugins registered the same name."""


def run_command(body: Callable[[], int | None], prog: str) -> int:
    """The exit status of a command line's ``body``, as every entry point reports it: bad input
    one line on stderr (``prog: error: …``) and 2; Ctrl-C ``prog: interrupted`` and 130; a reader
    that went away (``… | head``) ends the output quietly with 1, as Python's documentation
    advises, instead of a traceback. Anything else propagates (a bug: its traceback is wanted)."""
    try:
        status = body() or 0
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return status
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # what is left in stdout's buffer would fail again at exit: send it nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1

"""Where and when a result came from: the git revision of the code that made it, the time in UTC."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]  # the checkout dsmnet is imported from


# pathspecs from the checkout's top, whatever folder git runs in
NOT_CODE = (":(top,exclude)results", ":(top,exclude)*.md", ":(top,exclude)*.png")

# `git archive` writes the commit's short hash here (`export-subst` in .gitattributes), so a copy
# of the code installed from an archive, with no .git beside it, still says which commit it is
ARCHIVED = "$Format:%h$"


def _archived() -> str:
    return "unknown" if ARCHIVED.startswith("$") else ARCHIVED


def git_revision() -> str:
    """The short hash of the commit dsmnet's own checkout is at (wherever the command runs), with
    ``+changes`` when its tracked code differs from it (results, figures and Markdown left out: a
    study writing its tables is not a code change); outside a checkout, the commit a `git archive`
    of it was made from, else ``unknown``."""
    git = ["git", "-C", str(SOURCE)]
    try:
        out = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        head = out.stdout.strip()
        if out.returncode or not head:
            return _archived()
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", ":/", *NOT_CODE],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head + ("+changes" if status.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return _archived()


def utc_now() -> str:
    """The time now in ISO 8601 UTC to the second (``2026-12-07T08:25:03Z``): when a training session
    began or an epoch ended, in a run's records."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

"""Where a result came from: the git revision of the code that made it."""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]  # the checkout dsmnet is imported from


# pathspecs from the checkout's top, whatever folder git runs in
NOT_CODE = (":(top,exclude)results", ":(top,exclude)*.md", ":(top,exclude)*.png")


def git_revision() -> str:
    """The short hash of the commit dsmnet's own checkout is at (wherever the command runs), with
    ``+changes`` when its tracked code differs from it (results, figures and Markdown left out: a
    study writing its tables is not a code change); ``unknown`` outside a git checkout."""
    git = ["git", "-C", str(SOURCE)]
    try:
        out = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        head = out.stdout.strip()
        if out.returncode or not head:
            return "unknown"
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", ":/", *NOT_CODE],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head + ("+changes" if status.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"

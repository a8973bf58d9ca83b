"""Where a result came from: the git revision of the code that made it."""

from __future__ import annotations

import subprocess


def git_revision() -> str:
    """The short hash of the checked-out commit, or ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"

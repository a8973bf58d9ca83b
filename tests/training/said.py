"""What a training says (shared by the tests that read a run's log lines)."""

from __future__ import annotations

from dsmnet.training.loop import train


def said(spec, data, out, config) -> list[str]:
    """The lines ``train`` logs for one run."""
    lines: list[str] = []
    train(spec, data, out, config, log=lines.append)
    return lines

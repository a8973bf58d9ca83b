"""How much the training averages owe to exact poses: template matching with the class averages of
seed 0's training split of dataset A, each training particle's pose off by a random rotation of
σ degrees r.m.s. (an alignment's error), scored on the 3000 test particles.

Run (from the repository, the study's data in place; ~4 min of one core a point):
    python results/converged/averages/pose_error.py results/converged
Writes ``pose_error.json`` and ``pose_error.txt`` beside this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from curve import sweep  # this folder's: the same sweep, another setting

ERRORS = (10.0, 20.0, 40.0)  # degrees r.m.s.; 0 is the reference row itself (0.758)

if __name__ == "__main__":
    degrees = lambda _record, setting: f"{setting['pose_error']:.0f}"  # noqa: E731
    sweep(Path(sys.argv[1]), "pose_error", "pose error (° r.m.s.)", [{"pose_error": e} for e in ERRORS], degrees)

"""The study's wall time, kept in ``study.json`` across invocations.

An interrupted and resumed study, or one re-run to redraw its tables, reports the time all its
parts took. Each invocation is kept as its (start, end) on the clock, and the wall time is the
length of the union of the spans, so invocations that ran side by side are not counted twice.

An invocation writes its span as soon as it starts work and moves its end on every ``every``
seconds while it runs, so one that is killed (a stopped session, an out-of-memory kill) still
counts, up to its last beat.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from pathlib import Path

from dsmnet.core.fsutil import atomic_write_text

try:  # POSIX: invocations side by side take turns at study.json
    import fcntl
except ImportError:  # pragma: no cover - elsewhere a lost beat is repaired by the next one
    fcntl = None


@contextlib.contextmanager
def _locked(out: Path):
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(out / ".study.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _union(spans: list[list[float]]) -> float:
    wall, reach = 0.0, -math.inf
    for a, b in sorted(spans):
        wall += max(0.0, b - max(a, reach))
        reach = max(reach, b)
    return wall


def record_span(out: Path, start: float, end: float) -> tuple[float, int]:
    """Keep the span (start, end) of the invocation that started at ``start`` in
    ``out/study.json`` (a new span, or its earlier end moved on); returns the study's wall time in
    seconds and the number of invocations."""
    path = out / "study.json"
    with _locked(out):
        state = json.loads(path.read_text()) if path.is_file() else {}
        spans = [list(s) for s in state.get("spans", [])]
        invocations = state.get("invocations", 0)
        mine = [s for s in spans if s[0] == start]
        if mine:
            mine[0][1] = max(mine[0][1], end)
        else:
            spans.append([start, end])
            invocations += 1
        # files older than spans hold only a total, kept as it was
        earlier = state.get("earlier_seconds", 0.0 if "spans" in state else state.get("seconds", 0.0))
        state = {
            "seconds": earlier + _union(spans),
            "invocations": invocations,
            "spans": spans,
            "earlier_seconds": earlier,
        }
        atomic_write_text(path, json.dumps(state, indent=1) + "\n")
    return state["seconds"], state["invocations"]


class StudyClock:
    """This invocation's span in ``out/study.json``: :meth:`begin` writes it, a background thread
    moves its end on every ``every`` seconds, :meth:`end` writes it a last time."""

    def __init__(self, out: Path, every: float = 60.0):
        self.out, self.every, self.start = out, every, time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        record_span(self.out, self.start, time.time())
        self._thread = threading.Thread(target=self._beat, name="study-clock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(OSError):  # a full disk or a moved folder: the next beat retries
                record_span(self.out, self.start, time.time())

    def end(self) -> tuple[float, int] | None:
        """The study's wall time and invocations with this one's span closed; None if it never began."""
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._thread = None
        return record_span(self.out, self.start, time.time())

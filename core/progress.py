"""Progress of long commands: a bar on a terminal, plain lines in a log.

On a terminal (stderr is a TTY) a ``tqdm`` bar is drawn; otherwise (a log file, a CI job, a
study worker) a plain line is logged at every tenth of the way and at the end, so a log shows
how far a command got without being flooded.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm


class Progress:
    """Count ``total`` items of work, shown as ``desc``."""

    def __init__(
        self, total: int, desc: str, unit: str = "it", log: Callable[[str], None] = print, enabled: bool = True
    ):
        self.total, self.desc, self.unit, self.log = max(int(total), 0), desc, unit, log
        self.done = 0
        self.enabled = enabled
        self.started = time.perf_counter()
        self._next_line = 0.1
        terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=self.total, desc=desc, unit=unit, leave=False) if terminal else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and self.total and self.done / self.total >= self._next_line:
            while self.done / self.total >= self._next_line:
                self._next_line += 0.1
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            self.log(f"{self.desc}: {self.done}/{self.total} {self.unit} ({rate:.1f}/s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

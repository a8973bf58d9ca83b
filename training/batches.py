"""Batches: their bounds over a split, and reading them ahead of the model in a thread."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor


def prefetch(items, load, depth: int = 2):
    """``load(item)`` for each item, computed in a background thread up to ``depth`` items ahead
    and yielded in order (the next batch is read from disk and augmented while the model trains
    on this one). The items are drawn from ``items`` in that thread too, so an iterator that does
    work per item (predict cuts each box from its tomogram as it is drawn) does it off the main
    thread. Draws and loads run one at a time, in order, so seeded augmentation stays
    reproducible."""
    it, end = iter(items), object()

    def draw_and_load():
        item = next(it, end)
        return end if item is end else load(item)

    with ThreadPoolExecutor(1) as pool:
        queue = deque(pool.submit(draw_and_load) for _ in range(max(depth, 1)))
        while (result := queue.popleft().result()) is not end:
            queue.append(pool.submit(draw_and_load))
            yield result


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive batches of ``size`` over ``n`` items; a lone last item joins
    the batch before it, since a batch of one cannot be batch-normalised in training mode."""
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds

"""The one timing helper the ratio gates share: a warm median, so a gate compares steady states."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_s(fn: Callable[[], object], rounds: int = 15) -> float:
    """Median wall time of ``fn`` over ``rounds`` calls, after one untimed warm-up call.

    The median, not the mean: on a shared CI machine a few rounds are always preempted, and those outliers say
    nothing about the code under test.
    """
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)

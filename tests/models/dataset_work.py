"""Stand-ins for a dataset kind's renderer, importable by name from the dataset's worker processes."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from models.data.cli import JobResult, SlideJob


def echo(job: SlideJob) -> JobResult:
    """One row per item, naming the item and the process that made it."""
    return job.count, [{"item": job.first + i, "pid": os.getpid()} for i in range(job.count)]


def die_after_first(job: SlideJob) -> JobResult:
    """The first job comes back; any other kills its worker process as the kernel's OOM killer would."""
    if job.first > 0:
        os._exit(137)
    return echo(job)


def die_beside_a_stubborn_worker(job: SlideJob) -> JobResult:
    """The first job ignores SIGTERM and keeps its worker busy; the second kills its own worker.

    The first worker then outlives the pool's own teardown (which only sends SIGTERM), as a worker spawned
    during that teardown does on Python 3.11.
    """
    if job.first == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(300.0)  # longer than the test waits: only a kill ends it
    elif job.first == job.count:
        time.sleep(0.5)
        os._exit(137)
    return echo(job)


def refuse_second(job: SlideJob) -> JobResult:
    """The second job raises, as a renderer does on a value it cannot use."""
    if job.first == job.count:
        raise ValueError(f"slide {job.slide_seed}: a value the renderer cannot use")
    return echo(job)


def rows(result: list[dict[str, Any]]) -> list[int]:
    """The item numbers of ``run_jobs``' rows, in the order they came back."""
    return [r["item"] for r in result]


def power(base: int, exponent: int) -> tuple[int, int]:
    """``base ** exponent`` and the process that worked it out."""
    return base ** exponent, os.getpid()

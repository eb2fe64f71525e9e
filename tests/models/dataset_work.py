"""Stand-ins for a dataset kind's renderer, importable by name from the dataset's worker processes."""

from __future__ import annotations

import os
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


def refuse_second(job: SlideJob) -> JobResult:
    """The second job raises, as a renderer does on a value it cannot use."""
    if job.first == job.count:
        raise ValueError(f"slide {job.slide_seed}: a value the renderer cannot use")
    return echo(job)


def rows(result: list[dict[str, Any]]) -> list[int]:
    """The item numbers of ``run_jobs``' rows, in the order they came back."""
    return [r["item"] for r in result]

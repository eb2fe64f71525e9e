"""Worker processes for the data renderers and trainers: they start clean, keep order and fail loudly.

Workers come from a fork server, not from forking the caller: a process that has already run torch, ONNX
Runtime or a parallel kernel holds native thread pools (OpenMP's among them) whose locks a plain ``fork``
copies in whatever state they were in, and a child that then enters such a pool can wait on a lock no thread
will ever release. That hung a test worker's dataset for ten minutes on CI. The server is a fresh
interpreter, so its children start clean.

A worker that dies (killed, out of memory) ends the run with :class:`WorkerDied`, never a hang:
``multiprocessing.Pool`` waits for a dead worker's result forever, and Python 3.11's
``ProcessPoolExecutor`` can spawn a worker during its own teardown after a death that nothing then stops
(:func:`_kill_children_since`). A job that raises ends the run with its exception; jobs not yet started are
dropped.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerDied(OSError):
    """A worker process died before its job was done (killed, or out of memory)."""


def ordered_results(work: Callable[..., T], jobs: Sequence[tuple[Any, ...]], workers: int,
                    preload: Sequence[str] = ()) -> Iterator[T]:
    """``work(*job)`` for each job, in the jobs' order; in worker processes when ``workers > 1``.

    ``work`` must be importable by name (a module-level function); ``preload`` names modules the fork server
    imports once, so each worker does not.

    Raises
    ------
    WorkerDied
        A worker process died before its job finished.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield work(*job)
        return
    ours_before = set(multiprocessing.active_children())
    futures: list[Future[T]] = []
    handed = 0
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=_context(preload)) as pool:
        try:
            futures.extend(pool.submit(work, *job) for job in jobs)
            for f in futures:
                yield f.result()
                handed += 1
        except BrokenProcessPool:
            _kill_children_since(ours_before)
            raise WorkerDied(f"a worker process died (killed, or out of memory?) after {handed} of {len(jobs)} "
                             f"jobs had come back") from None
        finally:
            for f in futures:
                f.cancel()  # a no-op when all came back; otherwise the pool's exit waits only for running jobs


def _context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """A fork server that imports ``preload`` once, where the platform has one; else fresh interpreters."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))  # no effect once the server runs: its children import what they use
    return ctx


def _kill_children_since(before: set[multiprocessing.process.BaseProcess]) -> None:
    """Kill the worker processes started since ``before``, so a broken pool's exit has none left to wait for.

    Python 3.11's pool spawns workers from ``submit`` while its manager thread may already be tearing the pool
    down after a death: a worker spawned after the teardown's terminate pass is never signalled, waits for
    work forever, and the teardown's join of it never returns (seen on CI: a test hung ten minutes). Every
    submit has returned when this runs, so no worker can appear after it.
    """
    for child in set(multiprocessing.active_children()) - before:
        child.kill()

"""Worker processes (`models.workers`, also through `run_jobs`): results in order, loud failures, no hang."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from models.data.cli import plan, run_jobs
from models.data.randomise import Ranges
from models.workers import WorkerDied, ordered_results
from tests.models import dataset_work


def _jobs(tmp_path: Path, count: int = 12, per_slide: int = 2):
    return plan("detection", "train", 5, count, tmp_path, Ranges(), False, (64, 48), per_slide)


def test_workers_give_the_rows_of_one_process_in_item_order(tmp_path):
    jobs = _jobs(tmp_path)
    serial = run_jobs(jobs, 1, work=dataset_work.echo)
    parallel = run_jobs(jobs, 2, work=dataset_work.echo)
    assert dataset_work.rows(parallel) == dataset_work.rows(serial) == list(range(12))
    assert {r["pid"] for r in serial} == {os.getpid()}
    assert os.getpid() not in {r["pid"] for r in parallel}


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(OSError, match="worker process died"):
        run_jobs(_jobs(tmp_path), 2, work=dataset_work.die_after_first)
    assert time.monotonic() - t0 < 60.0


@pytest.mark.timeout(120)
def test_a_worker_that_outlives_the_pools_teardown_is_killed_not_waited_for(tmp_path):
    before = set(multiprocessing.active_children())
    t0 = time.monotonic()
    with pytest.raises(OSError, match="worker process died"):
        run_jobs(_jobs(tmp_path), 2, work=dataset_work.die_beside_a_stubborn_worker)
    assert time.monotonic() - t0 < 60.0
    assert set(multiprocessing.active_children()) <= before


def test_a_job_that_raises_ends_the_run_with_its_error(tmp_path):
    with pytest.raises(ValueError, match="a value the renderer cannot use"):
        run_jobs(_jobs(tmp_path), 2, work=dataset_work.refuse_second)


def test_ordered_results_spreads_argument_tuples_over_workers_in_order():
    jobs = [(b, 3) for b in range(9)]
    serial = list(ordered_results(dataset_work.power, jobs, 1))
    parallel = list(ordered_results(dataset_work.power, jobs, 2, [dataset_work.__name__]))
    assert [v for v, _ in parallel] == [v for v, _ in serial] == [b ** 3 for b in range(9)]
    assert os.getpid() not in {pid for _, pid in parallel}


def test_a_dead_worker_is_a_worker_died_error_an_oserror():
    assert issubclass(WorkerDied, OSError)

"""Kernel benchmarks: each kernel and its OpenCV twin on the same frame, at 640x480 and 2592x1944.

The two sides of a case share a benchmark group, so pytest-benchmark's table shows them together; the
ratio gate itself is ``bench/ratios.py`` (this file only records timings, for baselines and regressions).
The cases live in :mod:`kernels.benchcases`, shared with the ratio command.
"""

from __future__ import annotations

from typing import Any

import pytest

import kernels
from kernels.benchcases import CASES, SIZES, make_case_frame

kernels.warmup()


@pytest.mark.parametrize("side", ["ours", "opencv"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for h, w in SIZES])
def test_kernel(benchmark: Any, case: Any, size: tuple[int, int], side: str) -> None:
    h, w = size
    ours, opencv = case.setup(make_case_frame(h, w))
    fn = ours if side == "ours" else opencv
    benchmark.group = f"{case.name} {w}x{h}"
    benchmark.extra_info.update(kernel=case.name, side=side, size=f"{w}x{h}", bar=case.bar)
    result = benchmark.pedantic(fn, warmup_rounds=1, rounds=20, iterations=5)
    assert result is not None
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["fps_median"] = 1.0 / stats.stats.median

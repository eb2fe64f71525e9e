"""Bad input raises ValueError naming the problem, before any compiled code runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import kernels as K
from kernels import analysis, background, blobs, focus, threshold

GOOD = np.zeros((20, 30), np.uint8)

FRAME_FUNCS: list[Callable[[np.ndarray], Any]] = [
    lambda f: K.threshold(f, 10),
    lambda f: K.otsu(f),
    lambda f: K.otsu_level(f),
    lambda f: K.adaptive_mean(f, 3, 1),
    lambda f: K.adaptive_gaussian(f, 3, 1),
    lambda f: K.connected_components(f),
    lambda f: K.laplacian_variance(f),
    lambda f: K.tenengrad(f),
    lambda f: K.brenner(f),
    lambda f: K.normalized_variance(f),
    lambda f: K.analyse_frame(f, block_size=3),
    lambda f: K.background_threshold(f),
    lambda f: K.background_map(f),
]

BAD_FRAMES = [
    (GOOD.astype(np.float32), "dtype uint8"),
    (GOOD.astype(np.uint16), "dtype uint8"),
    (np.zeros((4, 5, 3), np.uint8), "2-D"),
    (np.zeros(10, np.uint8), "2-D"),
    (np.zeros((20, 30), np.uint8)[:, ::2], "C-contiguous"),
    (np.asfortranarray(np.zeros((20, 30), np.uint8)), "C-contiguous"),
    (np.zeros((0, 30), np.uint8), "empty"),
    ([[1, 2], [3, 4]], "numpy array"),
]


@pytest.fixture(autouse=True)
def _no_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace every compiled core with a tripwire: validation must fail before reaching one."""
    def tripwire(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("compiled code ran on bad input")

    for module in (threshold, blobs, focus, analysis, background):
        for name in dir(module):
            if name.endswith("_core"):
                monkeypatch.setattr(module, name, tripwire)


@pytest.mark.parametrize("func", FRAME_FUNCS)
@pytest.mark.parametrize(("bad", "words"), BAD_FRAMES, ids=[w for _, w in BAD_FRAMES])
def test_bad_frame(func: Callable[[np.ndarray], Any], bad: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        func(bad)


@pytest.mark.parametrize("func", [K.adaptive_mean, K.adaptive_gaussian])
@pytest.mark.parametrize(("block", "words"), [(4, "odd"), (1, "odd"), (-3, "odd"), (3.0, "integer"),
                                              (True, "integer"), (21, "<= 20"), (2049, "<= 20")])
def test_bad_block_size(func: Callable[..., Any], block: Any, words: str) -> None:
    with pytest.raises(ValueError, match=f"block_size.*{words}|{words}.*block_size|block_size"):
        func(GOOD, block, 1)
    with pytest.raises(ValueError, match="block_size"):
        K.analyse_frame(GOOD, "mean", block_size=block)


def test_block_size_above_hard_limit() -> None:
    big = np.zeros((2100, 2100), np.uint8)
    with pytest.raises(ValueError, match="block_size must be <= 2047"):
        K.adaptive_mean(big, 2049, 0)


@pytest.mark.parametrize(("call", "words"), [
    (lambda: K.threshold(GOOD, 300), "thresh"),
    (lambda: K.threshold(GOOD, float("nan")), "thresh"),
    (lambda: K.threshold(GOOD, 10, maxval=256), "maxval"),
    (lambda: K.adaptive_mean(GOOD, 3, "x"), "c must be"),
    (lambda: K.threshold(GOOD, 10, out=np.zeros((20, 31), np.uint8)), "out must have shape"),
    (lambda: K.threshold(GOOD, 10, out=np.zeros((20, 30), np.int32)), "out must have dtype"),
    (lambda: K.adaptive_mean(GOOD, 3, 0, out=GOOD), "overlap"),
    (lambda: K.connected_components(GOOD, 6), "connectivity must be 4 or 8"),
    (lambda: K.connected_components(GOOD, labels_out=np.zeros((20, 30), np.int64)), "labels_out"),
    (lambda: K.laplacian_variance(GOOD, (25, 0, 10, 5)), "rect"),
    (lambda: K.laplacian_variance(GOOD, (0, 0, 0, 5)), "rect"),
    (lambda: K.laplacian_variance(GOOD, (0, 0, 5)), "rect"),
    (lambda: K.brenner(GOOD, (0, 0, 2, 5)), "at least 3x1"),
    (lambda: K.analyse_frame(GOOD, "sobel"), "method must be one of"),
    (lambda: K.analyse_frame(GOOD, "global", level=-1), "level"),
    (lambda: K.analyse_frame(GOOD, "global", min_area=0), "min_area"),
    (lambda: K.analyse_frame(GOOD, "global", min_area=5, max_area=4), "max_area"),
    (lambda: K.analyse_frame(GOOD, "global", mask_out=np.zeros((2, 2), np.uint8)), "mask_out"),
    (lambda: K.analyse_frame(GOOD, "background", contrast=1.0), "contrast must be in"),
    (lambda: K.analyse_frame(GOOD, "background", contrast=float("nan")), "contrast must be finite"),
    (lambda: K.analyse_frame(GOOD, "background", invert=False), "invert must be True"),
    (lambda: K.background_threshold(GOOD, 0.0), "contrast must be in"),
    (lambda: K.background_threshold(GOOD, 0.1, maxval=300), "maxval"),
    (lambda: K.background_threshold(GOOD, 0.1, out=GOOD), "overlap"),
    (lambda: K.background_map(GOOD, float("inf")), "contrast must be finite"),
    (lambda: K.filter_by_area(np.zeros((3, 4), np.int32)), "stats must be"),
])
def test_bad_parameter(call: Callable[[], Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        call()

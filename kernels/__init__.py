"""Numba kernels on 2-D uint8 frames: thresholds, focus measures, blob search (docs/design.md §2).

Every public function is plain Python that validates its input (raising ``ValueError`` before any compiled
code runs) and then calls a private ``@njit(cache=True)`` core. Compiled code is cached in ``__pycache__``
beside these sources; where that directory is read-only (an installed appliance) set ``NUMBA_CACHE_DIR``
to a writeable directory before importing (see docs/kernels.md). :func:`warmup` compiles, or loads from
the cache, every signature the appliance uses, so JIT time is paid once at start.
"""

from __future__ import annotations

import numpy as np

from kernels.analysis import METHODS, FrameAnalysis, analyse_frame
from kernels.background import background_map, background_threshold
from kernels.blobs import Components, connected_components, filter_by_area
from kernels.focus import brenner, laplacian_variance, normalized_variance, tenengrad
from kernels.threshold import (
    adaptive_gaussian,
    adaptive_mean,
    gaussian_kernel,
    otsu,
    otsu_level,
    threshold,
)

__all__ = [
    "METHODS",
    "Components",
    "FrameAnalysis",
    "adaptive_gaussian",
    "adaptive_mean",
    "analyse_frame",
    "background_map",
    "background_threshold",
    "brenner",
    "connected_components",
    "filter_by_area",
    "gaussian_kernel",
    "laplacian_variance",
    "normalized_variance",
    "otsu",
    "otsu_level",
    "tenengrad",
    "threshold",
    "warmup",
]


def warmup() -> None:
    """Compile (or load from the cache) every kernel signature, on a tiny frame.

    All cores take C-contiguous 2-D uint8 frames; Numba types a read-only array (a camera buffer, a
    memory-mapped file) apart from a writeable one, so both are compiled. The blob search is also run on an
    unaligned mask (no uint64 word view), its other specialisation.
    """
    base = np.zeros((16, 24), np.uint8)
    base[4:9, 5:12] = 200
    base[10:14, 15:20] = 90
    frozen = base.copy()
    frozen.setflags(write=False)
    for frame in (base, frozen):
        _warm_frame(frame)


def _warm_frame(frame: np.ndarray) -> None:
    threshold(frame, 100)
    otsu(frame)
    otsu_level(frame)
    background_threshold(frame)
    background_map(frame)
    adaptive_mean(frame, 3, 2.0)
    adaptive_gaussian(frame, 3, 2.0)
    binary = threshold(frame, 100)
    if not frame.flags.writeable:
        binary.setflags(write=False)
    connected_components(binary, 8)
    buf = np.zeros(binary.size + 1, np.uint8)
    unaligned = buf[1:].reshape(binary.shape)
    unaligned[:] = binary
    if not frame.flags.writeable:
        unaligned.setflags(write=False)
    connected_components(unaligned, 4)
    for rect in (None, (1, 1, 8, 8)):
        laplacian_variance(frame, rect)
        tenengrad(frame, rect)
        brenner(frame, rect)
        normalized_variance(frame, rect)
    for method in METHODS:
        analyse_frame(frame, method, block_size=3, mask_out=np.empty(frame.shape, np.uint8))
        analyse_frame(frame, method, block_size=3)

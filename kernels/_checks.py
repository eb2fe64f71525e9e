"""Input validation shared by the public kernels.

Every public kernel is plain Python: it calls these helpers, then a private compiled core. Errors are
therefore ordinary ``ValueError``s raised before any JIT code runs, and each names the parameter, the value
received and what would be accepted.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

#: Largest accepted block size: 255 * block**2 must fit the int32 sums of the adaptive kernels.
MAX_BLOCK_SIZE = 2047


def check_frame(frame: Any, name: str = "frame") -> np.ndarray:
    """Return ``frame`` if it is a non-empty, 2-D, C-contiguous uint8 array, else raise.

    Raises
    ------
    ValueError
        If ``frame`` is not an ndarray, not 2-D, not uint8, not C-contiguous or empty.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{name} must be a 2-D uint8 numpy array, got {type(frame).__name__}")
    if frame.ndim != 2:
        raise ValueError(f"{name} must be 2-D (grayscale), got {frame.ndim}-D with shape {frame.shape}")
    if frame.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8, got {frame.dtype}")
    if frame.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {frame.shape}")
    if not frame.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray), got strides {frame.strides}")
    return frame


def check_out(out: Any, shape: tuple[int, ...], dtype: type, frame: np.ndarray | None = None,
              name: str = "out") -> np.ndarray:
    """Return ``out`` checked against ``shape``/``dtype``, or a new empty array when ``out`` is None.

    ``frame``, when given, must not share memory with ``out`` (the kernel reads it after writing ``out``).

    Raises
    ------
    ValueError
        If ``out`` has the wrong type, shape or dtype, is not C-contiguous, is read-only or overlaps ``frame``.
    """
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or None, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {out.shape}")
    if out.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous, got strides {out.strides}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if frame is not None and np.may_share_memory(out, frame):
        raise ValueError(f"{name} must not overlap the input frame (this kernel cannot run in place)")
    return out


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[low, high]`` (``high`` None: unbounded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < low or (high is not None and v > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, got {v}")
    return v


def check_real(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a finite float, optionally within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {v}")
    return v


def check_contrast(contrast: Any) -> float:
    """Return ``contrast`` as a float if it is a real number strictly between 0 and 1."""
    cv = check_real(contrast, "contrast")
    if not 0.0 < cv < 1.0:
        raise ValueError(f"contrast must be in (0, 1) (a fraction of the background), got {cv}")
    return cv


def check_block_size(block_size: Any, shape: tuple[int, ...]) -> int:
    """Return ``block_size`` if it is odd, >= 3 and fits the frame (``<= min(H, W)`` and ``<= 2047``)."""
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral):
        raise ValueError(f"block_size must be an odd integer >= 3, got {block_size!r}")
    b = int(block_size)
    if b < 3 or b % 2 == 0:
        raise ValueError(f"block_size must be an odd integer >= 3, got {b}")
    limit = min(min(shape), MAX_BLOCK_SIZE)
    if b > limit:
        raise ValueError(f"block_size must be <= {limit} (the frame's smaller side {min(shape)}, "
                         f"at most {MAX_BLOCK_SIZE}), got {b}")
    return b


def check_connectivity(connectivity: Any) -> int:
    """Return ``connectivity`` if it is 4 or 8."""
    if isinstance(connectivity, bool) or connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return int(connectivity)


def check_rect(rect: Any, shape: tuple[int, ...], min_size: tuple[int, int] = (1, 1)) -> tuple[int, int, int, int]:
    """Return ``rect`` = (x, y, w, h) as ints, or the whole frame when ``rect`` is None.

    The rectangle must lie inside the frame and be at least ``min_size`` = (min_w, min_h) pixels.
    """
    height, width = shape
    if rect is None:
        x, y, w, h = 0, 0, width, height
    else:
        if not isinstance(rect, (tuple, list)) or len(rect) != 4:
            raise ValueError(f"rect must be a tuple (x, y, w, h) of 4 integers or None, got {rect!r}")
        for v in rect:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"rect must hold 4 integers (x, y, w, h), got {rect!r}")
        x, y, w, h = (int(v) for v in rect)
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width or y + h > height:
            raise ValueError(f"rect (x, y, w, h) must lie inside the {width}x{height} frame with w, h >= 1, "
                             f"got {tuple(rect)}")
    if w < min_size[0] or h < min_size[1]:
        raise ValueError(f"rect must be at least {min_size[0]}x{min_size[1]} pixels for this measure, "
                         f"got {w}x{h}")
    return x, y, w, h

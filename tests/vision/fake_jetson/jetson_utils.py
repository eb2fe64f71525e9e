"""A fake ``jetson_utils`` for tests: ``cudaFromNumpy`` and the ``cudaImage`` it returns.

Follows jetson-utils' documented behaviour (jetson-inference ``docs/aux-image.md``, "Converting from Numpy
Arrays" and the image-format table), the awkward parts included:

- only ``uint8`` and ``float32`` arrays convert; the format follows dtype and channels: (H, W) or (H, W, 1)
  -> ``gray8``/``gray32f``, (H, W, 3) -> ``rgb8``/``rgb32f``, (H, W, 4) -> ``rgba8``/``rgba32f``;
  anything else raises;
- the data is *copied* into (mapped) CUDA memory: later changes to the numpy array do not reach the image;
- a non-C-contiguous array is refused here (the real call copies the raw buffer, so a strided view would
  arrive scrambled; refusing makes a caller's missing ``ascontiguousarray`` fail loudly in tests).
"""

from __future__ import annotations

import numpy as np

_FORMATS = {(np.dtype(np.uint8), 1): "gray8", (np.dtype(np.uint8), 3): "rgb8", (np.dtype(np.uint8), 4): "rgba8",
            (np.dtype(np.float32), 1): "gray32f", (np.dtype(np.float32), 3): "rgb32f",
            (np.dtype(np.float32), 4): "rgba32f"}


class cudaImage:  # noqa: N801 - the real class's name
    """An image in CUDA memory (here: a private numpy copy)."""

    def __init__(self, array: np.ndarray, fmt: str) -> None:
        self._array = array
        self.format = fmt
        self.height, self.width = array.shape[:2]
        self.channels = array.shape[2] if array.ndim == 3 else 1
        self.shape = array.shape

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


def cudaFromNumpy(array, isBGR=False):  # noqa: N802, N803 - the real function's names
    a = array
    if not isinstance(a, np.ndarray):
        raise TypeError("jetson.utils -- cudaFromNumpy() expects a numpy ndarray")
    channels = 1 if a.ndim == 2 else (a.shape[2] if a.ndim == 3 else 0)
    fmt = _FORMATS.get((a.dtype, channels))
    if fmt is None:
        raise Exception(f"jetson.utils -- cudaFromNumpy() unsupported array: dtype {a.dtype}, shape {a.shape}")
    if not a.flags["C_CONTIGUOUS"]:
        raise Exception("jetson.utils -- cudaFromNumpy() array is not C-contiguous")
    if isBGR and fmt.startswith("rgb"):
        fmt = "bgr" + fmt[3:]
    return cudaImage(a.copy(), fmt)

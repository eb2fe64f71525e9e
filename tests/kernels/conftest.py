"""Test frames for the kernel tests: seeded random noise, synthetic blob frames and scikit-image photographs.

Every frame comes at the two sizes the appliance sees, 640x480 and 2592x1944. The photographs are
scikit-image's bundled ``camera`` and ``coins`` (no network), resized with ``cv2.resize``.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import skimage.data

from kernels.testing import blob_frame, random_frame

SIZES = [(480, 640), (1944, 2592)]
KINDS = ["random", "blobs", "camera", "coins"]


@functools.cache
def make_frame(kind: str, height: int, width: int) -> np.ndarray:
    """One test frame, cached for the session (read-only so that no test can alter it for the next)."""
    if kind == "random":
        f = random_frame(height, width, seed=7)
    elif kind == "blobs":
        f = blob_frame(height, width, n_blobs=120, seed=3)
    else:
        photo = getattr(skimage.data, kind)()
        f = np.ascontiguousarray(cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR))
    assert f.dtype == np.uint8 and f.shape == (height, width) and f.flags.c_contiguous
    f.setflags(write=False)
    return f


@pytest.fixture(params=[(k, h, w) for h, w in SIZES for k in KINDS],
                ids=[f"{k}-{w}x{h}" for h, w in SIZES for k in KINDS])
def frame(request: pytest.FixtureRequest) -> np.ndarray:
    """Each test frame in turn: every kind at every size."""
    return make_frame(*request.param)

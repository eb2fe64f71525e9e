"""Colour -> grayscale, once, at capture (docs/design.md §3), and a read with a deadline.

Every real camera delivers what its driver gives: BGR from OpenCV, RGB from jetson_utils, sometimes BGRA or
already gray, and in buffers the driver may overwrite on the next capture. :func:`to_gray` always returns a new
C-contiguous 2-D ``uint8`` array the caller owns, so a frame never changes after it was captured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np

from appliance.hardware.camera.base import CameraError

T = TypeVar("T")

BIT_DEPTHS = (8, 10, 12, 14, 16)

_CODES = {("bgr", 3): cv2.COLOR_BGR2GRAY, ("rgb", 3): cv2.COLOR_RGB2GRAY,
          ("bgr", 4): cv2.COLOR_BGRA2GRAY, ("rgb", 4): cv2.COLOR_RGBA2GRAY}


def bit_depth(image: np.ndarray) -> int:
    """The smallest of 8, 10, 12, 14 or 16 bits that holds every value of a non-negative integer image."""
    top = int(image.max()) if image.size else 0
    return next(d for d in BIT_DEPTHS if top < (1 << d)) if top < (1 << 16) else 16


def to_gray(image: object, order: str = "bgr", source: str = "camera", bits: int = 16) -> np.ndarray:
    """A new C-contiguous (H, W) uint8 gray image from a driver's buffer.

    Parameters
    ----------
    image : ndarray
        (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), uint8 or uint16.
    order : {'bgr', 'rgb'}
        Channel order of a colour image (OpenCV gives BGR, jetson_utils RGB).
    source : str
        Named in the error message.
    bits : {8, 10, 12, 14, 16}
        The depth of a uint16 image's pixels: a 12-bit camera's frames are shifted down by 4, not by 8, so they
        keep their brightness (shifting every 16-bit buffer by 8 turns a 12-bit frame nearly black).

    Raises
    ------
    CameraError
        The buffer is not an image this function understands (the message names its dtype and shape).
    """
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise CameraError(f"{source} returned no image data ({type(image).__name__})")
    img = image
    if img.dtype == np.uint16:
        if bits not in BIT_DEPTHS:
            raise CameraError(f"{source}: bit depth {bits}; expected one of {', '.join(map(str, BIT_DEPTHS))}")
        if bits < 16 and int(img.max()) >= 1 << bits:
            raise CameraError(f"{source} holds pixel value {int(img.max())}, above its {bits}-bit depth "
                              f"(largest {(1 << bits) - 1}); set the camera's bit depth to the depth it writes")
        img = (img >> (bits - 8)).astype(np.uint8)
    if img.dtype != np.uint8:
        raise CameraError(f"{source} returned {img.dtype} pixels; expected uint8 or uint16")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.array(img, dtype=np.uint8, order="C", copy=True)
    if img.ndim == 3 and (order, img.shape[2]) in _CODES:
        return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(img), _CODES[(order, img.shape[2])]))
    raise CameraError(f"{source} returned an image of shape {img.shape}; expected (H, W) or (H, W, 1|3|4)")


def call_with_timeout(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run a blocking driver call in a worker thread; CameraError if it has not returned after ``timeout_s``.

    A driver read that never returns (an unplugged USB camera under V4L2 can block for many seconds) must not
    hang the scan. The worker thread is left behind as a daemon; the camera that timed out is marked broken
    by its caller and reopened before the next capture.
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"camera-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise CameraError(f"{what}: no frame within {timeout_s:g} s")
    if "error" in box:
        err = box["error"]
        if isinstance(err, CameraError):
            raise err
        raise CameraError(f"{what} failed: {err}") from err  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]

"""The camera interface and the frame it returns (docs/design.md §3)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from appliance.hardware.stage.base import Position


class CameraError(RuntimeError):
    """A camera could not be opened or failed to deliver a frame."""


@dataclass(frozen=True)
class Frame:
    """One grayscale frame and where and when it was taken.

    Attributes
    ----------
    image : (H, W) ndarray of uint8
        C-contiguous grayscale pixels; x right, y down, origin top-left.
    position : Position
        Stage position in micrometres when the exposure started.
    time_s : float
        Capture time on the device's clock (the virtual clock in the simulator), seconds.
    exposure_ms : float
        Exposure time in milliseconds.
    meta : dict
        Anything else the device knows (gain, sensor temperature, simulator seed).
    """

    image: np.ndarray
    position: Position
    time_s: float
    exposure_ms: float
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 2 or img.dtype != np.uint8:
            raise ValueError(f"Frame.image must be a 2-D uint8 array, got {type(img).__name__} "
                             f"{getattr(img, 'dtype', '?')} with shape {getattr(img, 'shape', '?')}")
        if not img.flags.c_contiguous:
            raise ValueError("Frame.image must be C-contiguous")

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))


class Camera(abc.ABC):
    """A source of grayscale frames. Open with ``open()`` or ``with``; never in ``__init__``."""

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the device."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    @abc.abstractmethod
    def capture(self) -> Frame:
        """Expose and return one frame (colour is converted to grayscale here, once)."""

    @property
    @abc.abstractmethod
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the frames in pixels."""

    @property
    @abc.abstractmethod
    def exposure_ms(self) -> float:
        """Current exposure time in milliseconds."""

    @exposure_ms.setter
    @abc.abstractmethod
    def exposure_ms(self, value: float) -> None: ...

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CameraWrapper(Camera):
    """A camera that adds behaviour to another's ``capture`` and hands everything else to it (``self.inner``)."""

    def __init__(self, inner: Camera) -> None:
        self.inner = inner

    def open(self) -> None:
        """Open the inner camera."""
        self.inner.open()

    def close(self) -> None:
        """Close the inner camera."""
        self.inner.close()

    @property
    def size_px(self) -> tuple[int, int]:
        """The inner camera's frame size."""
        return self.inner.size_px

    @property
    def exposure_ms(self) -> float:
        """The inner camera's exposure."""
        return self.inner.exposure_ms

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        self.inner.exposure_ms = value

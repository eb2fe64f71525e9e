"""An image-folder camera: replays PNG, JPEG or TIFF files in name order (users try tppscan on their own frames)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.hardware.camera.convert import BIT_DEPTHS, bit_depth, to_gray
from appliance.hardware.camera.opencv import NO_POSITION, PositionSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ImageFolderCamera(Camera):
    """Frames read from the image files of one folder, in name order, optionally looping.

    Every file must have the size of the first one (a camera's frames do); an unreadable or differently sized
    file is a CameraError naming the file.

    16-bit files keep their brightness: a scientific camera's 10-, 12- or 14-bit pixels are shifted down by
    ``bit_depth - 8``. The depth is the camera's, so it is one for the whole folder: given, or else the smallest
    of 8-16 bits that holds the first 16-bit file's pixels (read again per file, a dim frame would be brightened
    and the focus curve would lie). A later file with pixels above that depth is a CameraError that says so.
    """

    def __init__(self, folder: str | Path, *, loop: bool = True, exposure_ms: float = 10.0,
                 position_source: PositionSource | None = None, bit_depth: int | None = None):
        if bit_depth is not None and bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth must be one of {', '.join(map(str, BIT_DEPTHS))} or None, got {bit_depth}")
        self.folder = Path(folder)
        self.bit_depth = bit_depth
        self.loop = loop
        self._exposure_ms = float(exposure_ms)
        self._position = position_source or (lambda: NO_POSITION)
        self._files: list[Path] = []
        self._next = 0
        self._size: tuple[int, int] | None = None
        self._open = False

    def open(self) -> None:
        """List the folder's images and read the first one's size."""
        if not self.folder.is_dir():
            raise CameraError(f"image folder {self.folder} does not exist or is not a folder")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._files:
            raise CameraError(f"image folder {self.folder} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        first = self._read(self._files[0], probe_depth=self.bit_depth is None)
        self._size = (first.shape[1], first.shape[0])
        self._next = 0
        self._open = True

    def close(self) -> None:
        """Forget the file list; safe twice."""
        self._open = False

    def capture(self) -> Frame:
        """The next file as a gray frame."""
        if not self._open:
            raise CameraError("image folder camera is not open: call open() or use it in a with block")
        if self._next >= len(self._files):
            if not self.loop:
                raise CameraError(f"image folder {self.folder}: all {len(self._files)} files replayed")
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        image = self._read(path)
        if self._size is not None and (image.shape[1], image.shape[0]) != self._size:
            raise CameraError(f"{path}: {image.shape[1]}x{image.shape[0]} differs from the folder's first image "
                              f"({self._size[0]}x{self._size[1]})")
        return Frame(image=image, position=self._position(), time_s=time.monotonic(), exposure_ms=self._exposure_ms,
                     meta={"source": "files", "file": str(path)})

    def _read(self, path: Path, probe_depth: bool = False) -> np.ndarray:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise CameraError(f"{path}: not a readable image")
        if probe_depth and img.dtype == np.uint16:
            self.bit_depth = bit_depth(img)
        return to_gray(img, "bgr", str(path), bits=self.bit_depth or 16)

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the folder's images."""
        return self._size or (0, 0)

    @property
    def exposure_ms(self) -> float:
        """The exposure recorded on each frame (files have none of their own)."""
        return self._exposure_ms

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        if not 0 < value <= 10000:
            raise ValueError(f"exposure_ms must be in (0, 10000], got {value}")
        self._exposure_ms = float(value)

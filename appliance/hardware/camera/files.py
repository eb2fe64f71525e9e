"""An image-folder camera: replays PNG, JPEG or TIFF files in name order (users try tppscan on their own frames)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.hardware.camera.convert import to_gray
from appliance.hardware.camera.opencv import NO_POSITION, PositionSource

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ImageFolderCamera(Camera):
    """Frames read from the image files of one folder, in name order, optionally looping.

    Every file must have the size of the first one (a camera's frames do); an unreadable or differently sized
    file is a CameraError naming the file.
    """

    def __init__(self, folder: str | Path, *, loop: bool = True, exposure_ms: float = 10.0,
                 position_source: PositionSource | None = None):
        self.folder = Path(folder)
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
        first = self._read(self._files[0])
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

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise CameraError(f"{path}: not a readable image")
        return to_gray(img, "bgr", str(path))

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

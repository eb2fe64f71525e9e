"""Flat-field correction: the light field fixed to the camera, measured on the slide and divided out of every frame.

A bright-field frame is the slide's transmission times the light that reaches each pixel: the lamp's uneven
field and the objective's vignetting. That light field stays put in the frame while the slide moves under it,
so the per-pixel median of frames taken at places spread over the scan area is the light field (objects and
dust move from frame to frame; the shading does not). This is the retrospective shading correction of slide
scanners, measured before the first field and applied to every frame the scan analyses, focuses on or saves.

Why the scan needs it: the models and the gate see a print's contrast against the glass around it; a lamp
field a few times brighter on one side than the other (an aged bulb, a condenser off its axis) is outside
what the models were trained on (`models/data/randomise.py`: up to 6 % variation), and a print in the dim half
reads as fainter. Divided out, every frame looks like a frame under an even lamp.

The field is measured on ``BLOCK_PX`` blocks, so sensor noise is not printed into every frame; blurred dust on
the camera's window is divided out with the lamp, and what is too dark to divide (``MIN_RELATIVE_LIGHT``) or
smaller than a block stays for the runner's slide-or-optics check (``ScanRunner._moved_with_slide``).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, CameraWrapper, Frame
from appliance.hardware.stage.base import Stage
from appliance.results.store import write_durably

_log = logging.getLogger(__name__)

# Frames the median is taken over: the median of 16 is robust to an object covering a pixel in up to 7 of them
FLAT_FRAMES = 16
# Frames are averaged over 4 x 4 px blocks before the median: the sensor's noise in the light field is then a
# tenth of a per cent of it (no smoothing is needed, which would flatten the field's slope at the frame's edge)
BLOCK_PX = 4
# A light field whose darkest 2 % is under this part of its brightest 2 % is no shading (a frame half off the
# slide, a shutter half shut): refused, the scan runs uncorrected and says so. Pixels darker than this part of
# the median (the darkest spots of the virtual lamp at +-50 %, 0.18) are divided only as far as it: the noise of
# a pixel that dark would be amplified more than its contrast is worth
MIN_RELATIVE_LIGHT = 0.1
# Frames whose light is even within this (brightest 2 % over darkest 2 %) are left as they are: the models
# were trained on such frames (lamp variation up to 6 %, vignetting the camera's ISP mostly corrects), and the
# scan's verdicts were measured on them. The default virtual microscope reads 1.05, its mono raw camera (no
# lens-shading correction) 1.27, a lamp field of +-25 % 1.31
EVEN_WITHIN = 1.2
FILE_NAME = "flat_field.npy"


class FlatFieldError(ValueError):
    """The frames do not give a light field that can be trusted (the message says why)."""


@dataclass(frozen=True)
class FlatField:
    """The relative light reaching each pixel, 1.0 at its median; frames are divided by it.

    Attributes
    ----------
    light : (H, W) ndarray of float32
        Relative light per pixel (the frame size of the camera that measured it).
    frames : int
        Frames it was measured from.
    """

    light: np.ndarray
    frames: int

    @property
    def spread(self) -> tuple[float, float]:
        """The 2nd and 98th percentile of the light, relative to its median (1.0)."""
        lo, hi = np.percentile(self.light, [2, 98])
        return float(lo), float(hi)

    @property
    def even(self) -> bool:
        """Whether the light is even within :data:`EVEN_WITHIN` (frames are then left as they are)."""
        lo, hi = self.spread
        return hi <= EVEN_WITHIN * lo

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (uint8, the field's size) divided by the light field, rounded and clipped to uint8."""
        if image.shape != self.light.shape:
            raise CameraError(f"flat field: the frame is {image.shape[1]} x {image.shape[0]} px, the flat field was "
                              f"measured at {self.light.shape[1]} x {self.light.shape[0]} px")
        out = cv2.divide(image.astype(np.float32), self.light)
        return np.ascontiguousarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))

    def save(self, path: Path) -> None:
        """Write the light field to ``path`` (``.npy``) durably."""
        buf = io.BytesIO()
        np.save(buf, np.stack([self.light, np.full_like(self.light, self.frames)]))
        write_durably(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> FlatField:
        """Read a light field written by :meth:`save`; ``FlatFieldError`` naming the file if it cannot be."""
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise FlatFieldError(f"{path}: not a flat field ({exc})") from None
        if arr.ndim != 3 or arr.shape[0] != 2 or arr.dtype != np.float32:
            raise FlatFieldError(f"{path}: not a flat field (shape {arr.shape}, {arr.dtype}; expected (2, H, W) "
                                 "float32)")
        return cls(np.ascontiguousarray(arr[0]), int(arr[1].flat[0]))

    @classmethod
    def estimate(cls, images: Sequence[np.ndarray]) -> FlatField:
        """The light field of frames taken at different places of a slide (see the module's docstring)."""
        if len(images) < 3:
            raise FlatFieldError(f"a flat field needs at least 3 frames, got {len(images)}")
        h, w = images[0].shape
        if any(im.shape != (h, w) for im in images):
            raise FlatFieldError("a flat field's frames must all be one size")
        small = (max(1, w // BLOCK_PX), max(1, h // BLOCK_PX))
        blocks = []
        for im in images:
            b = cv2.resize(im.astype(np.float32), small, interpolation=cv2.INTER_AREA)
            level = float(np.median(b))
            if level <= 0:
                raise FlatFieldError("a flat field's frame is black")
            blocks.append(b / level)  # a lamp that flickers between frames changes the level, not the shape
        med = np.median(np.stack(blocks), axis=0).astype(np.float32)
        full = np.asarray(cv2.resize(med, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        light = full / np.float32(np.median(full))
        lo, hi = np.percentile(light, [2, 98])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < MIN_RELATIVE_LIGHT * hi:
            raise FlatFieldError(f"the darkest 2 % of the light field is under {MIN_RELATIVE_LIGHT} of its brightest "
                                 f"2 % ({lo / hi:.2f}): no lamp's shading; is part of the view blocked?")
        light = np.maximum(light, np.float32(MIN_RELATIVE_LIGHT))
        return cls(np.ascontiguousarray(light, dtype=np.float32), len(images))


class FlatFieldCamera(CameraWrapper):
    """A camera whose every frame is divided by a :class:`FlatField` (``meta['flat_field']`` says so)."""

    def __init__(self, inner: Camera, field: FlatField) -> None:
        super().__init__(inner)
        self.field = field

    def capture(self) -> Frame:
        """The inner camera's frame, flat-field corrected."""
        frame = self.inner.capture()
        return replace(frame, image=self.field.apply(frame.image), meta={**frame.meta, "flat_field": True})


def flat_field_places(area_um: Sequence[float], n: int = FLAT_FRAMES) -> list[tuple[float, float]]:
    """``n`` places spread over ``area_um`` (x0, y0, x1, y1) on a near-square lattice, in snake order."""
    x0, y0, x1, y1 = area_um
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    xs = [x0 + (x1 - x0) * (i + 0.5) / cols for i in range(cols)]
    ys = [y0 + (y1 - y0) * (j + 0.5) / rows for j in range(rows)]
    places = [(x, y) for j, y in enumerate(ys) for x in (xs if j % 2 == 0 else xs[::-1])]
    return places[:n]


def measure_flat_field(stage: Stage, camera: Camera, area_um: Sequence[float], n: int = FLAT_FRAMES) -> FlatField:
    """Move to ``n`` places spread over the area, capture one frame at each, and estimate the light field.

    The stage is left at the last place; the z is wherever it stands (focus does not matter: shading is the
    lamp's and the objective's, and blur only helps the median).
    """
    images = []
    for x, y in flat_field_places(area_um, n):
        stage.move_to_um(x=x, y=y)
        images.append(camera.capture().image)
    field = FlatField.estimate(images)
    lo, hi = field.spread
    _log.info("flat field from %d frames: light %.2f-%.2f of its median (2nd-98th percentile)", len(images), lo, hi)
    return field

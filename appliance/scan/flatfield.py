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
smaller than a block stays for the slide-or-optics check (``appliance/scan/slide_or_optics.py``).
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
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
# lens-shading correction) 1.27, a lamp field of +-25 % 1.31. It was 1.2 until session 50: a raw camera's
# vignetting read 1.17 (held-out seed 7302), was left uncorrected, and the gate's smooth glass surface fell
# short of it in a band across every frame, whose noise the scan recorded as 10 structures on bare glass
# (docs/scan.md, "Flat field")
EVEN_WITHIN = 1.1
FILE_NAME = "flat_field.npz"
# The scan area must span this many frames each way: the 16 places are then half a frame apart or more, so an
# object lies in the same pixels in few of them. Over a one-field area every frame holds the same prints in
# nearly the same pixels, and their median would print them into the light field and divide them out
MIN_AREA_FRAMES = 2.0


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
    blocks : (H / BLOCK_PX, W / BLOCK_PX) ndarray of float32, optional
        The measured field ``light`` was interpolated from (:meth:`from_blocks`); what :meth:`save` writes when
        present: 1/16 of the size (77 KB for a 640 x 480 camera, where the full field took 2.4 MB and a scan on
        a small disk ran out of space before its first field).
    """

    light: np.ndarray
    frames: int
    blocks: np.ndarray | None = None

    @classmethod
    def from_blocks(cls, blocks: np.ndarray, size: tuple[int, int], frames: int) -> FlatField:
        """The field of a frame of ``size`` (width, height) interpolated from its ``blocks``, 1.0 at its median.

        ``FlatFieldError`` when the blocks are no lamp's shading (see :data:`MIN_RELATIVE_LIGHT`).
        """
        full = np.asarray(cv2.resize(blocks, size, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        light = full / np.float32(np.median(full))
        lo, hi = np.percentile(light, [2, 98])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < MIN_RELATIVE_LIGHT * hi:
            raise FlatFieldError(f"the darkest 2 % of the light field is under {MIN_RELATIVE_LIGHT} of its brightest "
                                 f"2 % ({lo / hi:.2f}): no lamp's shading; is part of the view blocked?")
        light = np.maximum(light, np.float32(MIN_RELATIVE_LIGHT))
        return cls(np.ascontiguousarray(light, dtype=np.float32), frames, np.ascontiguousarray(blocks))

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
        """Write the field to ``path`` (``.npz``) durably: its blocks where it has them, else its light."""
        h, w = self.light.shape
        buf = io.BytesIO()
        if self.blocks is not None:
            np.savez(buf, size=np.array([w, h]), frames=np.array(self.frames), blocks=self.blocks)
        else:
            np.savez(buf, size=np.array([w, h]), frames=np.array(self.frames), light=self.light)
        write_durably(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> FlatField:
        """Read a field written by :meth:`save`; ``FlatFieldError`` naming the file if it cannot be."""
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError(f"one {loaded.dtype} array of shape {loaded.shape}, not an archive of arrays")
            with loaded as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise FlatFieldError(f"{path}: not a flat field ({exc})") from None
        try:
            w, h = (int(v) for v in arrays["size"])
            frames = int(arrays["frames"])
            if "blocks" in arrays:
                return cls.from_blocks(_float32_2d(arrays["blocks"]), (w, h), frames)
            light = _float32_2d(arrays["light"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FlatFieldError(f"{path}: not a flat field (arrays {sorted(arrays)}: {exc}); expected size, "
                                 "frames and blocks or light") from None
        if light.shape != (h, w):
            raise FlatFieldError(f"{path}: not a flat field (light {light.shape} for a {w} x {h} px frame)")
        return cls(light, frames)

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
        return cls.from_blocks(med, (w, h), len(images))


def _float32_2d(a: np.ndarray) -> np.ndarray:
    """``a`` as a 2-D float32 array of finite values; ValueError if it is none."""
    if a.ndim != 2 or a.dtype != np.float32 or not np.all(np.isfinite(a)):
        raise ValueError(f"shape {a.shape}, {a.dtype}; expected a 2-D float32 array of finite values")
    return np.ascontiguousarray(a)


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


def check_area(area_um: Sequence[float], frame_um: tuple[float, float]) -> None:
    """``FlatFieldError`` if the area (x0, y0, x1, y1) is under :data:`MIN_AREA_FRAMES` frames (w, h µm) each way."""
    x0, y0, x1, y1 = area_um
    w, h = x1 - x0, y1 - y0
    if w < MIN_AREA_FRAMES * frame_um[0] or h < MIN_AREA_FRAMES * frame_um[1]:
        raise FlatFieldError(f"the scan area is {w:.0f} x {h:.0f} um, under {MIN_AREA_FRAMES:g} frames "
                             f"({frame_um[0]:.0f} x {frame_um[1]:.0f} um) each way: the same objects would lie in "
                             "the same pixels of most frames and be taken for the light")


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

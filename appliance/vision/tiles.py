"""Frames off the detector's aspect ratio: padded to it, or read in tiles shaped like its input, never stretched far.

The detector was trained on 4:3 frames of square pixels and sees every frame resized to its 320 x 240 input. A
16:9 or 3:4 frame stretched so is still read well (the virtual microscope's 1920 x 1080 and 480 x 640 sensors:
8 of 8 prints each), but a 1280 x 240 frame became four times narrower than it is and a 320 x 960 one three
times flatter, and the prints on them were lost (2 and 6 of 8, seeds 1759, 1760, 1765, 1766, session 17).
Such a frame is cut into tiles of the input's shape along its long side, half a tile apart, so that an object
up to half a tile long lies whole in one of them; of the boxes two tiles give one object the surer is kept, and
a box a tile cut at an inner border is dropped where a whole box of the same class covers most of it.

A frame nearer 4:3 than that but still off it (3:4, 16:9, square) is padded to the input's shape with its median
grey, on its right or bottom, and read whole: stretched, a portrait 3:4 frame makes every object 1.8 times wider
than it is. On the seed authors' real frames turned to portrait the pentagon was found in 13 of 15 stretched and
15 of 15 padded; on held-out virtual 480 x 640 frames mAP@0.5 rose from 0.72 to 0.76 (@0.5:0.95 0.47 to 0.57),
and six 480 x 640 scans found 46, 45 (tiles: large rings cut in every tile) and 48 of 48 prints (session 36).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from appliance.vision.decision import iou

#: A frame whose width-to-height ratio is more than this many times the input's, or less than its inverse, is read
#: in tiles (3:4 and 16:9 frames are not: they were read well stretched).
TILE_ASPECT_LIMIT = 2.0
#: A cut box is dropped when this much of its area lies in a whole box of its class from another tile ...
COVERED = 0.5
#: ... and of two whole boxes of one class this close (intersection over union), the less sure one.
SAME_OBJECT_IOU = 0.5
#: A frame or tile whose width-to-height ratio is more than this many times the input's, or less than its inverse,
#: is padded to the input's shape before it is resized (16:9 and 1:1 are; 3:2 and 5:4 are only resized).
PAD_ASPECT_LIMIT = 1.2

#: The pixel size at the detector's input, µm per input pixel, the shipped detector was trained over: frames of
#: 640 x 480 at 0.3-1.2 µm per pixel (``models/data/randomise.py``, ``Ranges.um_per_px``) resized to 320 x 240.
TRAINED_INPUT_UM_PER_PX = (0.6, 2.4)
#: ... from frames at these pixel sizes at the sample, µm per frame pixel: a 640 x 480 frame shrunk twice over.
TRAINED_FRAME_UM_PER_PX = (0.3, 1.2)
#: A frame the detector would read coarser than that range is read in tiles this fine at the input
#: (:func:`zoom_tiles`). Measured on held-out frames at 4x-5x (docs/detector.md, "Frames coarser than the
#: training"): mAP@0.5 best at 2.0 (1.8: 0.804, 2.0: 0.815, 2.4: 0.775 on 640 x 480 frames at 1.3-1.6 µm/px).
ZOOM_TARGET_UM_PER_PX = 2.0

#: A frame the detector would read finer than that range (40x on a 640 x 480 sensor: 0.28 µm per input pixel) is
#: padded with bare glass until it is read at this (:func:`canvas_size`): the prints then have the size in input
#: pixels the detector learnt. Measured on held-out frames (docs/detector.md, "Frames finer than the training"):
#: padded to 0.7 / 0.8 / 0.9 / 1.1 µm per input pixel, mAP@0.5 0.814 / 0.873 / 0.863 / 0.855 at 0.12-0.18 µm/px
#: and 0.885 / 0.870 / 0.857 / 0.812 at 0.2-0.3 (read as they are: 0.497 and 0.721).
PAD_TARGET_UM_PER_PX = 0.8

#: The pixel sizes at the sample, µm per frame pixel, a frame can be read at (``tppscan detect --um-per-px``
#: refuses others). The training data's own bounds (``models/data/randomise.py``, ``HARD_BOUNDS``): coarser than 5,
#: a 10 µm print is under 2 pixels, which no upsampling turns back into its shape, and the zoom tiles (four times
#: as many per doubling of the pixel size) would grow without bound (at 100 µm/px: 40,000 tiles of a 640 x 480
#: frame); finer than 0.1 a 640 x 480 frame is under 64 µm wide, smaller than many prints, and its padded canvas
#: would grow the same way.
READABLE_UM_PER_PX = (0.1, 5.0)

Tile = tuple[int, int, int, int]  # x, y, width, height in frame pixels


class _Boxed(Protocol):
    @property
    def label(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def box(self) -> tuple[float, float, float, float]: ...


D = TypeVar("D", bound=_Boxed)


def tiles(size: tuple[int, int], input_hw: tuple[int, int]) -> list[Tile]:
    """The tiles a frame of ``size`` (width, height) is read in: the whole frame, unless its shape is far off."""
    w, h = size
    ih, iw = input_hw
    ratio = (w / h) / (iw / ih)
    if 1.0 / TILE_ASPECT_LIMIT <= ratio <= TILE_ASPECT_LIMIT:
        return [(0, 0, w, h)]
    if ratio > 1.0:
        tw = min(w, round(h * iw / ih))
        return [(x, 0, tw, h) for x in _starts(w, tw)]
    th = min(h, round(w * ih / iw))
    return [(0, y, w, th) for y in _starts(h, th)]


def zoom_tiles(size: tuple[int, int], input_hw: tuple[int, int], um_per_px: float) -> list[Tile]:
    """Input-shaped tiles read at :data:`ZOOM_TARGET_UM_PER_PX` at the input, half a tile apart both ways.

    Each tile spans the input's size times ``ZOOM_TARGET_UM_PER_PX / um_per_px`` frame pixels (clipped to the
    frame), so an object up to half a tile (320 µm at the shipped input) lies whole in one of them.
    """
    w, h = size
    ih, iw = input_hw
    # a pixel size past the readable range is read as at its edge, so that no value makes the tiles unbounded
    k = ZOOM_TARGET_UM_PER_PX / min(um_per_px, READABLE_UM_PER_PX[1])
    tw, th = min(w, max(1, round(iw * k))), min(h, max(1, round(ih * k)))
    return [(x, y, tw, th) for y in _starts(h, th) for x in _starts(w, tw)]


def read_scale(tile: Tile, input_hw: tuple[int, int], um_per_px: float) -> float:
    """µm per input pixel at which the detector reads ``tile`` (after its padding, :func:`padded_size`)."""
    pw, ph = padded_size((tile[2], tile[3]), input_hw)
    ih, iw = input_hw
    return um_per_px * max(pw / iw, ph / ih)


def layout(size: tuple[int, int], input_hw: tuple[int, int], um_per_px: float | None = None) -> list[Tile]:
    """The tiles a frame is read in: by its shape (:func:`tiles`), or finer where its pixel size says so.

    With ``um_per_px`` (the frame's pixel size at the sample), a frame those tiles would show the detector
    coarser than it was trained on (:data:`TRAINED_INPUT_UM_PER_PX`) is read in :func:`zoom_tiles` instead: at
    4x a 640 x 480 frame is read at 2.8 µm per input pixel, a 1280 x 960 one at 5x at 4.5, where the prints of
    20-40 µm are 7-14 input pixels.
    """
    by_shape = tiles(size, input_hw)
    if um_per_px is None or read_scale(by_shape[0], input_hw, um_per_px) <= TRAINED_INPUT_UM_PER_PX[1]:
        return by_shape
    return zoom_tiles(size, input_hw, um_per_px)


def trained_frame_size(input_hw: tuple[int, int]) -> tuple[int, int]:
    """The largest (width, height) read at the input's shape no more shrunk than the training frames were.

    640 x 480 for the shipped 320 x 240 input: its frames were shrunk by the ratio of the two trained pixel
    sizes, :data:`TRAINED_INPUT_UM_PER_PX` over :data:`TRAINED_FRAME_UM_PER_PX`.
    """
    ih, iw = input_hw
    k = TRAINED_INPUT_UM_PER_PX[1] / TRAINED_FRAME_UM_PER_PX[1]
    return round(iw * k), round(ih * k)


def shrunk_beyond_training(size: tuple[int, int], input_hw: tuple[int, int]) -> bool:
    """Whether a frame of ``size`` read without its pixel size is shrunk more than any training frame was.

    Then its objects reach the detector smaller, in input pixels, than the same objects did in training at the
    same pixel size: small ones may be missed unless the pixel size is given (:func:`layout` then reads it in
    finer tiles where it needs them).
    """
    tw, th = trained_frame_size(input_hw)
    ih, iw = input_hw
    return read_scale(tiles(size, input_hw)[0], input_hw, 1.0) > max(tw / iw, th / ih) + 1e-9


def canvas_size(size: tuple[int, int], input_hw: tuple[int, int], um_per_px: float | None = None) -> tuple[int, int]:
    """The (width, height) a frame or tile of ``size`` is padded to before it is resized to the input.

    :func:`padded_size`, and, where ``um_per_px`` says that would be read finer than the training
    (:data:`TRAINED_INPUT_UM_PER_PX`), enlarged in proportion until it is read at :data:`PAD_TARGET_UM_PER_PX`.
    """
    pw, ph = padded_size(size, input_hw)
    if um_per_px is None:
        return pw, ph
    # a pixel size past the readable range is read as at its edge, so that no value makes the canvas unbounded
    scale = read_scale((0, 0, *size), input_hw, max(um_per_px, READABLE_UM_PER_PX[0]))
    if scale >= TRAINED_INPUT_UM_PER_PX[0]:
        return pw, ph
    k = PAD_TARGET_UM_PER_PX / scale
    return max(pw, round(pw * k)), max(ph, round(ph * k))


def padded_size(size: tuple[int, int], input_hw: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) an image of ``size`` is padded to, on its right or bottom, before it is resized.

    ``size`` itself where its shape is within :data:`PAD_ASPECT_LIMIT` of the input's; else the input's shape
    around it, so that the resize scales both axes alike.
    """
    w, h = size
    ih, iw = input_hw
    ratio = (w / h) / (iw / ih)
    if 1.0 / PAD_ASPECT_LIMIT <= ratio <= PAD_ASPECT_LIMIT:
        return w, h
    if ratio > 1.0:
        return w, max(h, round(w * ih / iw))
    return max(w, round(h * iw / ih)), h


def _starts(length: int, tile: int) -> list[int]:
    """Tile origins along ``length``, half a tile apart, the last flush with the end."""
    step = max(1, tile // 2)
    n = max(1, math.ceil((length - tile) / step) + 1)
    return sorted({min(k * step, length - tile) for k in range(n)})


def detect_in_tiles(size: tuple[int, int], input_hw: tuple[int, int],
                    detect_tile: Callable[[Tile], Sequence[D]], um_per_px: float | None = None) -> list[D]:
    """Detections over a frame read tile by tile (:func:`layout`); ``detect_tile(tile)`` returns frame pixels."""
    parts = layout(size, input_hw, um_per_px)
    if len(parts) == 1:
        return list(detect_tile(parts[0]))
    w, h = size
    whole: list[D] = []
    cut: list[D] = []
    for t in parts:
        for d in detect_tile(t):
            (cut if _at_inner_border(d.box, t, (w, h)) else whole).append(d)
    kept: list[D] = []
    for d in sorted(whole, key=lambda d: -d.score):  # an object whole in two tiles: the surer box
        if not any(o.label == d.label and iou(d.box, o.box) >= SAME_OBJECT_IOU for o in kept):
            kept.append(d)
    for d in cut:
        if not any(o.label == d.label and _covered(d.box, o.box) >= COVERED for o in kept):
            kept.append(d)
    return kept


def _at_inner_border(box: tuple[float, float, float, float], t: Tile, size: tuple[int, int]) -> bool:
    """Whether ``box`` reaches a side of tile ``t`` that is not the frame's own edge."""
    x, y, tw, th = t
    x0, y0, x1, y1 = box
    return ((x > 0 and x0 <= x + 1) or (y > 0 and y0 <= y + 1)
            or (x + tw < size[0] and x1 >= x + tw - 1) or (y + th < size[1] and y1 >= y + th - 1))


def _covered(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """The fraction of box ``a``'s area inside box ``b``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max(1e-9, (a[2] - a[0]) * (a[3] - a[1]))
    return ix * iy / area

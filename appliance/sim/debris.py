"""Debris on a slide: dust, fibres, bubbles and scratches, each drawn as a :class:`~.structures.Shape`.

Debris is what a threshold finds besides the structures, so the classifier has real work:

- **dust**: many small irregular specks (1-8 µm) that absorb strongly; a few large clumps (15-60 µm), the
  size of a small structure. Small specks share a handful of template maps per slide (see
  :class:`DustTemplates`), which keeps a slide with hundreds of specks fast to build.
- **fibre**: long, thin, curved cylinders lying on the glass (lint, cellulose), 2-12 µm thick, 30-300 µm long;
  weakly absorbing phase objects.
- **bubble**: round air pockets in a residual resin film, 8-80 µm across: a flattened lens of negative index
  step, which images as a strong dark ring.
- **scratch**: long straight shallow grooves in the glass (negative height), 1-4 µm wide, 40-400 µm long.

The ``index_delta`` of each is the refractive-index step the optics should use for its height map.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from appliance.sim.structures import Attrs, Shape, crop_shape, local_grid, rect_grid

DUST_PITCH_UM = 0.25
# Fibres and scratches are long: a coarser grid keeps their maps small; their widths are >= 1 µm.
LONG_PITCH_UM = 0.5

INDEX_DELTA = {"dust": 0.5, "fibre": 0.53, "bubble": -0.45, "scratch": 0.5}
# Relative abundance of each kind of debris (dust dominates, as on any real slide).
DEBRIS_MIX = {"dust": 0.90, "fibre": 0.05, "bubble": 0.03, "scratch": 0.02}
# Fraction of dust drawn as large clumps rather than from the small templates.
LARGE_DUST_FRACTION = 0.04


def _blob(rng: np.random.Generator, radius_um: float, height_um: float, pitch_um: float) -> np.ndarray:
    """An irregular dome: radius modulated by a few random harmonics of the polar angle."""
    rot = float(rng.uniform(0, 360))
    u, v = local_grid(radius_um * 1.5, rot, pitch_um)
    theta = np.arctan2(v, u)
    edge = np.ones_like(theta)
    for k in (2, 3, 5):
        edge += float(rng.uniform(0, 0.25)) * np.cos(k * theta + float(rng.uniform(0, 2 * math.pi)))
    rel = np.hypot(u, v) / (radius_um * np.maximum(edge, 0.3))
    return (height_um * np.sqrt(np.clip(1.0 - rel * rel, 0.0, 1.0))).astype(np.float32)


def _dust_shape(rng: np.random.Generator, radius_um: float) -> Shape:
    height = float(rng.uniform(0.3, 1.0)) * min(radius_um, 3.0)
    h = _blob(rng, radius_um, height, DUST_PITCH_UM)
    alpha = float(rng.uniform(0.3, 1.5))  # strong absorption: mineral or soot, not polymer
    absorption = np.where(h > 0, np.float32(alpha), np.float32(0)).astype(np.float32)
    attrs: Attrs = {"radius_um": round(radius_um, 3), "absorption_per_um": round(alpha, 3)}
    return Shape(h, absorption, DUST_PITCH_UM, 0.0, attrs)


class DustTemplates:
    """A few small dust specks drawn once per slide and shared (read-only) by every small speck.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the templates' shapes.
    count : int
        Number of distinct templates.
    """

    def __init__(self, rng: np.random.Generator, count: int = 32) -> None:
        self._shapes = []
        for _ in range(count):
            shape = crop_shape(_dust_shape(rng, float(rng.uniform(0.5, 4.0))))[0]
            shape.height_um.setflags(write=False)
            shape.absorption.setflags(write=False)
            self._shapes.append(shape)

    def draw(self, rng: np.random.Generator) -> Shape:
        """Return one template (its arrays are shared and read-only)."""
        i = int(rng.integers(len(self._shapes)))
        t = self._shapes[i]
        return Shape(t.height_um, t.absorption, t.pitch_um, t.rotation_deg, {**t.attrs, "template": i})


def dust(rng: np.random.Generator, templates: DustTemplates) -> Shape:
    """A dust speck: usually a shared small template, sometimes a large clump the size of a structure."""
    if rng.random() < LARGE_DUST_FRACTION:
        return _dust_shape(rng, float(rng.uniform(7.5, 30.0)))
    return templates.draw(rng)


def fibre(rng: np.random.Generator) -> Shape:
    """A curved fibre: a random smooth path, a round cross-section (height = chord through the cylinder)."""
    length = float(rng.uniform(30.0, 300.0))
    radius = float(rng.uniform(1.0, 6.0))
    step = 4.0
    n = max(2, int(length / step) + 1)
    turn = rng.normal(0.0, float(rng.uniform(0.02, 0.12)), size=n)  # heading change per step, radians
    heading = float(rng.uniform(0, 2 * math.pi)) + np.cumsum(turn)
    pts = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1) * step, axis=0)
    pts -= (pts.min(axis=0) + pts.max(axis=0)) / 2  # centre the path on the map centre
    half = np.abs(pts).max(axis=0) + radius + LONG_PITCH_UM
    ny = 2 * int(math.ceil(half[1] / LONG_PITCH_UM)) + 3
    nx = 2 * int(math.ceil(half[0] / LONG_PITCH_UM)) + 3
    # Distance to the centre line: draw it (sub-pixel, 4 fractional bits) on a blank image, then the
    # Euclidean distance transform of everything else.
    img = np.full((ny, nx), 255, np.uint8)
    pix = (pts / LONG_PITCH_UM + [(nx - 1) / 2, (ny - 1) / 2]) * 16
    cv2.polylines(img, [np.rint(pix).astype(np.int32)], False, 0, 1, cv2.LINE_8, 4)
    # scipy's exact transform: OpenCV's DIST_MASK_PRECISE gave run-to-run differences here.
    dist = (distance_transform_edt(img) * LONG_PITCH_UM).astype(np.float32)
    h = (2 * np.sqrt(np.clip(radius * radius - dist * dist, 0.0, None))).astype(np.float32)
    alpha = float(rng.uniform(0.02, 0.2))
    absorption = np.where(h > 0, np.float32(alpha), np.float32(0)).astype(np.float32)
    attrs: Attrs = {"length_um": round(length, 3), "diameter_um": round(2 * radius, 3)}
    return Shape(h, absorption, LONG_PITCH_UM, 0.0, attrs)


def bubble(rng: np.random.Generator) -> Shape:
    """An air bubble in a resin film: a flattened half-ellipsoid with a negative index step."""
    radius = float(rng.uniform(4.0, 40.0))
    height = float(rng.uniform(2.0, min(radius, 20.0)))
    u, v = local_grid(radius, 0.0, DUST_PITCH_UM)
    rel2 = (u * u + v * v) / (radius * radius)
    h = (height * np.sqrt(np.clip(1.0 - rel2, 0.0, 1.0))).astype(np.float32)
    attrs: Attrs = {"diameter_um": round(2 * radius, 3), "height_um": round(height, 3)}
    return Shape(h, np.zeros_like(h), DUST_PITCH_UM, 0.0, attrs)


def scratch(rng: np.random.Generator) -> Shape:
    """A straight groove in the glass: negative height, rounded profile."""
    length = float(rng.uniform(40.0, 400.0))
    width = float(rng.uniform(1.0, 4.0))
    depth = float(rng.uniform(0.1, 1.0))
    rot = float(rng.uniform(0, 180))
    c, s = abs(math.cos(math.radians(rot))), abs(math.sin(math.radians(rot)))
    u, v = rect_grid(c * length / 2 + width, s * length / 2 + width, rot, LONG_PITCH_UM)
    across = np.clip(1.0 - (2 * v / width) ** 2, 0.0, None)
    h = np.where(np.abs(u) <= length / 2, -depth * across, 0.0).astype(np.float32)
    attrs: Attrs = {"length_um": round(length, 3), "width_um": round(width, 3), "depth_um": round(depth, 3)}
    return Shape(h, np.zeros_like(h), LONG_PITCH_UM, rot, attrs)


def make_debris(kind: str, rng: np.random.Generator, templates: DustTemplates) -> Shape:
    """Draw one piece of debris of ``kind`` (one of ``DEBRIS_MIX``'s keys)."""
    makers: dict[str, Callable[[], Shape]] = {
        "dust": lambda: dust(rng, templates),
        "fibre": lambda: fibre(rng),
        "bubble": lambda: bubble(rng),
        "scratch": lambda: scratch(rng),
    }
    if kind not in makers:
        raise ValueError(f"debris kind must be one of {sorted(makers)}, got {kind!r}")
    return makers[kind]()

"""Procedural TPP structures: five generators that each draw one 3-D shape as a height map.

Every generator takes a :class:`numpy.random.Generator` and returns a :class:`Shape`: a height map (µm of
material above the slide surface, sampled every ``pitch_um``), an absorption map and a few descriptive
attributes. For solid shapes the height map is the top surface; for the woodpile, whose rod layers hold air
between them, it is the material thickness of each column (see :func:`woodpile`). The shape
is drawn directly in the rotated frame (each sample's slide offset is rotated into the structure's own
``(u, v)`` frame and the shape is evaluated there), so rotation costs no resampling and no blur.

Variation, drawn from the generator: overall size, height, rotation, the type's own parameters (rod pitch,
cell count, gap angle, wall slope), print defects (missing rods or walls, holes) and partial collapse (one
side lowered and tilted, as a structure that lost adhesion or sagged during development). The ranges follow
the issue: 5-30 µm tall, 20-120 µm across.

Map convention, shared with :mod:`appliance.sim.slide`: a map of shape ``(h, w)`` is centred on the object's
centre; sample ``[i, j]`` lies at slide ``x = cx + (j - (w - 1) / 2) * pitch``,
``y = cy + (i - (h - 1) / 2) * pitch`` (row index grows with slide y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.ndimage import gaussian_filter

# Sampling of structure maps: fine enough for 0.8 µm woodpile rods and sub-µm wall slopes.
STRUCTURE_PITCH_UM = 0.25
# Weak absorption of cured polymer (IP-Dip-like), amplitude attenuation per µm of material.
POLYMER_ABSORPTION_PER_UM = 0.004

Attrs = dict[str, float | int | str]


@dataclass
class Shape:
    """One generated object before it is placed on a slide.

    Attributes
    ----------
    height_um : (h, w) ndarray of float32
        Height above the slide surface, µm; 0 outside the object (negative for grooves).
    absorption : (h, w) ndarray of float32
        Amplitude absorption coefficient per µm of material (>= 0).
    pitch_um : float
        Sample spacing of both maps, µm.
    rotation_deg : float
        Rotation of the shape's own frame, degrees counter-clockwise.
    attrs : dict
        Descriptive, JSON-ready parameters (sizes, defect counts, collapse) for the ground truth.
    top_height_um : float or None
        Geometric top of an open shape whose height map is a material thickness below its top (the
        woodpile); None when the height map is the top surface itself.
    """

    height_um: np.ndarray
    absorption: np.ndarray
    pitch_um: float
    rotation_deg: float
    attrs: Attrs = field(default_factory=dict)
    top_height_um: float | None = None


def rect_grid(half_x_um: float, half_y_um: float, rotation_deg: float,
              pitch_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``(u, v)`` in a rotated frame of every sample of a rectangular map.

    Parameters
    ----------
    half_x_um, half_y_um : float
        Half the map's extent along slide x and y, µm; the map must cover the shape.
    rotation_deg : float
        Rotation of the shape frame against the slide frame, degrees counter-clockwise.
    pitch_um : float
        Sample spacing, µm.

    Returns
    -------
    u, v : (h, w) ndarray of float32
        Shape-frame coordinates, µm, of each sample (rows follow slide y, columns slide x); both sizes are
        odd, so the map centre falls on a sample.
    """
    nx = 2 * int(math.ceil(half_x_um / pitch_um)) + 3
    ny = 2 * int(math.ceil(half_y_um / pitch_um)) + 3
    dx = ((np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * pitch_um)[None, :]
    dy = ((np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * pitch_um)[:, None]
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    u = (c * dx + s * dy).astype(np.float32)
    v = (-s * dx + c * dy).astype(np.float32)
    return u, v


def local_grid(radius_um: float, rotation_deg: float, pitch_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Square :func:`rect_grid` of half side ``radius_um``: covers a shape of that radius at any rotation."""
    return rect_grid(radius_um, radius_um, rotation_deg, pitch_um)


def crop_shape(shape: Shape) -> tuple[Shape, float, float]:
    """Crop a shape's maps to their nonzero region.

    Returns
    -------
    cropped : Shape
        The same shape on the smallest map holding every nonzero height (``shape`` itself if already tight).
    dx_um, dy_um : float
        Offset of the cropped map's centre from the original map's centre, slide µm.
    """
    h = shape.height_um
    rows = np.flatnonzero(np.any(h != 0, axis=1))
    cols = np.flatnonzero(np.any(h != 0, axis=0))
    if rows.size == 0:  # an empty shape (not produced by the ranges used) keeps its central sample
        rows = np.array([h.shape[0] // 2])
        cols = np.array([h.shape[1] // 2])
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (r0, r1, c0, c1) == (0, h.shape[0], 0, h.shape[1]):
        return shape, 0.0, 0.0
    dy = ((r0 + r1 - 1) / 2 - (h.shape[0] - 1) / 2) * shape.pitch_um
    dx = ((c0 + c1 - 1) / 2 - (h.shape[1] - 1) / 2) * shape.pitch_um
    cropped = Shape(np.ascontiguousarray(h[r0:r1, c0:c1]), np.ascontiguousarray(shape.absorption[r0:r1, c0:c1]),
                    shape.pitch_um, shape.rotation_deg, shape.attrs, shape.top_height_um)
    return cropped, dx, dy


def _collapse(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, half_um: float, p: float,
              attrs: Attrs) -> np.ndarray | float:
    """With probability ``p``, a factor map that lowers one side of the shape, tilting it (partial collapse).

    Returns 1.0 (no collapse) or a map in ``(0, 1]`` to multiply the height by.
    """
    if rng.random() >= p:
        attrs["collapse"] = 0.0
        return 1.0
    phi = rng.uniform(0, 2 * math.pi)
    depth = float(rng.uniform(0.25, 0.7))  # fraction of height lost at the far edge
    start = float(rng.uniform(-0.3, 0.4)) * half_um  # where the sag begins, along the direction phi
    s = (math.cos(phi) * u + math.sin(phi) * v - start) / max(half_um - start, 1e-6)
    attrs["collapse"] = round(depth, 3)
    return (1.0 - depth * np.clip(s, 0.0, 1.0)).astype(np.float32)


def _holes(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, half_um: float, mean: float,
           attrs: Attrs) -> np.ndarray | float:
    """A factor map with a Poisson number of round holes (unpolymerised voids), or 1.0 for none."""
    n = int(rng.poisson(mean))
    attrs["holes"] = n
    if n == 0:
        return 1.0
    keep = np.ones(u.shape, np.float32)
    for _ in range(n):
        cu, cv = rng.uniform(-0.8, 0.8, size=2) * half_um
        r = rng.uniform(1.0, max(1.5, 0.12 * half_um))
        inside = (u - cu) ** 2 + (v - cv) ** 2 < r * r
        keep[inside] *= np.float32(rng.uniform(0.0, 0.4))
    return keep


def _roughness(rng: np.random.Generator, shape: tuple[int, ...], pitch_um: float, attrs: Attrs) -> np.ndarray:
    """Random surface roughness: Gaussian-correlated height noise, µm, with a per-structure RMS.

    Printed surfaces carry the writing path's hatching and voxel ripple: typically 5-40 nm RMS (reported
    Ra of good TPP prints is 10-30 nm), correlated over a fraction of a micrometre to a micrometre. It is a
    weak phase texture: invisible in focus, a faint mottle out of focus, as on real prints.
    """
    rms = float(np.exp(rng.uniform(math.log(0.005), math.log(0.04))))  # log-uniform 5-40 nm
    corr_um = float(rng.uniform(0.3, 1.0))
    noise = gaussian_filter(rng.standard_normal(shape).astype(np.float32), corr_um / pitch_um, mode="wrap")
    noise *= np.float32(rms / max(float(noise.std()), 1e-12))
    attrs["roughness_rms_um"] = round(rms, 4)
    attrs["roughness_corr_um"] = round(corr_um, 3)
    return noise


def _finish(rng: np.random.Generator, h: np.ndarray, rotation_deg: float, pitch_um: float, attrs: Attrs,
            top: np.ndarray | None = None, roughness: bool = True) -> Shape:
    """Roughen a polymer thickness map and wrap it (and, for open shapes, its top map) into a :class:`Shape`.

    Roughness fades in over the first micrometre of height so that the outline (where the height is 0) stays
    where the shape put it. ``roughness=False`` leaves the ideal shape (for tests of the geometry).
    """
    if roughness:
        fade = np.clip(h, 0.0, 1.0)
        h = h + fade * _roughness(rng, h.shape, pitch_um, attrs)
    h = np.maximum(h, 0.0).astype(np.float32)
    absorption = np.where(h > 0, np.float32(POLYMER_ABSORPTION_PER_UM), np.float32(0)).astype(np.float32)
    top_um = float(h.max()) if top is None else max(float(top.max()), float(h.max()))
    attrs["max_height_um"] = round(top_um, 4)
    return Shape(h, absorption, pitch_um, rotation_deg, attrs, None if top is None else top_um)


def woodpile(rng: np.random.Generator, pitch_um: float = STRUCTURE_PITCH_UM, roughness: bool = True) -> Shape:
    """Woodpile photonic crystal: layers of parallel rods, crossed 90° layer to layer.

    Every second layer of the same direction is shifted by half a rod pitch (the face-centred stacking).
    The height map is the polymer *thickness* along each column (rods of different layers with air between
    them add up), which is what a thin-element phase model needs; the stack's geometric top, which sets its
    focus, is carried as ``Shape.top_height_um``. A rod over a missing rod bridges the gap.
    Defects: missing rods; holes; partial collapse.
    """
    side = float(rng.uniform(20.0, 80.0))
    layer_um = float(rng.uniform(1.0, 2.0))
    n_layers = int(rng.integers(max(4, math.ceil(5.0 / layer_um)), int(28.0 / layer_um) + 1))
    rod_pitch = float(rng.uniform(1.5, 3.0))
    rod_w = float(rng.uniform(0.45, 0.65)) * rod_pitch
    rot = float(rng.uniform(0, 90))
    u, v = local_grid(side / 2 * math.sqrt(2), rot, pitch_um)
    half = side / 2
    inside = (np.abs(u) <= half) & (np.abs(v) <= half)
    thick = np.zeros(u.shape, np.float32)
    top = np.zeros(u.shape, np.float32)
    n_rods = int(side / rod_pitch) + 3  # rod index k runs over -n_rods..n_rods
    p_missing = float(rng.choice([0.0, 0.02, 0.08]))
    missing_total = 0
    for layer in range(n_layers):
        c = v if layer % 2 == 0 else u
        shift = rod_pitch / 2 if (layer // 2) % 2 else 0.0
        k = np.rint((c - shift) / rod_pitch)
        dist = np.abs(c - shift - k * rod_pitch)
        missing = rng.random(2 * n_rods + 1) < p_missing
        k_lo = math.ceil((-half - shift - rod_w / 2) / rod_pitch) + n_rods  # rods that touch the square
        k_hi = math.floor((half - shift + rod_w / 2) / rod_pitch) + n_rods
        missing_total += int(missing[k_lo:k_hi + 1].sum())
        k_idx = np.clip(k.astype(np.int64) + n_rods, 0, 2 * n_rods)
        covered = inside & (dist < rod_w / 2) & ~missing[k_idx]
        thick += np.where(covered, np.float32(layer_um), np.float32(0))
        top = np.where(covered, np.float32((layer + 1) * layer_um), top)
    attrs: Attrs = {"side_um": round(side, 3), "layers": n_layers, "layer_um": round(layer_um, 3),
                    "rod_pitch_um": round(rod_pitch, 3), "rod_width_um": round(rod_w, 3),
                    "missing_rods": missing_total}
    factor = _holes(rng, u, v, half, 0.3, attrs)
    factor = factor * _collapse(rng, u, v, half, 0.2, attrs)
    return _finish(rng, thick * factor, rot, pitch_um, attrs, top * factor, roughness)


def microlens(rng: np.random.Generator, pitch_um: float = STRUCTURE_PITCH_UM, roughness: bool = True) -> Shape:
    """Micro-lens: a spherical cap; defects are holes and a lopsided (collapsed) side."""
    diameter = float(rng.uniform(20.0, 120.0))
    height = float(rng.uniform(5.0, min(30.0, diameter / 2)))
    radius = (diameter**2 / 4 + height**2) / (2 * height)  # sphere radius of a cap of this sag
    rot = float(rng.uniform(0, 360))
    u, v = local_grid(diameter / 2, rot, pitch_um)
    r2 = u * u + v * v
    h = np.sqrt(np.maximum(radius * radius - r2, 0.0)) - (radius - height)
    h = np.where(r2 <= (diameter / 2) ** 2, h, 0.0).astype(np.float32)
    attrs: Attrs = {"diameter_um": round(diameter, 3), "sag_um": round(height, 3)}
    h = h * _holes(rng, u, v, diameter / 2, 0.3, attrs)
    h = h * _collapse(rng, u, v, diameter / 2, 0.2, attrs)
    return _finish(rng, h, rot, pitch_um, attrs, roughness=roughness)


def scaffold(rng: np.random.Generator, pitch_um: float = STRUCTURE_PITCH_UM, roughness: bool = True) -> Shape:
    """Scaffold grid: thin walls on a square grid (open cells); defects are missing wall segments."""
    side = float(rng.uniform(40.0, 120.0))
    cells = int(rng.integers(3, 9))
    wall = float(rng.uniform(1.0, 3.0))
    height = float(rng.uniform(5.0, 30.0))
    rot = float(rng.uniform(0, 90))
    u, v = local_grid(side / 2 * math.sqrt(2) + wall, rot, pitch_um)
    half = side / 2
    cell = side / cells
    # Grid lines at -half + k * cell, k = 0..cells; a wall runs along u (constant v) or along v.
    ku = np.rint((u + half) / cell)
    kv = np.rint((v + half) / cell)
    near_u_line = np.abs(u + half - ku * cell) < wall / 2  # walls of constant u (running along v)
    near_v_line = np.abs(v + half - kv * cell) < wall / 2
    lim = half + wall / 2
    box = (np.abs(u) <= lim) & (np.abs(v) <= lim)
    # Missing segments: a segment is one wall between two grid nodes, indexed by line and cell.
    p_missing = float(rng.choice([0.0, 0.05, 0.15]))
    miss_u = rng.random((cells + 1, cells)) < p_missing  # [line k along u, cell index along v]
    miss_v = rng.random((cells + 1, cells)) < p_missing
    cu = np.clip(np.floor((u + half) / cell), 0, cells - 1).astype(np.int64)
    cv = np.clip(np.floor((v + half) / cell), 0, cells - 1).astype(np.int64)
    ku_i = np.clip(ku, 0, cells).astype(np.int64)
    kv_i = np.clip(kv, 0, cells).astype(np.int64)
    wall_u = near_u_line & ~miss_u[ku_i, cv]
    wall_v = near_v_line & ~miss_v[kv_i, cu]
    h = np.where(box & (wall_u | wall_v), np.float32(height), np.float32(0)).astype(np.float32)
    attrs: Attrs = {"side_um": round(side, 3), "cells": cells, "wall_um": round(wall, 3),
                    "missing_walls": int(miss_u.sum() + miss_v.sum())}
    h = h * _collapse(rng, u, v, half, 0.25, attrs)
    return _finish(rng, h, rot, pitch_um, attrs, roughness=roughness)


def pentagon(rng: np.random.Generator, pitch_um: float = STRUCTURE_PITCH_UM, roughness: bool = True,
             circumradius_um: float | None = None, height_um: float | None = None) -> Shape:
    """Pentagon prism: flat-topped pentagon with slightly sloped side walls (the TPP reference structure).

    The top edge is rounded (a quarter circle of radius 1-3 µm meeting the wall and the top), as the
    elongated voxel and the resin's shrinkage leave it on real prints; that shoulder of gentle slope is the
    inner rim whose contrast inverts through focus, while the steep wall scatters light out of the pupil.
    ``circumradius_um`` / ``height_um`` replace the drawn size / height (the draws still happen, so the rest of
    the shape is what the same generator state gives; used to match a structure of known size).
    """
    circum = float(rng.uniform(10.0, 60.0))
    height = float(rng.uniform(5.0, 30.0))
    circum = circum if circumradius_um is None else float(circumradius_um)
    height = height if height_um is None else float(height_um)
    wall_angle = float(rng.uniform(84.0, 89.5))  # degrees from the slide plane
    run = height / math.tan(math.radians(wall_angle))  # horizontal extent of a sloped wall
    rot = float(rng.uniform(0, 72))
    rounding = min(float(rng.uniform(0.5, 2.0)), 0.5 * height)
    apothem = circum * math.cos(math.pi / 5)
    u, v = local_grid((apothem + run) / math.cos(math.pi / 5) + pitch_um, rot, pitch_um)
    # Inward distance from the base outline: the smallest (apothem + run - n_i . p) over the five edges.
    dist = np.full(u.shape, np.inf, np.float32)
    for i in range(5):
        a = math.pi / 2 + 2 * math.pi * i / 5 + math.pi / 5
        dist = np.minimum(dist, apothem + run - (math.cos(a) * u + math.sin(a) * v))
    wall = height * dist / max(run, pitch_um)
    # The shoulder starts where the wall reaches height - rounding, rising vertically, ending flat.
    d0 = run * (1.0 - rounding / height)
    x = np.clip(dist - d0, 0.0, rounding)
    cap = height - rounding + np.sqrt(np.maximum(rounding * rounding - (rounding - x) ** 2, 0.0))
    h = np.where(dist > 0, np.minimum(wall, cap), 0.0).astype(np.float32)
    attrs: Attrs = {"circumradius_um": round(circum, 3), "wall_angle_deg": round(wall_angle, 2),
                    "edge_rounding_um": round(rounding, 3)}
    h = h * _holes(rng, u, v, circum, 0.4, attrs)
    h = h * _collapse(rng, u, v, circum, 0.2, attrs)
    return _finish(rng, h, rot, pitch_um, attrs, roughness=roughness)


def split_ring(rng: np.random.Generator, pitch_um: float = STRUCTURE_PITCH_UM, roughness: bool = True) -> Shape:
    """Split-ring resonator: a ring wall with one gap; collapse lowers one side of the ring."""
    r_out = float(rng.uniform(10.0, 60.0))
    width = float(rng.uniform(2.0, min(12.0, 0.5 * r_out)))
    gap_deg = float(rng.uniform(15.0, 60.0))
    height = float(rng.uniform(5.0, 30.0))
    rot = float(rng.uniform(0, 360))
    u, v = local_grid(r_out, rot, pitch_um)
    r = np.hypot(u, v)
    theta = np.degrees(np.arctan2(v, u))
    ring = (r <= r_out) & (r >= r_out - width) & (np.abs(theta) > gap_deg / 2)
    h = np.where(ring, np.float32(height), np.float32(0)).astype(np.float32)
    attrs: Attrs = {"outer_radius_um": round(r_out, 3), "ring_width_um": round(width, 3),
                    "gap_deg": round(gap_deg, 2)}
    h = h * _holes(rng, u, v, r_out, 0.3, attrs)
    h = h * _collapse(rng, u, v, r_out, 0.2, attrs)
    return _finish(rng, h, rot, pitch_um, attrs, roughness=roughness)


class StructureGenerator(Protocol):
    """The signature every structure generator shares."""

    def __call__(self, rng: np.random.Generator, pitch_um: float = ..., roughness: bool = ...) -> Shape:
        """Draw one structure from ``rng`` on a grid of ``pitch_um``; ``roughness`` adds surface texture."""
        ...


GENERATORS: dict[str, StructureGenerator] = {
    "woodpile": woodpile,
    "microlens": microlens,
    "scaffold": scaffold,
    "pentagon": pentagon,
    "split_ring": split_ring,
}

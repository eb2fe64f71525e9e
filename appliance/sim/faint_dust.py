"""Faint dust: small specks on surfaces away from the focal plane, seen as soft grey shadows at any focus.

Besides the few dark specks lying on the slide in the focal plane (:mod:`appliance.sim.debris`), a real field
shows many faint ones. An opaque particle of radius ``r`` on a surface a distance ``D`` from an image plane
casts a shadow blurred into a disc of radius ``b`` (the cone of light at that surface); the shadow keeps the
particle's blocked light, so its depth is about ``(r/b)^2``. Particles on the far side of a 1 mm slide are blurred
by ``sigma NA D`` (about 80 µm at the defaults) and vanish; the faint specks a camera actually shows sit on
surfaces near an image plane of the optics (the camera's window, a relay lens, a reticle), where the blur referred
to the sample is a few µm. Those are fixed to the camera: they stay at the same pixels while the stage moves and
do not change with focus. They are multiplied into the illumination field (:func:`appliance.sim.sensor.
illumination_background`), so they cost nothing per frame, and lens-shading correction (radial) leaves them.

Each speck: radius log-uniform in ``SPECK_RADIUS_UM`` (referred to the sample), blur radius ``b`` uniform in
0.4-1 of ``optics_dust_blur_um``, opacity 0.5-1; the shadow is a Gaussian of sigma ``sqrt(b^2 + r^2)/2`` whose
integral equals the blocked light ``opacity pi r^2`` (depth capped at the opacity).
"""

from __future__ import annotations

import math

import numpy as np

SPECK_RADIUS_UM = (0.3, 2.0)


def speck_field(shape: tuple[int, int], um_per_px: float, per_mm2: float, blur_um: float,
                rng: np.random.Generator) -> np.ndarray:
    """Transmission of a field of faint specks, 1.0 where there is none.

    Parameters
    ----------
    shape : (int, int)
        Frame (height, width) in pixels.
    um_per_px : float
        Sample-referred pixel size, µm.
    per_mm2 : float
        Mean number of specks per mm² of field (Poisson).
    blur_um : float
        Largest shadow blur radius, µm.
    rng : numpy.random.Generator
        Source of positions and sizes.

    Returns
    -------
    (H, W) ndarray of float32
    """
    h, w = shape
    out = np.ones((h, w), dtype=np.float32)
    area_mm2 = h * w * (um_per_px / 1000.0) ** 2
    n = int(rng.poisson(per_mm2 * area_mm2))
    lo, hi = math.log(SPECK_RADIUS_UM[0]), math.log(SPECK_RADIUS_UM[1])
    for _ in range(n):
        cu, cv = float(rng.uniform(-0.5, w - 0.5)), float(rng.uniform(-0.5, h - 0.5))
        r = math.exp(float(rng.uniform(lo, hi)))
        b = blur_um * float(rng.uniform(0.4, 1.0))
        opacity = float(rng.uniform(0.5, 1.0))
        # sigma in pixels, with the pixel's own area (variance 1/12 px^2) folded in
        s_um = math.hypot(b, r) / 2.0
        s_px = math.sqrt((s_um / um_per_px) ** 2 + 1.0 / 12.0)
        depth = min(opacity, opacity * r * r / (2.0 * s_um * s_um))
        reach = int(math.ceil(3.0 * s_px))
        u0, u1 = max(0, int(cu) - reach), min(w, int(cu) + reach + 2)
        v0, v1 = max(0, int(cv) - reach), min(h, int(cv) + reach + 2)
        if u1 <= u0 or v1 <= v0:
            continue
        gx = np.exp(-0.5 * ((np.arange(u0, u1) - cu) / s_px) ** 2)
        gy = np.exp(-0.5 * ((np.arange(v0, v1) - cv) / s_px) ** 2)
        out[v0:v1, u0:u1] *= (1.0 - depth * gy[:, None] * gx[None, :]).astype(np.float32)
    return out

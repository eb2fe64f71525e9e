"""Seeded synthetic frames for the kernels' tests and benchmarks (no files, no network).

A frame looks like a TPP slide seen in transmitted light: bright, unevenly lit glass with shot-like noise,
and dark structures (discs, rings, squares with soft edges) scattered over it.
"""

from __future__ import annotations

import numpy as np

from kernels._checks import check_int, check_real

__all__ = ["blob_frame", "random_frame"]


def random_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Uniform random uint8 noise of shape (height, width), seeded."""
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    return rng.integers(0, 256, (check_int(height, "height", 1), check_int(width, "width", 1)), dtype=np.uint8)


def blob_frame(height: int = 480, width: int = 640, n_blobs: int = 120, seed: int = 0,
               noise: float = 3.0) -> np.ndarray:
    """A synthetic slide frame: ``n_blobs`` dark structures on bright, vignetted glass.

    Parameters
    ----------
    height, width : int, optional
        Frame shape in pixels (at least 16 each).
    n_blobs : int, optional
        Structures drawn (overlapping ones merge, so a blob search may find fewer).
    seed : int, optional
        Random seed; the same seed gives the same frame.
    noise : float, optional
        Standard deviation of the additive Gaussian noise, grey levels.

    Returns
    -------
    (height, width) ndarray of uint8
        C-contiguous frame.

    Raises
    ------
    ValueError
        On a bad size, count, seed or noise level.
    """
    h = check_int(height, "height", 16)
    w = check_int(width, "width", 16)
    n = check_int(n_blobs, "n_blobs", 0)
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    sigma = check_real(noise, "noise", 0.0, 100.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # Uneven illumination: a tilt plus vignetting around a shifted centre.
    cx0, cy0 = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    r2 = ((xx - cx0) / w) ** 2 + ((yy - cy0) / h) ** 2
    img = 205.0 + 12.0 * (xx / w - 0.5) - 8.0 * (yy / h - 0.5) - 60.0 * r2
    scale = min(h, w) / 480.0
    for _ in range(n):
        radius = rng.uniform(3.0, 14.0) * scale
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        depth = rng.uniform(0.35, 0.8)
        kind = rng.integers(0, 3)
        x0, x1 = max(int(cx - radius - 2), 0), min(int(cx + radius + 3), w)
        y0, y1 = max(int(cy - radius - 2), 0), min(int(cy + radius + 3), h)
        if x0 >= x1 or y0 >= y1:
            continue
        lx, ly = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
        if kind == 2:  # square (a woodpile's footprint)
            dist = np.maximum(np.abs(lx), np.abs(ly))
        else:
            dist = np.hypot(lx, ly)
        alpha = np.clip(radius - dist + 0.5, 0.0, 1.0)  # anti-aliased edge
        if kind == 1:  # ring (a micro-lens rim): dark annulus, lighter centre
            alpha *= np.clip(dist - 0.5 * radius + 0.5, 0.0, 1.0) * 0.7 + 0.3
        img[y0:y1, x0:x1] *= 1.0 - depth * alpha
    img += rng.normal(0.0, sigma, img.shape)
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))

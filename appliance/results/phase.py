"""Phase from a through-focus stack: the transport-of-intensity equation (TIE), and a lens's sag from it.

A bright-field microscope sees a transparent print as a phase object: the light through a column of polymer
``h`` µm tall is delayed by ``phi = 2 pi dn h / lambda``. How the intensity changes through focus carries that
phase (Teague's transport-of-intensity equation, with ``z`` the focal plane's height above the object)::

    div(I grad phi) = -k dI/dz,        k = 2 pi / lambda

``dI/dz`` comes from two planes symmetric about the object's focus; the equation is solved as two Poisson
problems (``lap psi = -k dI/dz``, then ``lap phi = div(grad psi / I)``) by FFT, with a Tikhonov term ``alpha``
that keeps the unmeasurable lowest frequencies from blowing up, on a mirror-padded crop (so the glass around
the structure is the boundary and nothing wraps around).

What it can and cannot measure (``docs/scan.md``, "Height maps"): the phase is recovered where it is smooth and
its gradient stays inside the objective's pupil, ``|grad h| < NA / dn`` (0.5 at NA 0.25 and dn 0.5): a lens's
cap, the inside of a gently tilted top. A steep wall sends its light outside the pupil, so the phase step from
the glass up to a flat top never reaches the camera, and only the step modulo ``2 pi`` (``lambda / dn`` = 1.1 µm
of height) shapes the fringes at the wall: the height of a flat-topped print is not in its phase.
"""

from __future__ import annotations

import math

import numpy as np

#: Width of the crop's border taken as the clear-glass reference, px.
BORDER_PX = 4


def linear_intensity(frame: np.ndarray, gamma: float) -> np.ndarray:
    """Undo the camera's gamma and normalise by the clear glass at the crop's border.

    Parameters
    ----------
    frame : (H, W) ndarray of uint8
        A grey frame (a crop with some glass around the structure).
    gamma : float
        The camera's encoding gamma (1 for a linear camera; 2.2 for the appliance's ISP), > 0.

    Returns
    -------
    (H, W) ndarray of float64
        Intensity relative to the glass (glass about 1.0).
    """
    if frame.ndim != 2 or min(frame.shape) <= 2 * BORDER_PX:
        raise ValueError(f"frame must be 2-D and larger than {2 * BORDER_PX} px each way, got shape {frame.shape}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    lin = (frame.astype(np.float64) / 255.0) ** gamma
    b = BORDER_PX
    border = np.concatenate([lin[:b].ravel(), lin[-b:].ravel(), lin[b:-b, :b].ravel(), lin[b:-b, -b:].ravel()])
    glass = float(np.median(border))
    return lin / max(glass, 1e-6)


def _inverse_laplacian(f: np.ndarray, um_per_px: float, alpha: float) -> np.ndarray:
    """Solve ``lap u = f`` on a periodic grid by FFT, Tikhonov-regularised: ``U = -F / (q^2 + alpha)``."""
    fy = np.fft.fftfreq(f.shape[0], um_per_px)[:, None]
    fx = np.fft.fftfreq(f.shape[1], um_per_px)[None, :]
    q2 = (2.0 * math.pi) ** 2 * (fx * fx + fy * fy)
    return np.real(np.fft.ifft2(-np.fft.fft2(f) / (q2 + alpha)))


def tie_phase(i_minus: np.ndarray, i_zero: np.ndarray, i_plus: np.ndarray, dz_um: float, wavelength_um: float,
              um_per_px: float, alpha: float = 1e-4) -> np.ndarray:
    """The phase of a thin object from three planes through focus (TIE, Teague's two-Poisson solution).

    Parameters
    ----------
    i_minus, i_zero, i_plus : (H, W) ndarray of float
        Linear intensity (glass 1.0) at the object's focus minus ``dz``, at focus, and plus ``dz``.
    dz_um : float
        Plane spacing, µm (> 0; ``i_plus`` is focused above the object).
    wavelength_um : float
        Illumination wavelength, µm.
    um_per_px : float
        Pixel size at the sample, µm.
    alpha : float
        Tikhonov term, 1/µm² (> 0): phase variations broader than about ``2 pi / sqrt(alpha)`` µm are damped.

    Returns
    -------
    (H, W) ndarray of float64
        Phase, radians, up to a constant (the caller sets its zero on the glass).
    """
    if not (i_minus.shape == i_zero.shape == i_plus.shape and i_zero.ndim == 2):
        raise ValueError(f"the three planes must be 2-D of one shape, got {i_minus.shape}, {i_zero.shape}, "
                         f"{i_plus.shape}")
    for name, v in (("dz_um", dz_um), ("wavelength_um", wavelength_um), ("um_per_px", um_per_px),
                    ("alpha", alpha)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    h, w = i_zero.shape
    pad = ((h // 2, h // 2), (w // 2, w // 2))
    k = 2.0 * math.pi / wavelength_um
    rhs = np.pad(-k * (i_plus - i_minus) / (2.0 * dz_um), pad, mode="reflect")
    inten = np.pad(np.maximum(i_zero, 0.05), pad, mode="reflect")  # dark walls: keep the division sane
    psi = _inverse_laplacian(rhs, um_per_px, alpha)
    gy, gx = np.gradient(psi, um_per_px)
    div = np.gradient(gx / inten, um_per_px, axis=1) + np.gradient(gy / inten, um_per_px, axis=0)
    phi = _inverse_laplacian(div, um_per_px, alpha)
    return phi[pad[0][0]:pad[0][0] + h, pad[1][0]:pad[1][0] + w]


def lens_cap(phi: np.ndarray, mask: np.ndarray, um_per_px: float, wavelength_um: float, index_delta: float,
             core: float = 0.4) -> tuple[float, float, tuple[float, float]] | None:
    """A spherical cap's radius of curvature from the phase over its centre, and its base radius from the mask.

    Near its apex a cap of curvature radius ``R`` has ``h = H - r^2 / (2 R)``, so its phase is a paraboloid
    ``phi = c - k dn r^2 / (2 R)``; the fit is over the central ``core`` of the footprint's radius, where the
    slope stays inside the pupil. The base radius ``a`` is the footprint's equivalent-circle radius.

    Parameters
    ----------
    phi : (H, W) ndarray
        Phase from :func:`tie_phase`, radians.
    mask : (H, W) ndarray of bool
        The footprint.
    um_per_px, wavelength_um, index_delta : float
        Pixel size at the sample, wavelength and the polymer's index step.
    core : float
        Fraction of the base radius fitted, (0, 1].

    Returns
    -------
    (radius_um, base_radius_um, (cx_px, cy_px)) or None
        None when the footprint is too small or the centre is not curved like a lens (convex, ``R > 0``).
    """
    ys, xs = np.nonzero(mask)
    if xs.size < 30:
        return None
    cx, cy = float(xs.mean()), float(ys.mean())
    a_um = math.sqrt(xs.size / math.pi) * um_per_px
    v, u = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    x = (u - cx) * um_per_px
    y = (v - cy) * um_per_px
    r2 = x * x + y * y
    sel = mask & (r2 <= (core * a_um) ** 2)
    if sel.sum() < 12:
        return None
    design = np.stack([np.ones(sel.sum()), x[sel], y[sel], r2[sel]], axis=1)
    coef, *_ = np.linalg.lstsq(design, phi[sel], rcond=None)
    k = 2.0 * math.pi / wavelength_um
    if not coef[3] < 0:
        return None
    return -k * index_delta / (2.0 * float(coef[3])), a_um, (cx, cy)


def cap_heights(shape: tuple[int, int], radius_um: float, base_radius_um: float, centre_px: tuple[float, float],
                um_per_px: float) -> np.ndarray:
    """Heights of a spherical cap of curvature ``radius_um`` cut to a base of ``base_radius_um``, µm.

    A radius below the base radius (a measurement error: no cap is wider than its sphere) is raised to it,
    which gives a hemisphere.
    """
    rr = max(radius_um, base_radius_um)
    sag = rr - math.sqrt(rr * rr - base_radius_um * base_radius_um)
    v, u = np.mgrid[0:shape[0], 0:shape[1]]
    r2 = ((u - centre_px[0]) ** 2 + (v - centre_px[1]) ** 2) * um_per_px * um_per_px
    h = np.sqrt(np.maximum(rr * rr - r2, 0.0)) - (rr - sag)
    return np.maximum(h, 0.0).astype(np.float32)

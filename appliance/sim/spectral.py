"""Colour: a halogen lamp seen through a Bayer sensor's filters, and the colour of a print's light loss.

The lamp is a black body at ``lamp_temperature_k`` (a halogen bulb runs at 2800-3300 K); each Bayer channel
sees it through a broad colour filter (Gaussian pass bands at 0.46 and 0.535 µm for blue and green, a long-pass
edge at 0.585 µm for red), an IR-cut filter (edge at 0.67 µm) and silicon's quantum efficiency.
:func:`channel_response` integrates that on a 5 nm grid into each channel's relative signal through clear glass
and its mean wavelength.

Cheap spectral rendering: the optics run once, at the green channel's wavelength (``OpticsParams.wavelength_um``);
what changes strongly across the channels is the print's loss (it grows as λ⁻², see :mod:`appliance.sim.polymer`),
while diffraction changes by the ±12 % spread of the channels' wavelengths. So each channel's image is the green
image times a **colour ratio** ``exp(-2 a(x) (s_c - s_0))``, where ``a`` is the object's amplitude loss at 0.55 µm,
``s_c`` its wavelength scale at channel ``c`` and ``s_0`` at the optics' wavelength; the ratio is smoothed by the
point spread and the condenser's defocus cone (:func:`ratio_blur_um`). Grey absorbers (dust, exponent 0) have no
colour ratio. ``tests/sim/test_capture.py`` compares this with a full render at the red and blue wavelengths
(within 0.02 of clear glass in focus, 0.04 at 6 µm defocus).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from appliance.sim.optics import ObjectSpectrum, OpticsParams

# Bayer channel pass bands (typical CMOS colour filter arrays): green and blue are bands (centre, FWHM, µm); red
# is a long-pass edge that the IR-cut filter closes.
FILTER_CENTRES_UM = (0.600, 0.535, 0.460)
FILTER_FWHM_UM = (0.080, 0.090, 0.090)
RED_EDGE_UM = 0.585
IR_CUT_UM = 0.67
_WAVELENGTHS_UM = np.arange(0.38, 0.78, 0.005)
_HC_OVER_K_UM_K = 14387.77


def channel_response(lamp_temperature_k: float) -> tuple[np.ndarray, np.ndarray]:
    """Relative signal through clear glass and mean wavelength of the R, G, B channels under a black-body lamp.

    Parameters
    ----------
    lamp_temperature_k : float
        Colour temperature of the lamp, K.

    Returns
    -------
    gains : (3,) ndarray of float64
        Signal of R, G, B relative to the strongest channel (max 1).
    wavelengths_um : (3,) ndarray of float64
        Signal-weighted mean wavelength of each channel, µm.
    """
    lam = _WAVELENGTHS_UM
    planck = lam**-5 / np.expm1(_HC_OVER_K_UM_K / (lam * lamp_temperature_k))
    silicon = np.clip(1.0 - ((lam - 0.6) / 0.45) ** 2, 0.0, None)
    ir_cut = 1.0 / (1.0 + np.exp((lam - IR_CUT_UM) / 0.008))
    gains, means = [], []
    for k, (c, fwhm) in enumerate(zip(FILTER_CENTRES_UM, FILTER_FWHM_UM, strict=True)):
        band = 1.0 / (1.0 + np.exp(-(lam - RED_EDGE_UM) / 0.01)) if k == 0 else \
            np.exp(-4.0 * math.log(2.0) * ((lam - c) / fwhm) ** 2)
        w = planck * silicon * ir_cut * band
        gains.append(w.sum())
        means.append(float((w * lam).sum() / w.sum()))
    g = np.asarray(gains)
    return g / g.max(), np.asarray(means)


def bayer_sites(height: int, width: int) -> np.ndarray:
    """Channel index (0 R, 1 G, 2 B) of every photosite of an RGGB mosaic, shape (height, width), uint8."""
    sites = np.ones((height, width), dtype=np.uint8)
    sites[0::2, 0::2] = 0
    sites[1::2, 1::2] = 2
    return sites


def loss_map_on_grid(height_um: np.ndarray, absorption: np.ndarray, pitch_um: float, center_um: tuple[float, float],
                     spec: ObjectSpectrum) -> np.ndarray:
    """An object's amplitude loss ``absorption * height`` resampled (area mean) onto its spectrum's output grid.

    Returns
    -------
    (My, Mx) ndarray of float32
        Zero outside the object.
    """
    a = (absorption * np.maximum(height_um, 0.0)).astype(np.float32)
    my, mx = spec.spectrum.shape[-2:]
    (ox, oy), (px, py) = spec.origin_um, spec.pitch_um
    h, w = a.shape
    # Shrink first (area mean), then place by an affine map: warpAffine alone would point-sample the fine map.
    sw, sh = max(1, round(w * pitch_um / px)), max(1, round(h * pitch_um / py))
    small = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)
    wx, wy = w * pitch_um / sw, h * pitch_um / sh  # size of a shrunk sample, µm
    left, top = center_um[0] - w / 2.0 * pitch_um, center_um[1] - h / 2.0 * pitch_um  # outer edge of the map
    # output sample j' (at ox + j' px) -> shrunk sample j'' (centre at left + (j'' + 0.5) wx)
    m = np.array([[px / wx, 0.0, (ox - left) / wx - 0.5], [0.0, py / wy, (oy - top) / wy - 0.5]])
    return cv2.warpAffine(small, m, (mx, my), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def colour_ratios(loss: np.ndarray, scales: np.ndarray, base_scale: float) -> np.ndarray:
    """Per-channel intensity ratio to the base image, ``exp(-2 loss (s_c - s_0))``, shape (3, My, Mx) float32."""
    d = (np.asarray(scales, dtype=np.float32) - np.float32(base_scale))[:, None, None]
    return np.exp(np.float32(-2.0) * loss[None] * d).astype(np.float32)


def ratio_blur_um(dz_um: float, optics: OpticsParams) -> float:
    """Gaussian sigma that carries a loss map into the image at defocus ``dz_um``, µm.

    The point spread (sigma about ``0.21 λ/NA``) combined with the condenser's cone of light, whose radius at
    defocus ``dz`` is ``sigma_c NA |dz|`` (a uniform disc of radius R has sigma R/2).
    """
    psf = 0.21 * optics.wavelength_um / optics.na
    cone = 0.5 * optics.condenser_sigma * optics.na * abs(dz_um)
    return math.hypot(psf, cone)

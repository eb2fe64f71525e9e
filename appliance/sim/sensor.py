"""The virtual microscope's light and sensor: uneven illumination, vignetting, exposure, noise, 8-bit output.

The optics give a transmission map (clear glass = 1.0) in camera pixels. Here it is multiplied by a fixed
background (the lamp's uneven field and the objective's vignetting, fixed to the camera, not the slide),
turned into photo-electrons by the exposure, given shot noise (Gaussian with variance equal to the mean, the
Poisson limit at these counts) and read noise, scaled so the full well is 255, and rounded to uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.sim._checks import check_number
from appliance.sim.faint_dust import speck_field

MAX_WIDTH_PX = 2592
MAX_HEIGHT_PX = 1944


def check_exposure_ms(value: object) -> float:
    """Return a valid exposure time in ms (0.01..10000), else raise ``ValueError`` naming ``exposure_ms``."""
    return check_number("exposure_ms", value, 0.01, 10000.0)


@dataclass(frozen=True)
class SensorParams:
    """Camera sensor and illumination.

    Parameters
    ----------
    width_px, height_px : int
        Frame size, 16..2592 by 16..1944 (the OV5647's full frame). Default 640 x 480.
    pixel_um : float
        Pixel pitch on the sensor, 0.5..30 µm. Default 5.6 (an OV5647's 1.4 µm pixels binned 4 x 4, its
        640 x 480 mode): 0.56 µm per pixel at the sample under a 10x objective.
    exposure_ms : float
        Exposure time, 0.01..10000 ms. Default 10.
    electrons_per_ms : float
        Photo-electrons per ms per pixel through clear glass at the field centre, 1..1e6. Default 600, so
        the default exposure fills 60 % of the well (background near 150 of 255, as in bright field).
    full_well_e : float
        Electrons that map to 255, 100..1e6. Default 10000.
    read_noise_e : float
        Read noise, electrons RMS, 0..100. Default 4.
    vignetting : float
        Fractional loss of light at the frame's corners by the optics, 0..0.9. Default 0.25 (the camera's
        lens-shading correction, ``CameraChainParams.lens_shading_correction``, takes most of it out).
    illumination_variation : float
        Amplitude of the lamp's uneven field (smooth, seeded), 0..0.5. Default 0.03 (a Köhler-aligned lamp).
    optics_dust_per_mm2 : float
        Faint dust specks on the optics near an image plane, per mm² of field at the sample, 0..2000.
        Default 180 (:mod:`appliance.sim.faint_dust`; fixed to the camera, the same at any focus).
    optics_dust_blur_um : float
        Largest blur radius of their shadows referred to the sample, µm, 0.5..30. Default 3.
    rotation_deg : float
        How the camera is turned on its port, -180..180 degrees: the frame's +u (column) axis points along the
        slide's ``(cos a, sin a)`` in stage (x, y), its +v (row) axis along ``(-sin a, cos a)``. Default 0 (the
        frame's axes along the stage's). A camera is rarely mounted square: a few degrees is usual, 90 or 180
        where it was put on sideways.
    mirror : bool
        The frame flipped left to right (an odd number of mirrors in the light path, or a stage x axis wired
        the other way): +u then points along ``-(cos a, sin a)``. Default False.
    lamp_flicker : float
        Frame-to-frame change of the light each exposure collects, relative (a normal draw's standard deviation
        per frame), 0..0.3: an LED lamp dimmed by PWM, a lamp on a rippling supply, a camera's automatic exposure
        hunting. Default 0 (a steady lamp; the frames are then those of earlier sessions, bit for bit).
    lamp_drift : float
        How far the lamp's light moves as it warms up, relative, -0.5..0.5: it reaches ``1 + lamp_drift`` times
        its light at power-on along ``1 - exp(-t / lamp_drift_min)`` of the virtual clock. An LED loses 5-10 %
        as its junction heats; a halogen lamp's housing and supply move it a few percent. Default 0.
    lamp_drift_min : float
        The warm-up's time constant, minutes of the virtual clock (0.1..120). Default 5.

    Raises
    ------
    ValueError
        A parameter out of range; the message names it, the value and the allowed range.
    """

    width_px: int = 640
    height_px: int = 480
    pixel_um: float = 5.6
    exposure_ms: float = 10.0
    electrons_per_ms: float = 600.0
    full_well_e: float = 10000.0
    read_noise_e: float = 4.0
    vignetting: float = 0.25
    illumination_variation: float = 0.03
    optics_dust_per_mm2: float = 180.0
    optics_dust_blur_um: float = 3.0
    rotation_deg: float = 0.0
    mirror: bool = False
    lamp_flicker: float = 0.0
    lamp_drift: float = 0.0
    lamp_drift_min: float = 5.0

    def __post_init__(self) -> None:
        for name, hi in (("width_px", MAX_WIDTH_PX), ("height_px", MAX_HEIGHT_PX)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 16 <= v <= hi:
                raise ValueError(f"{name} must be an integer in [16, {hi}], got {v!r}")
        check_number("pixel_um", self.pixel_um, 0.5, 30.0)
        check_exposure_ms(self.exposure_ms)
        check_number("electrons_per_ms", self.electrons_per_ms, 1.0, 1e6)
        check_number("full_well_e", self.full_well_e, 100.0, 1e6)
        check_number("read_noise_e", self.read_noise_e, 0.0, 100.0)
        check_number("vignetting", self.vignetting, 0.0, 0.9)
        check_number("illumination_variation", self.illumination_variation, 0.0, 0.5)
        check_number("optics_dust_per_mm2", self.optics_dust_per_mm2, 0.0, 2000.0)
        check_number("optics_dust_blur_um", self.optics_dust_blur_um, 0.5, 30.0)
        check_number("lamp_flicker", self.lamp_flicker, 0.0, 0.3)
        check_number("lamp_drift", self.lamp_drift, -0.5, 0.5)
        check_number("lamp_drift_min", self.lamp_drift_min, 0.1, 120.0)
        check_number("rotation_deg", self.rotation_deg, -180.0, 180.0)
        if not isinstance(self.mirror, (bool, np.bool_)):
            raise ValueError(f"mirror must be true or false, got {self.mirror!r}")


def illumination_background(params: SensorParams, seed: int, um_per_px: float | None = None,
                            shape: tuple[int, int] | None = None) -> np.ndarray:
    """Relative illumination per pixel: a smooth seeded lamp field times radial vignetting (times faint dust).

    Parameters
    ----------
    params : SensorParams
        Frame size, vignetting, variation amplitude, optics dust.
    seed : int
        Seed of the lamp field's shape and the dust.
    um_per_px : float, optional
        Pixel size at the sample, µm; given, the optics' faint dust is added (it needs a scale).
    shape : (int, int), optional
        (height, width) of the grid, if not the frame's (a colour camera's photosites may be coarser).

    Returns
    -------
    (H, W) ndarray of float32
        About 1.0 at the centre, lower towards the corners.
    """
    h, w = (params.height_px, params.width_px) if shape is None else shape
    rng = np.random.default_rng([int(seed), 0x11E])
    # Normalised coordinates in [-1, 1] over the frame's width; the lamp field is a few low-order waves.
    yy = (np.arange(h, dtype=np.float32)[:, None] - (h - 1) / 2) / (w / 2)
    xx = (np.arange(w, dtype=np.float32)[None, :] - (w - 1) / 2) / (w / 2)
    lamp = np.zeros((h, w), dtype=np.float32)
    for _ in range(4):
        kx, ky = rng.uniform(-2.0, 2.0, size=2)
        ph = rng.uniform(0, 2 * math.pi)
        lamp += np.cos(np.float32(math.pi) * (np.float32(kx) * xx + np.float32(ky) * yy) + np.float32(ph))
    lamp *= np.float32(params.illumination_variation / 2.0)
    r2 = (xx * xx + yy * yy) / np.float32(1.0 + (h / w) ** 2)  # 1.0 at the corners
    vig = 1.0 - np.float32(params.vignetting) * r2
    out = (1.0 + lamp) * vig
    if um_per_px is not None and params.optics_dust_per_mm2 > 0:
        out *= speck_field((h, w), um_per_px, params.optics_dust_per_mm2, params.optics_dust_blur_um,
                           np.random.default_rng([int(seed), 0xD057]))
    return np.ascontiguousarray(out, dtype=np.float32)


def vignetting_profile(shape: tuple[int, int]) -> np.ndarray:
    """Squared radius over the squared corner radius, 0 at the centre and 1 at the corners, shape (H, W) float32."""
    h, w = shape
    yy = (np.arange(h, dtype=np.float32)[:, None] - (h - 1) / 2) / (w / 2)
    xx = (np.arange(w, dtype=np.float32)[None, :] - (w - 1) / 2) / (w / 2)
    return ((xx * xx + yy * yy) / np.float32(1.0 + (h / w) ** 2)).astype(np.float32)


def expose(transmission: np.ndarray, background: np.ndarray, params: SensorParams, exposure_ms: float,
           rng: np.random.Generator) -> np.ndarray:
    """Turn a transmission map into an 8-bit frame: exposure, shot and read noise, clipping.

    Parameters
    ----------
    transmission : (H, W) ndarray of float32
        Light passed by the slide, clear glass = 1.0 (modified in place).
    background : (H, W) ndarray of float32
        From :func:`illumination_background`.
    params : SensorParams
        Electrons per ms, full well, read noise.
    exposure_ms : float
        Exposure time, ms.
    rng : numpy.random.Generator
        Noise source (seeded by the caller, for reproducible frames).

    Returns
    -------
    (H, W) ndarray of uint8
        C-contiguous frame.
    """
    e = transmission
    e *= background
    e *= np.float32(params.electrons_per_ms * exposure_ms)
    np.maximum(e, 0.0, out=e)
    sigma = np.sqrt(e + np.float32(params.read_noise_e**2))
    noise = rng.standard_normal(size=e.shape, dtype=np.float32)
    noise *= sigma
    e += noise
    e *= np.float32(255.0 / params.full_well_e)
    np.clip(e, 0.0, 255.0, out=e)
    return np.ascontiguousarray(np.rint(e).astype(np.uint8))

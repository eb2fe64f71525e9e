"""The camera's capture chain: photosites, Bayer mosaic, noise, the ISP's processing, JPEG, then grey.

What a real colour camera does between the light on its sensor and the frame the appliance keeps, in order:

1. **Camera optics and photosites.** The camera's lens (or relay) and optical low-pass filter blur the light
   (``lens_blur_px``; the renderer applies it to each object's patch, as clear glass needs no blur). Each
   photosite integrates the image over its area (:func:`appliance.sim.camera.integrate_pixel_area`). A camera
   whose ISP scales its output up (``isp_upscale`` > 1, as cheap USB cameras do to reach a nominal resolution)
   has photosites that many output pixels wide, and the scene is rendered on that coarser grid.
2. **Bayer mosaic** (``colour=True``): an RGGB filter array; each photosite sees its channel's share of the
   halogen lamp (:func:`appliance.sim.spectral.channel_response`) and its channel's colour of the prints' loss.
3. **Exposure and noise** (one compiled pass together with step 4): electrons = transmission x lamp field x
   channel gain x rate x time; shot noise (Gaussian, variance = mean) and read noise per photosite, seeded per
   capture.
4. **ISP gains**: lens-shading correction (undoes ``lens_shading_correction`` of the optics' radial vignetting),
   white balance (``white_balance`` of the way from the lamp's warm colour to grey), then 12-bit quantisation and
   the encoding **gamma** through a lookup table, into 8 bits.
5. **Demosaic** (OpenCV: bilinear, edge-aware or VNG), then the ISP's **upscale** (bilinear) if any; the
   **colour matrix**, approximated as a ``saturation`` gain about the grey value (so grey output skips it).
6. **Denoise** (Gaussian, ``denoise_px``) and **sharpen** (unsharp mask, ``sharpen`` x (image - blur of
   ``sharpen_px``)).
7. **JPEG** (``jpeg_quality`` > 0: encoded and decoded, as a camera streaming MJPEG or saving JPEGs does).
8. **Grey**, as the appliance converts a real camera's frame at capture
   (:func:`appliance.hardware.camera.convert.to_gray`: OpenCV's ``BGR2GRAY``, 0.299 R + 0.587 G + 0.114 B).

The gamma step is applied to the mosaic before demosaicing (cheap ISPs do so; it lets the rest run on 8-bit
data, which keeps a 5 MP frame inside the render bar). Noise that starts white per photosite leaves the chain
spatially correlated (demosaic, upscale, denoise, JPEG), as on a real camera.

``PRESETS`` name documented settings; ``docs/simulator.md`` lists every parameter with a sensible range for
randomised training data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numba
import numpy as np

from appliance.hardware.camera.convert import to_gray
from appliance.sim import spectral
from appliance.sim._checks import check_number
from appliance.sim.sensor import SensorParams, illumination_background, vignetting_profile

DEMOSAIC_CODES = {"bilinear": cv2.COLOR_BayerBG2BGR, "edge_aware": cv2.COLOR_BayerBG2BGR_EA,
                  "vng": cv2.COLOR_BayerBG2BGR_VNG}  # OpenCV's "BG" names the RGGB layout starting at (0, 0)
_ADC_LEVELS = 4096  # 12-bit


@dataclass(frozen=True)
class CameraChainParams:
    """The camera's capture chain (module doc); validated on construction.

    Parameters
    ----------
    colour : bool
        True: a Bayer colour sensor (default). False: a monochrome sensor (no mosaic, no demosaic).
    lamp_temperature_k : float
        Colour temperature of the halogen lamp, K, 2000..7000. Default 3000.
    white_balance : float
        Fraction of the way from the lamp's raw colour to grey that the camera's white balance goes, 0..1.
        Default 0 (frames keep the lamp's warm colour, as the reference frames do).
    isp_upscale : float
        Output pixels per photosite along each axis, 1..4. Default 1 (the sensor's own resolution).
    lens_blur_px : float
        Sigma of the camera's own optics (its lens or relay and the sensor's optical low-pass filter), output
        pixels, 0..8, applied to the light before the photosites. Default 0.5.
    demosaic : str
        ``"bilinear"`` (default), ``"edge_aware"`` or ``"vng"`` (OpenCV's methods).
    saturation : float
        The colour-correction matrix's effect, approximated as a saturation gain about the grey value, 0..3.
        Default 1.2 (a Bayer filter's channels overlap; a camera's matrix pulls them apart). It leaves the grey
        value unchanged, so it affects only colour output.
    denoise_px : float
        Sigma of the ISP's spatial noise reduction, output pixels, 0..4. Default 0.6.
    sharpen : float
        Unsharp-mask amount, 0..3. Default 0.3.
    sharpen_px : float
        Unsharp-mask sigma, output pixels, 0.3..5. Default 1.
    gamma : float
        Encoding gamma, 1..3 (1: linear). Default 2.2 (sRGB-like).
    jpeg_quality : int
        0: no JPEG (default); 10..100: frames pass through a JPEG encoder at this quality.
    lens_shading_correction : float
        Fraction of the optics' radial vignetting the ISP corrects, 0..1. Default 0.75 (25 % vignetting leaves about
        6 %).

    Raises
    ------
    ValueError
        A parameter out of range; the message names it, the value and the allowed range.
    """

    colour: bool = True
    lamp_temperature_k: float = 3000.0
    white_balance: float = 0.0
    isp_upscale: float = 1.0
    lens_blur_px: float = 0.5
    demosaic: str = "bilinear"
    saturation: float = 1.2
    denoise_px: float = 0.6
    sharpen: float = 0.3
    sharpen_px: float = 1.0
    gamma: float = 2.2
    jpeg_quality: int = 0
    lens_shading_correction: float = 0.75

    def __post_init__(self) -> None:
        if not isinstance(self.colour, bool):
            raise ValueError(f"colour must be True or False, got {self.colour!r}")
        for name, lo, hi in (("lamp_temperature_k", 2000.0, 7000.0), ("white_balance", 0.0, 1.0),
                             ("saturation", 0.0, 3.0),
                             ("isp_upscale", 1.0, 4.0), ("lens_blur_px", 0.0, 8.0), ("denoise_px", 0.0, 4.0),
                             ("sharpen", 0.0, 3.0), ("sharpen_px", 0.3, 5.0), ("gamma", 1.0, 3.0),
                             ("lens_shading_correction", 0.0, 1.0)):
            object.__setattr__(self, name, check_number(name, getattr(self, name), lo, hi))
        if self.demosaic not in DEMOSAIC_CODES:
            raise ValueError(f"demosaic must be one of {sorted(DEMOSAIC_CODES)}, got {self.demosaic!r}")
        q = self.jpeg_quality
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not (q == 0 or 10 <= q <= 100):
            raise ValueError(f"jpeg_quality must be 0 (off) or an integer in [10, 100], got {q!r}")


# Documented settings (docs/simulator.md). "cheap_colour": a low-cost USB/eyepiece colour camera as in the seed
# authors' frames: its ISP scales a coarser photosite grid up 2x, smooths hard against noise, and streams MJPEG.
PRESETS: dict[str, CameraChainParams] = {
    "default": CameraChainParams(),
    "cheap_colour": CameraChainParams(isp_upscale=2.0, lens_blur_px=3.5, denoise_px=1.2, sharpen=0.5,
                                      sharpen_px=1.5, jpeg_quality=40, lens_shading_correction=0.75),
    "mono_raw": CameraChainParams(colour=False, denoise_px=0.0, sharpen=0.0, gamma=1.0,
                                  lens_shading_correction=0.0),
}


def photosite_size(sensor: SensorParams, chain: CameraChainParams) -> tuple[int, int]:
    """(width, height) of the photosite grid behind a frame of the sensor's size."""
    return (max(2, round(sensor.width_px / chain.isp_upscale)), max(2, round(sensor.height_px / chain.isp_upscale)))


class CaptureChain:
    """The per-camera state of the chain (lamp field, gains, lookup table) and :meth:`capture`.

    Parameters
    ----------
    sensor : SensorParams
        Frame size, light, noise, vignetting, optics dust.
    chain : CameraChainParams
        The chain's settings.
    um_per_px : float
        Output pixel size at the sample, µm (sets the optics dust's scale).
    seed : int
        Seeds the lamp field and the dust.
    """

    def __init__(self, sensor: SensorParams, chain: CameraChainParams, um_per_px: float, seed: int) -> None:
        self.sensor = sensor
        self.params = chain
        w, h = photosite_size(sensor, chain)
        self.size_px = (w, h)
        site_um = um_per_px * sensor.width_px / w
        bg = illumination_background(sensor, seed, um_per_px=site_um, shape=(h, w))
        shading = 1.0 - np.float32(sensor.vignetting * chain.lens_shading_correction) * vignetting_profile((h, w))
        self.channel_wavelengths_um: np.ndarray | None = None
        if chain.colour:
            gains, self.channel_wavelengths_um = spectral.channel_response(chain.lamp_temperature_k)
            self.sites: np.ndarray | None = spectral.bayer_sites(h, w)
            wb = gains.min() / gains  # the weakest channel's gain for all: never clips what was not clipped
            per_site = gains.astype(np.float32)[self.sites]
            balance = (wb ** chain.white_balance).astype(np.float32)[self.sites]
        else:
            self.sites = None
            per_site = np.float32(1.0)
            balance = np.float32(1.0)
        self._light = np.ascontiguousarray(bg * per_site, dtype=np.float32)  # relative electrons per photosite
        self._isp = np.ascontiguousarray(balance / shading * np.float32((_ADC_LEVELS - 1) / sensor.full_well_e),
                                         dtype=np.float32)
        levels = np.arange(_ADC_LEVELS, dtype=np.float64) / (_ADC_LEVELS - 1)
        self._lut = np.clip(np.rint(255.0 * levels ** (1.0 / chain.gamma)), 0, 255).astype(np.uint8)

    def capture(self, transmission: np.ndarray, exposure_ms: float, rng: np.random.Generator,
                grey: bool = False) -> np.ndarray:
        """One frame from a transmission map on the photosite grid (mosaic already applied); returns BGR or grey.

        Parameters
        ----------
        transmission : (h, w) ndarray of float32
            Light passed by the slide at each photosite, clear glass = 1.0 (modified in place).
        exposure_ms : float
            Exposure time, ms.
        rng : numpy.random.Generator
            Noise source (seeded by the caller).
        grey : bool
            Return grey (as the appliance keeps) instead of the camera's BGR.

        Returns
        -------
        (H, W, 3) ndarray of uint8 (BGR) for a colour camera unless ``grey``, else (H, W) uint8
        """
        p, s = self.params, self.sensor
        if transmission.shape != self._light.shape or transmission.dtype != np.float32:
            raise ValueError(f"transmission must be float32 of shape {self._light.shape}, got "
                             f"{transmission.dtype} {transmission.shape}")
        noise = rng.standard_normal(size=transmission.shape, dtype=np.float32)
        img: np.ndarray = np.empty(transmission.shape, dtype=np.uint8)
        _expose_encode(np.ascontiguousarray(transmission), self._light, noise,
                       np.float32(s.electrons_per_ms * exposure_ms), np.float32(s.read_noise_e**2), self._isp,
                       self._lut, img)
        if self.sites is not None:
            img = cv2.cvtColor(img, DEMOSAIC_CODES[p.demosaic])
        if self.size_px != (s.width_px, s.height_px):
            img = cv2.resize(img, (s.width_px, s.height_px), interpolation=cv2.INTER_LINEAR)
        if grey and not p.jpeg_quality:  # (the saturation step leaves grey unchanged: skipped too)
            # Denoise and sharpen are the same linear filter on every channel, so they commute with the grey
            # conversion (up to 8-bit rounding): converting first does a third of the work.
            img = to_grey(img)
        if p.denoise_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), p.denoise_px)
        if p.sharpen > 0:
            blur = cv2.GaussianBlur(img, (0, 0), p.sharpen_px)
            img = cv2.addWeighted(img, 1.0 + p.sharpen, blur, -p.sharpen, 0.0)
        if p.jpeg_quality:
            if img.ndim == 3:  # the camera encodes what its colour matrix made
                img = _saturate(img, p.saturation)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(p.jpeg_quality)])
            if not ok:  # OpenCV's encoder does not fail on a valid 8-bit image; say so if it ever does
                raise RuntimeError("JPEG encoding of a frame failed")
            decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            if decoded is None:
                raise RuntimeError("JPEG decoding of a frame failed")
            img = decoded
        if grey:
            return to_grey(img)
        if img.ndim == 3 and not p.jpeg_quality:
            img = _saturate(img, p.saturation)
        return np.ascontiguousarray(img)


@numba.njit(cache=True, nogil=True)
def _expose_encode(trans: np.ndarray, light: np.ndarray, noise: np.ndarray, rate: np.float32, read2: np.float32,
                   isp: np.ndarray, lut: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Electrons, shot and read noise, ISP gain, 12-bit clip and gamma lookup, in one pass per photosite."""
    top = np.float32(lut.shape[0] - 1)
    zero = np.float32(0.0)
    for i in range(trans.shape[0]):
        for j in range(trans.shape[1]):
            e = trans[i, j] * light[i, j] * rate
            if e < zero:
                e = zero
            e += np.sqrt(e + read2) * noise[i, j]
            v = e * isp[i, j]
            if v < zero:
                v = zero
            elif v > top:
                v = top
            out[i, j] = lut[int(v)]


def _saturate(bgr: np.ndarray, gain: float) -> np.ndarray:
    """``grey + gain (colour - grey)`` with grey as BGR2GRAY weighs it, so the grey value stays."""
    if gain == 1.0:
        return bgr
    g = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(bgr, gain, g, 1.0 - gain, 0.0)


def to_grey(img: np.ndarray) -> np.ndarray:
    """Grey exactly as the appliance converts a real camera's frame at capture (``hardware.camera.convert``)."""
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    return to_gray(img, "bgr", "simulated camera")


def preset(name: str, **overrides: object) -> CameraChainParams:
    """A documented preset (``PRESETS``), optionally with some parameters changed.

    Raises
    ------
    ValueError
        Unknown preset name (the message lists the known ones) or a bad override.
    """
    if name not in PRESETS:
        raise ValueError(f"camera preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(PRESETS[name], **overrides)  # type: ignore[arg-type]

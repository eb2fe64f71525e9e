"""The simulated camera: renders the slide where the simulated stage truly is.

Pixel <-> slide mapping (x right, y down, as docs/design.md §3): with the stage's true position
``(X, Y)`` and ``s = pixel_um / magnification`` µm per pixel at the sample, pixel column ``u`` and row ``v``
see slide point ``x = X + (u - (W - 1)/2) s``, ``y = Y + (v - (H - 1)/2) s``. The frame's centre is the
stage position, so overlapping positions show the same slide in the same place (:func:`pixel_to_slide_um`).

Rendering: each object in view (with a margin for defocus blur) is imaged on its own small grid by
:mod:`appliance.sim.optics`; the resulting intensity patch is cached by (object id, defocus quantised to
0.1 µm) in a bounded LRU and always rendered at the quantised defocus, so a frame does not depend on what
was cached. Patches are resampled into camera pixels (bilinear, the intensity is band-limited below the
pixel Nyquist rate) and multiplied together; :mod:`appliance.sim.sensor` adds light and noise. Noise is
seeded by (camera seed, capture index): the same seed and capture sequence give byte-identical frames.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.sim import spectral
from appliance.sim.capture import CameraChainParams, CaptureChain
from appliance.sim.optics import ObjectSpectrum, OpticsParams, image_intensity, object_spectrum
from appliance.sim.polymer import loss_scale
from appliance.sim.sensor import SensorParams, check_exposure_ms
from appliance.sim.stage import SimStage

# Defocus is quantised to this step for the patch cache (well below any depth of field here).
DZ_STEP_UM = 0.1
# Clear glass around each object, µm, by defocus: light spreads about 0.4 |dz| sideways at NA 0.25 (sigma 0.5),
# and the FFT is periodic, so a pad too small for |dz| would wrap the blur around into false edges.
# (largest |dz|, pad) pairs; beyond the last, the last pad is used (the stage's z travel is 180 µm).
PAD_CLASSES_UM: tuple[tuple[float, float], ...] = ((25.0, 12.0), (70.0, 32.0), (1e9, 80.0))
PAD_UM = PAD_CLASSES_UM[-1][1]  # the margin for finding objects whose blur may reach a frame


def pad_for_dz_um(dz_um: float, na: float) -> float:
    """Clear-glass pad for an object imaged at defocus ``dz_um`` (scaled for apertures above NA 0.25)."""
    scale = max(1.0, na / 0.25)
    for dz_max, pad in PAD_CLASSES_UM:
        if abs(dz_um) <= dz_max / scale:
            return pad
    return PAD_CLASSES_UM[-1][1]


class SlideObjectLike(Protocol):
    """What the camera needs of a slide object (``appliance.sim.slide.SlideObject`` has it)."""

    @property
    def id(self) -> int: ...  # noqa: D102
    @property
    def center_um(self) -> tuple[float, float]: ...  # noqa: D102
    @property
    def pitch_um(self) -> float: ...  # noqa: D102
    @property
    def height_um(self) -> np.ndarray: ...  # noqa: D102
    @property
    def absorption(self) -> np.ndarray: ...  # noqa: D102
    @property
    def index_delta(self) -> float: ...  # noqa: D102
    @property
    def focus_z_um(self) -> float: ...  # noqa: D102


class SlideLike(Protocol):
    """What the camera needs of a slide (``appliance.sim.slide.Slide`` has it)."""

    def objects_in_rect(self, x0: float, y0: float, x1: float, y1: float) -> Sequence[SlideObjectLike]:
        """Objects whose bounding box overlaps the rectangle."""
        ...


def pixel_axes(rotation_deg: float = 0.0, mirror: bool = False) -> np.ndarray | None:
    """The slide directions of a frame's +u and +v pixel axes (the columns of a 2 x 2 matrix).

    None for a camera mounted square (the axes are the stage's): the renderer then keeps its axis-aligned path,
    whose frames are bit for bit those of earlier versions. See ``SensorParams.rotation_deg`` and ``mirror``.
    """
    if rotation_deg == 0.0 and not mirror:
        return None
    a = math.radians(rotation_deg)
    turn = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return turn @ np.diag([-1.0 if mirror else 1.0, 1.0])


def pixel_to_slide_um(u: float | np.ndarray, v: float | np.ndarray, stage_xy_um: tuple[float, float],
                      size_px: tuple[int, int], um_per_px: float,
                      axes: np.ndarray | None = None) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Slide coordinates (µm) of pixel column ``u``, row ``v`` in a frame taken at ``stage_xy_um``.

    Parameters
    ----------
    u, v : float or ndarray
        Pixel column (x, right) and row (y, down).
    stage_xy_um : (float, float)
        Stage true x, y when the frame was taken, µm.
    size_px : (int, int)
        Frame (width, height).
    um_per_px : float
        Micrometres per pixel at the sample.
    axes : (2, 2) ndarray, optional
        :func:`pixel_axes` of a camera not mounted square.
    """
    w, h = size_px
    du, dv = (u - (w - 1) / 2.0) * um_per_px, (v - (h - 1) / 2.0) * um_per_px
    if axes is None:
        return stage_xy_um[0] + du, stage_xy_um[1] + dv
    return (stage_xy_um[0] + axes[0, 0] * du + axes[0, 1] * dv, stage_xy_um[1] + axes[1, 0] * du + axes[1, 1] * dv)


def slide_to_pixel(x_um: float | np.ndarray, y_um: float | np.ndarray, stage_xy_um: tuple[float, float],
                   size_px: tuple[int, int], um_per_px: float,
                   axes: np.ndarray | None = None) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Inverse of :func:`pixel_to_slide_um`: the pixel (column, row) where slide point ``(x_um, y_um)`` appears."""
    w, h = size_px
    dx, dy = (x_um - stage_xy_um[0]) / um_per_px, (y_um - stage_xy_um[1]) / um_per_px
    if axes is not None:  # the axes are orthonormal: their inverse is their transpose
        dx, dy = axes[0, 0] * dx + axes[1, 0] * dy, axes[0, 1] * dx + axes[1, 1] * dy
    return dx + (w - 1) / 2.0, dy + (h - 1) / 2.0


def frame_rect_um(stage_xy_um: tuple[float, float], size_px: tuple[int, int], um_per_px: float,
                  axes: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """The slide rectangle ``(x0, y0, x1, y1)`` a frame's pixels cover (their outer edges; turned: its bounds)."""
    w, h = size_px
    xs, ys = pixel_to_slide_um(np.array([-0.5, w - 0.5, -0.5, w - 0.5]), np.array([-0.5, -0.5, h - 0.5, h - 0.5]),
                               stage_xy_um, size_px, um_per_px, axes)
    return float(np.min(xs)), float(np.min(ys)), float(np.max(xs)), float(np.max(ys))


class _LRU:
    """A small least-recently-used cache."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._d: OrderedDict[object, object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: object) -> object | None:
        v = self._d.get(key)
        if v is None:
            self.misses += 1
            return None
        self.hits += 1
        self._d.move_to_end(key)
        return v

    def put(self, key: object, value: object) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.max_items:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()


class FieldRenderer:
    """Renders transmission maps of a slide through the optics; shared by the camera and the CLI.

    Parameters
    ----------
    slide : SlideLike
        The slide.
    optics : OpticsParams
        The objective and condenser.
    pixel_um : float
        Sensor pixel (photosite) pitch, µm: each camera pixel integrates the image over its area.
    cache_items : int
        Patches kept in the LRU (each a few hundred kB).
    channel_wavelengths_um : (float, float, float) or None
        Mean wavelengths of a colour sensor's R, G, B channels; given, :meth:`transmission` can render a Bayer
        mosaic (see :mod:`appliance.sim.spectral`).
    blur_um : float
        Gaussian sigma of the camera's own optics referred to the sample, µm (``CameraChainParams.lens_blur_px``).
        Applied to each object's patch: the clear glass around objects is 1.0 and stays so under any blur.
    axes : (2, 2) ndarray, optional
        :func:`pixel_axes` of a camera not mounted square (None: the frame's axes are the stage's).
    """

    def __init__(self, slide: SlideLike, optics: OpticsParams, pixel_um: float, cache_items: int = 256,
                 channel_wavelengths_um: tuple[float, float, float] | None = None, blur_um: float = 0.0,
                 axes: np.ndarray | None = None) -> None:
        self.slide = slide
        self.axes = axes
        self.blur_um = float(blur_um)
        self.optics = optics
        self.um_per_px = pixel_um / optics.magnification
        self.channel_wavelengths_um = channel_wavelengths_um
        self._spectra = _LRU(max(16, cache_items // 4))
        self._patches = _LRU(cache_items)
        self._ratio_base = _LRU(max(16, cache_items // 4))
        self._ratios = _LRU(cache_items)

    def clear_cache(self) -> None:
        """Forget every cached spectrum and patch (for cold-cache timings)."""
        for cache in (self._spectra, self._patches, self._ratio_base, self._ratios):
            cache.clear()

    def _spectrum(self, obj: SlideObjectLike, pad_um: float) -> ObjectSpectrum:
        spec = self._spectra.get((obj.id, pad_um))
        if spec is None:
            slices, step, ref = self._slices(obj)
            scale = loss_scale(_exponent(obj), self.optics.wavelength_um)
            spec = object_spectrum(obj.height_um, obj.absorption, obj.index_delta, obj.pitch_um,
                                   obj.center_um, self.optics, pad_um, slices, step, ref, absorption_scale=scale)
            self._spectra.put((obj.id, pad_um), spec)
        assert isinstance(spec, ObjectSpectrum)
        return spec

    def _slices(self, obj: SlideObjectLike) -> tuple[list[np.ndarray] | None, float, float]:
        """Thickness slices of a tall object when the optics ask for slicing, their step and the reference height.

        Objects that rise above the surface, are taller than ``optics.slice_um`` and can say how much material
        lies between two heights (``thickness_between``, as the slide's objects do) are sliced; the reference plane
        is half their height (the slide's focus definition). Anything else stays one thin screen.
        """
        step_max = self.optics.slice_um
        max_h = float(getattr(obj, "max_height_um", 0.0))
        between = getattr(obj, "thickness_between", None)
        if step_max is None or between is None or max_h <= step_max or float(obj.height_um.min()) < 0.0:
            return None, 0.0, 0.0
        n = int(math.ceil(max_h / step_max))
        step = max_h / n
        return [between(j * step, (j + 1) * step) for j in range(n)], step, max_h / 2.0

    def patch(self, obj: SlideObjectLike, dz_um: float) -> tuple[ObjectSpectrum, np.ndarray]:
        """The object's intensity patch at ``dz_um`` quantised to ``DZ_STEP_UM``, integrated over a pixel (cached)."""
        q = int(round(dz_um / DZ_STEP_UM))
        key = (obj.id, q)
        spec = self._spectrum(obj, pad_for_dz_um(q * DZ_STEP_UM, self.optics.na))
        img = self._patches.get(key)
        if img is None:
            img = integrate_pixel_area(image_intensity(spec, q * DZ_STEP_UM, self.optics), spec.pitch_um,
                                       self.um_per_px)
            if self.blur_um > 0:
                img = cv2.GaussianBlur(img, (0, 0), sigmaX=self.blur_um / spec.pitch_um[0],
                                       sigmaY=self.blur_um / spec.pitch_um[1], borderType=cv2.BORDER_REPLICATE)
            self._patches.put(key, img)
        assert isinstance(img, np.ndarray)
        return spec, img

    def colour_ratios(self, obj: SlideObjectLike, dz_um: float) -> np.ndarray | None:
        """Per-channel ratios (3, My, Mx) to the object's patch at ``dz_um``, or None for a grey object (cached)."""
        if self.channel_wavelengths_um is None or _exponent(obj) == 0.0:
            return None
        q = int(round(dz_um / DZ_STEP_UM))
        hit = self._ratios.get((obj.id, q))
        if isinstance(hit, np.ndarray):
            return hit
        pad = pad_for_dz_um(q * DZ_STEP_UM, self.optics.na)
        spec = self._spectrum(obj, pad)
        base = self._ratio_base.get((obj.id, pad))
        if base is None:
            loss = spectral.loss_map_on_grid(obj.height_um, obj.absorption, obj.pitch_um, obj.center_um, spec)
            scales = np.array([loss_scale(_exponent(obj), w) for w in self.channel_wavelengths_um])
            base = spectral.colour_ratios(loss, scales, loss_scale(_exponent(obj), self.optics.wavelength_um))
            self._ratio_base.put((obj.id, pad), base)
        assert isinstance(base, np.ndarray)
        sig = math.hypot(spectral.ratio_blur_um(q * DZ_STEP_UM, self.optics), self.blur_um)
        out = np.stack([cv2.GaussianBlur(b, (0, 0), sigmaX=sig / spec.pitch_um[0], sigmaY=sig / spec.pitch_um[1],
                                         borderType=cv2.BORDER_REPLICATE) for b in base])
        self._ratios.put((obj.id, q), out)
        return out

    def transmission(self, x_um: float, y_um: float, z_um: float, size_px: tuple[int, int],
                     sites: np.ndarray | None = None) -> np.ndarray:
        """Light passed by the slide in a frame centred on (x, y) with the focus at stage z.

        Parameters
        ----------
        x_um, y_um, z_um : float
            Stage true position, µm.
        size_px : (int, int)
            Frame (width, height).
        sites : (H, W) ndarray of uint8, optional
            Bayer channel of each pixel (0 R, 1 G, 2 B; :func:`spectral.bayer_sites`). Given (and the renderer has
            ``channel_wavelengths_um``), each pixel gets its channel's colour of the prints' loss.

        Returns
        -------
        (H, W) ndarray of float32
            Clear glass = 1.0.
        """
        w, h = size_px
        s = self.um_per_px
        out = np.ones((h, w), dtype=np.float32)
        x0, y0, x1, y1 = frame_rect_um((x_um, y_um), size_px, s, self.axes)
        objs = self.slide.objects_in_rect(x0 - PAD_UM, y0 - PAD_UM, x1 + PAD_UM, y1 + PAD_UM)
        for obj in sorted(objs, key=lambda o: o.id):  # fixed order: float products are then reproducible
            dz = z_um - obj.focus_z_um
            spec, img = self.patch(obj, dz)
            ratios = None if sites is None else self.colour_ratios(obj, dz)
            if self.axes is None:
                self._composite(out, spec, img, (x_um, y_um), s, ratios, sites)
            else:
                _composite_turned(out, spec, img, (x_um, y_um), s, self.axes, ratios, sites)
        return out

    @staticmethod
    def _composite(out: np.ndarray, spec: ObjectSpectrum, img: np.ndarray, stage_xy: tuple[float, float],
                   s: float, ratios: np.ndarray | None = None, sites: np.ndarray | None = None) -> None:
        """Multiply one patch (and, on a mosaic, its colour ratio at each pixel's channel) into ``out``."""
        h, w = out.shape
        (ox, oy), (px, py) = spec.origin_um, spec.pitch_um
        my, mx = img.shape
        # Camera pixel u sees slide x = ax + u*s; patch column j lies at ox + j*px.
        ax = stage_xy[0] - (w - 1) / 2.0 * s
        ay = stage_xy[1] - (h - 1) / 2.0 * s
        u0 = max(0, int(math.floor((ox - ax) / s)))
        u1 = min(w, int(math.ceil((ox + (mx - 1) * px - ax) / s)) + 1)
        v0 = max(0, int(math.floor((oy - ay) / s)))
        v1 = min(h, int(math.ceil((oy + (my - 1) * py - ay) / s)) + 1)
        if u1 <= u0 or v1 <= v0:
            return
        # dst (u', v') = (u - u0, v - v0) -> src (j, i) = ((ax + (u'+u0) s - ox)/px, ...)
        m = np.array([[s / px, 0.0, (ax + u0 * s - ox) / px],
                      [0.0, s / py, (ay + v0 * s - oy) / py]], dtype=np.float64)
        _paste(out, img, m, (u0, u1, v0, v1), ratios, sites)


def _composite_turned(out: np.ndarray, spec: ObjectSpectrum, img: np.ndarray, stage_xy: tuple[float, float],
                      s: float, axes: np.ndarray, ratios: np.ndarray | None = None,
                      sites: np.ndarray | None = None) -> None:
    """:meth:`FieldRenderer._composite` for a camera turned or mirrored on its port (``axes``: :func:`pixel_axes`)."""
    h, w = out.shape
    (ox, oy), (px, py) = spec.origin_um, spec.pitch_um
    my, mx = img.shape
    cx, cy = ox + np.array([0.0, mx - 1, 0.0, mx - 1]) * px, oy + np.array([0.0, 0.0, my - 1, my - 1]) * py
    us, vs = slide_to_pixel(cx, cy, stage_xy, (w, h), s, axes)
    u0, u1 = max(0, int(math.floor(float(np.min(us))))), min(w, int(math.ceil(float(np.max(us)))) + 1)
    v0, v1 = max(0, int(math.floor(float(np.min(vs))))), min(h, int(math.ceil(float(np.max(vs)))) + 1)
    if u1 <= u0 or v1 <= v0:
        return
    # dst (u', v') = (u - u0, v - v0) -> slide (x, y) = stage + s axes (u - cu, v - cv) -> src ((x - ox)/px, ...)
    a = s * axes
    cu, cv = u0 - (w - 1) / 2.0, v0 - (h - 1) / 2.0
    m = np.array([[a[0, 0] / px, a[0, 1] / px, (stage_xy[0] + a[0, 0] * cu + a[0, 1] * cv - ox) / px],
                  [a[1, 0] / py, a[1, 1] / py, (stage_xy[1] + a[1, 0] * cu + a[1, 1] * cv - oy) / py]])
    _paste(out, img, m, (u0, u1, v0, v1), ratios, sites)


def _paste(out: np.ndarray, img: np.ndarray, m: np.ndarray, region_px: tuple[int, int, int, int],
           ratios: np.ndarray | None, sites: np.ndarray | None) -> None:
    """Multiply ``img`` (and, on a mosaic, its colour ratio at each pixel's channel) into ``out``'s region.

    ``m`` maps the region's pixels (``u0..u1``, ``v0..v1``, offset to 0) to the patch's (``cv2.WARP_INVERSE_MAP``).
    """
    u0, u1, v0, v1 = region_px

    def warp(a: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(a, m, (u1 - u0, v1 - v0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)

    region = warp(img)
    if ratios is not None and sites is not None:
        region *= np.choose(sites[v0:v1, u0:u1], [warp(r) for r in ratios])
    out[v0:v1, u0:u1] *= region


def _exponent(obj: SlideObjectLike) -> float:
    """Wavelength exponent of an object's absorption (0 for objects that do not say: grey)."""
    return float(getattr(obj, "loss_exponent", 0.0))


@functools.lru_cache(maxsize=64)
def _box_kernel(width: float) -> np.ndarray:
    """Weights of a box ``width`` samples wide centred on a sample (fractional ends), summing to 1."""
    half = int(math.ceil(width / 2.0 - 0.5))
    k = np.array([min(j + 0.5, width / 2.0) - max(j - 0.5, -width / 2.0) for j in range(-half, half + 1)])
    out = (np.clip(k, 0.0, None) / width).astype(np.float32)
    out.setflags(write=False)
    return out


def integrate_pixel_area(img: np.ndarray, pitch_um: tuple[float, float], pixel_um: float) -> np.ndarray:
    """An intensity patch averaged over a square pixel of side ``pixel_um`` centred on each sample.

    A camera pixel integrates the light over its area; sampling the patch at pixel centres afterwards gives that
    integral. The box is ``pixel_um / pitch`` samples wide (fractional widths weight the end samples).
    """
    kernels = [_box_kernel(pixel_um / p) for p in pitch_um]
    if len(kernels[0]) == 1 and len(kernels[1]) == 1:
        return img
    return cv2.sepFilter2D(img, -1, kernels[0], kernels[1], borderType=cv2.BORDER_REPLICATE)


def build_imaging(slide: SlideLike, optics: OpticsParams, sensor: SensorParams, chain: CameraChainParams,
                  seed: int) -> tuple[FieldRenderer, CaptureChain]:
    """The renderer and capture chain of a camera: the renderer works on the chain's photosite grid.

    Parameters
    ----------
    slide : SlideLike
        The slide.
    optics : OpticsParams
        Objective and condenser.
    sensor : SensorParams
        Sensor and illumination.
    chain : CameraChainParams
        The capture chain.
    seed : int
        Seeds the lamp field and the optics' dust.
    """
    capture = CaptureChain(sensor, chain, sensor.pixel_um / optics.magnification, seed)
    site_um = sensor.pixel_um * sensor.width_px / capture.size_px[0]
    wl = capture.channel_wavelengths_um
    renderer = FieldRenderer(slide, optics, site_um,
                             channel_wavelengths_um=None if wl is None else (float(wl[0]), float(wl[1]), float(wl[2])),
                             blur_um=chain.lens_blur_px * sensor.pixel_um / optics.magnification,
                             axes=pixel_axes(sensor.rotation_deg, bool(sensor.mirror)))
    return renderer, capture


def render_frame(renderer: FieldRenderer, chain: CaptureChain, xyz_um: tuple[float, float, float],
                 exposure_ms: float, rng: np.random.Generator, grey: bool = False) -> np.ndarray:
    """One frame (uint8: BGR for a colour chain unless ``grey``) with the stage's true position at ``xyz_um``."""
    trans = renderer.transmission(xyz_um[0], xyz_um[1], xyz_um[2], chain.size_px, chain.sites)
    return chain.capture(trans, exposure_ms, rng, grey=grey)


class SimCamera(Camera):
    """A camera on the virtual microscope: a frame of the slide at the stage's true position.

    Parameters
    ----------
    stage : SimStage
        The stage it is mounted over; its clock is advanced by each exposure.
    slide : SlideLike
        The slide on the stage.
    optics : OpticsParams, optional
        Objective and condenser (defaults: 10x, NA 0.25, 0.55 µm).
    sensor : SensorParams, optional
        Sensor and illumination (defaults: 640 x 480, 5.6 µm pixels, 10 ms).
    seed : int
        Seeds the lamp field, the optics' dust and the noise.
    chain : CameraChainParams, optional
        The capture chain (default: a colour camera, :data:`appliance.sim.capture.PRESETS` ``"default"``).
    """

    def __init__(self, stage: SimStage, slide: SlideLike, optics: OpticsParams | None = None,
                 sensor: SensorParams | None = None, seed: int = 0, chain: CameraChainParams | None = None) -> None:
        self.stage = stage
        self.optics = optics or OpticsParams()
        self.sensor = sensor or SensorParams()
        self.chain_params = chain or CameraChainParams()
        self.seed = int(seed)
        self.renderer, self.chain = build_imaging(slide, self.optics, self.sensor, self.chain_params, self.seed)
        self._um_per_px = self.sensor.pixel_um / self.optics.magnification
        self._exposure_ms = self.sensor.exposure_ms
        self._open = False
        self._count = 0

    @property
    def um_per_px(self) -> float:
        """Micrometres per (output) pixel at the sample."""
        return self._um_per_px

    def open(self) -> None:
        """Acquire the (virtual) device."""
        self._open = True

    def close(self) -> None:
        """Release the device; safe to call twice."""
        self._open = False

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the frames in pixels."""
        return (self.sensor.width_px, self.sensor.height_px)

    @property
    def exposure_ms(self) -> float:
        """Current exposure time in milliseconds."""
        return self._exposure_ms

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        self._exposure_ms = check_exposure_ms(value)

    def _flicker(self) -> float:
        """The light of the next frame, over the steady lamp's (``sensor.lamp_flicker``).

        Its own draw, so a steady lamp's frames keep their noise bit for bit.
        """
        f = self.sensor.lamp_flicker
        if f <= 0:
            return 1.0
        draw = np.random.default_rng([self.seed, self._count, 0xF11C]).standard_normal()
        return float(max(0.05, 1.0 + f * draw))

    def _warmup(self, t_s: float) -> float:
        """The lamp's light at ``t_s`` of the virtual clock, over its light at power-on (``sensor.lamp_drift``)."""
        drift = self.sensor.lamp_drift
        if drift == 0:
            return 1.0
        return 1.0 + drift * (1.0 - math.exp(-t_s / (60.0 * self.sensor.lamp_drift_min)))

    def capture(self) -> Frame:
        """Expose and return one frame at the stage's true position; advances the clock by the exposure.

        Raises
        ------
        CameraError
            The camera is not open.
        """
        if not self._open:
            raise CameraError("SimCamera is not open: call open() or use it in a with block")
        reported = self.stage.position_um()
        true = self.stage.true_position_um()
        t0 = self.stage.clock.now_s()
        rng = np.random.default_rng([self.seed, self._count, 0xCA3])
        light_ms = self._exposure_ms * self._flicker() * self._warmup(t0)
        image = render_frame(self.renderer, self.chain, (true.x_um, true.y_um, true.z_um), light_ms, rng,
                             grey=True)
        self._count += 1
        self.stage.clock.advance(self._exposure_ms / 1000.0)
        return Frame(image=image, position=reported, time_s=t0, exposure_ms=self._exposure_ms,
                     meta={"seed": self.seed, "index": self._count - 1, "um_per_px": self.um_per_px,
                           "true_position_um": (true.x_um, true.y_um, true.z_um)})

"""The simulated camera: renders the slide where the simulated stage truly is.

Pixel <-> slide mapping (x right, y down, as DESIGN.md section 3): with the stage's true position
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

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, Frame
from appliance.sim.optics import ObjectSpectrum, OpticsParams, image_intensity, object_spectrum
from appliance.sim.sensor import SensorParams, check_exposure_ms, expose, illumination_background
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


def pixel_to_slide_um(u: float | np.ndarray, v: float | np.ndarray, stage_xy_um: tuple[float, float],
                      size_px: tuple[int, int], um_per_px: float) -> tuple[float | np.ndarray, float | np.ndarray]:
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
    """
    w, h = size_px
    return (stage_xy_um[0] + (u - (w - 1) / 2.0) * um_per_px, stage_xy_um[1] + (v - (h - 1) / 2.0) * um_per_px)


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
        Sensor pixel pitch, µm.
    cache_items : int
        Patches kept in the LRU (each a few hundred kB).
    """

    def __init__(self, slide: SlideLike, optics: OpticsParams, pixel_um: float, cache_items: int = 256) -> None:
        self.slide = slide
        self.optics = optics
        self.um_per_px = pixel_um / optics.magnification
        self._spectra = _LRU(max(16, cache_items // 4))
        self._patches = _LRU(cache_items)

    def clear_cache(self) -> None:
        """Forget every cached spectrum and patch (for cold-cache timings)."""
        self._spectra.clear()
        self._patches.clear()

    def _spectrum(self, obj: SlideObjectLike, pad_um: float) -> ObjectSpectrum:
        spec = self._spectra.get((obj.id, pad_um))
        if spec is None:
            slices, step, ref = self._slices(obj)
            spec = object_spectrum(obj.height_um, obj.absorption, obj.index_delta, obj.pitch_um,
                                   obj.center_um, self.optics, pad_um, slices, step, ref)
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
        """The object's intensity patch at ``dz_um`` quantised to ``DZ_STEP_UM`` (cached)."""
        q = int(round(dz_um / DZ_STEP_UM))
        key = (obj.id, q)
        spec = self._spectrum(obj, pad_for_dz_um(q * DZ_STEP_UM, self.optics.na))
        img = self._patches.get(key)
        if img is None:
            img = image_intensity(spec, q * DZ_STEP_UM, self.optics)
            self._patches.put(key, img)
        assert isinstance(img, np.ndarray)
        return spec, img

    def transmission(self, x_um: float, y_um: float, z_um: float, size_px: tuple[int, int]) -> np.ndarray:
        """Light passed by the slide in a frame centred on (x, y) with the focus at stage z.

        Parameters
        ----------
        x_um, y_um, z_um : float
            Stage true position, µm.
        size_px : (int, int)
            Frame (width, height).

        Returns
        -------
        (H, W) ndarray of float32
            Clear glass = 1.0.
        """
        w, h = size_px
        s = self.um_per_px
        out = np.ones((h, w), dtype=np.float32)
        x0, y0 = pixel_to_slide_um(-0.5, -0.5, (x_um, y_um), size_px, s)
        x1, y1 = pixel_to_slide_um(w - 0.5, h - 0.5, (x_um, y_um), size_px, s)
        objs = self.slide.objects_in_rect(float(x0) - PAD_UM, float(y0) - PAD_UM,
                                          float(x1) + PAD_UM, float(y1) + PAD_UM)
        for obj in sorted(objs, key=lambda o: o.id):  # fixed order: float products are then reproducible
            spec, img = self.patch(obj, z_um - obj.focus_z_um)
            self._composite(out, spec, img, (x_um, y_um), s)
        return out

    @staticmethod
    def _composite(out: np.ndarray, spec: ObjectSpectrum, img: np.ndarray, stage_xy: tuple[float, float],
                   s: float) -> None:
        """Multiply one patch, resampled to camera pixels, into ``out``."""
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
        region = cv2.warpAffine(img, m, (u1 - u0, v1 - v0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=1.0)
        out[v0:v1, u0:u1] *= region


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
        Seeds the lamp field and the noise.
    """

    def __init__(self, stage: SimStage, slide: SlideLike, optics: OpticsParams | None = None,
                 sensor: SensorParams | None = None, seed: int = 0) -> None:
        self.stage = stage
        self.optics = optics or OpticsParams()
        self.sensor = sensor or SensorParams()
        self.seed = int(seed)
        self.renderer = FieldRenderer(slide, self.optics, self.sensor.pixel_um)
        self._background = illumination_background(self.sensor, self.seed)
        self._exposure_ms = self.sensor.exposure_ms
        self._open = False
        self._count = 0

    @property
    def um_per_px(self) -> float:
        """Micrometres per pixel at the sample."""
        return self.renderer.um_per_px

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
        trans = self.renderer.transmission(true.x_um, true.y_um, true.z_um, self.size_px)
        rng = np.random.default_rng([self.seed, self._count, 0xCA3])
        image = expose(trans, self._background, self.sensor, self._exposure_ms, rng)
        self._count += 1
        self.stage.clock.advance(self._exposure_ms / 1000.0)
        return Frame(image=image, position=reported, time_s=t0, exposure_ms=self._exposure_ms,
                     meta={"seed": self.seed, "index": self._count - 1, "um_per_px": self.um_per_px,
                           "true_position_um": (true.x_um, true.y_um, true.z_um)})

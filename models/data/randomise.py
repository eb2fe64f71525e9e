"""Domain randomisation: which simulator knobs move, how far, and the seed paper's augmentation on top.

A model trained on one simulator setting learns that setting. Every frame of a dataset is therefore rendered
from a :class:`Scene` drawn from :class:`Ranges`: the imaging (pixel size at the sample, NA, condenser,
wavelength), the light and the camera (level, exposure noise, vignetting, uneven lamp, gamma, blur, JPEG), the
slide (dust density, tilt, bow, index step, how crowded), where the frame looks and how far out of focus it is.
Each knob's range is a field of :class:`Ranges` with its reason; ``tppscan dataset --help`` lists them as
``--<knob> LO HI`` options, so a held-out set with other settings is one command line.

Draws are per slide (imaging, slide, camera: one slide is one session on one microscope) and per frame
(position, focus, exposure level, lamp field, camera chain, augmentation). Knobs the simulator does not have
yet (``SIM_EXTRA_KNOBS``: light scattered by rough prints, the colour camera chain, faint dust on other
surfaces) are passed only when its parameter classes have them, and :func:`applied_knobs` says which were.

Augmentation (the seed paper's Keras settings): rotation up to 30°, shift 0.1 of the frame, shear 0.2 (as a
shear factor, about 11°), zoom 0.8-1.2, horizontal flip; boxes follow the image, using the box's inscribed
ellipse so a rotated box stays tight (a rotated corner-box grows by up to 37 % at 30°).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the simulator is imported where it is used, so `tppscan --help` stays fast
    from appliance.sim.microscope import VirtualMicroscope
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.slide import SlideParams

# Sensor pixel pitch; the pixel size at the sample is set through the magnification.
SENSOR_PIXEL_UM = 5.6
# Bounds no range may leave (the simulator's own limits, or physical sense).
HARD_BOUNDS: dict[str, tuple[float, float]] = {
    "um_per_px": (0.1, 5.0),
    "na_factor": (0.2, 3.0),
    "condenser_sigma": (0.05, 1.0),
    "wavelength_um": (0.4, 0.7),
    "level": (0.05, 0.98),
    "full_well_e": (500.0, 100000.0),
    "read_noise_e": (0.0, 50.0),
    "vignetting": (0.0, 0.9),
    "illumination_variation": (0.0, 0.5),
    "gamma": (0.4, 2.5),
    "blur_px": (0.0, 3.0),
    "jpeg_quality": (5.0, 100.0),
    "debris_per_mm2": (0.0, 200.0),
    "structures_per_mm2": (0.0, 40.0),
    "tilt_um_per_mm": (0.0, 50.0),
    "bow_um": (0.0, 50.0),
    "index_delta": (0.05, 1.0),
    "dz_um": (-30.0, 30.0),
    "rotation_deg": (0.0, 180.0),
    "shift": (0.0, 0.5),
    "shear": (0.0, 0.5),
    "zoom": (0.0, 0.5),
    "scatter": (0.0, 1.0),
    "far_dust_per_mm2": (0.0, 200.0),
}


@dataclass(frozen=True)
class Ranges:
    """How far each knob moves; each is ``(lo, hi)``, drawn uniformly unless said otherwise.

    Attributes
    ----------
    um_per_px : (float, float)
        Pixel size at the sample, µm (drawn log-uniformly): 0.3 (a 20x objective on a fine sensor) to 1.2
        (4x on a binned camera); the seed's real frames sit near 1.
    na_factor : (float, float)
        Objective NA *relative to* a typical objective of that magnification (``0.025 x M``, so 10x/0.25,
        4x/0.1, 20x/0.5 clipped to 0.45): a factor 0.7-1.3 covers economy and plan objectives.
    condenser_sigma : (float, float)
        Condenser aperture over objective NA: 0.3 (nearly closed) to 0.9 (open).
    wavelength_um : (float, float)
        Mean wavelength: 0.5-0.62 µm (filtered to unfiltered halogen, white LEDs).
    level : (float, float)
        Clear-glass brightness at the frame centre, fraction of full scale: 0.3-0.9 (dim to nearly clipped).
    full_well_e : (float, float)
        Electrons at full scale (drawn log-uniformly): 3000-20000, i.e. shot noise 1.1-3 DN at mid grey.
    read_noise_e : (float, float)
        Read noise, electrons RMS, 2-20 (gain turned up on a dim lamp).
    vignetting : (float, float)
        Light lost in the corners, 0-0.45.
    illumination_variation : (float, float)
        Amplitude of the lamp field's smooth waves, 0-0.15.
    gamma : (float, float)
        Camera tone curve exponent applied to the 8-bit frame, 0.75-1.35.
    blur_px : (float, float)
        Gaussian sigma of the camera's softening (demosaic, lens, motion), px, 0-1.0.
    jpeg_quality : (float, float)
        JPEG quality when a frame is compressed (probability ``p_jpeg``), 40-95.
    debris_per_mm2 : (float, float)
        Dust, fibres, bubbles and scratches per mm², 5-150 (clean to dirty slides).
    structures_per_mm2 : (float, float)
        Structure density of the slide, 4-14 per mm² (sparse to crowded: neighbours close by).
    tilt_um_per_mm : (float, float)
        Magnitude of the slide's slope in x and y (random signs), 0-8 µm/mm.
    bow_um : (float, float)
        Magnitude of the slide's bow, 0-5 µm.
    index_delta : (float, float)
        Refractive-index step of the cured polymer, 0.4-0.6 (resins and immersion differ).
    dz_um : (float, float)
        Defocus of the frame from the target object's focus, µm. With probability ``p_near_focus`` drawn
        within ``near_focus_um`` of focus instead (scans spend most frames near focus).
    rotation_deg, shift, shear, zoom : (float, float)
        Augmentation magnitudes (only ``hi`` is used; the draw is symmetric): 30°, 0.1, 0.2, 0.2.
    scatter : (float, float)
        Fraction of light that rough print tops and voxel ripple scatter out of the pupil, 0.2-0.9. Used when
        the simulator has the knob (see ``SIM_EXTRA_KNOBS``).
    far_dust_per_mm2 : (float, float)
        Faint out-of-focus dust on the other glass surfaces, 0-120 per mm². Used when the simulator has it.
    p_jpeg, p_hflip, p_augment, p_near_focus : float
        Probabilities of JPEG compression, horizontal flip, augmentation at all, a near-focus draw.
    near_focus_um : float
        Half-width of the near-focus band, µm.
    p_on_structure, p_on_line_debris : float
        Where a frame looks: centred near a structure, near a fibre/scratch/bubble (so the rare line debris
        is seen often), else anywhere on the slide (empty glass and dust included).
    """

    um_per_px: tuple[float, float] = (0.3, 1.2)
    na_factor: tuple[float, float] = (0.7, 1.3)
    condenser_sigma: tuple[float, float] = (0.3, 0.9)
    wavelength_um: tuple[float, float] = (0.5, 0.62)
    level: tuple[float, float] = (0.3, 0.9)
    full_well_e: tuple[float, float] = (3000.0, 20000.0)
    read_noise_e: tuple[float, float] = (2.0, 20.0)
    vignetting: tuple[float, float] = (0.0, 0.45)
    illumination_variation: tuple[float, float] = (0.0, 0.15)
    gamma: tuple[float, float] = (0.75, 1.35)
    blur_px: tuple[float, float] = (0.0, 1.0)
    jpeg_quality: tuple[float, float] = (40.0, 95.0)
    debris_per_mm2: tuple[float, float] = (5.0, 150.0)
    structures_per_mm2: tuple[float, float] = (4.0, 14.0)
    tilt_um_per_mm: tuple[float, float] = (0.0, 8.0)
    bow_um: tuple[float, float] = (0.0, 5.0)
    index_delta: tuple[float, float] = (0.4, 0.6)
    dz_um: tuple[float, float] = (-10.0, 10.0)
    rotation_deg: tuple[float, float] = (0.0, 30.0)
    shift: tuple[float, float] = (0.0, 0.1)
    shear: tuple[float, float] = (0.0, 0.2)
    zoom: tuple[float, float] = (0.0, 0.2)
    scatter: tuple[float, float] = (0.2, 0.9)
    far_dust_per_mm2: tuple[float, float] = (0.0, 120.0)
    p_jpeg: float = 0.7
    p_hflip: float = 0.5
    p_augment: float = 1.0
    p_near_focus: float = 0.6
    near_focus_um: float = 3.0
    p_on_structure: float = 0.6
    p_on_line_debris: float = 0.15

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                check_range(f.name, v)
            else:
                hi = 30.0 if f.name == "near_focus_um" else 1.0
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= hi:
                    raise ValueError(f"{f.name} must be a number in [0, {hi:g}], got {v!r}")
        if self.p_on_structure + self.p_on_line_debris > 1.0:
            raise ValueError(f"p_on_structure + p_on_line_debris must be <= 1, got "
                             f"{self.p_on_structure} + {self.p_on_line_debris}")

    def with_changes(self, **changes: Any) -> Ranges:
        """A copy with some knobs changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def range_knobs() -> list[str]:
    """Names of the ``(lo, hi)`` knobs, in declaration order."""
    return [f.name for f in dataclasses.fields(Ranges) if f.name in HARD_BOUNDS]


def check_range(name: str, value: object) -> tuple[float, float]:
    """Validate one ``(lo, hi)`` knob against :data:`HARD_BOUNDS`; returns it as floats."""
    lo_b, hi_b = HARD_BOUNDS[name]
    ok = isinstance(value, tuple) and len(value) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x)) for x in value)
    if not ok or not (lo_b <= float(value[0]) <= float(value[1]) <= hi_b):  # type: ignore[index]
        raise ValueError(f"{name} must be LO HI with {lo_b:g} <= LO <= HI <= {hi_b:g}, got {value!r}")
    return float(value[0]), float(value[1])  # type: ignore[index]


# Knobs the realistic simulator adds; mapped to (parameter class, field name) when that class has the field.
SIM_EXTRA_KNOBS: dict[str, tuple[str, str]] = {
    "scatter": ("slide", "scatter_fraction"),
    "far_dust_per_mm2": ("slide", "far_dust_per_mm2"),
}


@dataclass(frozen=True)
class Scene:
    """One slide's draw: what the simulator is built with, plus the per-slide camera-chain settings."""

    slide: SlideParams
    optics: OpticsParams
    sensor: SensorParams
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a dataset's meta file)."""
        return {"slide": dataclasses.asdict(self.slide), "optics": dataclasses.asdict(self.optics),
                "sensor": dataclasses.asdict(self.sensor), "extra": dict(self.extra)}


@dataclass(frozen=True)
class Shot:
    """One frame's draw: light level, lamp-field seed and the camera chain after the sensor."""

    level: float
    lamp_seed: int
    gamma: float
    blur_px: float
    jpeg_quality: int | None
    augment: np.ndarray | None  # 2x3 affine matrix (destination <- source), or None
    hflip: bool


def _uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _log_uniform(rng: np.random.Generator, r: tuple[float, float]) -> float:
    if r[0] <= 0 or r[1] <= r[0]:
        return float(r[0])
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))


def _signed(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return _uniform(rng, r) * (1.0 if rng.random() < 0.5 else -1.0)


def sample_scene(rng: np.random.Generator, ranges: Ranges, size_px: tuple[int, int] = (640, 480),
                 slide_frames: float = 3.0) -> Scene:
    """Draw one slide's imaging, camera and slide parameters.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draw.
    ranges : Ranges
        Knob ranges.
    size_px : (int, int)
        Frame (width, height).
    slide_frames : float
        The slide is made this many frame widths wide (and high), at least 1.5 mm: big enough for several
        frames with neighbours and edges, small enough to build in well under a second.

    Returns
    -------
    Scene
    """
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.slide import SlideParams

    um_per_px = _log_uniform(rng, ranges.um_per_px)
    mag = SENSOR_PIXEL_UM / um_per_px
    na = float(np.clip(0.025 * mag * _uniform(rng, ranges.na_factor), 0.06, 0.45))
    optics = OpticsParams(magnification=mag, na=na, condenser_sigma=_uniform(rng, ranges.condenser_sigma),
                          wavelength_um=_uniform(rng, ranges.wavelength_um))
    sensor = SensorParams(width_px=size_px[0], height_px=size_px[1], pixel_um=SENSOR_PIXEL_UM,
                          full_well_e=_log_uniform(rng, ranges.full_well_e),
                          read_noise_e=_uniform(rng, ranges.read_noise_e),
                          vignetting=_uniform(rng, ranges.vignetting),
                          illumination_variation=_uniform(rng, ranges.illumination_variation))
    side = max(1500.0, slide_frames * max(size_px) * um_per_px)
    # make_slide keeps EDGE_MARGIN_UM (100 µm) free at the slide's edges.
    usable_mm2 = max(0.1, (side - 200.0) ** 2 / 1e6)
    n_struct = int(rng.poisson(_uniform(rng, ranges.structures_per_mm2) * usable_mm2))
    slide = SlideParams(width_um=side, height_um=side, n_structures=n_struct,
                        debris_per_mm2=_uniform(rng, ranges.debris_per_mm2),
                        tilt_x_um_per_mm=_signed(rng, ranges.tilt_um_per_mm),
                        tilt_y_um_per_mm=_signed(rng, ranges.tilt_um_per_mm),
                        bow_um=_signed(rng, ranges.bow_um), index_delta=_uniform(rng, ranges.index_delta))
    extra = {k: _uniform(rng, getattr(ranges, k)) for k in SIM_EXTRA_KNOBS}
    return Scene(slide=slide, optics=optics, sensor=sensor, extra=extra)


def _known_fields(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def applied_knobs(scene: Scene) -> dict[str, bool]:
    """Which of the simulator's optional knobs this simulator version has (and so are applied)."""
    targets = {"slide": scene.slide, "optics": scene.optics, "sensor": scene.sensor}
    return {k: f in _known_fields(targets[c]) for k, (c, f) in SIM_EXTRA_KNOBS.items()}


def build_microscope(scene: Scene, slide_seed: int) -> VirtualMicroscope:
    """The virtual microscope for one scene, with every optional knob the simulator knows applied.

    Raises
    ------
    ValueError
        The slide cannot hold the drawn structures (the caller draws again with fewer).
    """
    from appliance.sim.microscope import VirtualMicroscope

    parts: dict[str, Any] = {"slide": scene.slide, "optics": scene.optics, "sensor": scene.sensor}
    for knob, (cls, name) in SIM_EXTRA_KNOBS.items():
        if name in _known_fields(parts[cls]):
            parts[cls] = dataclasses.replace(parts[cls], **{name: scene.extra[knob]})
    return VirtualMicroscope(seed=slide_seed, slide=parts["slide"], optics=parts["optics"], sensor=parts["sensor"])


def sample_shot(rng: np.random.Generator, ranges: Ranges, augment: bool, size_px: tuple[int, int]) -> Shot:
    """Draw one frame's light level, camera chain and (optionally) augmentation."""
    jpeg = int(round(_uniform(rng, ranges.jpeg_quality))) if rng.random() < ranges.p_jpeg else None
    m = None
    flip = False
    if augment and rng.random() < ranges.p_augment:
        m = augment_matrix(rng, ranges, size_px)
        flip = bool(rng.random() < ranges.p_hflip)
    return Shot(level=_uniform(rng, ranges.level), lamp_seed=int(rng.integers(0, 2**31)),
                gamma=_uniform(rng, ranges.gamma), blur_px=_uniform(rng, ranges.blur_px), jpeg_quality=jpeg,
                augment=m, hflip=flip)


def augment_matrix(rng: np.random.Generator, ranges: Ranges, size_px: tuple[int, int]) -> np.ndarray:
    """A random 2x3 affine map (rotation, shear, zoom about the centre, then shift), destination <- source."""
    w, h = size_px
    a = math.radians(rng.uniform(-ranges.rotation_deg[1], ranges.rotation_deg[1]))
    sh = rng.uniform(-ranges.shear[1], ranges.shear[1])
    z = rng.uniform(1.0 - ranges.zoom[1], 1.0 + ranges.zoom[1])
    tx = rng.uniform(-ranges.shift[1], ranges.shift[1]) * w
    ty = rng.uniform(-ranges.shift[1], ranges.shift[1]) * h
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lin = z * rot @ np.array([[1.0, sh], [0.0, 1.0]])
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    t = c - lin @ c + np.array([tx, ty])
    return np.hstack([lin, t[:, None]])


def render_frame(scope: VirtualMicroscope, x_um: float, y_um: float, z_um: float, shot: Shot,
                 exposure_seed: int, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Render one frame at stage (x, y, z) through the sensor and the camera chain (before augmentation).

    The optics come from the scope's renderer (cached per object and defocus); the sensor's light level and
    lamp field come from ``shot`` so they vary per frame; then gamma, blur and JPEG as a cheap camera does.

    Parameters
    ----------
    scope : VirtualMicroscope
    x_um, y_um, z_um : float
        Stage position of the (whole) frame.
    shot : Shot
    exposure_seed : int
        Seed of the shot and read noise.
    window : (int, int, int, int), optional
        ``(u0, v0, w, h)`` in frame pixels: render only that part of the frame (the same pixels as the whole
        frame's, apart from noise and JPEG blocks), for crops at a fraction of the cost.

    Returns
    -------
    (H, W) or (h, w) ndarray of uint8
    """
    from appliance.sim.sensor import expose, illumination_background

    cam = scope.camera
    sensor = cam.sensor
    fw, fh = cam.size_px
    bg = illumination_background(sensor, shot.lamp_seed)
    if window is None:
        trans = cam.renderer.transmission(x_um, y_um, z_um, cam.size_px)
    else:
        u0, v0, w, h = (int(v) for v in window)
        if not (0 <= u0 and 0 <= v0 and w > 0 and h > 0 and u0 + w <= fw and v0 + h <= fh):
            raise ValueError(f"window must lie inside the {fw} x {fh} frame, got {window!r}")
        s = cam.um_per_px
        # The window's centre pixel, in slide µm: the same pixel grid as the whole frame's.
        xc = x_um + (u0 + (w - 1) / 2.0 - (fw - 1) / 2.0) * s
        yc = y_um + (v0 + (h - 1) / 2.0 - (fh - 1) / 2.0) * s
        trans = cam.renderer.transmission(xc, yc, z_um, (w, h))
        bg = np.ascontiguousarray(bg[v0:v0 + h, u0:u0 + w])
    exposure_ms = sensor.exposure_ms
    sensor = dataclasses.replace(sensor, electrons_per_ms=shot.level * sensor.full_well_e / exposure_ms)
    img = expose(trans, bg, sensor, exposure_ms, np.random.default_rng([exposure_seed, 0xE4]))
    return camera_chain(img, shot)


def camera_chain(img: np.ndarray, shot: Shot) -> np.ndarray:
    """Tone curve, softening and JPEG compression of an 8-bit frame (what a cheap camera adds)."""
    import cv2

    if abs(shot.gamma - 1.0) > 1e-3:
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** shot.gamma + 0.5, 0, 255).astype(np.uint8)
        img = cv2.LUT(img, lut)
    if shot.blur_px > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), shot.blur_px)
    if shot.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(shot.jpeg_quality)])
        if ok:
            img = np.asarray(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    return np.ascontiguousarray(img)


def augment(img: np.ndarray, boxes: np.ndarray, shot: Shot,
            min_side_px: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the shot's affine augmentation and flip to a frame and its boxes.

    Parameters
    ----------
    img : (H, W) ndarray of uint8
    boxes : (K, 4) ndarray of float
        ``xmin, ymin, xmax, ymax`` in pixels (exclusive max).
    shot : Shot
    min_side_px : float
        Boxes narrower or lower than this after clipping to the frame are dropped.

    Returns
    -------
    image : (H, W) ndarray of uint8
    boxes : (K', 4) ndarray of float
    keep : (K,) ndarray of bool
        Which input boxes survived (to carry their labels along).
    """
    import cv2

    h, w = img.shape
    keep = np.ones(len(boxes), dtype=bool)
    out = boxes.astype(np.float64).reshape(-1, 4)
    if shot.augment is not None:
        m = shot.augment
        # Replicated borders rather than reflected ones: a reflection would show unlabelled copies of objects.
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = _affine_boxes(out, m)
    if shot.hflip:
        img = np.ascontiguousarray(img[:, ::-1])
        out = np.stack([w - out[:, 2], out[:, 1], w - out[:, 0], out[:, 3]], axis=1) if len(out) else out
    if len(out):
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
        keep = ((out[:, 2] - out[:, 0]) >= min_side_px) & ((out[:, 3] - out[:, 1]) >= min_side_px)
    return np.ascontiguousarray(img), out[keep], keep


def _affine_boxes(boxes: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Boxes through an affine map, via each box's inscribed ellipse (tight under rotation and shear)."""
    if not len(boxes):
        return boxes
    t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    rx = (boxes[:, 2] - boxes[:, 0]) / 2
    ry = (boxes[:, 3] - boxes[:, 1]) / 2
    px = cx[:, None] + rx[:, None] * np.cos(t)[None]
    py = cy[:, None] + ry[:, None] * np.sin(t)[None]
    qx = m[0, 0] * px + m[0, 1] * py + m[0, 2]
    qy = m[1, 0] * px + m[1, 1] * py + m[1, 2]
    return np.stack([qx.min(1), qy.min(1), qx.max(1), qy.max(1)], axis=1)


def item_rng(split_code: int, seed: int, slide_seed: int, index: int) -> np.random.Generator:
    """The generator for one dataset item: independent of every other item, the same on every run."""
    return np.random.default_rng([split_code, seed, slide_seed, index, 0xDA7A])


def draw_dz_um(rng: np.random.Generator, ranges: Ranges) -> float:
    """A defocus: near focus with probability ``p_near_focus``, else anywhere in ``dz_um``."""
    lo, hi = ranges.dz_um
    if rng.random() < ranges.p_near_focus:
        lo, hi = max(lo, -ranges.near_focus_um), min(hi, ranges.near_focus_um)
        if hi < lo:
            lo, hi = ranges.dz_um
    return _uniform(rng, (lo, hi))

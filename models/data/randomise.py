"""Domain randomisation: which simulator knobs move, how far, and the seed paper's augmentation on top.

A model trained on one simulator setting learns that setting. Every frame of a dataset is therefore rendered
from a :class:`Scene` drawn from :class:`Ranges`: the imaging (pixel size at the sample, NA, condenser,
wavelength), the light and the sensor (level, noise, vignetting, uneven lamp, faint dust on the optics), the
prints' light losses (rough tops, contour band, internal scatter, initiator absorption: how dark a print is
all over), the colour camera's capture chain (Bayer or mono, lamp colour, white balance, ISP upscale, lens
blur, demosaic, denoise, sharpening, gamma, JPEG, then grey), the slide (dust density, tilt, bow, index step,
how crowded), where the frame looks and how far out of focus it is. Ranges follow the simulator's own
suggestions (``docs/simulator.md``, "Parameters for randomised training data"), widened where real benches
differ more (pixel size, dust). Each knob's range is a field of :class:`Ranges` with its reason;
``tppscan dataset --help`` lists them as ``--<knob> LO HI`` options, so a held-out set with other settings is
one command line.

Draws are per slide (imaging, camera, light, prints: one slide is one session on one microscope) and per
frame (position, focus, noise, augmentation).

Augmentation (the seed paper's Keras settings): rotation up to 30°, shift 0.1 of the frame, shear 0.2 (as a
shear factor, about 11°), zoom 0.8-1.2, horizontal flip; boxes follow the image, using the box's inscribed
ellipse so a rotated box stays tight (a rotated corner-box grows by up to 37 % at 30°).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the simulator is imported where it is used, so `tppscan --help` stays fast
    from appliance.sim.capture import CameraChainParams
    from appliance.sim.microscope import VirtualMicroscope
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.slide import SlideParams

# Sensor pixel pitch; the pixel size at the sample is set through the magnification.
SENSOR_PIXEL_UM = 5.6
EXPOSURE_MS = 10.0
DEMOSAIC_METHODS: tuple[str, ...] = ("bilinear", "edge_aware", "vng")
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
    "optics_dust_per_mm2": (0.0, 2000.0),
    "optics_dust_blur_um": (0.5, 30.0),
    "debris_per_mm2": (0.0, 200.0),
    "structures_per_mm2": (0.0, 40.0),
    "tilt_um_per_mm": (0.0, 50.0),
    "bow_um": (0.0, 50.0),
    "index_delta": (0.05, 1.0),
    "top_roughness_um": (0.0, 0.5),
    "contour_um": (0.0, 10.0),
    "contour_roughness": (0.0, 1.0),
    "internal_scatter_per_um": (0.0, 0.2),
    "initiator_absorption_per_um": (0.0, 0.5),
    "lamp_temperature_k": (2000.0, 7000.0),
    "white_balance": (0.0, 1.0),
    "saturation": (0.0, 3.0),
    "isp_upscale": (1.0, 4.0),
    "lens_blur_px": (0.0, 8.0),
    "denoise_px": (0.0, 4.0),
    "sharpen": (0.0, 3.0),
    "sharpen_px": (0.3, 5.0),
    "gamma": (1.0, 3.0),
    "jpeg_quality": (10.0, 100.0),
    "lens_shading_correction": (0.0, 1.0),
    "dz_um": (-30.0, 30.0),
    "rotation_deg": (0.0, 180.0),
    "shift": (0.0, 0.5),
    "shear": (0.0, 0.5),
    "zoom": (0.0, 0.5),
}


@dataclass(frozen=True)
class Ranges:
    """How far each knob moves; each is ``(lo, hi)``, drawn uniformly unless said otherwise.

    Attributes
    ----------
    um_per_px : (float, float)
        Pixel size at the sample, µm, of the 640 x 480 frame (drawn log-uniformly): 0.3 (a 20x objective on a
        fine sensor) to 1.2 (4x on a binned camera). The seed's real frames are 1.4 µm per pixel at 256 x 192,
        i.e. 0.56 at 640 x 480 once the detector's input size is reached.
    na_factor : (float, float)
        Objective NA over a typical objective of that magnification (``0.025 x M``: 10x/0.25, 4x/0.1, 20x/0.5,
        clipped to 0.06-0.45): 0.8-1.2 covers economy and plan objectives.
    condenser_sigma : (float, float)
        Condenser aperture over objective NA: 0.3 (nearly closed) to 0.8.
    wavelength_um : (float, float)
        Mean wavelength of a monochrome camera's light: 0.5-0.62 µm (a colour camera uses the lamp's channels).
    level : (float, float)
        Clear-glass brightness at the frame centre, fraction of the well: 0.4-0.85.
    full_well_e : (float, float)
        Electrons at full scale (log-uniform), 4000-20000: shot noise from small to large pixels.
    read_noise_e : (float, float)
        Read noise, electrons RMS, 2-10.
    vignetting, illumination_variation : (float, float)
        Light lost in the corners, 0.1-0.4; amplitude of the lamp field's smooth waves, 0-0.06.
    optics_dust_per_mm2, optics_dust_blur_um : (float, float)
        Faint out-of-focus dust on the optics: 50-400 specks per mm² of field, shadows blurred 1.5-6 µm.
    debris_per_mm2 : (float, float)
        Dust, fibres, bubbles and scratches on the slide per mm², 5-100 (clean to dirty slides).
    structures_per_mm2 : (float, float)
        Structure density, 4-14 per mm² (sparse to crowded: neighbours close by).
    tilt_um_per_mm, bow_um : (float, float)
        Magnitudes (random signs) of the slide's slope, 0-8 µm/mm, and bow, 0-5 µm.
    index_delta : (float, float)
        Refractive-index step of the cured polymer, 0.45-0.55.
    top_roughness_um, contour_um, contour_roughness, internal_scatter_per_um, initiator_absorption_per_um
        The prints' light losses (how dark a print is all over, ``appliance.sim.polymer``): 0.08-0.3 µm RMS,
        1-7 µm, 0.05-0.5, 0-0.03 /µm, 0-0.05 /µm.
    lamp_temperature_k, white_balance, saturation : (float, float)
        Colour camera: lamp 2600-3400 K, white balance 0-1 of the way to grey, saturation 0.8-1.6.
    isp_upscale, lens_blur_px, denoise_px, sharpen, sharpen_px, gamma, lens_shading_correction : (float, float)
        The ISP: 1-2 output px per photosite, camera blur 0.3-4 px, denoise 0-1.5 px, unsharp 0-0.8 at
        0.8-2 px, gamma 1.8-2.4, shading correction 0.5-1.
    jpeg_quality : (float, float)
        JPEG quality when a camera compresses (probability ``p_jpeg``), 40-95.
    dz_um : (float, float)
        Defocus of the frame from the target object's focus, µm. With probability ``p_near_focus`` drawn
        within ``near_focus_um`` of focus instead (scans spend most frames near focus).
    rotation_deg, shift, shear, zoom : (float, float)
        Augmentation magnitudes (only ``hi`` is used; the draw is symmetric): 30°, 0.1, 0.2, 0.2.
    p_colour, p_linear, p_jpeg : float
        Probabilities of a Bayer colour camera (else mono), a linear (gamma 1) camera, JPEG compression.
    p_hflip, p_augment, p_near_focus : float
        Probabilities of a horizontal flip, of augmentation at all, of a near-focus draw.
    near_focus_um : float
        Half-width of the near-focus band, µm.
    p_on_structure, p_on_line_debris : float
        Where a frame looks: centred near a structure, near a fibre/scratch/bubble (so the rare line debris
        is seen often), else anywhere on the slide (empty glass and dust included).
    p_far_print : float
        Classifier crops only: fraction of *structure* crops imaged anywhere within
        ``models.data.crops.DEBRIS_FAR_UM`` of focus instead of by ``dz_um`` (0: prints only within ``dz_um``,
        as the scan's test sets draw them; debris crops always have their own far fraction).
    p_bubble_debris : float
        Classifier crops only: share of debris crops that are bubbles on slides that have some (the other
        kinds keep their ``DEBRIS_DRAW`` proportions). The default is ``DEBRIS_DRAW``'s, as a scan meets
        bubbles; a training set may draw more of them, the kind most often taken for a print.
    """

    um_per_px: tuple[float, float] = (0.3, 1.2)
    na_factor: tuple[float, float] = (0.8, 1.2)
    condenser_sigma: tuple[float, float] = (0.3, 0.8)
    wavelength_um: tuple[float, float] = (0.5, 0.62)
    level: tuple[float, float] = (0.4, 0.85)
    full_well_e: tuple[float, float] = (4000.0, 20000.0)
    read_noise_e: tuple[float, float] = (2.0, 10.0)
    vignetting: tuple[float, float] = (0.1, 0.4)
    illumination_variation: tuple[float, float] = (0.0, 0.06)
    optics_dust_per_mm2: tuple[float, float] = (50.0, 400.0)
    optics_dust_blur_um: tuple[float, float] = (1.5, 6.0)
    debris_per_mm2: tuple[float, float] = (5.0, 100.0)
    structures_per_mm2: tuple[float, float] = (4.0, 14.0)
    tilt_um_per_mm: tuple[float, float] = (0.0, 8.0)
    bow_um: tuple[float, float] = (0.0, 5.0)
    index_delta: tuple[float, float] = (0.45, 0.55)
    top_roughness_um: tuple[float, float] = (0.08, 0.3)
    contour_um: tuple[float, float] = (1.0, 7.0)
    contour_roughness: tuple[float, float] = (0.05, 0.5)
    internal_scatter_per_um: tuple[float, float] = (0.0, 0.03)
    initiator_absorption_per_um: tuple[float, float] = (0.0, 0.05)
    lamp_temperature_k: tuple[float, float] = (2600.0, 3400.0)
    white_balance: tuple[float, float] = (0.0, 1.0)
    saturation: tuple[float, float] = (0.8, 1.6)
    isp_upscale: tuple[float, float] = (1.0, 2.0)
    lens_blur_px: tuple[float, float] = (0.3, 4.0)
    denoise_px: tuple[float, float] = (0.0, 1.5)
    sharpen: tuple[float, float] = (0.0, 0.8)
    sharpen_px: tuple[float, float] = (0.8, 2.0)
    gamma: tuple[float, float] = (1.8, 2.4)
    jpeg_quality: tuple[float, float] = (40.0, 95.0)
    lens_shading_correction: tuple[float, float] = (0.5, 1.0)
    dz_um: tuple[float, float] = (-10.0, 10.0)
    rotation_deg: tuple[float, float] = (0.0, 30.0)
    shift: tuple[float, float] = (0.0, 0.1)
    shear: tuple[float, float] = (0.0, 0.2)
    zoom: tuple[float, float] = (0.0, 0.2)
    p_colour: float = 0.9
    p_linear: float = 0.05
    p_jpeg: float = 0.5
    p_hflip: float = 0.5
    p_augment: float = 1.0
    p_near_focus: float = 0.6
    near_focus_um: float = 3.0
    p_on_structure: float = 0.6
    p_on_line_debris: float = 0.15
    p_far_print: float = 0.0
    p_bubble_debris: float = 0.25

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


@dataclass(frozen=True)
class Scene:
    """One slide's draw: the simulator's slide, optics, sensor and capture-chain parameters."""

    slide: SlideParams
    optics: OpticsParams
    sensor: SensorParams
    chain: CameraChainParams

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a dataset's meta file)."""
        return {"slide": dataclasses.asdict(self.slide), "optics": dataclasses.asdict(self.optics),
                "sensor": dataclasses.asdict(self.sensor), "chain": dataclasses.asdict(self.chain)}


@dataclass(frozen=True)
class Shot:
    """One frame's draw after the simulator: augmentation."""

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
    """Draw one slide's imaging, camera, light and slide parameters.

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
    from appliance.sim.capture import CameraChainParams
    from appliance.sim.optics import OpticsParams
    from appliance.sim.sensor import SensorParams
    from appliance.sim.slide import SlideParams

    r = ranges
    um_per_px = _log_uniform(rng, r.um_per_px)
    mag = SENSOR_PIXEL_UM / um_per_px
    na = float(np.clip(0.025 * mag * _uniform(rng, r.na_factor), 0.06, 0.45))
    optics = OpticsParams(magnification=mag, na=na, condenser_sigma=_uniform(rng, r.condenser_sigma),
                          wavelength_um=_uniform(rng, r.wavelength_um))
    full_well = _log_uniform(rng, r.full_well_e)
    sensor = SensorParams(width_px=size_px[0], height_px=size_px[1], pixel_um=SENSOR_PIXEL_UM,
                          exposure_ms=EXPOSURE_MS, full_well_e=full_well,
                          electrons_per_ms=_uniform(rng, r.level) * full_well / EXPOSURE_MS,
                          read_noise_e=_uniform(rng, r.read_noise_e), vignetting=_uniform(rng, r.vignetting),
                          illumination_variation=_uniform(rng, r.illumination_variation),
                          optics_dust_per_mm2=_uniform(rng, r.optics_dust_per_mm2),
                          optics_dust_blur_um=_uniform(rng, r.optics_dust_blur_um))
    jpeg = int(round(_uniform(rng, r.jpeg_quality))) if rng.random() < r.p_jpeg else 0
    chain = CameraChainParams(colour=bool(rng.random() < r.p_colour),
                              lamp_temperature_k=_uniform(rng, r.lamp_temperature_k),
                              white_balance=_uniform(rng, r.white_balance), saturation=_uniform(rng, r.saturation),
                              isp_upscale=_uniform(rng, r.isp_upscale), lens_blur_px=_uniform(rng, r.lens_blur_px),
                              demosaic=DEMOSAIC_METHODS[int(rng.integers(len(DEMOSAIC_METHODS)))],
                              denoise_px=_uniform(rng, r.denoise_px), sharpen=_uniform(rng, r.sharpen),
                              sharpen_px=_uniform(rng, r.sharpen_px),
                              gamma=1.0 if rng.random() < r.p_linear else _uniform(rng, r.gamma),
                              jpeg_quality=jpeg,
                              lens_shading_correction=_uniform(rng, r.lens_shading_correction))
    side = max(1500.0, slide_frames * max(size_px) * um_per_px)
    # make_slide keeps EDGE_MARGIN_UM (100 µm) free at the slide's edges.
    usable_mm2 = max(0.1, (side - 200.0) ** 2 / 1e6)
    n_struct = int(rng.poisson(_uniform(rng, r.structures_per_mm2) * usable_mm2))
    slide = SlideParams(width_um=side, height_um=side, n_structures=n_struct,
                        debris_per_mm2=_uniform(rng, r.debris_per_mm2),
                        tilt_x_um_per_mm=_signed(rng, r.tilt_um_per_mm),
                        tilt_y_um_per_mm=_signed(rng, r.tilt_um_per_mm),
                        bow_um=_signed(rng, r.bow_um), index_delta=_uniform(rng, r.index_delta),
                        top_roughness_um=_uniform(rng, r.top_roughness_um), contour_um=_uniform(rng, r.contour_um),
                        contour_roughness=_uniform(rng, r.contour_roughness),
                        internal_scatter_per_um=_uniform(rng, r.internal_scatter_per_um),
                        initiator_absorption_per_um=_uniform(rng, r.initiator_absorption_per_um))
    return Scene(slide=slide, optics=optics, sensor=sensor, chain=chain)


def build_microscope(scene: Scene, slide_seed: int) -> VirtualMicroscope:
    """The virtual microscope of one scene.

    Raises
    ------
    ValueError
        The slide cannot hold the drawn structures (the caller draws again with fewer).
    """
    from appliance.sim.microscope import VirtualMicroscope

    return VirtualMicroscope(seed=slide_seed, slide=scene.slide, optics=scene.optics, sensor=scene.sensor,
                             chain=scene.chain)


def sample_shot(rng: np.random.Generator, ranges: Ranges, augment: bool, size_px: tuple[int, int]) -> Shot:
    """Draw one frame's augmentation (none unless ``augment``)."""
    m = None
    flip = False
    if augment and rng.random() < ranges.p_augment:
        m = augment_matrix(rng, ranges, size_px)
        flip = bool(rng.random() < ranges.p_hflip)
    return Shot(augment=m, hflip=flip)


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


def render_frame(scope: VirtualMicroscope, x_um: float, y_um: float, z_um: float, shot: Shot | None,
                 exposure_seed: int, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Render one grey frame at stage (x, y, z) through the scope's optics and capture chain (no augmentation).

    Parameters
    ----------
    scope : VirtualMicroscope
        Built by :func:`build_microscope` (its camera's renderer and capture chain are used).
    x_um, y_um, z_um : float
        Stage position of the (whole) frame.
    shot : Shot or None
        Unused here (augmentation is :func:`augment`); kept so callers pass one draw around.
    exposure_seed : int
        Seed of the shot and read noise.
    window : (int, int, int, int), optional
        ``(u0, v0, w, h)`` in frame pixels: render only that part of the frame, for crops at a fraction of the
        cost. The window gets a capture chain of its own size with the scene's settings: the same optics,
        light level, noise and ISP, but its own (flat) lamp field and no vignetting, and its photosites keep
        the frame's pitch to within half a photosite over the window.

    Returns
    -------
    (H, W) or (h, w) ndarray of uint8
    """
    from appliance.sim.camera import render_frame as sim_render

    del shot
    cam = scope.camera
    rng = np.random.default_rng([exposure_seed, 0xE4])
    if window is None:
        return np.ascontiguousarray(sim_render(cam.renderer, cam.chain, (x_um, y_um, z_um), cam.exposure_ms, rng,
                                               grey=True))
    fw, fh = cam.size_px
    u0, v0, w, h = (int(v) for v in window)
    if not (0 <= u0 and 0 <= v0 and w > 0 and h > 0 and u0 + w <= fw and v0 + h <= fh):
        raise ValueError(f"window must lie inside the {fw} x {fh} frame, got {window!r}")
    if w < 16 or h < 16:  # the sensor model's smallest frame: render 16 px around it and cut
        gu, gv = min(fw - 16, max(0, u0 - (16 - w) // 2)), min(fh - 16, max(0, v0 - (16 - h) // 2))
        gw, gh = max(w, 16), max(h, 16)
        big = render_frame(scope, x_um, y_um, z_um, None, exposure_seed, (gu, gv, gw, gh))
        return np.ascontiguousarray(big[v0 - gv:v0 - gv + h, u0 - gu:u0 - gu + w])
    s = cam.um_per_px
    # The window's centre pixel, in slide µm: the same pixel grid as the whole frame's.
    xc = x_um + (u0 + (w - 1) / 2.0 - (fw - 1) / 2.0) * s
    yc = y_um + (v0 + (h - 1) / 2.0 - (fh - 1) / 2.0) * s
    chain = _window_chain(scope, w, h)
    return np.ascontiguousarray(sim_render(cam.renderer, chain, (xc, yc, z_um), cam.exposure_ms, rng, grey=True))


def _window_chain(scope: VirtualMicroscope, w: int, h: int) -> Any:
    """A capture chain for a (w, h) window of the scope's frames (cached on the scope)."""
    from appliance.sim.capture import CaptureChain

    cache: dict[tuple[int, int], Any] = scope.__dict__.setdefault("_window_chains", {})
    if (w, h) not in cache:
        cam = scope.camera
        sensor = dataclasses.replace(cam.sensor, width_px=w, height_px=h, vignetting=0.0)
        cache[(w, h)] = CaptureChain(sensor, cam.chain_params, cam.um_per_px, cam.seed)
    return cache[(w, h)]


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


def move_points(points: np.ndarray, shot: Shot, width: int) -> np.ndarray:
    """Points ``(K, 2)`` in box coordinates through the shot's affine map and flip (as :func:`augment` moves boxes)."""
    out = points.astype(np.float64).reshape(-1, 2).copy()
    if shot.augment is not None and len(out):
        m = shot.augment
        u, v = out[:, 0], out[:, 1]  # the same convention as the boxes (sub-pixel offsets ignored alike)
        out = np.stack([m[0, 0] * u + m[0, 1] * v + m[0, 2], m[1, 0] * u + m[1, 1] * v + m[1, 2]], 1)
    if shot.hflip and len(out):
        out[:, 0] = width - out[:, 0]
    return out


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


def draw_dz_um(rng: np.random.Generator, ranges: Ranges) -> float:
    """A defocus: near focus with probability ``p_near_focus``, else anywhere in ``dz_um``."""
    lo, hi = ranges.dz_um
    if rng.random() < ranges.p_near_focus:
        lo, hi = max(lo, -ranges.near_focus_um), min(hi, ranges.near_focus_um)
        if hi < lo:
            lo, hi = ranges.dz_um
    return _uniform(rng, (lo, hi))

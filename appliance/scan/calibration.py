"""Camera-to-stage calibration: move the stage, track the image shift by phase correlation, fit pixel -> µm.

The map (as OpenFlexure's camera-stage mapping): a pixel ``(u, v)`` of a frame taken with the stage at
``(X, Y)`` shows the slide point ``(X, Y) + M @ (u, v) + offset``, with ``M`` a 2 x 2 matrix (µm per pixel,
rotation and shear included) and ``offset = -M @ c`` for the image centre ``c = ((W - 1) / 2, (H - 1) / 2)``:
the optical axis is taken to pass through the frame's centre, which stage moves cannot measure.

Fit: moving the stage by ``d`` µm moves the image content by ``p`` pixels with ``d = -M p`` (content moves the
other way). Several moves around a start point, each approached from the same side so backlash cancels,
give pairs ``(p_i, d_i)``; ``M`` is their least-squares fit with an intercept (the intercept soaks up a
constant move error and is reported as ``bias_um``). Shifts come from phase correlation of band-passed,
windowed frames with the zero-shift peak masked: the illumination, vignetting and dust on the optics are fixed
to the camera and would otherwise lock the correlation at zero shift.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from appliance.config.yamlfile import load_yaml
from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import Stage, StageLimitError
from appliance.scan.backlash import PROBE_UM, measure_backlash

#: The frame sizes a calibration may name, pixels per side: the virtual sensor's least, and beyond any
#: microscope camera's (the largest bench sensor here is 2592 x 1944); a size outside is a damaged file.
SIZE_PX_RANGE = (16, 20000)


class CalibrationError(RuntimeError):
    """The calibration could not be measured (no texture in view, inconsistent shifts)."""


@dataclass(frozen=True)
class Calibration:
    """A fitted pixel -> stage map.

    Attributes
    ----------
    matrix : ((float, float), (float, float))
        ``M``: µm of slide per pixel of image displacement, rows x and y.
    size_px : (int, int)
        Frame (width, height) the map was measured with.
    residual_um : float
        RMS misfit of the moves, µm.
    bias_um : (float, float)
        Fitted intercept: a constant move error (backlash not cancelled, drift), µm.
    backlash_um : (float, float) or None
        The stage's XY slack where the map was measured (:func:`appliance.scan.backlash.measure_backlash`),
        µm; None where it was not read.
    """

    matrix: tuple[tuple[float, float], tuple[float, float]]
    size_px: tuple[int, int]
    residual_um: float = 0.0
    bias_um: tuple[float, float] = (0.0, 0.0)
    backlash_um: tuple[float, float] | None = None

    @classmethod
    def nominal(cls, um_per_px: float, size_px: tuple[int, int]) -> Calibration:
        """A square-pixel map from a known scale (a test convenience and a starting guess)."""
        return cls(((um_per_px, 0.0), (0.0, um_per_px)), (int(size_px[0]), int(size_px[1])))

    @property
    def m(self) -> np.ndarray:
        """``M`` as a (2, 2) float64 array."""
        return np.asarray(self.matrix, dtype=np.float64)

    @property
    def offset_um(self) -> tuple[float, float]:
        """``-M @ c``: where pixel (0, 0) lies relative to the stage position, µm."""
        c = np.array([(self.size_px[0] - 1) / 2.0, (self.size_px[1] - 1) / 2.0])
        o = -self.m @ c
        return float(o[0]), float(o[1])

    @property
    def um_per_px(self) -> float:
        """Mean scale, µm per pixel (square root of ``|det M|``)."""
        return float(math.sqrt(abs(np.linalg.det(self.m))))

    @property
    def fov_um(self) -> tuple[float, float]:
        """Field of view (width, height) in µm: the axis-aligned extent of the frame on the slide."""
        w, h = self.size_px
        m = self.m
        return float(abs(m[0, 0]) * w + abs(m[0, 1]) * h), float(abs(m[1, 0]) * w + abs(m[1, 1]) * h)

    def pixel_to_stage(self, u: float, v: float, stage_xy: tuple[float, float]) -> tuple[float, float]:
        """Slide µm of pixel ``(u, v)`` in a frame taken at ``stage_xy``."""
        o = self.offset_um
        m = self.matrix
        return (stage_xy[0] + m[0][0] * u + m[0][1] * v + o[0], stage_xy[1] + m[1][0] * u + m[1][1] * v + o[1])

    def stage_to_pixel(self, x: float, y: float, stage_xy: tuple[float, float]) -> tuple[float, float]:
        """Pixel ``(u, v)`` where slide point ``(x, y)`` appears in a frame taken at ``stage_xy``."""
        o = self.offset_um
        uv = np.linalg.solve(self.m, np.array([x - stage_xy[0] - o[0], y - stage_xy[1] - o[1]]))
        return float(uv[0]), float(uv[1])

    def to_mapping(self) -> dict[str, Any]:
        """Plain data for YAML and the scan's config snapshot."""
        return {"matrix": [list(r) for r in self.matrix], "offset_um": list(self.offset_um),
                "size_px": list(self.size_px), "residual_um": self.residual_um, "bias_um": list(self.bias_um),
                "backlash_um": None if self.backlash_um is None else list(self.backlash_um)}

    @classmethod
    def from_mapping(cls, data: object) -> Calibration:
        """Inverse of :meth:`to_mapping` (``offset_um`` is derived, so it is ignored); errors name the key."""
        if not isinstance(data, dict):
            raise ValueError(f"calibration: must be a mapping, got {type(data).__name__}")
        try:
            m = tuple(tuple(float(v) for v in row) for row in data["matrix"])
            raw_size = data["size_px"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibration: needs matrix [[a, b], [c, d]] and size_px [w, h] ({exc})") from None
        size = _size_of(raw_size)
        if len(m) != 2 or any(len(r) != 2 for r in m):
            raise ValueError(f"calibration: matrix must be 2 x 2, got {data['matrix']!r}")
        if not all(math.isfinite(v) for r in m for v in r) or abs(np.linalg.det(np.asarray(m))) < 1e-12:
            raise ValueError(f"calibration.matrix: must be finite and invertible, got {m}")
        bias = tuple(float(v) for v in data.get("bias_um", (0.0, 0.0)))
        return cls(((m[0][0], m[0][1]), (m[1][0], m[1][1])), (size[0], size[1]),
                   float(data.get("residual_um", 0.0)), (bias[0], bias[1]), _backlash_of(data.get("backlash_um")))

    def check_frame_size(self, size_px: tuple[int, int]) -> None:
        """Raise :class:`CalibrationError` unless the camera's frames (``size_px``) are the size this map was made at.

        The map's field of view and centre come from its own ``size_px``: frames of another size would put the
        grid's fields apart by the wrong field (gaps between them, or overlap) and every position off centre.
        """
        if tuple(size_px) != tuple(self.size_px):
            raise CalibrationError(
                f"the calibration was made at a frame size of {self.size_px[0]} x {self.size_px[1]} px but the "
                f"camera gives {size_px[0]} x {size_px[1]} px; calibrate again with this camera "
                f"(tppscan calibrate), or scan without a calibration to measure one at the start")

    def moved_um(self, shift_px: tuple[float, float]) -> tuple[float, float]:
        """The stage displacement that shifts the image by ``shift_px`` (``d = -M p``, plus the fit's intercept)."""
        d = -self.m @ np.asarray(shift_px, dtype=np.float64)
        return float(d[0] + self.bias_um[0]), float(d[1] + self.bias_um[1])

    def save(self, path: Path) -> None:
        """Write as YAML."""
        Path(path).write_text(yaml.safe_dump(self.to_mapping(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read a file written by :meth:`save`."""
        try:
            return cls.from_mapping(load_yaml(Path(path).read_text()))
        except yaml.YAMLError as exc:
            raise ValueError(f"calibration file {path}: not valid YAML ({exc})") from None


def _size_of(value: object) -> tuple[int, int]:
    """A mapping's ``size_px``: two whole pixel counts within :data:`SIZE_PX_RANGE` (``ValueError`` naming it)."""
    lo, hi = SIZE_PX_RANGE
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value)):
        raise ValueError(f"calibration.size_px: must be [width, height], whole pixels in [{lo}, {hi}], "
                         f"got {value!r}")
    return value[0], value[1]


def _backlash_of(value: object) -> tuple[float, float] | None:
    """A mapping's ``backlash_um``: None, or two finite micrometre values >= 0 (the key named otherwise)."""
    if value is None:
        return None
    try:
        bx, by = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"calibration.backlash_um: must be null or [x, y] in um, got {value!r}") from None
    if not (0 <= bx <= PROBE_UM and 0 <= by <= PROBE_UM):  # NaN fails too
        raise ValueError(f"calibration.backlash_um: must be two values in [0, {PROBE_UM:g}] um (the most slack the "
                         f"calibration's probe reads), got {value!r}")
    return bx, by


def spectrum(image: np.ndarray) -> np.ndarray:
    """A frame's spectrum as phase correlation reads it: band-passed, Hann-windowed, ``rfft2``.

    The band-pass drops the camera-fixed illumination (large scale) and damps the sensor's pixel-scale patterns
    (Bayer, JPEG blocks), which do not move with the stage either.
    """
    h, w = image.shape
    f = image.astype(np.float32)
    f = cv2.GaussianBlur(f, (0, 0), 1.5) - cv2.GaussianBlur(f, (0, 0), 12.0)
    return np.fft.rfft2(f * cv2.createHanningWindow((w, h), cv2.CV_32F))


def image_shift_px(a: np.ndarray, b: np.ndarray, exclude_px: int = 4) -> tuple[float, float, float]:
    """Shift ``(du, dv)`` of ``b``'s content against ``a``'s, in pixels, and the correlation response.

    Phase correlation with the zero-shift peak masked out (``|du|, |dv| <= exclude_px``): whatever is fixed
    to the camera (dust on the optics, the illumination) correlates at zero shift, the slide at the move.

    Parameters
    ----------
    a, b : (H, W) ndarray of uint8
        Two frames of the same size.
    exclude_px : int
        Half-width of the masked zero-shift neighbourhood, pixels.
    """
    if a.shape != b.shape:
        raise ValueError(f"frames must have the same shape, got {a.shape} and {b.shape}")
    return correlation_peak(correlation_surface(spectrum(a), spectrum(b), a.shape, exclude_px))


def correlation_surface(fa: np.ndarray, fb: np.ndarray, shape: tuple[int, ...], exclude_px: int = 4) -> np.ndarray:
    """The phase correlation of a frame against another over every shift, zero shift at the centre and masked.

    ``fa``, ``fb``: the two frames' :func:`spectrum`; ``shape``: the frames' (H, W). :func:`image_shift_px`
    reads its peak (:func:`correlation_peak`).
    """
    h, w = shape
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-12)
    r = np.fft.fftshift(np.fft.irfft2(cross, s=(h, w)))
    cy, cx = h // 2, w // 2
    r[cy - exclude_px:cy + exclude_px + 1, cx - exclude_px:cx + exclude_px + 1] = r.min()
    return r


def correlation_peak(r: np.ndarray) -> tuple[float, float, float]:
    """The highest peak of a correlation surface (:func:`correlation_surface`): its shift and its height.

    The shift is refined to a fraction of a pixel by the centroid of the peak's 3 x 3 neighbourhood.
    """
    py, px = np.unravel_index(int(np.argmax(r)), r.shape)
    return _refined(r, int(py), int(px))


def _refined(r: np.ndarray, py: int, px: int) -> tuple[float, float, float]:
    """The shift of the surface's cell ``(py, px)``, refined by its 3 x 3 centroid, and the cell's height."""
    h, w = r.shape
    cy, cx = h // 2, w // 2
    y0, y1, x0, x1 = max(py - 1, 0), min(py + 2, h), max(px - 1, 0), min(px + 2, w)
    patch = np.clip(r[y0:y1, x0:x1], 0.0, None)
    total = float(patch.sum())
    yy, xx = np.mgrid[y0:y1, x0:x1]
    sy = float((yy * patch).sum() / total) if total > 0 else float(py)
    sx = float((xx * patch).sum() / total) if total > 0 else float(px)
    return sx - cx, sy - cy, float(r[py, px])


def _top_cells(r: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The ``k`` highest local maxima of ``r`` as (row, column)."""
    peaks = (r >= cv2.dilate(r.astype(np.float32), np.ones((3, 3), np.uint8))) & (r > r.min())
    ys, xs = np.nonzero(peaks)
    order = np.argsort(r[ys, xs])[::-1][:k]
    return [(int(ys[i]), int(xs[i])) for i in order]


#: The moves around a start, in stage steps: the compass points, then the diagonals.
MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1))


def joint_shifts(surfaces: list[np.ndarray], moves_um: list[tuple[float, float]], candidates: int = 12,
                 radius: int = 3) -> list[tuple[float, float, float]]:
    """The image shifts of the eight :data:`MOVES`, read together as one linear map of the stage predicts them.

    ``surfaces`` holds each move's correlation surface and ``moves_um`` how far the stage moved (x, y), in the
    order of ``MOVES``. A linear map ``A`` puts the shift of a move ``d`` at ``A d``: ``A`` is solved from one
    of the strongest peaks of an x move's surface and one of a y move's, and of those candidates the one whose
    eight predicted shifts add up to the most correlation wins. Each move's shift is then its surface's highest
    cell within ``radius`` px of the prediction, refined (the radius takes up a constant move error of a few
    pixels, which the prediction leaves out and the fit's intercept takes). The stage's own moves are used, not
    the steps asked for: a stage that rounds to whole micrometres moved +7 and -6 µm for +-6.67 (60x, seed 1527).
    Read one by one, a move whose view lost the speck, or whose diagonal peak lost to a scaffold's rods, took a
    false peak and spoilt the place's fit (60x / NA 0.85, seed 1417); read together, the moves that see the speck
    carry the ones that barely do. Returns ``(du, dv, height)`` per move.
    """
    if len(surfaces) != len(MOVES) or len(moves_um) != len(MOVES):
        raise ValueError(f"joint_shifts needs {len(MOVES)} surfaces and moves (one per move), "
                         f"got {len(surfaces)} and {len(moves_um)}")
    h, w = surfaces[0].shape
    cy, cx = h // 2, w // 2
    d = np.asarray(moves_um, dtype=np.float64)
    tops = [[(float(px - cx), float(py - cy)) for py, px in _top_cells(r, candidates)] for r in surfaces[:4]]

    def height(r: np.ndarray, p: np.ndarray) -> float:
        y, x = int(round(cy + p[1])), int(round(cx + p[0]))
        return float(r[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].max()) if 0 <= y < h and 0 <= x < w else -1.0

    best, best_score = np.zeros((2, 2)), -math.inf
    for i, j in ((0, 2), (0, 3), (1, 2), (1, 3)):
        moves = np.stack([d[i], d[j]], axis=1)
        if abs(np.linalg.det(moves)) < 1e-9:
            continue
        for pi in tops[i]:
            for pj in tops[j]:
                m = np.stack([pi, pj], axis=1) @ np.linalg.inv(moves)  # pixels per µm
                score = sum(height(r, m @ dk) for r, dk in zip(surfaces, d, strict=True))
                if score > best_score:
                    best, best_score = m, score
    out = []
    for r, dk in zip(surfaces, d, strict=True):
        q = best @ dk
        qy, qx = int(round(cy + q[1])), int(round(cx + q[0]))
        y0, y1, x0, x1 = max(qy - radius, 0), min(qy + radius + 1, h), max(qx - radius, 0), min(qx + radius + 1, w)
        if y0 >= y1 or x0 >= x1:  # predicted off the surface: this move cannot be read
            out.append((float(q[0]), float(q[1]), -1.0))
            continue
        py, px = np.unravel_index(int(np.argmax(r[y0:y1, x0:x1])), (y1 - y0, x1 - x0))
        out.append(_refined(r, int(py) + y0, int(px) + x0))
    return out


def approach_xy(stage: Stage, x: float, y: float, approach_um: float) -> None:
    """Move to ``(x, y)`` ending with +x, +y from ``approach_um`` below it on both axes (0: straight there)."""
    if approach_um > 0:
        stage.move_to_um(x=x - approach_um, y=y - approach_um)
    stage.move_to_um(x=x, y=y)


#: A place's fit is kept only if its moves agree with it to this fraction of ``step_um`` (RMS; at least
#: ``MIN_RESIDUAL_UM``): one false correlation peak (a woodpile's rods repeat every few micrometres, a
#: speck fixed to the camera) made an 8-move fit miss by 12-20 µm RMS and skew the matrix by 9 % (seed 85).
MAX_RESIDUAL_FRACTION = 0.075
MIN_RESIDUAL_UM = 1.0


#: The response a texture must reach, at most (see :func:`min_response_for`).
MAX_MIN_RESPONSE = 0.05


def min_response_for(size_px: tuple[int, int]) -> float:
    """The correlation response that tells texture from none in frames of ``size_px``.

    Twice the highest peak that phase correlation of noise alone reaches over ``N`` pixels
    (``sqrt(2 ln N / N)``: 0.009 at 640 x 480), and at most ``MAX_MIN_RESPONSE``. A fixed 0.05 asked a
    640 x 480 frame for five times that: at NA 0.05 (10x) the dust's correlation peaks stood at 0.02-0.03
    at every place, all at the right shift, and the scan ended "no texture" (seed 457). A false peak above
    the bound still has to agree with the other seven moves to within ``MAX_RESIDUAL_FRACTION`` of the step.
    """
    n = float(size_px[0]) * float(size_px[1])
    return min(MAX_MIN_RESPONSE, 2.0 * math.sqrt(2.0 * math.log(n) / n))


#: How far below each place the calibration's moves start, µm: more than the slack of a cheap lead-screw stage.
#: At 20 µm a stage with 30 µm of backlash left every move up to 10 µm short, and 121 places never agreed
#: with one map (held-out seed 3920, ``stage.backlash_um=[30,30,2]``).
APPROACH_UM = 50.0


def calibrate(stage: Stage, camera: Camera, step_um: float = 40.0, approach_um: float = APPROACH_UM,
              min_response: float | None = None, search: int = 48, search_step_um: float = 300.0) -> Calibration:
    """Measure the pixel -> stage map around the current position.

    Eight moves of ``step_um`` (the compass points and diagonals) around the start, each approached from -x, -y;
    each frame's shift against the start frame by phase correlation, the eight read together
    (:func:`joint_shifts`). If the place has no texture (the moves' correlation responses average below
    ``min_response``; by default ``MAX_MIN_RESPONSE`` at every place first, then :func:`min_response_for` the
    frame's size), or the moves do not agree with one map (RMS misfit above ``MAX_RESIDUAL_FRACTION`` of the
    step, with moves left out down to ``MIN_MOVES_FITTED``: a false correlation peak; or a map stretched beyond
    ``MAX_STRETCH``), the stage tries up to ``search`` other places on a square spiral ``search_step_um`` apart
    around the start before giving up. Where a map fits, the stage's XY slack is read there too (two more
    frames; :func:`appliance.scan.backlash.measure_backlash`) and kept as ``backlash_um``.

    Raises
    ------
    CalibrationError
        No place with texture and consistent moves was found, or the fitted map is singular.
    ValueError
        On a bad argument (named).
    """
    if not 1.0 <= step_um <= 1000.0:
        raise ValueError(f"step_um must be in [1, 1000], got {step_um!r}")
    start = stage.position_um()
    w, h = camera.size_px
    # the strict bound first, at every place; the frame's noise floor only where no place passes it: a weak
    # place the floor lets through fits worse than a strong one further on (cheap colour camera, seed 496:
    # 2.7 um RMS and a 2 % shear at the first place, against 0.01 um a few places on)
    bounds = (MAX_MIN_RESPONSE, min_response_for((w, h))) if min_response is None else (min_response,)
    tolerance = max(MIN_RESIDUAL_UM, MAX_RESIDUAL_FRACTION * step_um)
    worst: Calibration | None = None
    why = ""  # why the first place with texture but no map had none
    places = spiral_offsets(search + 1)
    for k, bound in enumerate(bounds):
        if k > 0 and bound >= bounds[k - 1]:
            break
        faint = []  # the places too faint for this bound, with their strongest peak: a lower bound may look again
        for i, j in places:
            x0, y0 = start.x_um + i * search_step_um, start.y_um + j * search_step_um
            try:
                pairs = _measure(stage, camera, x0, y0, step_um, approach_um, bound)
                if isinstance(pairs, float):
                    faint.append(((i, j), pairs))
                    continue
                cal = _fit_robust(pairs, (w, h), tolerance)
            except StageLimitError:  # this place of the spiral is beyond the travel (a start near an edge): skip
                continue
            except _NoMap as exc:
                why = why or str(exc)
                continue
            except CalibrationError:
                continue
            if cal.residual_um <= tolerance:
                stretch = _stretch(cal)
                if stretch <= MAX_STRETCH:
                    return _with_backlash(stage, camera, cal, (x0, y0), step_um, approach_um, bound)
                why = why or (f"the fitted map stretches one image axis against the other by {stretch:.2f}, "
                              f"at most {MAX_STRETCH:g} allowed: pixels are square, so a false reading, or a stage "
                              "axis whose steps per mm are off")
                continue
            worst = cal if worst is None or cal.residual_um < worst.residual_um else worst
        # bare glass peaks under every bound: only a place whose moves reached the next one is measured again
        places = [ij for ij, peak in faint if k + 1 < len(bounds) and peak >= bounds[k + 1]]
    where = f"at {search + 1} place{'s' if search else ''} from ({start.x_um:.0f}, {start.y_um:.0f}) um"
    if worst is not None or why:
        misfit = (f"best RMS misfit {worst.residual_um:.1f} um, allowed {tolerance:.1f} um for {step_um:g} um moves"
                  if worst is not None else why)
        raise CalibrationError(f"the moves never agreed with one pixel -> um map {where} ({misfit}): false "
                               "correlation peaks, or a stage that does not repeat its moves to a few um; move to "
                               "dust or a structure and calibrate there, or check the stage")
    raise CalibrationError(f"no texture for phase correlation {where}; move to a structure and calibrate there")


def _with_backlash(stage: Stage, camera: Camera, cal: Calibration, place: tuple[float, float], step_um: float,
                   approach_um: float, bound: float) -> Calibration:
    """``cal`` with the stage's slack read where it was fitted (:func:`appliance.scan.backlash.measure_backlash`).

    Each probe frame's shift against the place's is read from the part of their correlation where the fitted map
    puts the displacements the probe allows (``lo_um`` to ``hi_um`` on each axis): read over the whole surface,
    a 112 x 84 µm field's false peaks near zero shift won (held-out seed 3976, 16x on a 320 x 240 sensor, whose
    slack is now not read at all). A peak under the place's bound, or a shift
    beyond ``MAX_SHIFT_FRACTION`` of the frame (which phase correlation cannot tell from its wrap-around), reads
    nothing, and the probe tries a nearer point.
    """
    w, h = cal.size_px
    to_px = np.linalg.inv(cal.m)

    def moved(a: np.ndarray, b: np.ndarray, lo_um: float, hi_um: float) -> tuple[float, float] | None:
        r = correlation_surface(spectrum(a), spectrum(b), a.shape)
        # the image shifts of the allowed displacements (inverse of Calibration.moved_um), as surface cells
        corners = [-(to_px @ (np.array([dx, dy]) - np.asarray(cal.bias_um))) for dx in (lo_um, hi_um)
                   for dy in (lo_um, hi_um)]
        u0, v0 = np.maximum(np.floor(np.min(corners, axis=0)).astype(int) + (w // 2, h // 2), 0)
        u1, v1 = np.maximum(np.ceil(np.max(corners, axis=0)).astype(int) + (w // 2 + 1, h // 2 + 1), 0)
        allowed = (slice(v0, v1), slice(u0, u1))
        inside = np.full(r.shape, r.min())
        inside[allowed] = r[allowed]
        du, dv, response = correlation_peak(inside)
        if response < bound or abs(du) > MAX_SHIFT_FRACTION * w or abs(dv) > MAX_SHIFT_FRACTION * h:
            return None
        return cal.moved_um((du, dv))

    slack = measure_backlash(stage, camera, place[0], place[1], step_um / 2, approach_um, moved)
    return replace(cal, backlash_um=slack)


def spiral_offsets(n: int) -> list[tuple[int, int]]:
    """The first ``n`` cells of a square spiral around (0, 0), ring by ring."""
    out = [(0, 0)]
    k = 1
    while len(out) < n:
        ring = [(i, -k) for i in range(-k, k)] + [(k, j) for j in range(-k, k)] + \
            [(-i, k) for i in range(-k, k)] + [(-k, -j) for j in range(-k, k)]
        out.extend(ring)
        k += 1
    return out[:n]


#: A place needs this many of its eight moves read (each move's correlation at its shift reaching half the
#: bound) to be fitted: five give ten equations for six unknowns. At 20x with a 320 x 240 sensor a speck near
#: the frame's edge left the view on three moves (seed 1501).
MIN_MOVES_READ = 5

#: The fit may leave out moves that disagree with it (a false peak) down to this many: the more subsets are
#: tried, the likelier one agrees by chance.
MIN_MOVES_FITTED = 6

#: The joint reading is kept only if this many moves' own highest peaks lie where it puts them: a straight
#: fibre correlates along its length, and any map that moves along it reads as one.
MIN_MOVES_AGREEING = 4

#: A move may shift the image by at most this fraction of the frame's width (height): phase correlation is
#: circular, and a 286 px shift of a 480 px frame reads as -194 px. 40 um moves at 40x over a speck larger than
#: the field read every move wrapped, consistently, and fitted a y scale of -0.206 um/px for 0.14.
MAX_SHIFT_FRACTION = 1.0 / 3.0

#: The most a fitted map may stretch one image axis against the other (the ratio of its singular values):
#: camera pixels are square, so a stronger stretch is a false reading that happened to fit (every move read
#: wrapped around, a fibre read along its length), or a stage axis that moves far from what it is told.
MAX_STRETCH = 1.25

#: A place whose moves' correlations peak below the bound on more than this many, or on both of its first two
#: (the x moves), is bare: the search goes on at once.
MAX_FAINT_MOVES = 4

Pair = tuple[tuple[float, float], tuple[float, float]]


def _measure(stage: Stage, camera: Camera, x0: float, y0: float, step: float, approach: float,
             min_response: float) -> list[Pair] | float:
    """The (image shift, stage move) pairs of a place's moves read, or its strongest peak if it has no texture.

    With nothing to follow, the highest correlation peak its moves reached is returned: a lower bound looks
    again where that reaches it. The shifts are read together (:func:`joint_shifts`); a place has texture when
    their correlations average ``min_response``. A move is read when its own correlation there reaches half of it.

    Raises
    ------
    _NoMap
        Texture, but no one map: fewer than ``MIN_MOVES_AGREEING`` moves peak where the joint reading puts them
        on their own, a shift beyond ``MAX_SHIFT_FRACTION`` of the frame, or fewer than ``MIN_MOVES_READ``
        moves read.
    """
    approach_xy(stage, x0, y0, approach)
    ref = camera.capture()
    f_ref = spectrum(ref.image)
    frames: list[Frame] = []
    surfaces: list[np.ndarray] = []
    faint, strongest = 0, 0.0
    for dx, dy in MOVES:
        approach_xy(stage, x0 + dx * step, y0 + dy * step, approach)
        frame = camera.capture()
        r = correlation_surface(f_ref, spectrum(frame.image), ref.image.shape)
        peak = correlation_peak(r)[2]
        strongest = max(strongest, peak)
        if peak < min_response:  # nothing above the bound anywhere, not even the camera's
            faint += 1
            # both x moves faint: a speck in view stays in view on one of them, so this is bare glass
            if faint > MAX_FAINT_MOVES or (len(frames) == 1 and faint == 2):
                return strongest
        frames.append(frame)
        surfaces.append(r)
    approach_xy(stage, x0, y0, approach)
    # What the eight correlations share is the camera's, not the slide's: the slide peaks at a different shift
    # for every move, a pattern fixed to the sensor at the same ones. The cheap colour camera's JPEG blocks at
    # 20x, over a slide with little dust, peaked at +-8 and +-16 px on every move (0.04-0.085, above the bound),
    # and no place of 25 agreed with one map (seed 1442); less their median they peak at 0.01-0.03.
    common = np.median(np.stack(surfaces), axis=0)
    own = [r - common for r in surfaces]
    moved = [(f.position.x_um - ref.position.x_um, f.position.y_um - ref.position.y_um) for f in frames]
    shifts = joint_shifts(own, moved)
    if float(np.mean([resp for _, _, resp in shifts])) < min_response:
        return strongest
    agreeing = sum(_near(correlation_peak(r), s) for r, s in zip(own, shifts, strict=True))
    if agreeing < MIN_MOVES_AGREEING:
        raise _NoMap(f"{agreeing} of {len(MOVES)} moves peaked where one shift map puts them, "
                     f"{MIN_MOVES_AGREEING} needed")
    w, h = ref.image.shape[1], ref.image.shape[0]
    if max(abs(du) / w for du, _, _ in shifts) > MAX_SHIFT_FRACTION or \
            max(abs(dv) / h for _, dv, _ in shifts) > MAX_SHIFT_FRACTION:
        raise _NoMap(f"the image moved by more than {MAX_SHIFT_FRACTION:.2g} of the frame, where phase correlation "
                     "cannot tell a shift from its wrap-around: make the moves smaller")
    pairs = [((du, dv), dk) for (du, dv, resp), dk in zip(shifts, moved, strict=True) if resp >= min_response / 2]
    if len(pairs) < MIN_MOVES_READ:
        raise _NoMap(f"{len(pairs)} of {len(MOVES)} moves read, {MIN_MOVES_READ} needed")
    return pairs


def _stretch(cal: Calibration) -> float:
    sv = np.linalg.svd(cal.m, compute_uv=False)
    return float(sv[0] / sv[1])


class _NoMap(Exception):
    """A place with texture whose moves read no one map (the reason is the message)."""


def _near(a: tuple[float, float, float], b: tuple[float, float, float], px: float = 1.5) -> bool:
    return abs(a[0] - b[0]) <= px and abs(a[1] - b[1]) <= px


def _fit_robust(pairs: list[Pair], size_px: tuple[int, int], tolerance_um: float) -> Calibration:
    """The fit of all ``pairs`` or, when that misses by more than ``tolerance_um``, of fewer.

    Moves are left out down to ``MIN_MOVES_FITTED``, fewest first; the best fit of all when none is within it.
    """
    best = _fit(pairs, size_px)
    for k in range(1, len(pairs) - MIN_MOVES_FITTED + 1):
        if best.residual_um <= tolerance_um:
            break
        fits = []
        for out in itertools.combinations(range(len(pairs)), k):
            try:
                fits.append(_fit([q for i, q in enumerate(pairs) if i not in out], size_px))
            except CalibrationError:
                continue
        if fits:
            best = min([best, *fits], key=lambda c: c.residual_um)
    return best


def _fit(pairs: list[Pair], size_px: tuple[int, int]) -> Calibration:
    p = np.array([q for q, _ in pairs], dtype=np.float64)
    d = np.array([m for _, m in pairs], dtype=np.float64)
    a = np.hstack([-p, np.ones((len(p), 1))])
    sol, *_ = np.linalg.lstsq(a, d, rcond=None)
    m = sol[:2].T
    if abs(np.linalg.det(m)) < 1e-9:
        raise CalibrationError(f"fitted pixel -> um matrix is singular: {m.tolist()}")
    resid = d - a @ sol
    rms = float(np.sqrt(np.mean(np.sum(resid ** 2, axis=1))))
    return Calibration(((float(m[0, 0]), float(m[0, 1])), (float(m[1, 0]), float(m[1, 1]))), size_px, rms,
                       (float(sol[2, 0]), float(sol[2, 1])))

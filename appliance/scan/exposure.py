"""The scan's exposure: glass that is clipped or dark is brought back to a bright-field grey before the first field.

A bright-field frame is bare glass with prints and dust darker than it, and the phase fringes at rims (a
micro-lens's bright core, a wall's bright side one way from focus) brighter than it. The models, the gate and
the phase checks read both. A lamp turned up too far, or an exposure left over from another objective, puts
the glass near 255: the bright fringes clip first (the phase sign is lost while the frames still look fine),
then the whole frame saturates and every capture fails. A lamp turned down leaves the prints a few grey
levels deep in noise.

:func:`settle_exposure` looks at one frame where the stage stands. The glass is its bright end (the
:data:`GLASS_PERCENTILE` th percentile: structures and dust only darken a bright-field frame). Inside
[:data:`TOO_DARK`, :data:`TOO_BRIGHT`] nothing changes (the virtual microscope's default glass is at 174),
so a well-set lamp costs one frame. Outside it the exposure is scaled towards :data:`TARGET`: by the
ratio of levels raised to the camera's measured response (a gamma-encoded camera's grey level goes as the
exposure to about 0.45), and by :data:`CLIPPED_STEP` while the glass is clipped (its level is then
unknown). A camera on its own automatic exposure (``exposure_ms`` NaN), one without exposure control, or one
whose frames do not follow the exposure (frames from files) is left as it is, and the result says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera, CameraError, Frame

#: The glass is a frame's bright end: structures and debris only darken bright field.
GLASS_PERCENTILE = 95.0
#: Glass above this grey level leaves the bright fringes less than 40 levels (16 %) of headroom.
TOO_BRIGHT = 215.0
#: Glass below this leaves a print's contrast a few grey levels deep in the sensor's noise.
TOO_DARK = 100.0
#: Where a changed exposure puts the glass: the virtual microscope's default look (glass at 168-176), which
#: the models were trained around.
TARGET = 170.0
#: A changed exposure is stepped until the glass is this close to TARGET (or frames run out).
CLOSE = 20.0
#: At or above this level a pixel is clipped.
CLIPPED = 254.0
#: The exposure's factor while the glass is clipped (its true level is unknown).
CLIPPED_STEP = 0.3
#: One step changes the exposure by this factor at most (a level read off noise must not send it to 10 s).
MAX_STEP = 16.0
#: Glass at or below this level is a black frame (a lamp off, a shutter shut): not an exposure to fix.
BLACK = 8.0
#: Frames one adjustment may take.
MAX_FRAMES = 8
#: The exposures a change may ask for, ms (every camera driver here accepts (0, 10000]).
EXPOSURE_RANGE_MS = (0.01, 10000.0)
#: A camera's grey level goes as the exposure to this power, until two frames have measured it (sRGB-like
#: gamma 2.2); measured powers are held within the next bounds.
DEFAULT_RESPONSE = 0.45
RESPONSE_BOUNDS = (0.3, 1.5)
#: A frame whose glass moved less than this many grey levels after the exposure changed by half or more does
#: not follow the exposure.
NO_RESPONSE_LEVELS = 2.0


@dataclass(frozen=True)
class ExposureResult:
    """What :func:`settle_exposure` did.

    Attributes
    ----------
    exposure_ms, before_ms : float
        The camera's exposure after and before (NaN: the camera's automatic exposure).
    glass_before, glass_after : float
        The glass's grey level (the frame's 95th percentile) in the first and last frame (NaN: no frame).
    frames : int
        Frames taken.
    ok : bool
        The glass ends inside [TOO_DARK, TOO_BRIGHT], or the camera's exposure is not ours to set.
    note : str
        One line for the log and ``scan.json``.
    """

    exposure_ms: float
    before_ms: float
    glass_before: float
    glass_after: float
    frames: int
    ok: bool
    note: str

    @property
    def changed(self) -> bool:
        """The exposure was changed."""
        return self.exposure_ms != self.before_ms and not math.isnan(self.before_ms)

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 4)
        return {"exposure_ms": num(self.exposure_ms), "before_ms": num(self.before_ms),
                "glass_before": num(self.glass_before), "glass_after": num(self.glass_after),
                "frames": self.frames, "ok": self.ok, "changed": self.changed, "note": self.note}


def glass_level(frame: Frame) -> float:
    """The glass's grey level in ``frame``: its :data:`GLASS_PERCENTILE` th percentile."""
    return float(np.percentile(frame.image, GLASS_PERCENTILE))


def well_exposed(level: float) -> bool:
    """Glass at ``level`` leaves both the dark prints and the bright fringes room."""
    return TOO_DARK <= level <= TOO_BRIGHT


def settle_exposure(camera: Camera, retries: int = 2) -> ExposureResult:
    """Bring the glass in the camera's frames into [TOO_DARK, TOO_BRIGHT] by its exposure; see the module's doc.

    ``camera`` is the open, raw camera (not a frame-checking wrapper: a clipped frame is what this is here to
    see). A glass out of the band is read again before anything changes, so one faulty frame (a transient
    saturated or dark frame from the driver) changes nothing. A capture raising ``CameraError`` is tried again
    ``retries`` times, then the error propagates. A camera that refuses an exposure is left at its last one.
    """
    before = float(camera.exposure_ms)
    if not math.isfinite(before):
        return ExposureResult(before, before, math.nan, math.nan, 0, True,
                              "the camera's automatic exposure is on: exposure left to it")
    shoot = _Capture(camera, retries)
    first = shoot.level()
    if well_exposed(first):
        return ExposureResult(before, before, first, first, shoot.frames, True,
                              f"glass at {first:.0f} of 255: exposure {before:g} ms kept")
    again = shoot.level()  # one faulty frame must not change the exposure
    if well_exposed(again) or (first > TOO_BRIGHT) != (again > TOO_BRIGHT):
        return ExposureResult(before, before, first, again, shoot.frames, True,
                              f"glass at {first:.0f} then {again:.0f} of 255: exposure {before:g} ms kept")
    if again <= BLACK:
        return ExposureResult(before, before, again, again, shoot.frames, False,
                              f"the frame is black (glass at {again:.0f} of 255): is the lamp on? exposure "
                              f"{before:g} ms kept")
    return _adjust(camera, shoot, before, again)


class _Capture:
    """The camera's captures as glass levels, each tried ``retries`` more times on a ``CameraError``; counts frames."""

    def __init__(self, camera: Camera, retries: int) -> None:
        self.camera, self.retries, self.frames = camera, max(0, int(retries)), 0

    def level(self) -> float:
        for _ in range(self.retries):
            try:
                return self._level()
            except CameraError:
                continue
        return self._level()

    def _level(self) -> float:
        frame = self.camera.capture()
        self.frames += 1
        return glass_level(frame)


def _adjust(camera: Camera, shoot: _Capture, before: float, first: float) -> ExposureResult:
    """Step the exposure towards TARGET until the glass is within CLOSE of it, or frames run out."""
    exposure, level = before, first
    response = DEFAULT_RESPONSE
    best: tuple[float, float] | None = None  # (exposure, level) of the frame nearest TARGET inside the band
    why = f"after {MAX_FRAMES} frames"
    while shoot.frames < MAX_FRAMES and abs(level - TARGET) > CLOSE:
        wanted = _clamp(exposure * _factor(level, response))
        if wanted == exposure:
            why = f"at the {'shortest' if level > TOO_BRIGHT else 'longest'} exposure allowed, {exposure:g} ms"
            break
        try:
            camera.exposure_ms = wanted
        except (ValueError, CameraError) as exc:
            why = f"the camera refused {wanted:.4g} ms ({exc})"
            break
        new = shoot.level()
        if max(level, new) < CLIPPED and abs(new - level) < NO_RESPONSE_LEVELS \
                and abs(math.log(wanted / exposure)) >= math.log(1.5):
            camera.exposure_ms = before
            return ExposureResult(before, before, first, new, shoot.frames, False,
                                  f"glass at {first:.0f} of 255 and the frames do not follow the exposure "
                                  f"({exposure:g} -> {wanted:.4g} ms): exposure {before:g} ms kept")
        response = _response(level, new, exposure, wanted, response)
        exposure, level = wanted, new
        if well_exposed(level) and (best is None or abs(level - TARGET) < abs(best[1] - TARGET)):
            best = (exposure, level)
    if best is not None:
        if best[0] != exposure:
            camera.exposure_ms = best[0]
        return ExposureResult(best[0], before, first, best[1], shoot.frames, True,
                              f"glass at {first:.0f} of 255 at {before:g} ms, so the scan runs at {best[0]:.4g} ms "
                              f"(glass at {best[1]:.0f}); set the lamp or the configured exposure to match")
    side = "clipped" if level >= CLIPPED else "too bright" if level > TOO_BRIGHT else "too dark"
    return ExposureResult(exposure, before, first, level, shoot.frames, False,
                          f"glass still {side} ({level:.0f} of 255) {why}: set the lamp so bare glass sits "
                          f"between {TOO_DARK:.0f} and {TOO_BRIGHT:.0f} of 255")


def _factor(level: float, response: float) -> float:
    if level >= CLIPPED:
        return CLIPPED_STEP
    return min(MAX_STEP, max(1.0 / MAX_STEP, (TARGET / max(level, 1.0)) ** (1.0 / response)))


def _response(level: float, new: float, exposure: float, wanted: float, previous: float) -> float:
    """The camera's grey-level response to exposure, measured by the last two frames when both are unclipped."""
    if level >= CLIPPED or new >= CLIPPED or min(level, new) < 1.0:
        return previous
    measured = math.log(new / level) / math.log(wanted / exposure)
    return min(RESPONSE_BOUNDS[1], max(RESPONSE_BOUNDS[0], measured))


def _clamp(exposure_ms: float) -> float:
    lo, hi = EXPOSURE_RANGE_MS
    return float(min(hi, max(lo, round(exposure_ms, 4))))

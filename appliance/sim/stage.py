"""The simulated stage: stepper XY, servo or stepper focus, backlash, soft limits, trapezoid time.

The model (``docs/sim-stage.md`` has the figures):

- Motors hold whole positions: steps for the X/Y steppers (and a Z stepper), whole degrees for a hobby
  servo on the fine-focus knob (``M280 P0 S<deg>`` takes integers). :meth:`SimStage.position_um` reports
  the motor positions, as a GRBL controller reports its step counts.
- Every axis has backlash, modelled as a dead band (the "play" operator): the carriage follows the motor
  only once the motor has taken up the slack. With ``c`` the carriage and ``m`` the motor position,
  ``m <= c <= m + backlash``; a move up pushes the carriage from below (``c = m``, no error: machine
  coordinates are defined by an approach from below), a move down pushes it from above
  (``c = m + backlash``). :meth:`SimStage.true_position_um` returns the carriage, which the simulated
  camera renders.
- Linear moves are like GRBL's: all stepper axes start and stop together along a straight line, whose
  speed and acceleration are the largest that keep every axis within its own limits; the line runs a
  trapezoidal profile (accelerate, cruise, decelerate; a triangle when too short to reach full speed).
  A servo focus move is a separate command after the XY move and slews at constant angular speed.
  Every move advances the shared :class:`~appliance.sim.clock.VirtualClock` by its motion time plus a
  settle time.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from appliance.hardware.stage.base import (
    HomingDisabled,
    Position,
    Stage,
    StageAlarm,
    StageError,
    StageLimitError,
)
from appliance.hardware.stage.base import round_half_away as _round_half_away  # the one rule, shared with GRBL
from appliance.sim.clock import VirtualClock

AXES = ("x", "y", "z")
ZMode = Literal["servo", "stepper"]
# In real-time mode a move advances the clock in slices this long, so stop() can cut it short.
_REALTIME_SLICE_S = 0.005


def trapezoid_time_s(distance_um: float, max_speed_um_s: float, accel_um_s2: float) -> float:
    """Time of a move that starts and ends at rest under a trapezoidal speed profile.

    Parameters
    ----------
    distance_um : float
        Path length, micrometres (the sign is ignored).
    max_speed_um_s : float
        Cruise speed, micrometres per second (> 0).
    accel_um_s2 : float
        Acceleration and deceleration, micrometres per second squared (> 0).

    Returns
    -------
    float
        Seconds: ``L/v + v/a`` when the move reaches full speed, else ``2 sqrt(L/a)`` (a triangle).

    Examples
    --------
    >>> trapezoid_time_s(1000.0, 1000.0, 10000.0)  # 0.1 s accelerate, 0.9 s cruise, 0.1 s decelerate
    1.1
    """
    d = abs(distance_um)
    if d == 0.0:
        return 0.0
    if d >= max_speed_um_s**2 / accel_um_s2:
        return d / max_speed_um_s + max_speed_um_s / accel_um_s2
    return 2.0 * math.sqrt(d / accel_um_s2)


def trapezoid_distance_um(t_s: float, distance_um: float, max_speed_um_s: float, accel_um_s2: float) -> float:
    """Distance covered ``t_s`` seconds into the move of :func:`trapezoid_time_s` (clamped to the move).

    Parameters
    ----------
    t_s : float
        Time since the move started, seconds.
    distance_um, max_speed_um_s, accel_um_s2 : float
        As in :func:`trapezoid_time_s`.

    Returns
    -------
    float
        Micrometres along the path, between 0 and ``abs(distance_um)``.
    """
    d = abs(distance_um)
    total = trapezoid_time_s(d, max_speed_um_s, accel_um_s2)
    if t_s <= 0.0 or d == 0.0:
        return 0.0
    if t_s >= total:
        return d
    v_peak = min(max_speed_um_s, math.sqrt(d * accel_um_s2))
    t_acc = v_peak / accel_um_s2
    if t_s <= t_acc:
        return 0.5 * accel_um_s2 * t_s**2
    if t_s <= total - t_acc:
        return 0.5 * v_peak * t_acc + v_peak * (t_s - t_acc)
    return d - 0.5 * accel_um_s2 * (total - t_s) ** 2


def _check_number(name: str, value: object, *, positive: bool = False, nonneg: bool = False,
                  hi: float = math.inf) -> float:
    """Return ``value`` as a finite float (at most ``hi``), or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonneg and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    if v > hi:
        raise ValueError(f"{name} must be <= {hi:g} (beyond any bench drive), got {value!r}")
    return v


def _check_tuple(name: str, value: object, length: int, *, positive: bool = False,
                 nonneg: bool = False) -> tuple[float, ...]:
    """Return ``value`` as a tuple of ``length`` finite floats, or raise ``ValueError`` naming ``name``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != length:
        raise ValueError(f"{name} must be a sequence of {length} numbers, got {value!r}")
    labels = AXES if length == 3 else tuple(str(i) for i in range(length))
    return tuple(_check_number(f"{name}[{lab}]", v, positive=positive, nonneg=nonneg)
                 for lab, v in zip(labels, value, strict=True))


def _check_range(name: str, value: object) -> tuple[float, float]:
    """Return ``value`` as ``(low, high)`` with ``low < high``, or raise ``ValueError`` naming ``name``."""
    lo, hi = _check_tuple(name, value, 2)
    if not lo < hi:
        raise ValueError(f"{name} must be (low, high) with low < high, got {value!r}")
    return lo, hi


#: How far below a focus target :meth:`SimStage.focus_to_um` starts by default, µm (more where the z backlash is).
DEFAULT_FOCUS_OVERSHOOT_UM = 5.0
MAX_DRIFT_UM_PER_MIN = 10.0  # beyond this a microscope is not fit to scan: refuse it as a typo
#: Upper bounds of the stage's scalar parameters, each far past what a bench drive has (docs/sim-stage.md): larger
#: values are typos, and near 1e308 they overflowed the step arithmetic (OverflowError) or the virtual clock (a
#: settle of 1e20 s broke the report's timing plot, 1e308 made the camera's motion blur NaN).
MAX_STAGE_VALUE: dict[str, float] = {
    "steps_per_um_x": 1000.0,  # 1 nm steps; a 0.5 mm lead screw at 256 microsteps gives about 100
    "steps_per_um_y": 1000.0,
    "z_steps_per_um": 1000.0,
    "um_per_servo_degree": 1000.0,  # the GRBL drive's config bound; a coarse focus knob (4 mm a turn) gives 11
    "servo_slew_deg_s": 10000.0,  # the fastest hobby servos turn about 1500 degrees a second
    "homing_speed_um_s": 100000.0,  # 100 mm/s, past any microscope stage's fastest move
    "servo_settle_s": 10.0,  # the GRBL drive's config bound: ten seconds to stop ringing is no drive to scan with
    "settle_s": 10.0,
    "focus_overshoot_um": 1000.0,  # the whole focus travel of most drives is a few hundred micrometres
}


def _default(name: str) -> Any:
    """A :class:`SimStageParams` field's default, for messages that tell a user which default got in the way."""
    return next(f.default for f in fields(SimStageParams) if f.name == name)


@dataclass(frozen=True)
class SimStageParams:
    """Mechanics of the simulated stage; validated at construction (``ValueError`` names the field).

    Per-axis tuples are ordered (x, y, z). Defaults describe the seed paper's kind of build: steppers on
    the XY knobs of a manual stage and a hobby servo on the fine-focus knob.

    Attributes
    ----------
    steps_per_um_x, steps_per_um_y : float
        Motor steps (microsteps) per micrometre of stage travel. Default 1.0 (1 µm per step).
    z_mode : {'servo', 'stepper'}
        How focus is driven. Default 'servo'.
    um_per_servo_degree : float
        Focus travel per servo degree, µm: the coarse step of servo focus. Default 1.0. In servo mode
        ``z = angle * um_per_servo_degree``.
    servo_angle_range_deg : (float, float)
        Angles the servo can reach, degrees, within 0..360. Default (0, 180).
    servo_slew_deg_s : float
        Servo slew rate, degrees per second. Default 600 (a hobby servo's 0.1 s per 60°).
    servo_settle_s : float
        Wait after a servo move for the knob to stop ringing, seconds. Default 0.1.
    z_steps_per_um : float
        Z stepper steps per micrometre (stepper mode only). Default 32.
    max_speed_um_s : (float, float, float)
        Maximum speed per stepper axis, µm/s. Default (2000, 2000, 200).
    accel_um_s2 : (float, float, float)
        Acceleration per stepper axis, µm/s². Default (10000, 10000, 1000).
    backlash_um : (float, float, float)
        Dead band per axis, µm (lost motion when the direction reverses). Default (4, 4, 2).
    travel_x_um, travel_y_um, travel_z_um : (float, float)
        Soft limits per axis, µm. Defaults (0, 25000), (0, 25000), (0, 180). In servo mode the z travel
        must lie within the servo's reach, ``servo_angle_range_deg * um_per_servo_degree``.
    settle_s : float
        Wait after a stepper move for vibration to die down, seconds. Default 0.05.
    homing_required : bool
        If true the stage starts in alarm (as GRBL with homing enabled) and refuses moves until
        :meth:`SimStage.home` (or :meth:`SimStage.unlock`). Default False.
    homing_speed_um_s : float
        Seek and pull-off speed of the homing cycle, µm/s (capped by each axis's max speed). Default 1000.
    homing_pulloff_um : (float, float, float)
        The limit switches sit this far below each travel minimum; homing ends at the travel minimum.
        Must be >= the backlash so the pull-off takes up the slack. Default (200, 200, 20); the z value
        is used only with a Z stepper.
    servo_home_z_um : float
        Where homing parks a servo focus (a servo has no switch: its angle is absolute). Default 90.
    focus_overshoot_um : float or None
        :meth:`SimStage.focus_to_um` first goes this far below the target, then comes up, so the approach
        always ends moving up. Must be >= the z backlash. Default (None): 5, or the z backlash where that is
        larger (a stage given 6 µm of z backlash and no overshoot was refused before session 24).
    start_position_um : (float, float, float)
        Where the carriage is at power-on. Default (0, 0, 90).
    jitter_um : (float, float, float)
        Standard deviation of a random repeatability error added to the true position after each move,
        µm; drawn from the stage's seed. Default (0, 0, 0).
    z_reversed : bool
        The focus drive turns the other way round: a commanded z that grows lowers the focal plane through the
        slide, as on an upright microscope that focuses by raising its stage, or a servo coupled to the knob
        the other way. The focal plane is then at ``lo + hi - z`` of ``travel_z_um`` (the travel maps onto
        itself). tppscan's convention is the other one (the focal plane rises with z: a print's focus is its
        glass's plus half its height); ``stage.z_reversed`` in the config undoes a drive wired this way.
        Default False.
    lost_um_per_move : (float, float, float)
        Standard deviation of the position an axis loses for good on each of its moves, µm: a stepper that
        misses steps under load, or a slide creeping in its holder. The losses add up (a random walk the drive
        never reports) until homing finds the switches again; drawn from the stage's seed. Default (0, 0, 0).
    z_drift_um_per_min : float
        Thermal drift of focus: the focal plane rises through the slide by this much per minute of the
        virtual clock, whatever the drive reports (the stand, the objective and the stage warming up after the
        lamp is turned on, or a room whose temperature changes). A real microscope drifts about 0.05-1 µm per
        minute until it settles; a scan of the default slide takes about 18 minutes. Negative: it sinks.
        Default 0.
    slide_offset_um : (float, float)
        Where the slide lies in its holder against where it lay when its scan began, µm in x and y: a slide
        nudged in its clips while a scan was stopped, or a drive that came back from a restart at a switch that
        trips a little elsewhere. It moves what the camera sees under every reported position, and no homing
        undoes it. Set on the run that resumes a scan, it is what the resumed scan must find again
        (``appliance.scan.position_check``); on a fresh scan it only moves the slide's origin, which the score
        then reads as a position error of its size. Default (0, 0).
    homing_repeat_um : (float, float, float)
        Standard deviation of where each homing cycle after the stage's first finds its switches, µm per axis: a
        mechanical limit switch trips within a few micrometres of the same place (about 2-20 µm), an optical one
        within about 1. The first homing defines the machine's zero (the slide's coordinates); each later one
        leaves the carriage off from it by a fresh draw from the stage's seed, which the drive reports as zero.
        Default (0, 0, 0).
    no_switches : bool
        The board has no homing switches (stock GRBL's ``$22=0``, a bench built without them): :meth:`SimStage.home`
        raises :class:`~appliance.hardware.stage.base.HomingDisabled`, and the count starts wherever the carriage
        stood when the board powered up. Set with ``slide_offset_um`` on a resumed run, it is a board that powered
        up where the first run left its carriage: the camera sees the slide ``slide_offset_um`` on from every
        reported place, and the x and y soft limits follow (a board without homing has none of its own: the
        mechanics' ends stay where they are). Default False.
    """

    steps_per_um_x: float = 1.0
    steps_per_um_y: float = 1.0
    z_mode: ZMode = "servo"
    um_per_servo_degree: float = 1.0
    servo_angle_range_deg: tuple[float, float] = (0.0, 180.0)
    servo_slew_deg_s: float = 600.0
    servo_settle_s: float = 0.1
    z_steps_per_um: float = 32.0
    max_speed_um_s: tuple[float, float, float] = (2000.0, 2000.0, 200.0)
    accel_um_s2: tuple[float, float, float] = (10000.0, 10000.0, 1000.0)
    backlash_um: tuple[float, float, float] = (4.0, 4.0, 2.0)
    travel_x_um: tuple[float, float] = (0.0, 25000.0)
    travel_y_um: tuple[float, float] = (0.0, 25000.0)
    travel_z_um: tuple[float, float] = (0.0, 180.0)
    settle_s: float = 0.05
    homing_required: bool = False
    homing_speed_um_s: float = 1000.0
    homing_pulloff_um: tuple[float, float, float] = (200.0, 200.0, 20.0)
    servo_home_z_um: float = 90.0
    focus_overshoot_um: float | None = None
    start_position_um: tuple[float, float, float] = (0.0, 0.0, 90.0)
    jitter_um: tuple[float, float, float] = (0.0, 0.0, 0.0)
    z_reversed: bool = False
    lost_um_per_move: tuple[float, float, float] = (0.0, 0.0, 0.0)
    z_drift_um_per_min: float = 0.0
    slide_offset_um: tuple[float, float] = (0.0, 0.0)
    homing_repeat_um: tuple[float, float, float] = (0.0, 0.0, 0.0)
    no_switches: bool = False

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)  # normalise lists (from YAML) to tuples of floats

        for name in ("steps_per_um_x", "steps_per_um_y", "um_per_servo_degree", "servo_slew_deg_s",
                     "z_steps_per_um", "homing_speed_um_s"):
            put(name, _check_number(name, getattr(self, name), positive=True, hi=MAX_STAGE_VALUE[name]))
        for name in ("servo_settle_s", "settle_s"):
            put(name, _check_number(name, getattr(self, name), nonneg=True, hi=MAX_STAGE_VALUE[name]))
        if self.focus_overshoot_um is not None:
            put("focus_overshoot_um", _check_number("focus_overshoot_um", self.focus_overshoot_um, nonneg=True,
                                                    hi=MAX_STAGE_VALUE["focus_overshoot_um"]))
        put("servo_home_z_um", _check_number("servo_home_z_um", self.servo_home_z_um))
        put("z_drift_um_per_min", _check_number("z_drift_um_per_min", self.z_drift_um_per_min))
        if abs(self.z_drift_um_per_min) > MAX_DRIFT_UM_PER_MIN:
            raise ValueError(f"z_drift_um_per_min must be within ±{MAX_DRIFT_UM_PER_MIN:g} µm per minute, "
                             f"got {self.z_drift_um_per_min!r}")
        if self.z_mode not in ("servo", "stepper"):
            raise ValueError(f"z_mode must be 'servo' or 'stepper', got {self.z_mode!r}")
        for flag in ("homing_required", "z_reversed", "no_switches"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        for name in ("max_speed_um_s", "accel_um_s2"):
            put(name, _check_tuple(name, getattr(self, name), 3, positive=True))
        for name in ("backlash_um", "homing_pulloff_um", "jitter_um", "lost_um_per_move", "homing_repeat_um"):
            put(name, _check_tuple(name, getattr(self, name), 3, nonneg=True))
        put("start_position_um", _check_tuple("start_position_um", self.start_position_um, 3))
        put("slide_offset_um", _check_tuple("slide_offset_um", self.slide_offset_um, 2))
        if self.focus_overshoot_um is None:
            put("focus_overshoot_um", max(DEFAULT_FOCUS_OVERSHOOT_UM, self.backlash_um[2]))
        for name in ("travel_x_um", "travel_y_um", "travel_z_um", "servo_angle_range_deg"):
            put(name, _check_range(name, getattr(self, name)))
        self._check_relations()

    @property
    def overshoot_um(self) -> float:
        """``focus_overshoot_um`` as a float: ``__post_init__`` has resolved its default, µm."""
        assert self.focus_overshoot_um is not None
        return self.focus_overshoot_um

    def _check_relations(self) -> None:
        """Checks that involve several fields; each error names the field to change."""
        a_lo, a_hi = self.servo_angle_range_deg
        if a_lo < 0 or a_hi > 360:
            raise ValueError(f"servo_angle_range_deg must lie within 0..360 degrees, got {(a_lo, a_hi)}")
        if self.z_mode == "servo":
            reach = (a_lo * self.um_per_servo_degree, a_hi * self.um_per_servo_degree)
            z_lo, z_hi = self.travel_z_um
            if z_lo < reach[0] or z_hi > reach[1]:
                raise ValueError(f"travel_z_um {self.travel_z_um} must lie within the servo's reach "
                                 f"{reach} um (servo_angle_range_deg * um_per_servo_degree): change travel_z_um "
                                 f"with them, e.g. [{max(z_lo, reach[0]):g}, {min(z_hi, reach[1]):g}]")
            if not z_lo <= self.servo_home_z_um <= z_hi:
                raise ValueError(f"servo_home_z_um must lie within travel_z_um {self.travel_z_um}, "
                                 f"got {self.servo_home_z_um} (its default is {_default('servo_home_z_um'):g}): change "
                                 f"servo_home_z_um with "
                                 f"travel_z_um, e.g. {(z_lo + z_hi) / 2:g}")
        for axis, (lo, hi), p in zip(AXES, self.travel_um(), self.start_position_um, strict=True):
            if not lo <= p <= hi:
                raise ValueError(f"start_position_um[{axis}] must lie within travel_{axis}_um {(lo, hi)}, "
                                 f"got {p} (the default start is {_default('start_position_um')}): change "
                                 f"start_position_um with "
                                 f"travel_{axis}_um")
        if self.overshoot_um < self.backlash_um[2]:
            raise ValueError(f"focus_overshoot_um must be >= backlash_um[z] ({self.backlash_um[2]}) to "
                             f"cancel the backlash, got {self.focus_overshoot_um}")
        if self.homing_required and self.no_switches:
            raise ValueError("homing_required needs switches: set no_switches false, or homing_required false")
        n_homed = 3 if self.z_mode == "stepper" else 2
        for i in range(n_homed):
            if self.homing_pulloff_um[i] < self.backlash_um[i]:
                raise ValueError(f"homing_pulloff_um[{AXES[i]}] must be >= backlash_um[{AXES[i]}] "
                                 f"({self.backlash_um[i]}), got {self.homing_pulloff_um[i]}")

    def travel_um(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """Soft limits ``((x_lo, x_hi), (y_lo, y_hi), (z_lo, z_hi))`` in micrometres, in the count's coordinates.

        Without switches the count starts where the carriage stood (``slide_offset_um`` from the first run's): the
        mechanics' x and y ends lie that much lower in it.
        """
        if not self.no_switches:
            return (self.travel_x_um, self.travel_y_um, self.travel_z_um)
        (dx, dy), (x_lo, x_hi), (y_lo, y_hi) = self.slide_offset_um, self.travel_x_um, self.travel_y_um
        return ((x_lo - dx, x_hi - dx), (y_lo - dy, y_hi - dy), self.travel_z_um)

    def units_per_um(self) -> tuple[float, float, float]:
        """Motor units per micrometre: steps for steppers, degrees for a servo focus."""
        z = 1.0 / self.um_per_servo_degree if self.z_mode == "servo" else self.z_steps_per_um
        return (self.steps_per_um_x, self.steps_per_um_y, z)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> SimStageParams:
        """Build from a mapping (e.g. parsed YAML); unknown keys are errors naming the key.

        Raises
        ------
        ValueError
            On an unknown key or a bad value (the message names it).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SimStageParams key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)  # type: ignore[arg-type]


class SimStage(Stage):
    """The simulated stage on a shared virtual clock (docs/design.md §7).

    Parameters
    ----------
    clock : VirtualClock
        Advanced by each move's motion and settle time; in real-time mode moves also take that long.
    params : SimStageParams, optional
        Mechanics; defaults to ``SimStageParams()``.
    seed : int
        Seeds the optional positioning jitter (``params.jitter_um``); same seed, same positions.

    Notes
    -----
    ``stop()`` acts as GRBL's soft reset: while idle it changes nothing; during a move (possible only in
    real-time mode, from another thread) the motion halts where it is, the interrupted call raises
    :class:`StageAlarm` and the stage stays in alarm until :meth:`home` or :meth:`unlock`.
    """

    def __init__(self, clock: VirtualClock, params: SimStageParams | None = None, seed: int = 0) -> None:
        if not isinstance(clock, VirtualClock):
            raise ValueError(f"clock must be a VirtualClock, got {type(clock).__name__}")
        self._clock = clock
        self._p = params if params is not None else SimStageParams()
        if not isinstance(self._p, SimStageParams):
            raise ValueError(f"params must be SimStageParams or None, got {type(self._p).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self._rng = np.random.default_rng(int(seed))
        self._upu = self._p.units_per_um()
        self._limits_units = tuple(self._unit_limits(i) for i in range(3))
        start = self._p.start_position_um
        self._motor = [self._clip_units(i, _round_half_away(start[i] * self._upu[i])) for i in range(3)]
        # Power-on: the carriage rests against the motor's upper face (as after a move up): no error.
        self._carriage = [self._motor_um(i) for i in range(3)]
        self._last_dir = [1, 1, 1]
        self._jitter = [0.0, 0.0, 0.0]
        self._lost = [0.0, 0.0, 0.0]  # what each axis has lost since it was last homed (lost_um_per_move)
        self._open = False
        self._homed = False
        self._homings = 0  # homing cycles completed (homing_repeat_um)
        self._alarm: str | None = "homing required (homing_required is set)" if self._p.homing_required else None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # ----- properties -------------------------------------------------------------------------------------

    @property
    def params(self) -> SimStageParams:
        """The mechanics this stage was built with."""
        return self._p

    @property
    def counts_from_power_up(self) -> bool:
        """``params.no_switches``: the count starts wherever the carriage stood when the board powered up."""
        return self._p.no_switches

    @property
    def focus_absolute(self) -> bool:
        """A servo focus's angle survives a restart of its board; a Z stepper's count does not."""
        return self._p.z_mode == "servo"

    @property
    def focus_step_um(self) -> float:
        """The focus drive's step, µm: a whole servo degree, or one Z motor step."""
        return 1.0 / self._p.units_per_um()[2]

    @property
    def clock(self) -> VirtualClock:
        """The shared virtual clock."""
        return self._clock

    @property
    def is_homed(self) -> bool:
        """Whether a homing cycle has completed."""
        return self._homed

    @property
    def alarm(self) -> str | None:
        """Why the stage is in alarm, or ``None``."""
        return self._alarm

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has been called (and :meth:`close` not since)."""
        return self._open

    # ----- Stage interface --------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (nothing to connect to: marks the stage usable)."""
        self._open = True

    def close(self) -> None:
        """Disconnect; safe to call twice. The mechanics keep their state."""
        self._open = False

    def position_um(self) -> Position:
        """The reported position: motor steps (or servo degrees) converted to micrometres."""
        self._require_open()
        return Position(*(self._motor_um(i) for i in range(3)))

    @property
    def focus_travel_um(self) -> tuple[float, float]:
        """``params.travel_z_um``, the focus drive's soft limits."""
        return self._p.travel_z_um

    def true_position_um(self) -> Position:
        """The physical position of the slide under the objective, µm, including backlash and jitter.

        Not a controller query: it is the simulator's truth, available whether or not the stage is open. With
        ``z_reversed`` its z is the focal plane's, mirrored in the focus travel. The z dead band's zero then
        lies where the focal plane last moved up, as without it: after an approach that ends moving the focal
        plane up, the truth and what was asked for agree in either wiring. (Where a dead band's zero lies is a
        convention; a real drive's z has no absolute truth to compare with.)
        """
        x, y, z = (self._carriage[i] + self._jitter[i] + self._lost[i] for i in range(3))
        if self._p.z_reversed:
            z = sum(self._p.travel_z_um) - z + self._p.backlash_um[2]
        dx, dy = self._p.slide_offset_um
        return Position(x + dx, y + dy, z + self.drift_z_um())

    def drift_z_um(self) -> float:
        """How far the focal plane has drifted up through the slide by now (``z_drift_um_per_min``), µm."""
        return self._p.z_drift_um_per_min * self._clock.now_s() / 60.0

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        """Move to an absolute position; ``None`` leaves an axis where it is.

        Stepper axes move together along a line; a servo focus moves after them. Raises
        :class:`StageLimitError` (no motion, no time) if a target is outside the soft limits,
        :class:`StageAlarm` if the stage is in alarm, ``ValueError`` if a target is not a finite number.
        """
        with self._lock:
            self._require_ready()
            target = self._targets_units({"x": x, "y": y, "z": z})
            self._stop.clear()  # a stop() while idle does not carry over to the next move
            self._execute(target)
            return Position(*(self._motor_um(i) for i in range(3)))

    def focus_to_um(self, z: float) -> Position:
        """Move focus to ``z``, finishing with an upward approach so the z backlash is taken up.

        It goes straight up to ``z`` when ``z`` is above and either the last z motion was upward or the
        climb is at least ``focus_overshoot_um``; otherwise it first goes ``focus_overshoot_um`` below
        ``z`` (not below the z soft limit) and comes up. A target closer to the lower z limit than the
        backlash cannot be fully approached from below.
        """
        with self._lock:
            self._require_ready()
            target = self._targets_units({"x": None, "y": None, "z": z})
            self._stop.clear()
            self._approach_z_from_below(target[2])
            return Position(*(self._motor_um(i) for i in range(3)))

    def home(self) -> Position:
        """Run the homing cycle: focus first, then X and Y together; clears any alarm.

        Stepper axes seek their limit switch, which sits ``homing_pulloff_um`` below the travel minimum,
        then pull off upward to the travel minimum (taking up the backlash). A servo focus has no switch:
        it goes to ``servo_home_z_um`` by :meth:`focus_to_um`'s upward approach.
        """
        if self._p.no_switches:
            raise HomingDisabled("board rejected '$H': error:5 (homing cycle is not enabled in settings): the virtual "
                                 "stage has no switches (stage.no_switches)")
        with self._lock:
            self._require_open()
            self._stop.clear()
            self._alarm = None
            self._homed = False  # until the cycle completes
            if self._p.z_mode == "servo":
                home_z = _round_half_away(self._p.servo_home_z_um * self._upu[2])
                self._approach_z_from_below(self._clip_units(2, home_z))
                self._home_steppers((0, 1))
            else:
                self._home_steppers((2,))
                self._home_steppers((0, 1))
            self._homed = True
            self._homings += 1
            return Position(*(self._motor_um(i) for i in range(3)))

    def unlock(self) -> None:
        """Clear an alarm without homing (GRBL's ``$X``); the position may then be wrong."""
        self._require_open()
        self._alarm = None

    def stop(self) -> None:
        """Halt any motion at once (GRBL soft reset). A move cut short leaves the stage in alarm."""
        self._stop.set()

    # ----- timing helpers (also for tests and planners) -----------------------------------------------------

    def linear_move_time_s(self, dx_um: float, dy_um: float, dz_um: float = 0.0) -> float:
        """Motion time of a linear stepper move by these motor displacements, seconds (no settle).

        ``dz_um`` counts only with a Z stepper (a servo focus is not part of the line).
        """
        d = [float(dx_um), float(dy_um), float(dz_um) if self._p.z_mode == "stepper" else 0.0]
        length = math.sqrt(sum(v * v for v in d))
        if length == 0.0:
            return 0.0
        speed, accel = self._line_limits(d, length)
        return trapezoid_time_s(length, speed, accel)

    def servo_move_time_s(self, degrees: float) -> float:
        """Slew time of a servo move by ``degrees``, seconds (no settle)."""
        return abs(float(degrees)) / self._p.servo_slew_deg_s

    def move_time_s(self, x: float | None = None, y: float | None = None, z: float | None = None) -> float:
        """Virtual time :meth:`move_to_um` would take from here to the target (motion + settle), seconds.

        Nothing moves. Raises as :meth:`move_to_um` does for bad or out-of-range targets.
        """
        target = self._targets_units({"x": x, "y": y, "z": z})
        delta = [(target[i] - self._motor[i]) / self._upu[i] for i in range(3)]
        total = 0.0
        n_line = 3 if self._p.z_mode == "stepper" else 2
        if any(target[i] != self._motor[i] for i in range(n_line)):
            total += self.linear_move_time_s(*delta) + self._p.settle_s
        if self._p.z_mode == "servo" and target[2] != self._motor[2]:
            total += self.servo_move_time_s(target[2] - self._motor[2]) + self._p.servo_settle_s
        return total

    # ----- internals ---------------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._open:
            raise StageError("SimStage is not open: call open() or use it in a `with` block")

    def _require_ready(self) -> None:
        self._require_open()
        if self._alarm is not None:
            raise StageAlarm(f"stage in alarm ({self._alarm}): call home() or unlock() first")

    def _motor_um(self, i: int) -> float:
        return self._motor[i] / self._upu[i]

    def _unit_limits(self, i: int) -> tuple[int, int]:
        """Soft limits of axis ``i`` in whole motor units (inside the µm limits)."""
        lo, hi = self._p.travel_um()[i]
        return math.ceil(lo * self._upu[i] - 1e-9), math.floor(hi * self._upu[i] + 1e-9)

    def _clip_units(self, i: int, units: int) -> int:
        lo, hi = self._limits_units[i]
        return min(max(int(units), lo), hi)

    def _targets_units(self, targets: dict[str, float | None]) -> list[int]:
        """Validate targets (finite, inside soft limits) and quantise them to whole motor units."""
        out = list(self._motor)
        for i, axis in enumerate(AXES):
            t = targets[axis]
            if t is None:
                continue
            v = _check_number(f"{axis} target (um)", t)
            lo, hi = self._p.travel_um()[i]
            if not lo <= v <= hi:
                raise StageLimitError(f"{axis} target {v} um is outside the soft limits [{lo}, {hi}] um "
                                      f"(travel_{axis}_um); nothing moved")
            out[i] = self._clip_units(i, _round_half_away(v * self._upu[i]))
        return out

    def _line_limits(self, d_um: list[float], length: float) -> tuple[float, float]:
        """Largest speed and acceleration along the line that keep every axis within its limits."""
        speed, accel = math.inf, math.inf
        for i in range(3):
            u = abs(d_um[i]) / length
            if u > 0:
                speed = min(speed, self._p.max_speed_um_s[i] / u)
                accel = min(accel, self._p.accel_um_s2[i] / u)
        return speed, accel

    def _execute(self, target: list[int]) -> None:
        """Run a move to whole-unit targets: the stepper line, then the servo."""
        n_line = 3 if self._p.z_mode == "stepper" else 2
        line_axes = tuple(range(n_line))
        if any(target[i] != self._motor[i] for i in line_axes):
            self._run_line(line_axes, target)
            self._clock.advance(self._p.settle_s)
        if self._p.z_mode == "servo" and target[2] != self._motor[2]:
            self._run_servo(target[2])
            self._clock.advance(self._p.servo_settle_s)

    def _run_z(self, units: int) -> None:
        """Move the focus motor alone to ``units`` (no settle)."""
        if units == self._motor[2]:
            return
        if self._p.z_mode == "servo":
            self._run_servo(units)
        else:
            target = list(self._motor)
            target[2] = units
            self._run_line((2,), target)

    def _approach_z_from_below(self, units: int) -> None:
        """Reach z ``units`` with a final upward move of at least the overshoot, then settle once."""
        cur = self._motor[2]
        if units == cur and self._last_dir[2] > 0:
            return
        overshoot = math.ceil(self._p.overshoot_um * self._upu[2] - 1e-9)
        # Straight up is enough if the slack is already taken up, or the climb itself takes it up.
        direct = units > cur and (self._last_dir[2] > 0 or units - cur >= overshoot)
        below = max(units - overshoot, self._limits_units[2][0])
        if units == cur and below == cur:
            return  # at the lower z limit already: nowhere to approach from; nothing moves, no settle
        if not direct:
            self._run_z(below)
        self._run_z(units)
        self._clock.advance(self._p.servo_settle_s if self._p.z_mode == "servo" else self._p.settle_s)

    def _run_line(self, axes: tuple[int, ...], target: list[int]) -> None:
        """Linear move of ``axes`` to ``target`` on a trapezoid; honours stop() in real-time mode."""
        start = list(self._motor)
        d_um = [(target[i] - start[i]) / self._upu[i] if i in axes else 0.0 for i in range(3)]
        length = math.sqrt(sum(v * v for v in d_um))
        speed, accel = self._line_limits(d_um, length)
        duration = trapezoid_time_s(length, speed, accel)
        elapsed = self._run_timed(duration)
        if elapsed < duration:  # stopped: the motors stand where the profile had taken them
            frac = trapezoid_distance_um(elapsed, length, speed, accel) / length
            reached = {i: start[i] + int((target[i] - start[i]) * frac) for i in axes}
            self._set_motors(reached)
            self._halted()
        self._set_motors({i: target[i] for i in axes})

    def _run_servo(self, angle: int) -> None:
        """Slew the focus servo to ``angle`` degrees at constant speed; honours stop() in real-time mode."""
        start = self._motor[2]
        duration = self.servo_move_time_s(angle - start)
        elapsed = self._run_timed(duration)
        if elapsed < duration:
            self._set_motors({2: start + int((angle - start) * elapsed / duration)})
            self._halted()
        self._set_motors({2: angle})

    def _home_steppers(self, axes: tuple[int, ...]) -> None:
        """Seek the switches of ``axes`` together, pull off to the travel minimum, settle.

        Each switch sits ``homing_pulloff_um`` below its travel minimum and trips when the carriage
        reaches it; moving down, the carriage rides ``backlash`` above the motor, so the motor stops at
        ``switch - backlash``. The pull-off climbs ``pulloff + backlash``: first the slack, then the carriage
        up to the travel minimum, which is where the machine position is defined (as GRBL sets its position
        after homing). Simplified from GRBL: one seek at ``homing_speed_um_s``, no slower second locate.
        """
        at_switch, home = {}, {}
        for i in axes:
            lo_um = self._p.travel_um()[i][0]
            switch_um = lo_um - self._p.homing_pulloff_um[i]
            trip = math.floor((switch_um - self._p.backlash_um[i]) * self._upu[i] + 1e-9)
            at_switch[i] = min(trip, self._motor[i])
            home[i] = self._limits_units[i][0]
        self._run_independent(at_switch, self._p.homing_speed_um_s)
        self._run_independent(home, self._p.homing_speed_um_s)
        for i in axes:
            self._last_dir[i] = 1
            # the switch tells the carriage's place again, as well as it repeats (the first homing defines it)
            sd = self._p.homing_repeat_um[i] if self._homings else 0.0
            self._lost[i] = float(self._rng.normal(0.0, sd)) if sd > 0 else 0.0
        self._clock.advance(self._p.settle_s)

    def _run_independent(self, target: dict[int, int], speed_cap_um_s: float) -> None:
        """Move each axis on its own trapezoid at once (homing); the slowest sets the time."""
        start = {i: self._motor[i] for i in target}
        profiles = {}
        for i, u in target.items():
            d = abs(u - start[i]) / self._upu[i]
            profiles[i] = (d, min(speed_cap_um_s, self._p.max_speed_um_s[i]), self._p.accel_um_s2[i])
        duration = max((trapezoid_time_s(*prof) for prof in profiles.values()), default=0.0)
        elapsed = self._run_timed(duration)
        if elapsed < duration:
            reached = {}
            for i, prof in profiles.items():
                done = int(trapezoid_distance_um(elapsed, *prof) * self._upu[i])
                reached[i] = start[i] + (done if target[i] > start[i] else -done)
            self._set_motors(reached)
            self._halted()
        self._set_motors(target)

    def _run_timed(self, duration: float) -> float:
        """Let ``duration`` pass on the clock; in real-time mode in slices, stopping early on stop()."""
        if not self._clock.realtime:
            self._clock.advance(duration)
            return duration
        elapsed = 0.0
        while elapsed < duration:
            if self._stop.is_set():
                return elapsed
            dt = min(_REALTIME_SLICE_S, duration - elapsed)
            self._clock.advance(dt)
            elapsed += dt
        return duration

    def _set_motors(self, units: dict[int, int]) -> None:
        """Put motors at whole-unit positions; the carriages follow through their dead bands."""
        for i, u in units.items():
            if u == self._motor[i]:
                continue
            self._last_dir[i] = 1 if u > self._motor[i] else -1
            self._motor[i] = u
            m = self._motor_um(i)
            b = self._p.backlash_um[i]
            # The play operator: the carriage stays put unless the motor pushes it from one side.
            self._carriage[i] = min(max(self._carriage[i], m), m + b)
            self._jitter[i] = self._draw_jitter(i)
            if self._p.lost_um_per_move[i] > 0:
                self._lost[i] += float(self._rng.normal(0.0, self._p.lost_um_per_move[i]))

    def _draw_jitter(self, i: int) -> float:
        sd = self._p.jitter_um[i]
        return float(self._rng.normal(0.0, sd)) if sd > 0 else 0.0

    def _halted(self) -> None:
        """A move was cut short by stop(): alarm, as GRBL after a reset in motion."""
        self._stop.clear()
        self._alarm = "stopped during a move; position may be lost"
        raise StageAlarm("stage stopped during a move: it is in alarm until home() or unlock()")

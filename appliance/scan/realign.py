"""Keeping a scan's coordinates: its first print found again, and the stage's origin moved back to where it was.

A scan records every print's place from the drive's step counts, so anything that moves the slide under those
counts puts every later place off by as much: a board that restarted and homed to switches that trip a few
micrometres elsewhere each time (a mechanical switch repeats to about 2-20 µm), a slide nudged in its clips while a
scan was stopped, steps lost under load. The end-of-scan check (:mod:`appliance.scan.position_check`) can only say
so; while fields are still to come the scan can undo it. :class:`Realigner` looks for the scan's first print where
it was recorded and, where it finds it moved, moves the origin of the scan's
:class:`~appliance.hardware.stage.offset.OffsetStage` by as much, so the places recorded from then on agree with those
before. The session calls it when a scan resumes; the runner after a recovery that homed the stage (or, on a board
without homing, carried its coordinates over the restart: ``OffsetStage.carry_over``) and, where the plan asks
(``faults.realign_every_fields``), every so many fields.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera, CameraError
from appliance.hardware.stage.base import StageError
from appliance.hardware.stage.offset import OffsetStage
from appliance.results.store import ResultStore
from appliance.scan.calibration import Calibration, CalibrationError, approach_xy, image_shift_px, min_response_for
from appliance.scan.position_check import (
    GOOD_MATCH,
    Z_OFFSETS_UM,
    PositionCheck,
    check_position,
)

_log = logging.getLogger(__name__)

#: The print is looked for this far around its place (fraction of the frame's smaller side): a homing switch that
#: trips elsewhere, or a slide nudged in its clips, moves it further than lost steps do within a scan.
SEARCH_FRACTION = 0.5
#: A slide found moved less than this is left as it is, µm: within what the check itself reads (a sound drive's
#: check reads 0.0-0.3 µm).
MIN_SHIFT_UM = 1.0
#: A slide found moved further than this fraction of the search is looked at again from the corrected place.
LOOK_AGAIN_BEYOND = 0.25
#: A resumed scan's focus found shifted less than this is left as it is, µm: within what a match through focus reads
#: (its planes lie 4 µm apart) and what each structure's own search takes up.
MIN_Z_SHIFT_UM = 3.0
#: Where a resumed scan looks at the print, every one of them: a drive that restarted may hold its focus tens of
#: micrometres elsewhere (a servo parked anew, a slide seated higher), and the best match through focus says where
#: the print's focus went (``PositionCheck.dz_um``). 4 µm apart, half the README objective's depth of field.
RESUME_Z_OFFSETS_UM = tuple(float(v) for v in sorted(range(-48, 49, 4), key=abs))
#: A resumed scan whose image moves further than this fraction off what its stored calibration says stops: another
#: objective, camera or binning since the scan began (a shared microscope), under which its fields would not tile.
MAX_SCALE_ERROR = 0.1
#: The scale probe's two moves, as fractions of the frame's smaller side (diagonally): far enough to read the scale
#: to a percent, near enough that a frame four times as magnified still overlaps the one before.
SCALE_PROBES = (1 / 16, 1 / 10)
#: ... whose readings must agree to this fraction to count, each pointing the way the stage moved to within this
#: much of its length (about 6 degrees).
PROBES_AGREE = 0.03
PROBE_ANGLE = 0.1


class ScaleMismatch(CalibrationError):
    """The microscope no longer has the scale the scan was calibrated with (raised before a resumed scan goes on)."""


class SlideNotFound(CalibrationError):
    """A resumed scan's first print is not where it was recorded, nor within the search about it.

    The search reaches half a frame (135 um on the README camera), far beyond what a homing switch repeats to
    (2-20 um): the slide under the microscope is another one, or it moved far while the scan was stopped. Going
    on would merge two slides (or two places of one) into one scan, so the resumed run stops before it scans
    another field; the scan stays interrupted, with every field it committed.
    """


def slide_not_found(scan_id: int, check: PositionCheck) -> SlideNotFound:
    """The stop for a resumed scan whose first print ``check`` did not find: what happened and what to do."""
    return SlideNotFound(
        f"scan {scan_id} was not resumed: its first recorded print (object {check.object_id}) was not found within "
        f"{check.search_um:.0f} um of its place, far beyond what the stage repeats to, so the slide under the "
        "microscope is not where the scan left it. A different slide: start a new scan (tppscan scan ... "
        "--no-resume, or tppscan start --new for the service, which marks this scan cancelled). The same slide, "
        "moved or a stage that lost its place: put it back, home the stage (tppscan stage home) and resume (the "
        "same command, or tppscan start). Nothing committed is lost: the scan stays interrupted")


@dataclass
class Realigner:
    """Finds the scan's first print again and moves ``stage``'s origin by how far the slide moved under it.

    ``checks`` keeps every check made, with why (``summary.json``'s ``realignments``: :meth:`to_mappings`). A
    check that cannot be made (no print recorded yet, the stage or camera failing) changes nothing: it is the
    scan's way to keep its places, never a reason to lose the scan.
    """

    stage: OffsetStage
    camera: Camera
    store: ResultStore
    scan_id: int
    root: Path
    cal: Calibration
    approach_um: float
    checks: list[tuple[str, PositionCheck]] = field(default_factory=list)
    _scale: float | None = field(default=None, init=False)  # the resume's scale reading (check_scale)

    def _scale_off(self) -> bool:
        return self._scale is not None and abs(self._scale - 1.0) > MAX_SCALE_ERROR

    def _read_scale(self, z_um: float | None) -> float | None:
        try:
            if z_um is not None:  # the print's own focus: sharp under another objective too, where a match was not
                self.stage.focus_to_um(z_um)
            return scale_ratio(self.stage, self.camera, self.cal, self.approach_um)
        except (StageError, CameraError) as exc:
            _log.warning("scan %s: the calibration's scale was not checked: %s", self.scan_id, exc)
            return None

    def __call__(self, why: str, resume: bool = False, restarted: bool = False) -> PositionCheck | None:
        """Look for the first print (``why``: what made the scan look, for the log and the summary).

        ``resume``: look through a wide range of focus (:data:`RESUME_Z_OFFSETS_UM`) and keep the focus's shift as
        well, then read the microscope's scale at the print's focus (:meth:`check_scale` judges it).
        ``restarted``: the stage's board restarted without homing (``OffsetStage.carry_over``): the print is also
        looked for along the move the carriage was on (``stage.doubt_um``), and through the wide range of focus
        unless the focus drive kept its place (a servo's angle).
        """
        try:
            z = self.stage.position_um().z_um
        except StageError as exc:
            _log.warning("scan %s: not realigned %s: %s", self.scan_id, why, exc)
            return None
        wide_z = resume or (restarted and not self.stage.focus_absolute)
        doubt, self.stage.doubt_um = self.stage.doubt_um, (0.0, 0.0)
        check = self._search(doubt if restarted else (0.0, 0.0), wide_z)
        if check is None:
            return None
        if resume:  # first, at the z the print was saved at: under another objective a blur can match well
            self._scale = self._read_scale(check.saved_z_um)
        if _undoable(check, with_z=wide_z) and not self._scale_off():
            check = self._undo(why, check, with_z=wide_z)
            check = self._again(why, check)
            if resume and self._scale is None:  # a focus that moved left the print a blur there: its new focus
                self._scale = self._read_scale(check.saved_z_um)
        self.checks.append((why, check))
        try:
            self.stage.focus_to_um(z)  # the focus where the scan left it
        except StageError as exc:
            _log.warning("scan %s: the focus was not set back after realigning: %s", self.scan_id, exc)
        return check

    def _again(self, why: str, check: PositionCheck) -> PositionCheck:
        """After a shift far across the search (:data:`LOOK_AGAIN_BEYOND`), the print looked at again, centred.

        A template matched near the edge of its search reads its place a micrometre or so off (the README slide
        after a restart in motion: 1.0 µm left of 128); centred, it reads to a few tenths.
        """
        assert check.moved_um is not None
        if check.moved_um <= LOOK_AGAIN_BEYOND * check.search_um:
            return check
        again = self._look(wide_z=False)
        if again is None or not _undoable(again, with_z=False):
            return check
        self._undo(f"{why}, looked at again", again, with_z=False)
        assert check.shift_um is not None and again.shift_um is not None
        shift = (check.shift_um[0] + again.shift_um[0], check.shift_um[1] + again.shift_um[1])
        return replace(check, shift_um=shift, match=again.match)

    def _look(self, wide_z: bool) -> PositionCheck | None:
        z_offsets = RESUME_Z_OFFSETS_UM if wide_z else Z_OFFSETS_UM
        return check_position(self.stage, self.camera, self.store, self.scan_id, self.root, self.cal,
                              self.approach_um, SEARCH_FRACTION, z_offsets, every_z=wide_z)

    def _search(self, doubt: tuple[float, float], wide_z: bool) -> PositionCheck | None:
        """The check where the origin is, then, until the print is found, at origins along ``doubt`` (µm).

        A carriage that was on a move when its board restarted lies somewhere between the move's target (which the
        origin assumes) and its start (``doubt`` away): the guesses lie one search radius apart, so one of them
        sees the print within its search. The origin goes back either way; a guess that found the print answers
        with its shift from there plus the guess's own (what the caller undoes), else the first check answers.
        """
        base = self.stage.offset_um
        check = self._look(wide_z)
        if check is None or _found(check) or doubt == (0.0, 0.0):
            return check
        n = math.ceil(math.hypot(*doubt) / check.search_um)
        try:
            for k in range(1, n + 1):
                gx, gy = -doubt[0] * k / n, -doubt[1] * k / n
                self.stage.offset_um = (base[0] + gx, base[1] + gy, base[2])
                guess = self._look(wide_z)
                if guess is not None and guess.shift_um is not None and _found(guess):
                    return replace(guess, shift_um=(guess.shift_um[0] + gx, guess.shift_um[1] + gy))
        finally:
            self.stage.offset_um = base
        return check

    def _undo(self, why: str, check: PositionCheck, with_z: bool) -> PositionCheck:
        """Move the scan's origin by the slide's shift (and the focus's, ``with_z``, where it is large enough)."""
        assert check.shift_um is not None
        dx, dy = check.shift_um
        dz = check.dz_um if with_z and check.dz_um is not None and abs(check.dz_um) >= MIN_Z_SHIFT_UM else 0.0
        ox, oy, oz = self.stage.offset_um
        self.stage.offset_um = (ox + dx, oy + dy, oz + dz)
        _log.warning("scan %s: %s, the slide lay %.1f um from where the scan recorded it (%+.1f, %+.1f um; focus "
                     "%+.1f um; object %d found again at match %.2f): going on in the scan's first coordinates",
                     self.scan_id, why, check.moved_um, dx, dy, dz, check.object_id, check.match)
        return replace(check, corrected=True)

    def check_scale(self) -> float | None:
        """The ratio :func:`scale_ratio` read at the first print's place and focus, where the last call stood.

        None where it was not read (no print, too little texture, the stage or camera failing). Raises
        :class:`ScaleMismatch` when it is off by more than :data:`MAX_SCALE_ERROR`. A resumed scan calls it once.
        """
        ratio = self._scale
        if self._scale_off():
            raise ScaleMismatch(
                f"the microscope's scale is not the one scan {self.scan_id} was calibrated with: a move of the stage "
                f"moved the image {ratio:.2f} times as far as the stored calibration says (another objective, "
                "camera or binning since the scan began?); put the first run's back and run the same command again, "
                "or start a new scan (--no-resume); the committed fields are kept")
        return ratio

    def to_mappings(self) -> list[dict[str, Any]]:
        """Every check made, JSON-ready: why, then :meth:`PositionCheck.to_mapping`'s keys."""
        return [{"when": why, **check.to_mapping()} for why, check in self.checks]

    def warnings(self) -> list[str]:
        """What the scan says of the checks it could not undo (:func:`realign_warnings`)."""
        return [w for why, check in self.checks for w in realign_warnings(check, why)]


def scale_ratio(stage: OffsetStage, camera: Camera, cal: Calibration, approach_um: float) -> float | None:
    """How far the image moves, read through the calibration, over how far the stage moved: 1.0 on its microscope.

    Two diagonal moves onwards from where the stage stands (:data:`SCALE_PROBES` of the frame's smaller side), each
    read by phase correlation against the frame there; the stage approaches that place from below before and after,
    so its slack never enters a move. None where a frame pair holds too little texture, a reading points away from
    the move (:func:`_along`) or the two disagree by more than :data:`PROBES_AGREE`: a reading that may be a stray
    peak never stops a scan.
    """
    here = stage.position_um()
    approach_xy(stage, here.x_um, here.y_um, approach_um)  # the slack taken up the way the probes move
    a = camera.capture().image
    ratios: list[float] = []
    for fraction in SCALE_PROBES:
        step = fraction * min(a.shape[:2]) * cal.um_per_px
        stage.move_to_um(x=here.x_um + step, y=here.y_um + step)
        du, dv, response = image_shift_px(a, camera.capture().image)
        ratio = _along(-(cal.m @ np.array([du, dv])), np.array([step, step]))  # the calibration's d = -M p
        if response < min_response_for((a.shape[1], a.shape[0])) or ratio is None:
            break
        ratios.append(ratio)
    approach_xy(stage, here.x_um, here.y_um, approach_um)
    if len(ratios) < len(SCALE_PROBES):
        return None
    lo, hi = min(ratios), max(ratios)
    return (lo + hi) / 2 if hi - lo <= PROBES_AGREE * (lo + hi) / 2 else None


def _along(seen: np.ndarray, moved: np.ndarray) -> float | None:
    """``seen``'s length along ``moved`` over ``moved``'s, where it points the same way (within about 6 degrees).

    A move the image followed at another scale reads its ratio; a stray peak of the correlation (the camera's own
    pattern, a blur's ringing) points elsewhere and reads None.
    """
    ratio = float(seen @ moved) / float(moved @ moved)
    if ratio <= 0 or np.hypot(*(seen - ratio * moved)) > PROBE_ANGLE * ratio * np.hypot(*moved):
        return None
    return ratio


def _found(check: PositionCheck) -> bool:
    """The print was found, at a match good enough to be trusted."""
    return check.moved_um is not None and check.match >= GOOD_MATCH


def _undoable(check: PositionCheck, with_z: bool) -> bool:
    """Found, moved (or, ``with_z``, its focus) enough to matter, and matched well enough to be trusted."""
    if check.moved_um is None or check.match < GOOD_MATCH:
        return False
    z_moved = with_z and check.dz_um is not None and abs(check.dz_um) >= MIN_Z_SHIFT_UM
    return check.moved_um >= MIN_SHIFT_UM or z_moved


def realign_warnings(check: PositionCheck | None, when: str) -> list[str]:
    """What the scan says of a check ``when`` (e.g. "when the scan resumed") it could not undo; nothing once undone."""
    if check is None or check.corrected:
        return []
    if check.shift_um is None:
        return [f"the first print recorded (object {check.object_id}) was not found within {check.search_um:.0f} "
                f"um of its place {when}: places recorded after that may be off from those before it (a drive that "
                "came back elsewhere, a slide moved while the scan was stopped)"]
    moved = check.moved_um
    assert moved is not None
    if moved < MIN_SHIFT_UM:
        return []
    return [f"{when}, the first print (object {check.object_id}) lay {moved:.1f} um from its place but matched only "
            f"{check.match:.2f} (under {GOOD_MATCH}), so the shift was not undone: places recorded after that may be "
            "off by up to that much"]

"""Where focus is at each field of a scan, and the glass under each structure.

The scan runner (``appliance/scan/runner.py``) moves, captures and judges; this module decides the z each field
is imaged at and keeps what the scan has learnt of focus on the way:

- a field the focus map is sure of is imaged ``FIELD_VIEW_ABOVE_GLASS_UM`` above the map's glass; elsewhere at
  the best guess (the structures' word on the glass, an unsure map, the last focus found), and the field gets
  its own autofocus when the frame shows something the map cannot place, when the map is unsure there (an empty
  view may only be out of focus), and until the scan has found focus at all (a slide put in by hand);
- a field's own focus is a point of the map only when the field held no structure (a structure's focus is its
  mid-plane, not the glass), and a search that found nothing keeps the next ones away (``MAP_RETRY_UM``);
- the glass under a structure, for its height map: the specks in its own stack, the plane through earlier
  specks, the map, the fields' own foci (:meth:`FieldFocus.structure_glass`).

Why each rule is what it is, with the slides that showed it, is in the comments and in docs/autofocus.md and
docs/scan.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera
from appliance.hardware.stage.base import Stage, StageLimitError
from appliance.results.focuscurve import LOBE_GAP_UM, TUNED_DEPTH_OF_FIELD_UM
from appliance.results.glass import SpeckGlassPlane, glass_focus
from appliance.results.store import Annotation, FieldRecord, ObjectRecord
from appliance.scan.grid import FieldPosition
from appliance.scan.plan import FocusPlan
from appliance.scan.protocols import Focuser, FocusMapLike, FocusOutcome

_log = logging.getLogger(__name__)

#: A field the map places is imaged this far above the map's glass, µm. Prints stand on the glass with their
#: mid-planes 2.5-15 µm up (half their 5-30 µm height), and the detector learnt prints within ±10 µm of their
#: mid-planes (models/data: ``Ranges.dz_um``; its frames of no print in particular lie 2.5-15 µm above the
#: glass): 5 µm up, the tallest print is 10 µm below its mid-plane and the flattest 2.5 µm above it. At the
#: glass itself a 17 µm tall ring and a 16 µm tall pentagon, 8-9 µm below, were taken for debris (seeds 9101
#: and 433); the 2-8 µm above the glass the field focus used to land at by accident kept them.
FIELD_VIEW_ABOVE_GLASS_UM = 5.0
#: A field's own search starts at the glass it was viewed above (not at the view) up to this many times the
#: tuned depth of field (``FieldFocus.autofocus_field``).
GLASS_START_MAX_DOF = 2.0
# A field with something in view gets an autofocus (a new focus-map point) when no point is this close: a
# fitted surface is trusted for interpolation, not for extrapolating across the slide.
MAP_REFRESH_UM = 1500.0
#: Until one field's autofocus has found focus, every field is autofocused whether or not it shows a
#: candidate, and searched this far either side of the guess (µm) when the usual search finds nothing: a
#: slide put in by hand (30 µm off, issue 9) or a tilted slide's far corner (5 µm/mm over 5 mm from where the
#: scan found focus) blurs every candidate away.
FIND_SLIDE_RANGE_UM = 60.0
#: ... and also when the map's z there differs from its nearest point's by more than this fraction of the
#: plan's search range (see ``FieldFocus._map_drifted``).
MAP_DRIFT_FRACTION = 1.0 / 3.0
#: The map is sure at a field when twice its sigma there lies within the drift bound (``_drift_bound_um``, 5 µm
#: at the tuned 10x): a field it places is then within the bound of its glass at two standard deviations, and
#: every print's mid-plane within the ±10 µm the detector learnt around the view 5 µm above the glass.
#: Elsewhere a field is looked at, an empty one too (see ``FieldFocus._map_unsure``).
MAP_SURE_K = 2.0
#: A glass estimate this sure (the map's sigma, µm) places where an object resting on it can focus
#: (:meth:`FieldFocus.glass_under`): within a micrometre or two, as a field's reading of its specks is.
GLASS_UNDER_SIGMA_UM = 2.0
#: Until a focus is found every field is autofocused (``FIND_SLIDE_RANGE_UM``), but after this many in vain
#: only as ``MAP_RETRY_UM`` allows: the cheap colour camera found none to trust in 110 fields, 6-11 s each (seed 412).
LOST_LOOKS = 12
#: A field is not autofocused within this distance (µm) of a field whose own autofocus found no focus to trust:
#: a camera whose focus curves are noise (the cheap colour camera's) would otherwise search every field, for
#: 2-9 s of stage time each, and find nothing each time.
MAP_RETRY_UM = 500.0


def searched_range_um(focuser: Focuser, range_um: float) -> float:
    """The half range a search asked for ``range_um`` covers: the focuser may widen it (µm).

    ``AutofocusFocuser`` widens every search to its objective's depth of field (``min_range_um``: ±90 µm at
    5x / NA 0.1, none at the tuned 10x); a focuser that does not say searches what it is asked.
    """
    least = getattr(focuser, "min_range_um", None)
    if isinstance(least, bool) or not isinstance(least, (int, float)) or not math.isfinite(least):
        return float(range_um)
    return max(float(range_um), float(least))


@dataclass
class FieldWork:
    """What one field has produced so far (committed together), and how its z was chosen."""

    pos: FieldPosition
    seq: int
    z_um: float = 0.0
    focus_source: str = "map"
    n_candidates: int = 0
    focus_point: tuple[float, float, float] | None = None  # the field's autofocus, for the map once it is known
    wide_from: float | None = None  # the guess a wide search for the lost slide started from (it found a peak)
    guess_before: tuple[float | None, bool] | None = None  # the guess, and whether it was the glass's, before
    # this field's own autofocus found a focus
    glass_um: float | None = None  # the glass the view's z was set ``FIELD_VIEW_ABOVE_GLASS_UM`` above, if so
    focus_on_glass: bool = False  # the field's own autofocus read the glass's specks (``w.z_um`` is the glass)
    objects: list[ObjectRecord] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class FieldFocus:
    """The z of each field, each field's own autofocus, and the glass under each structure.

    Parameters
    ----------
    stage, camera : Stage, Camera
        Open devices (the runner's checked camera, so the searches' captures are retried as every other).
    focuser : Focuser
        Autofocus on a region.
    focus_map : FocusMapLike
        Predicts the glass's z from the points focused on dust and glass so far.
    focus_plan : FocusPlan
        The plan's ``focus`` section (``field_focus``, ``search_range_um``).
    um_per_px : float
        The calibration's pixel size, µm (the specks beside a structure are sized with it).
    z_start_um : float, optional
        Focus guess before anything is focused (default: the stage's z at :meth:`read_start_z`).
    start_on_glass : bool
        ``z_start_um`` is the glass's own focus (the scan found the slide on specks): fields are viewed
        ``FIELD_VIEW_ABOVE_GLASS_UM`` above it from the first, as above any focus found.
    """

    def __init__(self, stage: Stage, camera: Camera, focuser: Focuser, focus_map: FocusMapLike,
                 focus_plan: FocusPlan, um_per_px: float, z_start_um: float | None = None,
                 start_on_glass: bool = False) -> None:
        self.stage, self.camera, self.focuser, self.focus_map = stage, camera, focuser, focus_map
        self.focus_plan = focus_plan
        self.um_per_px = um_per_px
        self._z_guess = z_start_um
        self._focus_points: list[tuple[float, float, float]] = []  # the map's points: x, y, z
        #: the median focus of every speck the last structure's stack showed, above its focus too (the glass
        #: reading keeps only those below): the focus drive's direction check (``session.focus_direction_warnings``)
        self.specks_either_side_z: float | None = None
        self._blind: list[tuple[float, float, float]] = []  # empty fields autofocused while the map could not say
        # fields whose own autofocus found no focus to trust: x, y and whether anything was in view there
        self._unfocused: list[tuple[float, float, bool]] = []
        self._lost_looks = 0  # fields autofocused in vain before any focus was found
        self._speck_glass = SpeckGlassPlane()  # the glass measured from specks beside structures
        self._focus_found = False  # a field's autofocus has found focus (in this scan, this run or before)
        # the guess is the glass's focus, found before the first field or by a field's search on its specks (at
        # 40x most fields are bare glass and never find one: a whole scan was viewed at the glass, where a 55 µm
        # woodpile 5 µm below its mid-plane was too faint for the gate in every field over it, seed 1609);
        # an object's focus is not (see :meth:`autofocus_field`)
        self._guess_on_glass = start_on_glass and z_start_um is not None

    def read_start_z(self) -> None:
        """Without a guess, take the stage's z now as the first one (once, at the start of a run).

        Read at the start only: after a stage fault a servo's angle is unknown (NaN) until the next focus
        move, so "where focus is now" is no guess any more.
        """
        if self._z_guess is None:
            z = self.stage.position_um().z_um
            self._z_guess = z if math.isfinite(z) else None

    def resume_field(self, f: FieldRecord) -> None:
        """Take back what a committed field of an interrupted run knew of focus."""
        self._focus_found = self._focus_found or f.focus_source == "autofocus"
        if f.focus_source == "autofocus" and f.n_structures == 0:
            self.add_point(f.x_um, f.y_um, f.z_um)
            self._z_guess = f.z_um  # the latest focus found, as the interrupted run had it
            self._guess_on_glass = True  # a field of no structure: its record does not say, the glass is likeliest

    def resume_glass(self, x: float, y: float, z: float) -> None:
        """Take back a committed structure's glass measured from specks beside it."""
        self._speck_glass.add(x, y, z)

    def after_autofocus(self, pos: FieldPosition, w: FieldWork, before: int, n_candidates: int) -> None:
        """After a field's own autofocus and the look that followed it.

        ``before``: the candidates in view at the z the field focus gave the field; ``n_candidates``: after.
        """
        if w.wide_from is not None and n_candidates == 0:
            self._forget_wide_focus(w)
        if w.focus_source != "autofocus":
            self._unfocused.append((pos.x_um, pos.y_um, before > 0 or n_candidates > 0))
            self._lost_looks += not self._focus_found

    def field_seen(self, w: FieldWork, structure_in_view: bool) -> None:
        """Once the field's frame is judged: its own focus joins the map only if no structure was in view.

        Only a field of dust and glass focuses on the glass; with a structure in view the autofocus lands on the
        structure's mid-plane, half its height above the glass (5-15 µm), and the map, which is the glass
        reference of every height map, would learn that.
        """
        if w.focus_point is None:
            return
        if structure_in_view:
            self._keep_glass_guess(w)
        else:
            self.add_point(*w.focus_point)

    def wants_autofocus(self, pos: FieldPosition, w: FieldWork, n_candidates: int) -> bool:
        """Whether a field, first seen at the z its field focus gave it, gets its own autofocus."""
        if self._looked_near(pos, n_candidates > 0) and (self._focus_found or self._lost_looks >= LOST_LOOKS):
            # a field search within MAP_RETRY_UM found nothing it could trust (a camera whose curves are noise,
            # bare glass): one here would most likely fail the same way, at 2-9 s of stage time a field. Until
            # the scan has found focus, the first LOST_LOOKS fields all look (a slide put in by hand, 45 µm off)
            return False
        lost = not self._focus_found and w.focus_source in ("map", "guess")
        map_unsure = w.focus_source in ("guess", "map") and self._map_unsure(pos)
        unsure = w.focus_source == "guess" or self._far_from_map(pos) or self._map_drifted(pos, w) or map_unsure
        # No focus near, or a map not sure here: a view with nothing in it may only be out of focus (the first
        # row of a slide tilted 2 µm/mm ran 20 µm out at the last focus's z, then 9 µm out on a map extrapolated
        # from three points at its start, seed 431; at 4 µm/mm the row walked off its glass before the next
        # point 1.5 mm on). Look once per MAP_REFRESH_UM, and where the map is unsure
        blind = w.focus_source in ("guess", "map") and n_candidates == 0 and (
            map_unsure or self._far_from_map(pos, self._blind))
        if blind:
            self._blind.append((pos.x_um, pos.y_um, w.z_um))
        return lost or blind or (n_candidates > 0 and unsure)


    def set_field_z(self, w: FieldWork) -> None:
        """Set the field's z from the focus map, or the best guess, or by autofocus.

        The map's prediction when it is sure; else the best guess, and autofocus follows only if the frame
        then shows something (an empty field costs one frame); always autofocus with ``field_focus: autofocus``.
        """
        p = self.stage.position_um()
        pred = self.focus_map.predict(p.x_um, p.y_um)
        if self.focus_plan.field_focus == "autofocus":
            self.autofocus_field(w)
            return
        on_glass = self._map_reads_glass()
        if pred is not None and pred[1] <= self.focus_plan.search_range_um / 2:
            try:
                # a map of objects' foci (no glass read yet) already stands above the glass: viewed as it is
                z = pred[0] + (FIELD_VIEW_ABOVE_GLASS_UM if on_glass else 0.0)
                self.stage.focus_to_um(z)
                w.z_um, w.focus_source, w.glass_um = z, "map", pred[0] if on_glass else None
                return
            except StageLimitError:  # the map extrapolated beyond the focus travel: use the last good z
                pred = None
        # Not sure of the glass here, the field is still viewed above the best guess of it (an unsure map's, or
        # the last focus found), as a field the map places is: at the glass itself a print 16 µm tall lies 8 µm
        # below its mid-plane, and on the cheap colour camera such views lost a woodpile (seed 443)
        # (until a focus is found, the last guess is only where a search started: no offset)
        said = self._glass_evidence(p.x_um, p.y_um)
        glass: float | None = None
        if said is not None and MAP_SURE_K * said[1] <= self._drift_bound_um() and (pred is None or said[1] < pred[1]):
            # the structures' foci less their reference heights, with the glass readings, where they are sure
            # as the map must be to be trusted (and surer than it): on a tilted slide nearer than the last
            # focus found millimetres away. An unsure one is not used: a plane through a few structures 5-27 µm
            # off tilted a level slide's fields up to 70 µm off their glass (the cheap colour camera, seed 443)
            glass = said[0]
        elif pred is not None and on_glass:
            glass = pred[0]
        elif self._z_guess is not None and self._guess_on_glass:
            glass = self._z_guess
        guess = (glass + FIELD_VIEW_ABOVE_GLASS_UM if glass is not None
                 else pred[0] if pred is not None  # objects' foci: as they are
                 else self._z_guess if self._z_guess is not None else p.z_um)
        try:
            self.stage.focus_to_um(guess)
        except StageLimitError:
            # an unsure map extrapolated past the focus travel (cheap colour camera on a tilted slide: the
            # scan failed after 180 of 221 fields, seed 412): the last focus found, else stay where we are
            guess = self._z_guess if self._z_guess is not None else p.z_um
            self.stage.focus_to_um(guess)
            glass = None
        w.z_um, w.focus_source, w.glass_um = guess, "guess", glass

    def autofocus_field(self, w: FieldWork) -> None:
        """The field's own focus search: the usual one, then where focus last was, then the wide one.

        Sets ``w.z_um`` and ``w.focus_source`` (``autofocus`` or ``autofocus-unsure``), and for a focus found
        ``w.focus_point``, which :meth:`field_seen` gives the map once the frame is judged.
        """
        p = self.stage.position_um()
        # Start where the field focus put this field (the map's z, sure or not): the last focus found may lie
        # millimetres away, 12-19 µm off on a slide tilted 2 µm/mm, and a failed search there left the field
        # imaged that far out of focus (default slide, seed 406)
        here = w.focus_source in ("guess", "map") and self.focus_plan.field_focus != "autofocus"
        view = w.z_um if here else (self._z_guess if self._z_guess is not None else p.z_um)
        # ... at the glass it was viewed above, not at the view: a search over the specks of a bare field lands
        # nearer its start than the glass is, and started 5 µm up every time it ratcheted fields upwards, each
        # from the last one's focus (the raw mono camera, seeds 2408 and 2411: 3-5 µm a field, then 20-25 µm
        # above the glass for the rest of the scan). Measured at 10x; at 5x / NA 0.1 (a 66 µm depth of field,
        # 24 µm steps) the 5 µm are a fraction of a step, and moving every search's samples there moved a
        # structure's search onto a false pair of lobes (docs/held-out.md, session 24), so there it is as it was
        shallow = self.depth_of_field_um() <= GLASS_START_MAX_DOF * TUNED_DEPTH_OF_FIELD_UM
        guess = w.glass_um if w.glass_um is not None and shallow else view  # set only for a field at a guess or map
        span = self.focus_plan.search_range_um
        out = self._field_search(p.x_um, p.y_um, guess, span)
        last = self._z_guess
        # what the search reached: a deep-focus objective's is widened to its depth of field (±90 µm at 5x /
        # NA 0.1), and a second search that reaches no further is the same search again (1.3-2.4 s there)
        reach = searched_range_um(self.focuser, span)
        if not out.ok and last is not None and abs(guess - last) > reach / 2:
            # the guess was the map's, far from the last focus found: look where focus last was
            out = self._field_search(p.x_um, p.y_um, last, span)
        if not out.ok and not self._focus_found and FIND_SLIDE_RANGE_UM > reach and self._lost_looks < LOST_LOOKS:
            # nothing found yet in this scan: the slide may be far from where the stage started. Only then,
            # and only after the usual search, the wide one (a flat curve of noise shows a "peak" somewhere
            # in a range that wide more often: the cheap camera's frames showed one in 29 flat samples).
            # Not after LOST_LOOKS fields searched that wide in vain: then the camera, not the slide's distance,
            # is why (the cheap colour camera on a Z stepper: 9.4 s of stage a field, seed 2717)
            out = self._field_search(p.x_um, p.y_um, guess, max(span, FIND_SLIDE_RANGE_UM))
            w.wide_from = guess if out.ok else None
        if out.ok:
            w.z_um, w.focus_source, w.focus_on_glass = out.z_um, "autofocus", bool(out.glass)
            w.guess_before = (self._z_guess, self._guess_on_glass)
            if out.glass or not self._guess_on_glass:
                # an object's focus (no speck in view: a dust clump, a fibre, part of a print) is its mid-plane,
                # 0-15 µm above the glass: it is the next fields' guess as it is, and it does not replace the
                # glass's. Taken for the glass, fields were viewed 5 µm above it, each object focused on there
                # raising the guess again: 17 µm above the glass after two (40x, seed 4705)
                self._z_guess, self._guess_on_glass = out.z_um, out.glass
            if not self._focus_found:
                self._unfocused.clear()  # those searches failed for want of the slide, not of a camera to trust
            self._focus_found = True
            # The map models one surface, the glass; whether this focus is on the glass is known only once the
            # frame is analysed (see :meth:`field_seen`). A structure's own focus is recorded with the structure.
            w.focus_point = (p.x_um, p.y_um, out.z_um)
        else:
            self.stage.focus_to_um(view)
            w.z_um, w.focus_source = view, "autofocus-unsure"

    def _field_search(self, x: float, y: float, guess: float, span: float) -> FocusOutcome:
        """A field's own focus search; a focus the structures around contradict is not ``ok``."""
        out = self.focuser.focus(self.stage, self.camera, guess, span, None)
        contradicted = getattr(self.focus_map, "contradicted", None)
        if out.ok and callable(contradicted) and contradicted(x, y, out.z_um):
            _log.info("field focus at (%.0f, %.0f): %.1f um, where the structures around put the glass "
                      "elsewhere: not taken", x, y, out.z_um)
            return replace(out, ok=False)
        return out

    def _map_reads_glass(self) -> bool:
        """Whether the map predicts the glass, or (too few glass readings yet) the fields' foci in its stead.

        Those foci are objects' mid-planes where a field showed no speck (a dust clump, a fibre, a bubble, part
        of a print: 0-15 µm above the glass), and at 40x most fields do: a scan of seed 4604 viewed its fields
        5 µm above such a map, 13 µm above the glass. A map that does not say is taken for the glass's.
        """
        reads = getattr(self.focus_map, "reads_glass", None)
        return bool(reads()) if callable(reads) else True

    def _glass_evidence(self, x: float, y: float) -> tuple[float, float] | None:
        """The glass's z and sigma from its readings and the structures' foci less their reference heights.

        None while no structure has been focused with a reference height (or the map cannot say:
        ``FocusMapAdapter.guess``).
        """
        guess = getattr(self.focus_map, "guess", None)
        return guess(x, y) if callable(guess) else None

    def _keep_glass_guess(self, w: FieldWork) -> None:
        """A field focus with a structure in view is the structure's mid-plane: not the next fields' guess.

        Fields at a guess are viewed ``FIELD_VIEW_ABOVE_GLASS_UM`` above the last focus found; one taken 14 µm
        up on a print (the cheap colour camera, seed 443) put every later field 19 µm above its glass. The
        guess stays the last focus before, when there was one.
        """
        if w.guess_before is not None:
            self._z_guess, self._guess_on_glass = w.guess_before

    def _forget_wide_focus(self, w: FieldWork) -> None:
        """A wide search's peak with nothing in view there is the noise of a flat curve, not the slide.

        The cheap colour camera's denoised frames score bare glass the same at every z (0.5-0.6), and one of
        29 such samples passed for a peak 40-70 µm above the glass; every later search then started there.
        """
        assert w.wide_from is not None
        self._focus_found = self._guess_on_glass = False
        self._z_guess = w.wide_from  # where that field was viewed
        self.stage.focus_to_um(w.wide_from)
        w.z_um, w.focus_source, w.focus_point, w.wide_from = w.wide_from, "autofocus-unsure", None, None

    def glass_under(self, w: FieldWork, x: float, y: float) -> float | None:
        """The glass under a point of this field where it is known to a micrometre or two; else None.

        This field's own focus where its search read the specks resting on the glass; else the focus map's
        prediction at ``(x, y)`` where the map reads the glass and its sigma there is at most
        ``GLASS_UNDER_SIGMA_UM``.
        """
        if w.focus_source == "autofocus" and w.focus_on_glass:
            return float(w.z_um)
        return self._map_z(x, y, GLASS_UNDER_SIGMA_UM) if self._map_reads_glass() else None

    def _glass_z(self, x: float, y: float) -> float | None:
        """The glass's focus at a structure, or None when there is no sure reference.

        The focus map's prediction (the map holds only fields focused on dust and glass) when it is sure to
        within half the search range.
        """
        return self._map_z(x, y, self.focus_plan.search_range_um / 2)

    def _map_z(self, x: float, y: float, max_sigma_um: float) -> float | None:
        """The focus map's prediction at ``(x, y)`` where its sigma there is at most ``max_sigma_um``; else None."""
        pred = self.focus_map.predict(x, y)
        if pred is None or pred[1] > max_sigma_um:
            return None
        return float(pred[0])

    def structure_glass(self, frames: np.ndarray, zs: list[float], box: tuple[int, int, int, int], x: float,
                         y: float, focus_z: float, lobe_gap: tuple[float, float] = LOBE_GAP_UM
                         ) -> tuple[float | None, str | None]:
        """The glass's focus for a structure's height and where it came from.

        The specks on the glass beside it in its own stack (:func:`appliance.results.glass.glass_focus`,
        reading small specks' curves with the objective's ``lobe_gap``) first, then the plane through the
        specks measured beside the structures before it (``SpeckGlassPlane``), else the focus map's prediction,
        sure or not (an unsure map is a few µm off), else the nearest of the fields' own foci on dust and glass
        that the map holds back while it has fewer than three (``field-focus``; below the structure's focus
        only); without any the height map falls back to shape from focus, which a thin print defeats.
        """
        self.specks_either_side_z = None
        if frames.ndim == 3 and len(zs) >= 3 and bool(np.all(np.diff(zs) > 0)):
            foci: list[float] = []
            found = glass_focus(frames, zs, box, self.um_per_px, below_z_um=focus_z, lobe_gap_um=lobe_gap,
                                out_foci=foci)
            self.specks_either_side_z = float(np.median(foci)) if foci else None
            if found is not None:
                self._speck_glass.add(x, y, found.z_um)
                return found.z_um, "specks"
        beside = self._speck_glass.predict(x, y)
        if beside is not None and beside < focus_z:
            return beside, "specks-plane"
        sure = self._glass_z(x, y)
        if sure is not None:
            return sure, "focus-map"
        pred = self.focus_map.predict(x, y)
        if pred is not None:
            return float(pred[0]), "focus-map-unsure"
        below = [p for p in self._focus_points if p[2] < focus_z]
        if below:
            return min(below, key=lambda p: (p[0] - x) ** 2 + (p[1] - y) ** 2)[2], "field-focus"
        return None, None

    def depth_of_field_um(self) -> float:
        """The objective's depth of field the focuser searches with, µm (``AutofocusFocuser.depth_of_field_um``).

        A focuser that does not say (a test double) is taken to have the tuned 10x / NA 0.25 one.
        """
        dof = getattr(self.focuser, "depth_of_field_um", None)
        return float(dof) if isinstance(dof, (int, float)) and not isinstance(dof, bool) else TUNED_DEPTH_OF_FIELD_UM

    def _drift_bound_um(self) -> float:
        """How far the map's z may lie from its nearest point's before the field is measured, µm.

        ``MAP_DRIFT_FRACTION`` of what a field search reaches (:func:`searched_range_um`): at the tuned 10x the
        plan's ±15 µm, so 5 µm, 0.45 depths of field. Held to the plan's range at 5x / NA 0.1 (66 µm deep, its
        searches widened to ±90 µm) the bound was a thirteenth of the depth of field, within the scatter of
        the field autofocus's own points there, and a third to a half of the fields took a 1.3-2.4 s search
        for it (seeds 493, 494: median stage time per field 2.89 and 3.11 s; 2.34 and 2.44 s with the bound
        scaled, fields' |z - glass| p95 16.7 and 32.4 µm before, 23.2 and 11.9 after). The map's sureness
        (sigma at most half the plan's range) is unchanged: scaling it too let fields go 36 µm off (seed 493).
        """
        return MAP_DRIFT_FRACTION * searched_range_um(self.focuser, self.focus_plan.search_range_um)

    def add_point(self, x: float, y: float, z: float) -> None:
        """A focus on dust and glass at ``x, y``: a point of the map (once per place)."""
        if any((x, y) == p[:2] for p in self._focus_points):
            return  # a field redone after a stage fault: its point is in the map already
        self.focus_map.add(x, y, z)
        self._focus_points.append((x, y, z))

    def _far_from_map(self, pos: FieldPosition, tried: Sequence[tuple[float, float, float]] = ()) -> bool:
        """No focused point (nor one of ``tried``) within ``MAP_REFRESH_UM``: the map would be extrapolating."""
        r2 = MAP_REFRESH_UM * MAP_REFRESH_UM
        return not any((x - pos.x_um) ** 2 + (y - pos.y_um) ** 2 <= r2 for x, y, _ in (*self._focus_points, *tried))

    def _map_unsure(self, pos: FieldPosition) -> bool:
        """The map cannot place this field: no prediction, or ``MAP_SURE_K`` sigma beyond the drift bound.

        The map's sigma grows with how few, how close together and how scattered its points are
        (:class:`appliance.focus.FocusMap`): three points at a row's start are sure between them and not a
        millimetre on, where a tilted slide has walked away from their plane.
        """
        pred = self.focus_map.predict(pos.x_um, pos.y_um)
        return pred is None or MAP_SURE_K * pred[1] > self._drift_bound_um()

    def _looked_near(self, pos: FieldPosition, in_view: bool) -> bool:
        """A field's own autofocus within ``MAP_RETRY_UM`` of this field found no focus (:meth:`wants_autofocus`).

        For a field with something ``in_view``, only a search that had something in view too counts: bare
        glass fails every search whatever the camera, and says nothing of whether an object can be focused. At
        40x a field of a sparse slide is mostly bare: twelve of them failed along a first row, and then a
        micro-lens 14 µm above the fields' z showed as a blur in three fields that never looked (seed 4604).
        """
        r2 = MAP_RETRY_UM * MAP_RETRY_UM
        return any((x - pos.x_um) ** 2 + (y - pos.y_um) ** 2 <= r2
                   for x, y, seen in self._unfocused if seen or not in_view)

    def _map_drifted(self, pos: FieldPosition, w: FieldWork) -> bool:
        """The map's z here is more than ``MAP_DRIFT_FRACTION`` of the search range from its nearest point's.

        A plane through a first row of points and one point off it takes its cross slope from that one
        point's error (dust 3-5 µm above the glass): extrapolated a millimetre, it ran 45 µm up a level slide
        (80 dust pieces per mm², seed 86) and no field's search reached the glass again. A field whose z rests
        that much on the map's slope is measured instead (one more point where the map needs it); a level
        slide's map stays within it.
        """
        if w.focus_source != "map" or not self._focus_points:
            return False
        near = min(self._focus_points, key=lambda p: (p[0] - pos.x_um) ** 2 + (p[1] - pos.y_um) ** 2)
        view_above = 0.0 if w.glass_um is None else w.z_um - w.glass_um
        return abs(w.z_um - view_above - near[2]) > self._drift_bound_um()

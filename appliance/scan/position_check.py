"""Where the slide is at the end of a scan, against where the scan recorded it.

A scan records every print's place from the drive's step counts. A stepper that missed steps under load, or a
slide that crept in its holder, moves the slide under those counts for good, and every place recorded after it is
off by as much. The scan cannot see that from its fields: each frame agrees with where the stage believes it is.
So at the end the stage goes back to the first print the scan recorded, to where it stood when it saved that
print's frame, captures a frame there and finds the print in it. The print's shift from its saved frame, through
the calibration, is how far the slide has moved under the drive since (``summary.json``'s ``position_check``),
and a scan whose slide moved more than :data:`MAX_SHIFT_UM` says so. A homed drive's switches would tell lost
steps too, but only on a board that has them, and never a slide that moved.

The same check, made while fields are still to come, lets the scan undo what it finds: :mod:`appliance.scan.realign`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.focus.curve import parabola_peak
from appliance.hardware.camera.base import Camera, CameraError
from appliance.hardware.stage.base import Stage, StageError, StageLimitError
from appliance.results.store import ObjectRecord, ResultStore
from appliance.scan.calibration import Calibration, approach_xy

_log = logging.getLogger(__name__)

#: A slide found further than this from where the scan recorded it is said, µm: the scan's own bar for a
#: recorded position (issue 10's median position error).
MAX_SHIFT_UM = 5.0
#: The print is looked for this far around where it was, as a fraction of the frame's smaller side.
SEARCH_FRACTION = 0.25
#: Pixels of glass kept around the print's box in the template.
MARGIN_PX = 8
#: A print found with a lower normalised correlation than this is not taken for found.
MIN_MATCH = 0.5
#: A match this good ends the search through focus.
GOOD_MATCH = 0.8
#: Where the print is looked at, µm from the z its frame was saved at, in turn until one matches well: the
#: focus may have drifted since (a microscope warming up drifts up to 1 µm a minute, docs/scan.md).
Z_OFFSETS_UM = (0.0, -6.0, 6.0, -12.0, 12.0)


@dataclass(frozen=True)
class PositionCheck:
    """The first recorded print found again at the end of its scan.

    ``shift_um``: where the print appears now less where the scan recorded it, stage µm; None when it was not
    found within ``search_um`` of its place. ``match``: the normalised correlation of the best place.
    """

    object_id: int
    shift_um: tuple[float, float] | None
    match: float
    search_um: float
    corrected: bool = False  #: the scan went on with ``shift_um`` undone (:mod:`appliance.scan.realign`)
    saved_z_um: float | None = None  #: the z the print's frame was saved at (its focus)
    dz_um: float | None = None  #: where it matched best through focus, from ``saved_z_um``

    @property
    def moved_um(self) -> float | None:
        """How far the slide moved under the drive, µm (None: not found)."""
        return None if self.shift_um is None else math.hypot(*self.shift_um)

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready, for ``summary.json``."""
        shift = None if self.shift_um is None else [round(v, 2) for v in self.shift_um]
        moved = None if self.moved_um is None else round(self.moved_um, 2)
        dz = None if self.dz_um is None else round(self.dz_um, 2)
        return {"object_id": self.object_id, "shift_um": shift, "moved_um": moved, "match": round(self.match, 3),
                "search_um": round(self.search_um, 1), "dz_um": dz, "corrected": self.corrected}


def check_position(stage: Stage, camera: Camera, store: ResultStore, scan_id: int, root: Path, cal: Calibration,
                   approach_um: float, search_fraction: float = SEARCH_FRACTION,
                   z_offsets_um: tuple[float, ...] = Z_OFFSETS_UM, every_z: bool = False) -> PositionCheck | None:
    """Go back to the scan's first recorded print, find it, and say how far it is from where it was recorded.

    The print is looked at ``z_offsets_um`` from the z its frame was saved at, in turn until one matches well, or
    with ``every_z`` at all of them, the best match's z refined between its neighbours (``dz_um``). None (logged)
    when the scan recorded no print with its frame, or the stage or camera failed: the check is the scan's last word
    on its places, never a reason to lose the scan.
    """
    picked = _first_print(store.objects(scan_id, "structure"), Path(root))
    if picked is None:
        return None
    first, saved, z, box = picked
    assert first.extra is not None
    x, y = (float(v) for v in first.extra["stage_xy_um"])
    try:
        approach_xy(stage, x, y, approach_um)
        found, dz = _found_through_focus(stage, camera, saved, box, z, search_fraction, z_offsets_um, every_z)
    except (StageError, CameraError) as exc:
        _log.warning("scan %s: position check skipped: %s", scan_id, exc)
        return None
    search_um = search_fraction * min(saved.shape[:2]) * cal.um_per_px
    if found is None:
        return PositionCheck(first.id, None, 0.0, search_um, saved_z_um=z)
    (du, dv), match = found
    d = cal.m @ np.array([du, dv])
    return PositionCheck(first.id, (float(d[0]), float(d[1])), match, search_um, saved_z_um=z, dz_um=dz)


def _found_through_focus(stage: Stage, camera: Camera, saved: np.ndarray, box: tuple[int, int, int, int],
                         z_um: float, search_fraction: float, z_offsets_um: tuple[float, ...],
                         every_z: bool) -> tuple[tuple[tuple[float, float], float] | None, float | None]:
    """The print's best match over ``z_offsets_um`` about ``z_um`` (where the drive reaches), and its offset.

    Without ``every_z`` the first match of :data:`GOOD_MATCH` ends the search; with it every offset is looked at and
    the best one's is refined by a parabola through its neighbours' matches.
    """
    best: tuple[tuple[float, float], float] | None = None
    best_dz: float | None = None
    matches: dict[float, float] = {}
    for dz in z_offsets_um:
        try:
            stage.focus_to_um(z_um + dz)
        except StageLimitError:
            continue
        found = print_shift_px(saved, camera.capture().image, box, search_fraction)
        matches[dz] = 0.0 if found is None else found[1]
        if found is not None and (best is None or found[1] > best[1]):
            best, best_dz = found, dz
        if not every_z and best is not None and best[1] >= GOOD_MATCH:
            break
    if every_z and best_dz is not None:
        zs = sorted(matches)
        best_dz = _peak_near(zs, [matches[z] for z in zs], zs.index(best_dz))
    return best, best_dz


def _read_grey(path: Path) -> np.ndarray | None:
    """A saved frame, grey; None where it is missing or cannot be decoded (the caller's warning says so, once).

    OpenCV's reader prints its own ``[ WARN:...]`` (and ``[ERROR:...]``) lines to stderr for such a file, past the
    service's logging: unformatted lines in the journal, beside the project's own line for the same file.
    """
    log = cv2.utils.logging
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    finally:
        log.setLogLevel(level)


def _first_print(structures: list[ObjectRecord],
                 root: Path) -> tuple[ObjectRecord, np.ndarray, float, tuple[int, int, int, int]] | None:
    """The earliest recorded structure that can be found again: its record, saved frame, z and template box.

    It needs its frame, and where the stage stood for it and at what z. The template is its box where the box lies
    in the frame and leaves the search room (at most half the frame each way). A print larger than the field is
    recorded with its footprint, which its frame cannot hold (at 40x an 82 µm woodpile's box was the frame's whole
    height, held-out seed 4440), so such a print is passed over for one whose box fits; where no print fits (every
    print at 40x larger than half the field), the first one's template is half its frame about its place (its own
    texture fills that: :func:`_window`).
    """
    fallback = None
    for o in structures:
        z = (o.extra or {}).get("autofocus_z_um", o.z_um)
        if not (o.frame_path and o.box and o.extra and len(o.extra.get("stage_xy_um") or ()) == 2 and z is not None):
            continue
        saved = _read_grey(root / o.frame_path)  # a frame is grey (Frame's contract)
        if saved is None:
            _log.warning("position check: %s could not be read", o.frame_path)
            continue
        h, w = saved.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in o.box)
        if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h and x1 - x0 <= w / 2 and y1 - y0 <= h / 2:
            return o, saved, float(z), (x0, y0, x1, y1)
        if fallback is None:
            fallback = (o, saved, float(z), _window((x0, y0, x1, y1), (h, w)))
    return fallback


def _window(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Half the frame each way (less the template's margin) about the centre of ``box`` as the frame shows it."""
    h, w = shape
    cx = min(max((box[0] + box[2]) / 2, 0.0), float(w))
    cy = min(max((box[1] + box[3]) / 2, 0.0), float(h))
    half_w, half_h = w // 4 - MARGIN_PX, h // 4 - MARGIN_PX
    x0 = int(min(max(cx - half_w, MARGIN_PX), w - MARGIN_PX - 2 * half_w))
    y0 = int(min(max(cy - half_h, MARGIN_PX), h - MARGIN_PX - 2 * half_h))
    return x0, y0, x0 + 2 * half_w, y0 + 2 * half_h


def print_shift_px(saved: np.ndarray, now: np.ndarray, box: tuple[int, int, int, int] | list[int],
                   search_fraction: float = SEARCH_FRACTION) -> tuple[tuple[float, float], float] | None:
    """Where the print in ``box`` of ``saved`` lies in ``now``, as a shift in pixels, and how well it matches.

    The box (with :data:`MARGIN_PX` of glass) is matched by normalised correlation within ``search_fraction`` of
    the frame's smaller side around its place, refined to a fraction of a pixel by a parabola through the peak.
    None when the frames differ in size or the best match is under :data:`MIN_MATCH`.
    """
    if saved.shape != now.shape:
        return None
    a, b = saved.astype(np.float32), now.astype(np.float32)
    h, w = a.shape
    x0, y0 = max(int(box[0]) - MARGIN_PX, 0), max(int(box[1]) - MARGIN_PX, 0)
    x1, y1 = min(int(box[2]) + MARGIN_PX, w), min(int(box[3]) + MARGIN_PX, h)
    r = int(search_fraction * min(h, w))
    sx0, sy0, sx1, sy1 = max(x0 - r, 0), max(y0 - r, 0), min(x1 + r, w), min(y1 + r, h)
    template, area = a[y0:y1, x0:x1], b[sy0:sy1, sx0:sx1]
    if template.size == 0 or template.std() == 0 or area.shape[0] <= template.shape[0] \
            or area.shape[1] <= template.shape[1]:
        return None
    scores = cv2.matchTemplate(area, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (px, py) = cv2.minMaxLoc(scores)
    if best < MIN_MATCH:
        return None
    return (sx0 + _peak_near(range(scores.shape[1]), scores[py].tolist(), px) - x0,
            sy0 + _peak_near(range(scores.shape[0]), scores[:, px].tolist(), py) - y0), float(best)


def _peak_near(xs: Sequence[float], ys: Sequence[float], at: int) -> float:
    """The peak of ``ys`` at index ``at``, refined by a parabola through its neighbours (``xs[at]`` at an end)."""
    if not 0 < at < len(xs) - 1:
        return float(xs[at])
    return parabola_peak(xs[at - 1:at + 2], ys[at - 1:at + 2])


def position_warnings(check: PositionCheck | None) -> list[str]:
    """What the scan says about its places after the check (``summary.json``'s warnings)."""
    if check is None:
        return []
    if check.shift_um is None:
        return [f"the first print recorded (object {check.object_id}) was not found again within "
                f"{check.search_um:.0f} um of its place at the end of the scan: the slide moved under the drive "
                "(a stepper that missed steps, a slide loose in its holder) and recorded places may be off by "
                "that much; home the stage and check the slide's clips, then scan again"]
    moved = check.moved_um
    assert moved is not None
    if moved <= MAX_SHIFT_UM:
        return []
    dx, dy = check.shift_um
    return [f"the first print recorded (object {check.object_id}) lay {moved:.1f} um from its recorded place at the "
            f"end of the scan ({dx:+.1f}, {dy:+.1f} um): the slide moved under the drive during the scan (a stepper "
            "that missed steps, a slide loose in its holder), so places recorded after it may be off by up to that "
            "much; lower the stage's speed or acceleration ($110-$121 on GRBL), fix the slide, or have the scan find "
            "its first print again as it goes (the plan's faults.realign_every_fields), then scan again"]

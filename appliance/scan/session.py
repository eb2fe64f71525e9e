"""Assemble a scan: devices, vision, focus, calibration, store and folder; run it; write the summary.

:func:`sim_microscope` (from ``appliance.sim.overrides``) builds the virtual microscope from a seed and
``--sim-set`` overrides;
:func:`run_scan` runs a plan on any open Stage and Camera and leaves ``summary.json`` (and, on the virtual
microscope, the ground truth and the scores) in the scan folder. The command line (``appliance/scan/cli.py``)
and the tests both come through here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera, CameraError
from appliance.hardware.stage.base import Position, Stage, StageLimitError, StageWrapper
from appliance.hardware.stage.offset import OffsetStage, offset
from appliance.results.files import ScanFolder, read_heights
from appliance.results.focuscurve import TUNED_DEPTH_OF_FIELD_UM, depth_of_field_scale
from appliance.results.store import SCAN_COPY, ObjectRecord, ResultStore, ScanRecord, write_durably
from appliance.scan.backlash import approach_um, backlash_warnings
from appliance.scan.calibration import Calibration, CalibrationError, calibrate, spiral_offsets
from appliance.scan.capture import CaptureFailed, CheckedCamera
from appliance.scan.carriage import FILE_NAME as CARRIAGE_FILE
from appliance.scan.carriage import CarriageJournal, carry_over_from, read_journal
from appliance.scan.events import Event, ObjectRecorded
from appliance.scan.exposure import settle_exposure
from appliance.scan.field_focus import FIND_SLIDE_RANGE_UM, searched_range_um
from appliance.scan.flatfield import FILE_NAME as FLAT_FIELD_FILE
from appliance.scan.flatfield import FlatField, FlatFieldCamera, FlatFieldError, measure_flat_field
from appliance.scan.flatfield import check_area as check_flat_field_area
from appliance.scan.grid import Grid, make_grid
from appliance.scan.mosaic import covered_fov_um
from appliance.scan.one_print import merge_pieces
from appliance.scan.plan import ScanPlan
from appliance.scan.position_check import PositionCheck, check_position, position_warnings
from appliance.scan.protocols import Focuser, FocusMapLike, FocusOutcome, Vision
from appliance.scan.realign import Realigner, slide_not_found
from appliance.scan.runner import FinishReason, ScanRunner, ScanState, ScanStatus
from appliance.scan.stage_recovery import retry_after_stage_faults

# re-exported: scans and their tests build the virtual microscope through this module
from appliance.sim.overrides import SIM_SECTIONS as SIM_SECTIONS
from appliance.sim.overrides import parse_sim_sets as parse_sim_sets
from appliance.sim.overrides import sim_microscope as sim_microscope
from appliance.vision.decision import SMALLEST_PRINT_UM

#: The scan folder's lock file: held (``flock``) by the process scanning into the folder, removed when the scan
#: ends (completed, failed or interrupted); a killed process leaves it behind, unlocked.
LOCK_FILE = ".tppscan.lock"


class ScanFolderBusy(RuntimeError):
    """Another process is scanning into the same folder (a CLI beside the service, a button pressed twice)."""


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Hold ``root`` for this scan, or raise :class:`ScanFolderBusy` naming the process that holds it.

    Two runs of one scan at once would both resume it, commit the same fields twice and drive one stage from two
    processes. The lock is the kernel's (``flock``), so a process killed outright releases it with its files: a
    crash never leaves the folder locked, only the file, which the next scan locks again. The file is removed
    when the scan ends, still locked, so that a finished folder holds only the scan's results.
    """
    fd = _lock(root / LOCK_FILE)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / LOCK_FILE)  # before the lock is let go: no other run can hold this file yet
        os.close(fd)  # releases the lock


def _lock(path: Path) -> int:
    """An open descriptor of ``path``, locked, or :class:`ScanFolderBusy`.

    A run that opened the file just before its holder removed it gets the lock of a file no longer in the folder:
    it opens the folder's file again (else two runs would each hold a lock, on two files).
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            root = path.parent
            raise ScanFolderBusy(f"--out {root} is in use by another scan (process {holder}): let it finish or stop "
                                 "it (the same command then resumes the scan), or scan into another folder") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@dataclass(frozen=True)
class ScanOutcome:
    """What :func:`run_scan` leaves: the scan's id, final status, and summary (also in ``summary.json``)."""

    scan_id: int
    status: ScanStatus
    summary: dict[str, Any]
    out_dir: Path
    db_path: Path


_log = logging.getLogger(__name__)


def scan_area(plan: ScanPlan, slide_size_um: tuple[float, float] | None) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of the scan: the plan's edges, or the whole (virtual) slide.

    Raises
    ------
    ValueError
        The plan gives no edges and there is no virtual slide to take them from.
    """
    g = plan.grid
    if not g.whole_slide:
        return (float(g.left), float(g.top), float(g.right), float(g.bottom))  # type: ignore[arg-type]
    if slide_size_um is None:
        raise ValueError("plan grid: give top, left, bottom, right (a real slide's extent is not known)")
    return (0.0, 0.0, float(slide_size_um[0]), float(slide_size_um[1]))


def check_area_in_travel(area_um: Sequence[float], travel_x_um: Sequence[float],
                         travel_y_um: Sequence[float]) -> None:
    """Refuse a scan area that reaches past the stage's travel, naming the plan key, its value and the travel.

    Before, such a plan ran until its first field there and ended with the stage's ``StageLimitError`` and
    advice to check the board and its port (exit 1): the plan was the bad value.

    Raises
    ------
    ValueError
        An edge of ``area_um`` (left, top, right, bottom) outside ``travel_x_um`` or ``travel_y_um``.
    """
    for key, value, (lo, hi), axis in (("grid.left", area_um[0], travel_x_um, "x"),
                                       ("grid.top", area_um[1], travel_y_um, "y"),
                                       ("grid.right", area_um[2], travel_x_um, "x"),
                                       ("grid.bottom", area_um[3], travel_y_um, "y")):
        if not lo <= value <= hi:
            raise ValueError(f"{key}: must lie within the stage's {axis} travel [{lo:g}, {hi:g}] um, got {value:g}")


def check_board_travel(stage: Stage, area_um: Sequence[float]) -> None:
    """Refuse a scan area outside the homed board's travel (``stage.xy_travel_um``), before any move.

    A stock GRBL board that homes works from minus its travel (``$130``/``$131``) up to 0: a plan in positive
    coordinates met ``ALARM:2`` at its first move (the calibration's, to the area's middle; the flat field's and
    the fields' lie within the area too), and the scan ended 7 minutes later. A stage that does not know its
    travel is not checked here.

    Raises
    ------
    StageLimitError
        An edge of the area outside the travel: the edge, the travel and what to change.
    """
    travel = getattr(stage, "xy_travel_um", None)
    if travel is None:
        return
    (x0, x1), (y0, y1) = travel
    try:
        check_area_in_travel(area_um, (x0, x1), (y0, y1))
    except ValueError as exc:
        left, top, right, bottom = (float(v) for v in area_um)
        raise StageLimitError(
            f"the scan's area (x {left:g}..{right:g}, y {top:g}..{bottom:g} um) lies outside the homed board's "
            f"travel, x {x0:g}..{x1:g} and y {y0:g}..{y1:g} um ({exc}): a stock GRBL board that homes works from "
            "minus its travel ($130, $131) up to 0, so give the plan's grid (top, left, bottom, right) in that "
            "range, e.g. left and top negative, or set the travel the board really has ($130/$131); nothing "
            "moved") from None


def run_scan(stage: Stage, camera: Camera, vision: Vision, focuser: Focuser, focus_map: FocusMapLike,
             plan: ScanPlan, out_dir: Path, db_path: Path, area_um: tuple[float, float, float, float],
             calibration: Calibration | None = None, device_clock: Callable[[], float] | None = None,
             on_event: Callable[[Event], None] | None = None, config: Mapping[str, Any] | None = None,
             resume: bool = True, truth: Mapping[str, Any] | None = None,
             z_start_um: float | None = None, runner_hook: Callable[[ScanRunner], None] | None = None,
             height_truth: HeightTruth | None = None, nominal_um_per_px: float | None = None,
             checkpoint: Checkpoint | None = None) -> ScanOutcome:
    """Run (or resume) a scan into ``out_dir`` with its rows in ``db_path``; write ``summary.json``.

    ``checkpoint`` (the service's pause and stop): called with each step of the preparation as it begins
    (``"exposure"``, ``"flat field"``, ``"calibration"``, or a resumed scan's :data:`RESUME_CHECK_STEP`) and with
    None before each of its moves; it waits while the scan is paused and answers True to stop, which raises
    :class:`PreparationStopped` (the scan resumable).

    The stage and camera must be open. Without a ``calibration`` the runner measures one where it starts
    (see :func:`appliance.scan.calibration.calibrate`). With ``resume`` an unfinished scan into the same
    folder is continued from its committed fields. ``truth`` (the virtual slide's) adds the scores.
    ``nominal_um_per_px`` (the objective and camera's nominal scale) scales the calibration's moves with the
    field (:func:`calibration_step_um`); without it they are 40 µm.
    """
    if calibration is not None:  # before the folder: a map made at another frame size leaves gaps
        calibration.check_frame_size(camera.size_px)
    check_board_travel(stage, area_um)  # before the folder and any move
    folder = ScanFolder(out_dir).create()
    # the scan's own origin, which a realignment moves back where the slide moved under the drive (realign.py)
    origin, camera = offset(stage, camera, (0.0, 0.0, 0.0))
    stage = origin
    with folder_lock(folder.root), ResultStore(db_path) as store:
        old = store.unfinished_scan(out_dir) if resume else None
        # the row first: the id the log lines, status and the folder name is the database's from the start
        scan_id, old = _begun(store, old, plan, folder, db_path, area_um, config)
        if old is not None and old.outputs_missing:  # its fields are done: what is left needs no stage, no slide
            return _outputs_only(store, old, folder, db_path, truth, height_truth)
        stood = read_journal(folder.root) if old is not None else None  # before a move of this run replaces it
        if origin.counts_from_power_up:  # only there can a resume use it: a drive with switches homes to its place
            origin.journal = CarriageJournal(folder.root / CARRIAGE_FILE)
        prep = stage if checkpoint is None else _StopBetweenMoves(stage, checkpoint)
        try:
            camera, exposure, flat = _prepared_camera(prep, camera, plan, folder, area_um, old is not None,
                                                      calibration, nominal_um_per_px, checkpoint)
            if old is not None:
                start = _reopened(store, old, camera, z_start_um)
            else:
                _step(checkpoint, "calibration")
                start = _calibrated(prep, camera, focuser, plan, area_um, calibration, nominal_um_per_px,
                                    z_start_um)
        except PreparationStopped:
            raise  # left as it was (preparing, or running for a resumed scan): the next start prepares it again
        except Exception as exc:
            if old is None:  # said in the row too (results list, status); the next run prepares it again
                store.finish_scan(scan_id, "failed", f"failed in its preparation: {exc}")
            raise
        grid = field_grid(plan, area_um, start.cal)
        if old is None:
            _create_scan(store, scan_id, stage, focuser, plan, area_um, start.cal, grid, exposure, config)
        _write_scan_json(folder, scan_id, db_path, start.seconds, flat, exposure, new=old is None)
        approach = approach_um(plan.imaging.approach_um, start.cal.backlash_um)  # the runner's detour, as it reckons it
        realign = Realigner(origin, camera, store, scan_id, folder.root, start.cal, approach)
        # a resumed scan: the slide where the first run left it, or the scan's origin moved back to it
        resumed = None
        if old is not None:
            _step(checkpoint, RESUME_CHECK_STEP)
            with _stoppable(origin, checkpoint):
                resumed = _resume_check(origin, stood, realign)
        watch = DirectionWatch(scan_id, on_event, objective_depth_of_field_um(focuser))
        runner = ScanRunner(stage, camera, vision, focuser, focus_map, store, folder, plan, grid, start.cal, scan_id,
                            device_clock=device_clock, on_event=watch,
                            z_start_um=start.z_start_um, area_um=area_um,
                            start_on_glass=start.on_glass, realign=realign)
        if runner_hook is not None:
            runner_hook(runner)
        status = runner.run()
        _merge_and_log_pieces(store, scan_id)
        check = None
        if status.reason is FinishReason.COMPLETED:  # the slide found again where the scan recorded it (a record
            # that stays: after the pieces of one print are merged)
            check = check_position(stage, camera, store, scan_id, folder.root, start.cal, approach)
        summary = _summary(store, scan_id, area_um, truth, resumed, realign, check)
        _write_results(store, scan_id, folder, grid.fov_um, area_um, summary, height_truth)
    return ScanOutcome(scan_id, status, summary, folder.root, Path(db_path))


#: The summary's warning of a scan whose outputs a later run wrote: its first run stopped before its last look.
OUTPUTS_LATER = ("this scan's summary, exports and report were written by a later run (the first one stopped while "
                 "writing them): the end-of-scan position check was not made")


def _outputs_only(store: ResultStore, old: ScanRecord, folder: ScanFolder, db_path: Path,
                  truth: Mapping[str, Any] | None, height_truth: HeightTruth | None) -> ScanOutcome:
    """A scan with every field done but cut off while its outputs were written: they are written from its rows.

    Nothing moves: the slide may be gone by now (a resume's look for the first print would stop the scan, and its
    report would never be written). Its own plan, area and calibration make the grid the report draws.
    """
    _log.info("scan %s: every field is done but its report was not written: writing its summary, exports and "
              "report now (nothing is scanned)", old.id)
    plan = ScanPlan.from_mapping(old.config["plan"])
    a = [float(v) for v in old.config["area_um"]]
    area = (a[0], a[1], a[2], a[3])
    grid = field_grid(plan, area, Calibration.from_mapping(old.config["calibration"]))
    _merge_and_log_pieces(store, old.id)  # again where the cut came first: pieces merged once are one record
    summary = summarise(store, old.id, area, truth)
    _log.warning("scan %s: %s", old.id, OUTPUTS_LATER)
    summary["warnings"].append(OUTPUTS_LATER)
    _write_results(store, old.id, folder, grid.fov_um, area, summary, height_truth)
    fields, structures = store.progress(old.id)
    status = ScanStatus(ScanState.FINISHED, None, old.id, fields, old.fields_planned, structures,
                        int(summary.get("debris_recorded") or 0), None, 0.0, None, FinishReason.COMPLETED)
    return ScanOutcome(old.id, status, summary, folder.root, Path(db_path))


@dataclass(frozen=True)
class _Start:
    """A scan's calibration, where its first field's focus search starts, and how long the calibration took.

    ``on_glass``: ``z_start_um`` is the glass's own focus, found before the first field. ``seconds``: None on a
    resume (the calibration is the first run's).
    """

    cal: Calibration
    z_start_um: float | None
    on_glass: bool = False
    seconds: float | None = None


Checkpoint = Callable[[str | None], bool]


class PreparationStopped(Exception):
    """A stop (``tppscan stop``, SIGTERM) met while the scan was prepared: it is left resumable, nothing lost."""


def _step(checkpoint: Checkpoint | None, step: str) -> None:
    """A preparation step begins: said to ``checkpoint``; :class:`PreparationStopped` where it asks to stop."""
    if checkpoint is not None and checkpoint(step):
        raise PreparationStopped(f"stopped in the scan's preparation ({step}); the scan stays resumable")


class _StopBetweenMoves(StageWrapper):
    """The scan's stage while it is prepared: every move first asks ``checkpoint`` (waits while paused).

    The exposure, flat field, calibration and the slide's search (up to 25 places, each a focus search) took
    minutes on a slow drive and heard no stop: ``looking for the slide at place N of 25`` went on 50 s after the
    service said it was shutting down (systemd's TimeoutStopSec is 30 s: a SIGKILL mid-move).
    """

    def __init__(self, inner: Stage, checkpoint: Checkpoint) -> None:
        super().__init__(inner)
        self._checkpoint = checkpoint

    def _check(self) -> None:
        if self._checkpoint(None):
            raise PreparationStopped("stopped in the scan's preparation; the scan stays resumable")

    def move_to_um(self, x: float | None = None, y: float | None = None, z: float | None = None) -> Position:
        """Ask the checkpoint, then move."""
        self._check()
        return super().move_to_um(x, y, z)

    def focus_to_um(self, z: float) -> Position:
        """Ask the checkpoint, then focus."""
        self._check()
        return super().focus_to_um(z)


#: The preparation's step that looks for a resumed scan's first print (status: ``preparing: <step>``).
RESUME_CHECK_STEP = "looking for the scan's first print again"


@contextlib.contextmanager
def _stoppable(origin: OffsetStage, checkpoint: Checkpoint | None) -> Iterator[None]:
    """While the block runs, every move of ``origin`` first asks ``checkpoint``, as the preparation's moves do.

    The resume check looks for the first print through the scan's origin (whose offset it may move), so the
    origin's drive is wrapped rather than the origin: its search (dozens of focus moves on a slow drive) heard no
    stop or pause before.
    """
    if checkpoint is None:
        yield
        return
    inner = origin.inner
    origin.inner = _StopBetweenMoves(inner, checkpoint)
    try:
        yield
    finally:
        origin.inner = inner


def _prepared_camera(stage: Stage, camera: Camera, plan: ScanPlan, folder: ScanFolder,
                     area_um: tuple[float, float, float, float], resumed: bool, calibration: Calibration | None,
                     nominal_um_per_px: float | None,
                     checkpoint: Checkpoint | None = None) -> tuple[Camera, dict[str, Any] | None, dict[str, Any]]:
    """The camera with its exposure settled and its flat field applied, as the plan asks, and what of each goes.

    The second and third items go into ``scan.json`` (``exposure``: None where not asked; ``flat_field``: empty).
    """
    exposure = None
    if plan.imaging.auto_exposure:
        _step(checkpoint, "exposure")
        exposure = _settle_exposure(camera, plan.faults.capture_retries)
    flat: dict[str, Any] = {}
    if plan.imaging.flat_field:  # first: the slide's focus and the calibration are read on corrected frames
        _step(checkpoint, "flat field")
        scale = calibration.um_per_px if calibration is not None else nominal_um_per_px
        camera, flat = _flat_field_camera(stage, camera, plan, folder, area_um, resumed=resumed, um_per_px=scale)
    return camera, exposure, flat


def _reopened(store: ResultStore, old: ScanRecord, camera: Camera, z_start_um: float | None) -> _Start:
    """A resumed scan's start: its first run's calibration, checked against the camera; its row reopened."""
    cal = Calibration.from_mapping(old.config["calibration"])
    cal.check_frame_size(camera.size_px)  # the camera changed since the scan was started
    store.reopen_scan(old.id)
    return _Start(cal, z_start_um)


def _calibrated(stage: Stage, camera: Camera, focuser: Focuser, plan: ScanPlan,
                area_um: tuple[float, float, float, float], calibration: Calibration | None,
                nominal_um_per_px: float | None, z_start_um: float | None) -> _Start:
    """A new scan's start: its calibration (``calibration``, or measured) and the slide's focus found for it."""
    t = time.perf_counter()
    checked = CheckedCamera(camera, plan.faults.capture_retries, plan.faults.retry_wait_s)
    step = 40.0 if nominal_um_per_px is None else calibration_step_um(nominal_um_per_px, camera.size_px)
    cal, found = retry_after_stage_faults(
        stage, plan.faults, "the calibration",
        lambda: _find_and_calibrate(stage, checked, focuser, plan, area_um, calibration, step))
    if found is None:
        return _Start(cal, z_start_um, False, time.perf_counter() - t)
    return _Start(cal, found.z_um, found.glass, time.perf_counter() - t)


def begin_scan(store: ResultStore, plan: ScanPlan, out_dir: Path, area_um: Sequence[float] | None = None,
               config: Mapping[str, Any] | None = None) -> int:
    """A new scan's row, ``preparing``, before anything is measured or moved; returns its id.

    Its id and folder are the database's from the start: a scan cut off in its preparation (exposure, flat field,
    calibration, the slide's search) is found unfinished (``preparing``, or ``failed`` where it raised) and
    prepared again in the same row and folder by the next run, so no id names two scans. Its snapshot (plan, area,
    ``config``) gets the calibration and grid once they are known (:func:`_create_scan`).
    """
    snapshot = {"plan": plan.to_mapping(), **({} if area_um is None else {"area_um": list(area_um)}),
                **dict(config or {})}
    return store.create_scan(plan.name, out_dir, snapshot, 0, status="preparing")


def prepared(rec: ScanRecord) -> bool:
    """Whether a scan's row holds its calibration: False for one cut off in its preparation (nothing committed)."""
    return "calibration" in rec.config


def _begun(store: ResultStore, old: ScanRecord | None, plan: ScanPlan, folder: ScanFolder, db_path: Path,
           area_um: tuple[float, float, float, float],
           config: Mapping[str, Any] | None) -> tuple[int, ScanRecord | None]:
    """The scan's id, and the scan it resumes (None: one to prepare, a new row or one cut off in its preparation).

    ``scan.json`` is written at once for a scan to prepare, so the folder names its scan from the start.
    """
    if old is not None and prepared(old):
        return old.id, old
    if old is not None:
        if (folder.root / "scan.json").is_file():  # a run began it (a service's new row has none yet)
            _log.info("scan %s was cut off in its preparation (nothing committed): preparing it again", old.id)
        store.set_preparing(old.id)
        scan_id = old.id
    else:
        scan_id = begin_scan(store, plan, folder.root, area_um, config)
    _write_scan_json(folder, scan_id, db_path, None, {}, None, new=True)
    return scan_id, None


def _create_scan(store: ResultStore, scan_id: int, stage: Stage, focuser: Focuser, plan: ScanPlan,
                 area_um: tuple[float, float, float, float], cal: Calibration, grid: Grid,
                 exposure: dict[str, Any] | None, config: Mapping[str, Any] | None) -> None:
    """A new scan's row completed with the snapshot of what it runs with; the snapshot's warnings logged."""
    snapshot = {"plan": plan.to_mapping(), "calibration": cal.to_mapping(), "area_um": list(area_um),
                "grid": {"rows": grid.rows, "columns": grid.columns},
                "focus_drive": focus_drive(stage, focuser), "exposure": exposure, **dict(config or {})}
    store.set_prepared(scan_id, snapshot, grid.n_fields)
    for w in start_warnings(snapshot):
        _log.warning("scan %s: %s", scan_id, w)


def _write_scan_json(folder: ScanFolder, scan_id: int, db_path: Path, cal_s: float | None,
                     flat: Mapping[str, Any], exposure: Mapping[str, Any] | None, new: bool) -> None:
    """Write ``scan.json`` for a new scan, or for a resumed one whose first run was cut before it."""
    meta = folder.root / "scan.json"
    if new or not _names_scan(meta, scan_id):  # on resume too, if a cut came between the row and the file, or
        # left it torn (a power cut before its rename reached the disk)
        info = {"scan_id": scan_id, "db": str(Path(db_path).resolve()), "calibration_s": cal_s}
        extra = {**({"flat_field": flat} if flat else {}), **({"exposure": exposure} if exposure else {})}
        write_durably(meta, json.dumps({**info, **extra}).encode())


def _names_scan(meta: Path, scan_id: int) -> bool:
    """Whether ``meta`` (a folder's ``scan.json``) can be read and names scan ``scan_id``."""
    try:
        return json.loads(meta.read_text()).get("scan_id") == scan_id
    except (OSError, ValueError, AttributeError):
        return False


def _resume_check(origin: OffsetStage, stood: Mapping[str, Any] | None, realign: Realigner) -> dict[str, Any] | None:
    """A resumed scan's first print found again, as the summary's ``resume_check`` (None: not found).

    Raises :class:`appliance.scan.realign.ScaleMismatch` under another objective than the first run's: the scan
    stops rather than scan on at the wrong scale. Raises :class:`appliance.scan.realign.SlideNotFound` where the
    first print was looked for and not found within the search (another slide, or one moved far): the scan stops
    rather than merge two slides into one; it stays interrupted. A check that could not be made (no print
    recorded yet, the stage or camera failing) goes on, as before.
    """
    carried = carry_over_from(origin, stood)  # a board without switches that restarted counts from where it stood
    resumed = realign("when the scan resumed", resume=True, restarted=carried)
    scale = realign.check_scale()  # first: under another objective the print is not found either
    if resumed is not None and resumed.shift_um is None:
        raise slide_not_found(realign.scan_id, resumed)
    if resumed is None:
        return None
    ratio = None if scale is None else round(scale, 4)
    return {**resumed.to_mapping(), "scale_ratio": ratio, "carried_over": carried}


def _merge_and_log_pieces(store: ResultStore, scan_id: int) -> None:
    """Merge the records of each print larger than the field, recorded from two or more of its pieces; log each."""
    for m in merge_pieces(store, scan_id):
        _log.info("scan %s: %s %d holds %d more record(s) of the same print: %s", scan_id, m.keep.cls, m.keep.id,
                  len(m.pieces), ", ".join(f"{p.cls} {p.id}" for p in m.pieces))


def _summary(store: ResultStore, scan_id: int, area_um: tuple[float, float, float, float],
             truth: Mapping[str, Any] | None, resume_check: dict[str, Any] | None, realign: Realigner,
             check: PositionCheck | None) -> dict[str, Any]:
    """The scan's summary with its realignments and position checks, their warnings logged and added."""
    summary = summarise(store, scan_id, area_um, truth)
    if resume_check is not None:
        summary["resume_check"] = resume_check
    if realign.checks:
        summary["realignments"] = realign.to_mappings()
    if check is not None:
        summary["position_check"] = check.to_mapping()
    for w in [*realign.warnings(), *position_warnings(check)]:
        _log.warning("scan %s: %s", scan_id, w)
        summary["warnings"].append(w)
    return summary


def _write_results(store: ResultStore, scan_id: int, folder: ScanFolder, fov_um: tuple[float, float],
                   area_um: tuple[float, float, float, float], summary: dict[str, Any],
                   height_truth: HeightTruth | None) -> None:
    """Write ``summary.json``, the exports and the report, and last the summary's row and the folder's copy.

    With ``height_truth`` the summary also holds the height maps' errors against it.
    """
    rmse = _height_rmse(store, scan_id, folder, height_truth, summary) if height_truth else None
    write_durably(folder.root / "summary.json", json.dumps(summary, indent=1).encode())
    write_outputs(store, scan_id, folder, fov_um, area_um, summary, rmse)
    # last: a scan with its summary row is complete; one stopped before this is resumed (and its
    # outputs written) by the next run into the same folder
    store.set_summary(scan_id, summary)
    store.copy_scan(scan_id, folder.root / SCAN_COPY)  # for a copy of the folder away from the database


def _settle_exposure(camera: Camera, retries: int) -> dict[str, Any]:
    """The camera's exposure settled for the slide (:mod:`appliance.scan.exposure`), as ``scan.json`` keeps it.

    A camera error here is left to the calibration's retrying captures, which come next and say it properly.
    """
    try:
        result = settle_exposure(camera, retries)
    except CameraError as exc:
        _log.warning("exposure not checked: the camera failed (%s)", exc)
        return {"ok": True, "changed": False, "note": f"not checked: the camera failed ({exc})"}
    if result.ok:  # a changed exposure is worth a line on the terminal: the config or the lamp wants setting
        (_log.warning if result.changed else _log.info)("exposure: %s", result.note)
    return result.to_mapping()


def exposure_warnings(exposure: Mapping[str, Any] | None) -> list[str]:
    """A warning when the glass could not be brought to a bright-field grey (empty otherwise or unknown)."""
    if not exposure or exposure.get("ok", True):
        return []
    return [f"the exposure could not be set: {exposure.get('note', '')}"]


def calibration_step_um(um_per_px: float, size_px: tuple[int, int]) -> float:
    """The calibration's move, µm in [1, 1000]: 40 µm (what it was tuned with) per 480 px at 0.56 µm per px.

    That is 15 % of the field's shorter side at any scale. A fixed 40 µm is 60 % of a 40x field (67 µm): on a
    slide of sparse dust the moved frames overlapped too little for a correlation peak at any of 25 places
    (seed 91).
    """
    if not (isinstance(um_per_px, (int, float)) and math.isfinite(um_per_px) and um_per_px > 0):
        raise ValueError(f"nominal_um_per_px must be a finite number > 0, got {um_per_px!r}")
    return min(1000.0, max(1.0, 40.0 * (float(um_per_px) / 0.56) * (min(size_px) / 480.0)))


#: Places a scan's calibration may try (an 11 x 11 spiral): at 40x over 5 dust pieces per mm² a field holds
#: about 0.06 objects, and the 49 places of a 2 x 2 mm area 300 µm apart held one, a fibre out of focus
#: (seed 1513). A bare place costs three frames.
CALIBRATION_PLACES = 121


def calibration_spacing_um(area_um: Sequence[float], step_um: float) -> float:
    """The spacing of the calibration's places: the spiral spread over the area, 300 µm apart at most.

    At least seven moves (``step_um``, 15 % of the field) apart, so that places do not overlap.
    """
    extent = max(float(area_um[2]) - float(area_um[0]), float(area_um[3]) - float(area_um[1]))
    side = math.isqrt(CALIBRATION_PLACES)
    return max(7.0 * step_um, min(300.0, extent / side))


def _flat_field_camera(stage: Stage, camera: Camera, plan: ScanPlan, folder: ScanFolder,
                       area_um: tuple[float, float, float, float], resumed: bool,
                       um_per_px: float | None = None) -> tuple[Camera, dict[str, Any]]:
    """``camera`` with the scan's flat field applied (:mod:`appliance.scan.flatfield`), and what was decided.

    The second item goes into ``scan.json`` as ``flat_field``: ``applied``, the light's 2nd and 98th
    percentiles, the frames it was measured from and a ``note``.

    A resumed scan reads the flat field its first run saved in the folder, so its frames are corrected as
    before; a folder without one (or with one that cannot be read) measures it again. A light field that cannot
    be trusted leaves the frames uncorrected, logged as a warning: the scan runs as it would without the key.
    So does a camera that fails while the field is measured (after the plan's retries): the fields then meet
    the fault themselves, and the plan's ``faults`` section says what a scan does about it. With ``um_per_px``
    (the calibration's, or the objective's nominal) an area too small to measure on (:func:`check_area`) is
    refused before the stage moves.
    """
    path = folder.root / FLAT_FIELD_FILE
    checked = CheckedCamera(camera, plan.faults.capture_retries, plan.faults.retry_wait_s)
    field: FlatField | None = None
    try:
        if resumed and path.is_file():
            field = _saved_flat_field(path, camera.size_px)
        if field is None:
            if um_per_px is not None:
                w, h = camera.size_px
                check_flat_field_area(area_um, (w * um_per_px, h * um_per_px))
            field = retry_after_stage_faults(stage, plan.faults, "the flat field",
                                             lambda: measure_flat_field(stage, checked, area_um))
            field.save(path)
    except FlatFieldError as exc:
        _log.warning("flat field not applied: %s", exc)
        return camera, {"applied": False, "note": f"refused: {exc}"}
    except CaptureFailed as exc:
        _log.warning("flat field not measured, frames left as they are: %s", exc)
        return camera, {"applied": False, "note": f"not measured: {exc}"}
    lo, hi = field.spread
    info = {"applied": not field.even, "light_p2": round(lo, 4), "light_p98": round(hi, 4), "frames": field.frames}
    if field.even:
        _log.info("flat field: the light is even (%.2f-%.2f of its median): frames left as they are", lo, hi)
        return camera, {**info, "note": "even: frames left as they are"}
    _log.info("flat field: the light is %.2f-%.2f of its median: every frame is divided by it", lo, hi)
    return FlatFieldCamera(camera, field), {**info, "note": "every frame divided by it"}


def _saved_flat_field(path: Path, size_px: tuple[int, int]) -> FlatField | None:
    """The flat field a resumed scan's first run saved, or None (logged): it is then measured again.

    None when the file cannot be read, or holds another frame size (another camera since the first run).
    """
    try:
        field = FlatField.load(path)
    except FlatFieldError as exc:
        _log.warning("%s; measuring the flat field again", exc)
        return None
    h, w = field.light.shape
    if (w, h) != tuple(size_px):
        _log.warning("%s: measured at %d x %d px, the camera gives %d x %d px; measuring the flat field again",
                     path, w, h, size_px[0], size_px[1])
        return None
    return field


def _find_and_calibrate(stage: Stage, camera: Camera, focuser: Focuser, plan: ScanPlan,
                        area_um: tuple[float, float, float, float], calibration: Calibration | None,
                        step_um: float) -> tuple[Calibration, FocusOutcome | None]:
    """The scan's calibration and the slide's focus found for it.

    ``calibration`` if given (the focus is then None), else one measured in focus at the area's middle, or
    where the calibration found something to follow; the focus None when none was found.
    """
    if calibration is not None:
        return calibration, None
    middle = ((area_um[0] + area_um[2]) / 2, (area_um[1] + area_um[3]) / 2)
    stage.move_to_um(x=middle[0], y=middle[1])
    found = find_slide(stage, camera, focuser, plan.focus.search_range_um)
    spacing = calibration_spacing_um(area_um, step_um)

    def measure() -> Calibration:
        return calibrate(stage, camera, step_um=step_um, search=CALIBRATION_PLACES - 1, search_step_um=spacing)

    try:
        cal = measure()
    except CalibrationError as exc:
        # no place of the spiral sharp enough to correlate: the slide may lie beyond the depth of field of where
        # the stage stood (nothing to focus on in the middle), or the middle's reading was wrong, so look for
        # it at other places, and calibrate from each place that finds focus until one calibrates. A reading
        # can be wrong: at 40x a blurred speck read 7 µm below its focus left every place too blurred to
        # correlate (seed 1609); so did the middle's own reading, 7.6 µm below the glass, where the glass lay
        # 12 µm above the stage (held-out seed 3537, `slide.surface_z0_um=102.3`), and the scan stopped
        middle_z = None if found is None else found.z_um
        tries = 0
        for found in slide_places(stage, camera, focuser, plan.focus.search_range_um, middle, spacing, first=1):
            try:
                return measure(), found
            except CalibrationError:
                tries += 1
                if tries >= CALIBRATION_TRIES:
                    break
        note = "" if middle_z is None else f"the middle's focus at z {middle_z:.1f} um left nothing sharp, and "
        raise CalibrationError(f"{exc} ({note}no focus was found over the focus travel either, at "
                               f"{FIND_SLIDE_PLACES} places, that a calibration could follow: is the slide in "
                               "place, and its glass within the focus travel?)") from None
    here = stage.position_um()
    if found is None and math.hypot(here.x_um - middle[0], here.y_um - middle[1]) > 1.0:
        # the middle was bare glass, but the calibration left the stage where it followed something (at 40x a
        # field holds a speck only now and then): focus there, so the scan knows where the slide is, and where
        # its glass is when specks show it, instead of keeping the z the stage happened to stand at. Not in the
        # middle again: the same field searched twice gives the second search's noise its chance (the cheap
        # colour camera at 20x: "specks" 17 µm above the glass, after the first search had found nothing,
        # and every field was viewed there, held-out seed 5207)
        found = find_slide(stage, camera, focuser, plan.focus.search_range_um)
    return cal, found


#: Where the area's middle shows nothing to focus on and the calibration finds no place sharp enough, the slide
#: is looked for at up to this many places of the calibration's spiral (the middle first). At 20x a field of
#: the default slide holds about half a piece of dust: a slide put in by hand 28 µm above the stage's z (7
#: depths of field) was a blur at every one of the calibration's 121 places, and the scan stopped with "the
#: moves never agreed" (seed 1720, `slide.surface_z0_um=118`); the wide search found its glass at the second.
FIND_SLIDE_PLACES = 25
#: ... and calibrated from at most this many of the places that find focus.
CALIBRATION_TRIES = 3


def slide_places(stage: Stage, camera: Camera, focuser: Focuser, search_range_um: float,
                 centre_um: tuple[float, float], spacing_um: float, first: int = 0,
                 places: int = FIND_SLIDE_PLACES) -> Iterator[FocusOutcome]:
    """:func:`find_slide` at the places of a square spiral ``spacing_um`` apart around ``centre_um``.

    Places ``first`` to ``places - 1`` of the spiral (0 is the centre), beyond the travel skipped; yields the
    outcome of each that finds focus, the stage left there. After the last the stage is back at the centre.
    """
    for k, (i, j) in enumerate(spiral_offsets(places)):
        if k < first:
            continue
        try:
            stage.move_to_um(x=centre_um[0] + i * spacing_um, y=centre_um[1] + j * spacing_um)
        except StageLimitError:
            continue
        _log.info("looking for the slide at place %d of %d", k + 1, places)
        found = find_slide(stage, camera, focuser, search_range_um)
        if found is not None:
            yield found
    stage.move_to_um(x=centre_um[0], y=centre_um[1])


def find_slide(stage: Stage, camera: Camera, focuser: Focuser, search_range_um: float) -> FocusOutcome | None:
    """Focus on whatever is in view, searching ``FIND_SLIDE_RANGE_UM`` either side if need be; its outcome, or None.

    The outcome says whether the focus is the glass's (``FocusOutcome.glass``: specks on it were in view).

    A wide search that fails leaves the stage at its best frame; one more wide search is centred there.

    A slide put in by hand sits tens of micrometres from where the last one was in focus, beyond a field's
    search range: the dust that the calibration's phase correlation needs is then blurred away, and no field
    of the scan shows anything to focus on. Without a peak the stage is put back where it was.
    """
    z0 = stage.position_um().z_um
    out = focuser.focus(stage, camera, z0, search_range_um, None)
    if out.ok:
        return out
    wide = max(search_range_um, FIND_SLIDE_RANGE_UM)
    # the wide search only when the usual one finds nothing (see field_focus.FIND_SLIDE_RANGE_UM), and reaches
    # further than it did (a deep-focus objective's usual search is already wider)
    if FIND_SLIDE_RANGE_UM > searched_range_um(focuser, search_range_um):
        out = _seen_or_noise(focuser.focus(stage, camera, z0, wide, None), camera)
    if not out.ok and math.isfinite(out.z_um) and abs(out.z_um - z0) > 1.0:
        # last, around the failed search's best frame (where it left the stage): a glass 75 µm from where the
        # stage stood (z 165 of 0-180, seed 464) lay beyond the wide search, whose curve rose to its end
        # there; the calibration then found "no texture" anywhere
        out = _seen_or_noise(focuser.focus(stage, camera, out.z_um, wide, None), camera)
    if out.ok:
        return out
    if math.isfinite(z0):
        stage.focus_to_um(z0)
    return None


def _seen_or_noise(out: FocusOutcome, camera: Camera) -> FocusOutcome:
    """A wide search's focus, unless the frame there shows nothing: then it is not ``ok`` (a peak of noise).

    Over ±60 µm the curve of a field with nothing in it (one 1.75 µm speck) shows a "peak" somewhere now and then;
    the cheap colour camera's at 40x passed for a focus 23 µm above the glass the stage stood at, and every field
    of that scan was viewed there, its searches failing (held-out seed 5208: 3 of 5 prints). The glass's own
    focus (specks) stands; otherwise a focus needs an object the frame shows (``find_target``), as a field's
    wide search needs the gate's candidates (``FieldFocus._forget_wide_focus``).
    """
    if not out.ok or out.glass:
        return out
    from appliance.focus.scores import find_target

    if find_target(camera.capture().image) is not None:
        return out
    _log.info("the wide search's focus at z %.1f um shows nothing: noise, not the slide", out.z_um)
    return FocusOutcome(out.z_um, out.frames + 1, False, False)


HeightTruth = Callable[[ObjectRecord, np.ndarray], "np.ndarray | None"]


def write_outputs(store: ResultStore, scan_id: int, folder: ScanFolder, fov_um: tuple[float, float],
                  area_um: Sequence[float], summary: Mapping[str, Any],
                  height_rmse: Mapping[int, float] | None = None) -> Path:
    """Write the exports and ``report.html`` of a scan into its folder; return the report's path."""
    from appliance.results.export import scan_annotations, scan_um_per_px, write_export
    from appliance.results.report import write_report

    scan, objects = store.scan(scan_id), store.objects(scan_id)  # read once for the exports and the report
    write_export(folder.root, folder.root, scan_annotations(store, scan), f"tppscan scan {scan_id}", objects=objects,
                 um_per_px=scan_um_per_px(scan))
    return write_report(folder.root, scan, store.fields(scan_id), objects, summary, fov_um, area_um, height_rmse)


def _height_rmse(store: ResultStore, scan_id: int, folder: ScanFolder, height_truth: HeightTruth,
                 summary: dict[str, Any]) -> dict[int, float]:
    """Per structure: RMSE of its height map against the truth; per type, the RMS over its structures."""
    from appliance.results.score import height_errors

    per_obj: dict[int, float] = {}
    per_type: dict[str, list[tuple[float, int]]] = {}
    for o in store.objects(scan_id, "structure"):
        if not o.height_map_path:
            continue
        heights, _ = read_heights(folder.root / o.height_map_path)
        true = height_truth(o, heights)
        if true is None:
            continue
        rmse, n = height_errors(heights, true)
        if n:
            per_obj[o.id] = rmse
            per_type.setdefault(o.cls, []).append((rmse, n))
    summary["height_rmse_um_by_type"] = {
        t: float(np.sqrt(sum(r * r * n for r, n in v) / sum(n for _, n in v))) for t, v in sorted(per_type.items())}
    summary["height_rmse_um_by_structure"] = {str(k): v for k, v in per_obj.items()}
    return per_obj


def sim_height_truth(scope: Any) -> HeightTruth:
    """Height truth from the virtual slide: the true map of the structure a record matched, on its pixels."""
    from appliance.results.score import true_heights_on_pixels

    structures = [o for o in scope.slide.objects if o.kind == "structure"]

    def truth(o: ObjectRecord, heights: np.ndarray) -> np.ndarray | None:
        extra = o.extra or {}
        pos = extra.get("true_position_um")
        if not pos:
            return None
        hit = [s for s in structures if s.bbox_um[0] - 5 <= o.x_um <= s.bbox_um[2] + 5
               and s.bbox_um[1] - 5 <= o.y_um <= s.bbox_um[3] + 5]
        if not hit:
            return None
        s = hit[0]
        return true_heights_on_pixels(s.center_um, s.pitch_um, s.height_um, (pos[0], pos[1]),
                                      scope.camera.size_px, scope.camera.um_per_px,
                                      tuple(extra["crop_origin_px"]), heights.shape)

    return truth


#: A scan warns when fewer than this share of its structures (of at least ``FOCUS_WARNING_MIN_STRUCTURES``) were
#: focused by a search whose curve backed it: over 20 random settings of the virtual microscope (session 26)
#: every scan but two focused all its structures so; under the cheap colour camera, whose frames barely change
#: with focus, 20 of 64 on eight slides (docs/autofocus.md, "A camera that cannot see focus").
FOCUS_WARNING_SHARE = 0.5
FOCUS_WARNING_MIN_STRUCTURES = 3


#: An untrusted focus recorded this close to an end of the focus travel (µm) was searched up to that end.
TRAVEL_END_UM = 1.0


def focus_warnings(structures: int, focus_ok: int, at_travel_end: int = 0,
                   travel_um: Sequence[float] | None = None) -> list[str]:
    """What a scan's summary warns of about its structures' focus (empty when nothing).

    ``at_travel_end`` of the untrusted foci lay at an end of ``travel_um``: where that is at least
    ``FOCUS_WARNING_SHARE`` of them the prints lie beyond what the focus drive reaches, and the warning says so
    rather than blaming the camera
    (a servo geared to 0.5 µm a degree, travel 0-90 µm, under prints focused at 94-104 µm: every search ended
    at 90 µm, held-out seed 2918).
    """
    if structures < FOCUS_WARNING_MIN_STRUCTURES or focus_ok >= FOCUS_WARNING_SHARE * structures:
        return []
    unsure = structures - focus_ok
    head = f"the focus of {unsure} of {structures} structures could not be trusted"
    if travel_um is not None and at_travel_end >= FOCUS_WARNING_SHARE * unsure:
        lo, hi = travel_um
        return [f"{head}: {at_travel_end} of them were searched up to an end of the focus travel ({lo:g} to {hi:g} "
                "um) without a focus, so the prints lie beyond what the focus drive reaches there (a slide or "
                "spacer higher than planned, or a travel set too short); their z, stacks and heights are estimates"]
    return [f"{head} (their focus curves barely changed with z: a camera that blurs more than the objective's depth "
            "of field, or prints too faint to focus on); their z, stacks and heights are estimates"]


def at_travel_end(z_um: Sequence[float], travel_um: Sequence[float] | None) -> int:
    """How many of ``z_um`` lie within ``TRAVEL_END_UM`` of an end of ``travel_um`` (0 when it is unknown)."""
    if travel_um is None:
        return 0
    lo, hi = travel_um
    return sum(min(abs(z - lo), abs(z - hi)) <= TRAVEL_END_UM for z in z_um)


def field_travel_warnings(field_z_um: Sequence[float], travel_um: Sequence[float] | None) -> list[str]:
    """A warning when most fields were viewed at one end of the focus travel (empty otherwise or unknown).

    A field is viewed a few micrometres above its glass; where the glass lies at or past an end of the travel the
    drive stops there for every field, and the prints above it are never in focus. The structures' own warning
    (:func:`focus_warnings`) needs a few of them recorded: at 40x / NA 0.65 with the glass at 90 µm under a servo
    reaching 0-90 µm, all 1,200 fields were viewed at 90 µm, one print of five was recorded and nothing was
    said (held-out seed 3742).
    """
    if travel_um is None or not field_z_um:
        return []
    lo, hi = travel_um
    n = len(field_z_um)
    top = sum(abs(z - hi) <= TRAVEL_END_UM for z in field_z_um)
    bottom = sum(abs(z - lo) <= TRAVEL_END_UM for z in field_z_um)
    pinned, end, side = max((top, hi, "top"), (bottom, lo, "bottom"))
    if pinned < FOCUS_WARNING_SHARE * n:
        return []
    return [f"{pinned} of {n} fields were viewed at the {side} of the focus travel ({end:g} um; the travel is {lo:g} "
            f"to {hi:g} um): the slide lies at or beyond what the focus drive reaches, so prints on it may be missed "
            "or recorded out of focus (bring the slide into the drive's reach with the stage's height or a spacer, "
            "or set the travel to what the drive reaches)"]


#: A scan warns when fewer than this share of its fields were placed by a focus found: their own search, or the
#: focus map built from such searches. The others were viewed at a guess (the start z, or the last focus found),
#: and on a camera whose frames barely change with focus a whole slide can be: 1 of 140 fields on the cheap colour
#: camera at 16x, the rest 4-7 µm below the glass, a 32 µm split ring never seen and nothing said (held-out seed
#: 7617). Over the held-out sweeps 7600-7919 (80 scans of random settings) it fired on 19 (the cheap colour camera's
#: scans, slides with little dust, 40x slides whose fields are mostly bare glass; never the README slide, 96 %),
#: and those held 11 of the 16 prints the sweeps missed: recall 91.7 % on them, 98.9 % on the other 61.
FIELD_FOCUS_WARNING_SHARE = 0.1
#: ... and only with at least this many fields: a small scan's few fields say little.
FIELD_FOCUS_WARNING_MIN_FIELDS = 20
#: The field focus sources that mean a focus was found (``FieldRecord.focus_source``).
FOCUSED_SOURCES = ("autofocus", "map")


def field_focus_counts(sources: Sequence[str]) -> dict[str, int]:
    """How many fields took their z from each focus source, most first (``summary.json``'s ``fields_by_focus``)."""
    return dict(Counter(sources).most_common())


def field_focus_warnings(sources: Sequence[str], field_z_um: Sequence[float]) -> list[str]:
    """A warning when few of the fields were viewed at a focus found (empty otherwise).

    ``sources``: each field's ``focus_source``; ``field_z_um``: each field's z, in the same order.
    """
    n = len(sources)
    focused = sum(src in FOCUSED_SOURCES for src in sources)
    if n < FIELD_FOCUS_WARNING_MIN_FIELDS or focused >= FIELD_FOCUS_WARNING_SHARE * n:
        return []
    guessed = [z for src, z in zip(sources, field_z_um, strict=True) if src not in FOCUSED_SOURCES]
    lo, hi = min(guessed), max(guessed)
    where = f"{lo:.1f} um" if hi - lo < 0.05 else f"{lo:.1f} to {hi:.1f} um"
    return [f"only {focused} of {n} fields were viewed at a focus found (their own search or the focus map): the "
            f"other {n - focused} were viewed at a guess ({where}: the start z or the last focus found), their own "
            "searches, where they ran, finding no focus curve to trust, so small or faint prints there may have been "
            "missed or seen out of focus (a camera that blurs more than the objective's depth of field, a slide "
            "without dust to focus on, or a start z far from the slide: set the stage's z near the slide's focus and "
            "scan again)"]


#: A scan warns when its focus drive's step exceeds this share of the objective's depth of field: every focus is
#: then off by up to half a step, a quarter of the depth of field or more. The servo's whole degree (1 µm) passes up
#: to 20x / NA 0.4 (depth of field 4.1 µm); stock GRBL's Z (250 steps/mm, 4 µm) warns at 10x / NA 0.25 (11 µm),
#: where a scan on it recorded its prints 2.4 µm from focus (median; 0 of 2 within 1 µm, simavr, session 28).
FOCUS_STEP_WARNING_DOF_SHARE = 0.25


def focus_drive(stage: Stage, focuser: Focuser) -> dict[str, Any]:
    """What the scan's config records of its focus drive: its step, the depth of field and the focus travel, µm."""
    travel = getattr(focuser, "z_travel_um", None)
    return {"step_um": _positive_or_none(getattr(stage, "focus_step_um", None)),
            "depth_of_field_um": objective_depth_of_field_um(focuser),
            "travel_z_um": [float(v) for v in travel] if isinstance(travel, (tuple, list)) and len(travel) == 2
            else None}


def objective_depth_of_field_um(focuser: Focuser) -> float | None:
    """The objective's depth of field the focuser searches with, µm; None where it does not say."""
    return _positive_or_none(getattr(focuser, "depth_of_field_um", None))


def _positive_or_none(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        return None
    return float(v)


def focus_step_warnings(drive: Mapping[str, Any] | None) -> list[str]:
    """A warning when the focus drive moves in steps too coarse for the objective (empty otherwise or unknown)."""
    step = (drive or {}).get("step_um")
    dof = (drive or {}).get("depth_of_field_um")
    if step is None or dof is None or step <= FOCUS_STEP_WARNING_DOF_SHARE * dof:
        return []
    return [f"the focus drive moves in {step:.2g} um steps, more than a quarter of the objective's {dof:.2g} um depth "
            f"of field: every focus may be off by up to {step / 2:.2g} um (a Z stepper: more steps per mm, GRBL's "
            "$102; a servo: a finer gearing or resolution)"]


#: A scan warns when its field of view is narrower than this many times the smallest print (``SMALLEST_PRINT_UM``)
#: either way: the gate and the models look for a print against the glass around it, and a frame that a print
#: fills shows no glass, and a print larger than the field is stitched from pieces. Scans that said nothing of
#: it: 60x on a 320 x 240 sensor, a 30 x 22 µm field, found none of three prints (held-out seed 3766); 40x on 2.2
#: µm pixels, 35 x 26 µm, one of five, twice (3790); 40x on 320 x 240, 45 x 34 µm, five of five, 10 µm off their
#: centres (median; 3789). 60 x 45 µm (60x on 640 x 480) found 3 of 3, 2.3 µm off (3748), 88 x 66 µm (20x on
#: 320 x 240) 8 of 8, 1.3 µm off (3757).
FIELD_MIN_PRINTS = 2.0


def start_warnings(config: Mapping[str, Any]) -> list[str]:
    """The warnings a scan's config snapshot gives before its first field (logged, and kept in ``summary.json``).

    On the field's size, the focus drive's step, the exposure and the stage's backlash.
    """
    approach = ((config.get("plan") or {}).get("imaging") or {}).get("approach_um", 0.0)
    return (field_size_warnings(config.get("calibration")) + turned_camera_warnings(config.get("calibration"))
            + focus_step_warnings(config.get("focus_drive"))
            + exposure_warnings(config.get("exposure")) + backlash_warnings(approach, config.get("calibration")))


#: A plan's own field of view may exceed what the calibration says a frame shows by this fraction (its fit's
#: error, a few pixels), not more: wider fields leave strips of the slide unseen between them.
FOV_SLACK = 0.02


def field_grid(plan: ScanPlan, area_um: tuple[float, float, float, float], cal: Calibration) -> Grid:
    """The plan's grid over ``area_um``, its fields laid over what each frame shows whole.

    That is the frame's extent for a camera square to the stage; a turned camera's frame does not show its
    extent's corners (:func:`~appliance.scan.mosaic.covered_fov_um`). Laid over the extent, fields at 45 degrees
    left gaps between them, and half the prints of a slide were never seen (held-out seed 3932).
    """
    seen = covered_fov_um(cal)
    g = plan.grid
    for axis, given, field in (("fov_width", g.fov_width, seen[0]), ("fov_height", g.fov_height, seen[1])):
        if given is not None and given > field * (1 + FOV_SLACK):
            raise ValueError(f"grid.{axis}: {given:g} um is more than the {field:.0f} um each frame shows (from the "
                             f"calibration): the fields would leave gaps between them; leave it out to take the "
                             f"camera's, or give at most {field:.0f}")
    return make_grid(plan.grid, area_um, seen)


#: A camera turned so far on its port that a field's tile (:func:`~appliance.scan.mosaic.covered_fov_um`) is under
#: this share of the frame is worth squaring: a turn of more than about 3 degrees at 4 : 3.
TURNED_MIN_SHARE = 0.9


def turned_camera_warnings(calibration: Mapping[str, Any] | None) -> list[str]:
    """A warning when the camera is turned on its port so far that the scan needs many more fields (empty otherwise).

    The grid lays its fields over the largest box each frame shows whole; a turned frame does not show its
    extent's corners, so the fields are closer together than the frame is wide.
    """
    try:
        cal = Calibration.from_mapping(calibration) if calibration else None
    except (KeyError, TypeError, ValueError):
        return []
    if cal is None:
        return []
    cw, ch = covered_fov_um(cal)
    share = cw * ch / (cal.um_per_px ** 2 * cal.size_px[0] * cal.size_px[1])
    if share >= TURNED_MIN_SHARE:
        return []
    turn = (math.degrees(math.atan2(cal.matrix[1][0], cal.matrix[0][0])) + 45.0) % 90.0 - 45.0
    return [f"the camera is turned {turn:.1f} degrees from square to the stage: each field's tile is {share:.0%} of "
            f"the frame, so the scan takes {1 / share:.1f} times the fields it would; turn the camera on its port "
            "until the stage's x moves run along the frame's rows"]


def field_size_warnings(calibration: Mapping[str, Any] | None) -> list[str]:
    """A warning when the field of view is too narrow to hold the smallest prints whole (empty otherwise)."""
    try:
        w, h = Calibration.from_mapping(calibration).fov_um if calibration else (math.inf, math.inf)
    except (KeyError, TypeError, ValueError):
        return []
    least = FIELD_MIN_PRINTS * SMALLEST_PRINT_UM
    if min(w, h) >= least:
        return []
    return [f"the field of view is {w:.0f} x {h:.0f} um, under {least:g} um across ({FIELD_MIN_PRINTS:g} times the "
            f"smallest print, {SMALLEST_PRINT_UM:g} um): a print fills the frame or is cut by its edges, with no glass "
            "around it to be found against, so prints may be missed, recorded twice or placed off their centres (a "
            "lower magnification or a larger sensor)"]


def summarise(store: ResultStore, scan_id: int, area_um: tuple[float, float, float, float],
              truth: Mapping[str, Any] | None) -> dict[str, Any]:
    """Counts, timings and (with ``truth``) the scores of a scan, as ``summary.json`` holds them."""
    from appliance.results.score import score
    from appliance.results.structures import structure_rows

    scan = store.scan(scan_id)
    flds = store.fields(scan_id)
    objs = store.objects(scan_id)
    stage_t = sorted(f.stage_time_s for f in flds)
    out: dict[str, Any] = {
        "scan_id": scan_id, "name": scan.name, "status": scan.status, "finish_reason": scan.finish_reason,
        "fields_done": len(flds), "fields_planned": scan.fields_planned,
        # what gave the images (a virtual camera over a real stage is a test of the stage, not of a slide)
        **({"camera": scan.config["camera"]} if "camera" in scan.config else {}),
        "structures_recorded": sum(o.kind == "structure" for o in objs),
        "debris_recorded": sum(o.kind == "debris" for o in objs),
        "stage_time_s_total": float(sum(stage_t)),
        "stage_time_s_per_field_median": stage_t[len(stage_t) // 2] if stage_t else None,
        "wall_time_s_total": float(sum(f.wall_time_s for f in flds)),
        # fields the camera failed on and no later run imaged (a rerun into the folder retries them)
        "field_errors": [{"cell": c, "error": m} for c, m in store.field_errors(scan_id)
                         if c not in {f.cell for f in flds}],
    }
    steps: dict[str, float] = {}
    for f in flds:
        for k, v in f.timings.items():
            steps[k] = steps.get(k, 0.0) + v
    out["wall_time_s_by_step"] = {k: round(v, 3) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])}
    structures = [o for o in objs if o.kind == "structure"]
    out["structures_focus_ok"] = sum(not o.focus_unsure for o in structures)
    out["structures"] = structure_rows(structures)  # as structures.csv: each id with its files
    travel = (scan.config.get("focus_drive") or {}).get("travel_z_um")
    ends = at_travel_end([o.z_um for o in structures if o.focus_unsure and o.z_um is not None], travel)
    out["fields_by_focus"] = field_focus_counts([f.focus_source for f in flds])
    out["warnings"] = (start_warnings(scan.config)
                       + field_travel_warnings([f.z_um for f in flds], travel)
                       + field_focus_warnings([f.focus_source for f in flds], [f.z_um for f in flds])
                       + focus_warnings(len(structures), out["structures_focus_ok"], ends, travel)
                       + focus_direction_warnings(glass_offsets_um(structures), untrusted_with_glass(structures),
                                                  (scan.config.get("focus_drive") or {}).get("depth_of_field_um")))
    if truth is not None:
        out.update(score(objs, truth, area_um))
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


#: A scan warns that its focus drive looks reversed when at least :data:`NOT_ABOVE_SHARE` of its prints' foci lie
#: less than :data:`NOT_ABOVE_GLASS_UM` above their glass, and at least :data:`BELOW_GLASS_SHARE` of them more than
#: :data:`BELOW_GLASS_UM` below it. A print stands on its glass, so its focus lies above it by half its height (+1.4
#: to +13.6 µm on the virtual default slides; under +1 µm for 16 of 297 prints of 36 held-out scans, at most a
#: quarter of one scan's, session 40); a drive wired the other way round puts prints below their glass (-0.4 to
#: -12.1 µm on the same slides, session 36), or leaves a search at the glass itself: 7 of 8 prints of seed 4826
#: read under +1 µm, 5 of them below -1 µm, where the older test (a median below -1 µm and two thirds below the
#: glass) stayed silent. Prints all within a micrometre of their glass (a flat grating) say no direction.
NOT_ABOVE_GLASS_UM = 1.0
NOT_ABOVE_SHARE = 2 / 3
BELOW_GLASS_UM = -1.0
BELOW_GLASS_SHARE = 1 / 3


#: Where at least this share of the prints read had a focus no curve backed (``extra.focus_ok`` false), the
#: warning says their foci may say nothing of the drive: on a 4x slide under the cheap colour camera all six
#: prints' foci were untrusted, 4 read below their glass, and the scan told the user to reverse a drive wired
#: the usual way (held-out seed 5413), which would have made every later scan read z the wrong way.
UNTRUSTED_SHARE = 0.5
#: Where the objective's depth of field is at least this many times the tuned one (``TUNED_DEPTH_OF_FIELD_UM``,
#: 10x / NA 0.25), the warning says its foci may say nothing of the drive either: a print's focus lies 1.4-13.6
#: µm above its glass, and a deep field reads foci only to several micrometres, trusted or not. At 4x / NA 0.13
#: (43 µm deep) a drive wired the usual way gave trusted foci 7.8 and 3.7 µm below their glass (held-out seed
#: 5912), and six prints of seed 5916 read -13.9 to +9.7 µm from theirs, four under +1 µm, so the scan told the
#: user to reverse it. Of 368 scans of sessions 42-44, the three that read a normal drive reversed were all at 4x
#: or 5x (43 and 32 µm deep: seeds 5413, 5717, 5916); of the six drives wired the other way round it read so, five
#: were at 10x and 20x (3-11 µm deep) and one at 5x (5404), whose warning this clause only qualifies.
DEEP_FIELD_SCALE = 2.0


def focus_direction_warnings(offsets_um: Sequence[float], untrusted: int = 0,
                             depth_of_field_um: float | None = None) -> list[str]:
    """A warning when the prints focused below their glass, as a focus drive wired the other way round makes them.

    ``offsets_um``: each structure's recorded focus less the glass read beside it (``extra.glass_z_um``);
    ``untrusted``: how many of those structures' foci no curve backed (:func:`untrusted_with_glass`);
    ``depth_of_field_um``: the objective's (the scan's ``focus_drive``), None where unknown.
    """
    if len(offsets_um) < FOCUS_WARNING_MIN_STRUCTURES:
        return []
    n = len(offsets_um)
    not_above = sum(d < NOT_ABOVE_GLASS_UM for d in offsets_um)
    below = sum(d < BELOW_GLASS_UM for d in offsets_um)
    if not_above < NOT_ABOVE_SHARE * n or below < BELOW_GLASS_SHARE * n:
        return []
    median = float(np.median(offsets_um))
    return [f"{not_above} of {n} prints focused no higher than {NOT_ABOVE_GLASS_UM:g} um above the glass they "
            f"stand on, {below} of them more than {-BELOW_GLASS_UM:g} um below it (median {median:+.1f} um), where "
            "a print's focus lies half its height above its glass: the focus drive looks reversed, its z lowering "
            "the focal plane through the slide as it grows (an upright microscope that focuses by raising its "
            "stage, or a servo coupled the other way round); set stage.z_reversed: true in the config (tppscan "
            "scan --z-reversed) and scan again, since the fields' focus, the lenses' phase and the height maps all "
            "read z the other way" + _caveats(untrusted, n, depth_of_field_um)]


CHECK_BY_HAND = "check by hand that a larger z raises the focal plane before reversing it"


def _caveats(untrusted: int, n: int, depth_of_field_um: float | None) -> str:
    """Why the direction warning's prints may say nothing of the drive, and what to do instead; '' when they can.

    Most foci read were guesses (:data:`UNTRUSTED_SHARE`), or the objective's field is too deep to read a focus to
    a micrometre (:data:`DEEP_FIELD_SCALE`), or both.
    """
    why = []
    if untrusted >= UNTRUSTED_SHARE * n:
        why.append(f"the focus of {untrusted} of those {n} could not be trusted (see the warning on that)")
    if depth_of_field_um is not None and depth_of_field_scale(depth_of_field_um) >= DEEP_FIELD_SCALE:
        why.append(f"this objective's depth of field ({depth_of_field_um:.0f} um, against the "
                   f"{TUNED_DEPTH_OF_FIELD_UM:.0f} um of a 10x / NA 0.25 the check was set for) reads a focus only "
                   "to several micrometres")
    if not why:
        return ""
    return f"; but {' and '.join(why)}, so they may say nothing of the drive: {CHECK_BY_HAND}"


class DirectionWatch:
    """Passes the runner's events on, and says in the log once, mid-scan, when its prints say the drive is reversed.

    The summary's warning (:func:`focus_direction_warnings`) comes at the end; a person reading the log over SSH
    sees it as soon as the prints recorded so far show it, and can stop the scan and start it again with
    ``--z-reversed`` instead of waiting for a scan whose foci, lenses and height maps all read z the wrong way.
    """

    def __init__(self, scan_id: int, forward: Callable[[Event], None] | None = None,
                 depth_of_field_um: float | None = None) -> None:
        self.scan_id, self.forward, self.depth_of_field_um = scan_id, forward, depth_of_field_um
        self.offsets_um: list[float] = []
        self.untrusted = 0
        self.said = False

    def __call__(self, event: Event) -> None:
        """Pass ``event`` on; a structure recorded adds its focus less its glass to what is read."""
        if self.forward is not None:
            self.forward(event)
        if self.said or not isinstance(event, ObjectRecorded) or event.obj.kind != "structure":
            return
        self.offsets_um.extend(glass_offsets_um([event.obj]))
        self.untrusted += untrusted_with_glass([event.obj])
        warned = focus_direction_warnings(self.offsets_um, self.untrusted, self.depth_of_field_um)
        if warned:
            self.said = True
            _log.warning("scan %s, after %d prints: %s", self.scan_id, len(self.offsets_um), warned[0])


def glass_offsets_um(structures: Sequence[Any]) -> list[float]:
    """Each structure's recorded focus less the glass read beside it, µm, where both are known.

    The glass is its stack's specks on both sides of its focus (``extra.specks_z_um``) where it showed any, else
    the glass the height map used (which is only looked for below the focus).
    """
    return [d for d in map(_glass_offset_um, structures) if d is not None]


def untrusted_with_glass(structures: Sequence[Any]) -> int:
    """How many of the ``structures`` :func:`glass_offsets_um` reads had a focus no curve backed (``focus_ok``)."""
    return sum(_glass_offset_um(o) is not None and (o.extra or {}).get("focus_ok") is False for o in structures)


def _glass_offset_um(o: Any) -> float | None:
    """One structure's recorded focus less its glass (:func:`glass_offsets_um`), or None where either is unknown."""
    extra = o.extra or {}
    glass = extra.get("specks_z_um")
    glass = glass if glass is not None else extra.get("glass_z_um")
    if o.z_um is None or not isinstance(glass, (int, float)) or not math.isfinite(glass) or not math.isfinite(o.z_um):
        return None
    return float(o.z_um) - float(glass)


def service_hooks(control: Any) -> tuple[Callable[[ScanRunner], None], Callable[[Event], None]]:
    """Connect a run to the service's ``ScanControl`` (``appliance/service/daemon.py``).

    Returns ``(runner_hook, on_event)`` for :func:`run_scan`: after every committed field the control's
    ``checkpoint()`` is asked (it waits while the service is paused; True means stop, and the runner is
    cancelled at its next step boundary), and progress goes to ``control.report``.
    """
    from appliance.scan.events import FieldDone

    holder: dict[str, ScanRunner] = {}

    def hook(runner: ScanRunner) -> None:
        holder["runner"] = runner

    def on_event(event: Event) -> None:
        if not isinstance(event, FieldDone):
            return
        s = event.status
        control.report(scan_id=s.scan_id, fields_done=s.fields_done, fields_total=s.fields_planned,
                       structures=s.structures, eta_s=s.eta_s)
        if control.checkpoint() and "runner" in holder:
            holder["runner"].cancel()

    return hook, on_event

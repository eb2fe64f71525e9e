"""The service's scan side: devices from the config, the product vision and autofocus, the scan runner.

One scan folder per scan under ``<data_dir>/scans/``; all scans in one SQLite database ``<data_dir>/tppscan.db``.
A START resumes the newest unfinished scan (one stopped by STOP, SIGTERM, a crash or a power cut) before it
begins a new one, so no field is lost or done twice. The runner's pause/resume/cancel follow the service's
:class:`ScanControl`; its events feed the progress, the log and the live view.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.schema import Config, ConfigError
from appliance.hardware.stage.base import focus_travel_of
from appliance.service.daemon import DeviceLost, ScanControl
from appliance.service.devices import Devices, camera_description, camera_warning, open_devices
from appliance.service.inputs import free_space_problem, load_calibration, load_models, load_plan
from appliance.service.live_feed import LiveFeed
from appliance.service.logs import log_context, scan_log_file

log = logging.getLogger("tppscan.scan")


@dataclass(frozen=True)
class NextScan:
    """What a START runs: its scan's id, folder, and the fields already done of a scan it resumes.

    The id is the results database's, the one ``tppscan status``, ``logs --scan`` and ``results list`` give.
    """

    scan_id: int
    out_dir: Path
    resumed: bool
    fields_done: int = 0
    fields_total: int = 0
    abandons: int | None = None  # ``start --new``: the unfinished scan it gives up (marked cancelled)


class ScanBackend:
    """What :class:`~appliance.service.daemon.Service` drives: connect, warm, run one scan, close."""

    def __init__(self, cfg: Config, feed: LiveFeed | None = None) -> None:
        self.cfg = cfg
        self.feed = feed
        self.data_dir = Path(cfg.paths.data_dir)
        self.db_path = self.data_dir / "tppscan.db"
        self.devices: Devices | None = None
        self._plan: Any = None
        self._calibration: Any = None  # calibration.file's, else None: each scan measures its own
        self._models: tuple[Any, Any] | None = None
        self._focus_net: Any = None  # loaded by warm() for a `neural` plan, shared by its scans

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def warm(self) -> None:
        """Read the plan and calibration, load models, compile kernels: start-up errors before a device moves."""
        import kernels

        if self._models is not None:
            return
        self._plan = load_plan(self.cfg)
        self._calibration = load_calibration(self.cfg)
        self._load_models()
        kernels.warmup()

    def connect(self) -> None:
        """Open the devices (raises when one is missing; the service retries)."""
        if self.devices is None:
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # the folder's fault, not a device's: retrying cannot mend it
                raise ConfigError(f"paths.data_dir {self.data_dir}: cannot make or use it: {exc.strerror or exc}; "
                                  "make it writable by the service's user (under systemd, a folder outside "
                                  f"/var/lib/tppscan needs ReadWritePaths={self.data_dir})") from None
            self.devices = open_devices(self.cfg)
            log.info("devices: stage %s, camera %s", type(self.devices.stage).__name__,
                     type(self.devices.camera).__name__)
            warning = camera_warning(self.cfg)
            if warning:
                log.warning("%s", warning)

    def close(self) -> None:
        """Close the devices; safe twice."""
        d, self.devices = self.devices, None
        if d is not None:
            d.close()

    def board_messages(self) -> list[str]:
        """``[MSG:...]`` lines the stage board pushed (its button), when the stage is a GRBL board."""
        stage = self.devices.stage if self.devices else None
        take = getattr(stage, "pending_messages", None)
        return list(take()) if take is not None else []

    # -- one scan -----------------------------------------------------------------------------------------------

    def run_scan(self, control: ScanControl) -> str:
        """Resume the newest unfinished scan, or start a new one; completed | cancelled | failed (the report's).

        Raises
        ------
        DeviceLost
            A device went away (or none is connected): the devices are closed, the service reconnects.
        """
        if self.devices is None:
            raise DeviceLost("the hardware is not connected")
        problem = self.preflight()
        if problem:
            raise ValueError(problem)  # a refusal: one line, nothing created
        try:
            return self._run_scan(control, self.devices)
        except Exception as exc:
            if not _device_lost(exc):
                raise
            self.close()  # what is left of the devices; the service connects them again
            raise DeviceLost(f"{exc}") from exc

    def preflight(self) -> str | None:
        """Why a scan cannot start now, in one line (less free space than the plan's ``faults.min_free_mb``)."""
        need = float(self._plan.faults.min_free_mb) if self._plan is not None else 0.0
        return free_space_problem(self.data_dir, need)

    def _run_scan(self, control: ScanControl, dev: Devices) -> str:
        from appliance.scan.session import PreparationStopped, run_scan, scan_area, sim_height_truth

        scope = dev.scope
        nxt = getattr(control, "claimed", None) or self.claim_scan(new=bool(getattr(control, "new_scan", False)))
        area = scan_area(self._plan, self._slide_size(scope))
        out_dir = nxt.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        control.report(scan_id=str(nxt.scan_id), fields_done=nxt.fields_done, fields_total=nxt.fields_total)
        vision, focuser, fmap = self._pipeline(dev)
        if self.feed is not None:
            self.feed.reset_map()
            self.feed.status(area_um=list(area))
        events = _EventBridge(control, self.feed, area)
        stop_watch = threading.Event()
        # every line names the scan by its database id, the one status, logs --scan and results list give
        with scan_log_file(nxt.scan_id, out_dir / "scan.log"), log_context(scan=nxt.scan_id):
            log.info("scan %s %s: plan %r, folder %s", nxt.scan_id, "resumed" if nxt.resumed else "started",
                     self._plan.name, out_dir)
            warning = camera_warning(self.cfg)
            if warning:
                log.warning("%s", warning)
            try:
                outcome = run_scan(dev.stage, dev.camera, vision, focuser, fmap, self._plan, out_dir, self.db_path,
                                   area, calibration=self._calibration, on_event=events, resume=True,
                                   config={"camera": camera_description(self.cfg.stage.kind, self.cfg.camera)},
                                   device_clock=self._device_clock(dev),
                                   truth=scope.truth() if scope is not None else None,
                                   height_truth=sim_height_truth(scope) if scope is not None else None,
                                   runner_hook=lambda r: _watch(control, r, stop_watch, events),
                                   nominal_um_per_px=float(getattr(dev.camera, "um_per_px",
                                                                   self._um_per_px_guess())),
                                   checkpoint=lambda step: _preparing(control, step))
            except PreparationStopped as exc:  # a stop or SIGTERM before the first field: resumable
                log.info("scan %s %s", nxt.scan_id, exc)
                control.report(message=f"stopped in its preparation (scan {nxt.scan_id} stays resumable)")
                return "cancelled"
            stop_watch.set()
            if outcome.scan_id != nxt.scan_id:  # another program wrote the database: the lines before named it wrong
                log.warning("scan %s: the database gave it id %s; the lines above name it %s", outcome.scan_id,
                            outcome.scan_id, nxt.scan_id)
            log_summary_warnings(outcome.scan_id, outcome.summary)
            reason = outcome.status.reason.value if outcome.status.reason is not None else "failed"
            log_scan_end(outcome.scan_id, reason, outcome.summary, out_dir / "report.html")
        s = outcome.summary  # the ended scan's own counts, for tppscan status
        control.report(scan_id=str(outcome.scan_id), fields_done=int(s.get("fields_done") or 0),
                       fields_total=int(s.get("fields_planned") or 0),
                       structures=int(s.get("structures_recorded") or 0),
                       report=str(out_dir / "report.html") if (out_dir / "report.html").is_file() else None)
        if reason == "failed" and _stage_gone(dev):  # the runner ends a scan on a lost board as any failure
            raise DeviceLost(outcome.status.error or "the stage was lost")
        return reason

    # -- helpers --------------------------------------------------------------------------------------------------

    def next_scan(self, new: bool = False) -> NextScan:
        """The newest unfinished scan (resumed), else a new one in a folder named by the UTC time.

        ``new`` (``tppscan start --new``): a new scan whatever is unfinished; the unfinished one it would have
        resumed is named in ``abandons`` (:meth:`run_scan` marks it cancelled). A scan abandoned so is never
        resumed again.

        A new scan's id here is a forecast (the largest plus one): START claims the scan with :meth:`claim_scan`,
        which writes the row (``preparing``, :meth:`_begin`) before its answer, so the answer, the status and the
        scan's log lines name the database's id, and a scan cut off in its preparation is resumed (prepared again)
        in its row and folder.
        """
        last, left = 0, None
        if self.db_path.exists():
            from appliance.results.store import ResultStore

            with ResultStore(self.db_path) as store:
                records = sorted(store.scans(), key=lambda r: r.id, reverse=True)
                left = _resumable(records)
                if left is not None and not new:
                    return NextScan(left.id, Path(left.out_dir), True, len(store.fields(left.id)), left.fields_planned)
                last = records[0].id if records else 0
        return NextScan(last + 1, self._new_folder(), False, abandons=None if left is None else left.id)

    def claim_scan(self, new: bool = False) -> NextScan:
        """What a START runs, its row written: the unfinished scan, else a new one's row (``preparing``).

        START's reply and the status name the id the database gave (a STATUS right after a START named the id
        :meth:`next_scan` foresaw, a few ms before the row was written). ``new``: the unfinished scan it gives up
        is marked cancelled first. Raises where the scan cannot begin (no devices, a plan without an area): before
        any row.
        """
        from appliance.scan.session import scan_area

        if self.devices is None:
            raise DeviceLost("the hardware is not connected")
        area = scan_area(self._plan, self._slide_size(self.devices.scope))  # refused before any row
        nxt = self.next_scan(new=new)
        if nxt.abandons is not None:
            self._abandon(nxt.abandons)
        return nxt if nxt.resumed else self._begin(nxt, area)

    def _begin(self, nxt: NextScan, area: tuple[float, float, float, float]) -> NextScan:
        """A new scan's folder and its database row (``preparing``), before its first log line or move.

        The id is then the database's, not a guess: a scan cut off in its preparation is found unfinished in its
        folder and prepared again there by the next START, so no id names two scans (before session 49 the id was
        guessed, the row written after the calibration, and a scan killed before that left log lines of ``scan=1``
        and a folder without a row: the next START gave id 1 again, to a new folder).
        """
        from dataclasses import replace

        from appliance.results.store import ResultStore
        from appliance.scan.session import begin_scan

        nxt.out_dir.mkdir(parents=True, exist_ok=True)
        with ResultStore(self.db_path) as store:
            scan_id = begin_scan(store, self._plan, nxt.out_dir, area,
                                 {"camera": camera_description(self.cfg.stage.kind, self.cfg.camera)})
        return replace(nxt, scan_id=scan_id)

    def _abandon(self, scan_id: int) -> None:
        """``start --new``: the unfinished scan given up, marked cancelled (its fields and records kept)."""
        from appliance.results.store import ABANDONED, ResultStore

        with ResultStore(self.db_path) as store:
            store.finish_scan(scan_id, "cancelled", ABANDONED)
        log.warning("scan %s abandoned (tppscan start --new): marked cancelled, its fields and records kept; it is "
                    "not resumed again", scan_id)

    def _new_folder(self) -> Path:
        """A new scan folder under ``<data_dir>/scans``, named by the UTC time."""
        scans = self.data_dir / "scans"
        name = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        out = scans / name
        n = 1
        while out.exists():
            n += 1
            out = scans / f"{name}-{n}"
        return out

    def _load_models(self) -> None:
        """Load the models the plan's scans run, once (the focus net for `neural`).

        ``config check``'s loader: a missing or broken one stops the service at start (ConfigError naming the key
        and the file).
        """
        detector, classifier, self._focus_net = load_models(self.cfg, self._plan.focus.strategy)
        self._models = (detector, classifier)

    def _scan_um_per_px(self, dev: Devices) -> float:
        """The pixel size the vision and focus are told: the calibration's, as ``tppscan scan --calibration``."""
        if self._calibration is not None:
            return float(self._calibration.um_per_px)
        return float(getattr(dev.camera, "um_per_px", self._um_per_px_guess()))

    def _um_per_px_guess(self) -> float:
        o = self.cfg.optics
        return o.pixel_um / o.magnification

    def _device_clock(self, dev: Devices) -> Callable[[], float] | None:
        """The virtual microscope's clock where the stage is virtual (its moves take virtual time); else None."""
        return dev.scope.clock.now_s if dev.scope is not None and self.cfg.stage.kind == "sim" else None

    def _pipeline(self, dev: Devices) -> tuple[Any, Any, Any]:
        from appliance.scan.adapters import (
            AutofocusFocuser,
            FocusMapAdapter,
            PipelineVision,
            focus_estimator,
            scan_pipeline,
        )

        if self._models is None:
            self._load_models()
        assert self._models is not None
        um_per_px = self._scan_um_per_px(dev)
        fmap = FocusMapAdapter()
        travel = focus_travel_of(dev.stage)
        clock = self._device_clock(dev)
        from appliance.focus.reference import reference_heights

        refs = reference_heights(self._plan.focus.reference_heights, virtual=dev.scope is not None,
                                 sigma_um=self._plan.focus.reference_height_sigma_um)
        estimator = focus_estimator(self._plan.focus.strategy, um_per_px, self._focus_net)  # for `neural`
        dof = self._depth_of_field_um(dev, um_per_px)
        from appliance.focus.reader import device_reader

        reader = device_reader(dev.scope, um_per_px, dof)
        focuser = AutofocusFocuser(self._plan.focus.strategy, travel, fmap, estimator=estimator, now_s=clock,
                                   reference_heights=refs,
                                   reading_bias=dev.scope is not None,
                                   depth_of_field_um=dof, um_per_px=um_per_px, reader=reader,
                                   map_trust=self._plan.focus.map_trust)
        detector, classifier = self._models
        vision = PipelineVision(um_per_px, scan_pipeline(um_per_px, detector, classifier))
        return vision, focuser, fmap

    def _depth_of_field_um(self, dev: Devices, um_per_px: float) -> float:
        """The objective's depth of field, which the autofocus's steps and ranges follow.

        The virtual microscope states its optics; a real one is described by ``optics.na`` in the config
        (the simulator's formula, at its green default wavelength).
        """
        if dev.scope is not None:
            return float(dev.scope.camera.optics.depth_of_field_um(um_per_px))
        from appliance.sim.optics import depth_of_field_um

        return depth_of_field_um(self.cfg.optics.na, um_per_px)

    @staticmethod
    def _slide_size(scope: Any) -> tuple[float, float] | None:
        if scope is None:
            return None
        p = scope.slide.params
        return (float(p.width_um), float(p.height_um))


def _device_lost(exc: BaseException) -> bool:
    """Whether a scan's error is a device gone away (the stage's port, the camera), so reconnecting may mend it."""
    from appliance.hardware.camera.base import CameraError
    from appliance.hardware.stage.grbl_link import StageConnectionError

    return isinstance(exc, (StageConnectionError, CameraError))


def _stage_gone(dev: Devices) -> bool:
    """Whether the stage no longer answers, its port gone (asked after a failed scan).

    The runner records a board lost mid-field as the scan's failure and returns: the service stayed idle on a
    closed port, and every later START failed on it until a restart, where the docs promise a reconnect.
    """
    try:
        dev.stage.position_um()
    except Exception as exc:  # noqa: BLE001 - any other fault is not a lost device: the scan's own line says it
        return _device_lost(exc)
    return False


def _resumable(records: list[Any]) -> Any:
    """The newest scan the service resumes (``ScanRecord.resumable``); or None."""
    return next((rec for rec in records if rec.resumable), None)


class _EventBridge:
    """Runner events -> the service's progress and the live view (frames by reference; the page draws later)."""

    def __init__(self, control: ScanControl, feed: LiveFeed | None, area: tuple[float, float, float, float]) -> None:
        self.control = control
        self.feed = feed
        self.area = area
        self.fov: tuple[float, float] = (0.0, 0.0)

    def __call__(self, event: Any) -> None:
        from appliance.scan.events import FieldDone, FieldFailed, FrameAnalysed, ObjectRecorded, StageFault

        if isinstance(event, FrameAnalysed):
            if self.feed is not None:
                self.feed.frame(event.frame.image, event.detections)
        elif isinstance(event, FieldDone):
            st = event.status
            f = event.field
            if self.feed is not None:  # before the report: the page's progress and map move together
                w, h = self.fov
                self.feed.field(f.x_um - w / 2, f.y_um - h / 2, w, h, f.z_um)
            self.control.report(scan_id=str(st.scan_id), fields_done=st.fields_done, fields_total=st.fields_planned,
                                structures=st.structures, eta_s=st.eta_s)
        elif isinstance(event, FieldFailed):  # the journal is where an SSH user looks for what went wrong
            log.warning("field failed cell=%d error=%s", event.cell, event.error)
        elif isinstance(event, StageFault):
            log.warning("stage fault cell=%d error=%s recovered=%s; the field is redone", event.cell, event.error,
                        event.action)
        elif isinstance(event, ObjectRecorded):
            o = event.obj
            if o.kind == "structure":  # one line each, as the docs promise; dust is counted at the end only
                with log_context(field=o.cell):
                    log.info("structure found type=%s id=%d x_um=%.0f y_um=%.0f z_um=%s%s", o.cls, o.id, o.x_um,
                             o.y_um, "-" if o.z_um is None else f"{o.z_um:.1f}",
                             " focus=unsure" if o.focus_unsure else "")
            if self.feed is not None:
                self.feed.obj(o.x_um, o.y_um, o.kind, o.cls)


def log_scan_end(scan: object, reason: str, summary: dict[str, Any], report: Path) -> None:
    """The scan's last line, in the journal and its scan.log: how it ended, its counts and its report."""
    n = summary.get("structures_recorded", 0)
    log.info("scan %s %s: %s of %s fields, %d structure%s, %s debris; report %s", scan, reason,
             summary.get("fields_done", "?"), summary.get("fields_planned", "?"), n, "" if n == 1 else "s",
             summary.get("debris_recorded", "?"), report)


def log_summary_warnings(scan: object, summary: dict[str, Any]) -> None:
    """A finished scan's warnings (``summary.json``'s ``warnings``) to the journal and the scan's own log."""
    for w in summary.get("warnings") or ():
        log.warning("scan %s: %s", scan, w)


def _preparing(control: ScanControl, step: str | None) -> bool:
    """The scan's preparation asks between its steps and moves: wait while paused; True to stop.

    A step's name goes to the status (``scanning: scan 3, preparing: calibration``), which said ``0 of 0 fields``
    for minutes; before session 49 the preparation asked nothing, so stop, SIGTERM and pause waited for its end.
    """
    if step is not None:
        control.report(message=f"preparing: {step}")
    return control.checkpoint()


def _watch(control: ScanControl, runner: Any, done: threading.Event, events: _EventBridge) -> None:
    """Follow pause/resume/stop requests onto the runner from a small thread (the runner checks between steps)."""
    control.report(message="scanning")  # prepared: the fields follow (no longer "preparing: ...")
    grid = getattr(runner, "grid", None)
    if grid is not None and hasattr(grid, "fov_um"):
        events.fov = (float(grid.fov_um[0]), float(grid.fov_um[1]))

    def follow() -> None:
        paused = False
        while not done.wait(0.1):
            if control.stop_requested.is_set():
                runner.cancel()
                return
            if control.paused and not paused:
                runner.pause()
                paused = True
            elif not control.paused and paused:
                runner.resume()
                paused = False

    threading.Thread(target=follow, name="scan-control", daemon=True).start()

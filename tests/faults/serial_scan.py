"""A whole scan with the real stage firmware in simavr as the stage, through the fault transport.

:func:`simavr_rig` starts the firmware in simavr (unpaced: ``--fast``), places its virtual limit switches as
``tppscan scan --stage simavr`` does, opens ``GrblStage`` through :func:`~tests.faults.transport.faulty_opener`
(every byte between driver and board passes the fault switches), homes and parks focus. :func:`scan` runs a
small virtual slide on it with the ground-truth vision and focus doubles (the fault under test is the serial
line, not vision). :func:`fake_grbl_rig` does the same with the stock-GRBL fake (Z stepper focus; it
power-cycles when its port comes back). :class:`AtMotion` times a fault to the protocol: armed once a given
number of fields are committed, it fires at the first status report that says ``Run`` (the carriage is
moving: a field's move).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.hardware.stage.base import Stage
from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
from appliance.hardware.stage.offset import OffsetStage
from appliance.scan.calibration import Calibration
from appliance.scan.coupled import SIMAVR_SWITCH_STEPS, ReportedPositionStage
from appliance.scan.events import Event, FieldDone, StageFault
from appliance.scan.plan import FaultsPlan, FocusPlan, ScanPlan
from appliance.scan.runner import ScanRunner
from appliance.scan.session import ScanOutcome, run_scan, scan_area, sim_microscope
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision
from appliance.sim.camera import SimCamera
from tests.faults.scans import ScanContents, check_scan
from tests.faults.transport import Faults, FaultyTransport, faulty_opener

SEED = 5
# a 1 x 1 mm slide: 15 fields, two structures and a little debris (as the other scan-level fault tests)
SLIDE = {"slide": {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 2, "debris_per_mm2": 3.0}}
# short waits: the board is a simulator on a pty (the defaults are for a real USB board)
STAGE = dict(feed_xy_mm_per_min=1200.0, servo_settle_s=0.0, reply_timeout_s=1.0, handshake_timeout_s=3.0,
             homing_timeout_s=60.0, move_timeout_margin_s=5.0, reconnect_delay_s=0.3, reconnect_attempts=3)
PARK_Z_UM = 90.0


def plan(**faults: Any) -> ScanPlan:
    """The scan plan, with ``faults`` overriding the plan's ``faults`` section (a short stage retry wait)."""
    return ScanPlan(name="serial-faults", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                    faults=FaultsPlan(**{"stage_retry_wait_s": 0.3, **faults}))


@dataclass
class Rig:
    """The board, the open stage and the fault switches between them."""

    board: Any
    stage: Stage
    faults: Faults


@contextlib.contextmanager
def simavr_rig(firmware_paths: tuple[Path, Path], faults: Faults | None = None) -> Iterator[Rig]:
    """The firmware in simavr, driven through a fault transport, homed, focus parked; stopped on exit."""
    from appliance.hardware.stage.simavr_board import SimavrBoard

    faults = faults or Faults()
    with SimavrBoard(*firmware_paths, realtime=False) as board:
        for axis in "xyz":
            board.place_limit_switch(axis, -SIMAVR_SWITCH_STEPS, "-")
        stage = GrblStage(GrblStageConfig(port=board.pty_path, **STAGE), opener=faulty_opener(faults))
        with stage:
            stage.home()
            stage.focus_to_um(PARK_Z_UM)
            yield Rig(board, stage, faults)
            faults.unplugged = faults.blackhole = False   # let close() and the board's stop run clean


# stock GRBL's travel is 0..-200 mm on every axis: the slide (and focus) well inside it
FAKE_OFFSET_UM = (-50_000.0, -50_000.0, -100_000.0)


@contextlib.contextmanager
def fake_grbl_rig(board: Any, faults: Faults | None = None) -> Iterator[Rig]:
    """``GrblStage`` on the stock-GRBL fake (``tests/stage/fake_grbl.py``, Z stepper focus) through a fault
    transport, homed, focus parked; the rig's stage is the :class:`OffsetStage` the scan sees
    (stock GRBL homes to its + ends, so its machine coordinates run negative: the offset plays the work offset)."""
    faults = faults or Faults()
    cfg = GrblStageConfig(port=board.path, **{**STAGE, "feed_z_mm_per_min": 600.0})
    inner = GrblStage(cfg, opener=faulty_opener(faults))
    with inner:
        stage = OffsetStage(inner, FAKE_OFFSET_UM)
        stage.home()
        stage.focus_to_um(PARK_Z_UM)
        yield Rig(board, stage, faults)  # type: ignore[arg-type]
        faults.unplugged = faults.blackhole = False


@dataclass
class Log:
    """What a scan said: its events (in order) and the runner (for the cell in flight)."""

    events: list[Event] = field(default_factory=list)
    runner: ScanRunner | None = None
    listeners: list[Callable[[Event], None]] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        for fn in self.listeners:
            fn(event)

    def hook(self, runner: ScanRunner) -> None:
        self.runner = runner

    def cell_in_flight(self) -> int | None:
        return None if self.runner is None else self.runner.status().cell

    def done_cells(self) -> list[int]:
        return [e.field.cell for e in self.events if isinstance(e, FieldDone)]

    def stage_faults(self) -> list[StageFault]:
        return [e for e in self.events if isinstance(e, StageFault)]


def scan(rig: Rig, out: Path, plan_: ScanPlan, log: Log | None = None,
         calibration: Calibration | None = None) -> tuple[ScanOutcome, float]:
    """Scan the small slide on ``rig`` into ``out/scan`` (database ``out/t.db``); returns (outcome, wall s)."""
    scope = sim_microscope(SEED, SLIDE)
    log = log or Log()
    cam = SimCamera(ReportedPositionStage(rig.stage), scope.slide, scope.camera.optics, scope.camera.sensor,
                    seed=SEED)
    p = scope.slide.params
    t0 = time.monotonic()
    with cam:
        outcome = run_scan(rig.stage, cam, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan_,
                           out / "scan", out / "t.db", scan_area(plan_, (p.width_um, p.height_um)),
                           calibration=calibration, on_event=log, runner_hook=log.hook, truth=scope.slide.truth())
    took = time.monotonic() - t0
    driver = getattr(rig.stage, "inner", rig.stage)
    s = outcome.summary
    # the figures docs/reliability.md quotes (pytest -s)
    print(f"\n  scan: {outcome.status.reason.value if outcome.status.reason else None}, {s['fields_done']}/"
          f"{s['fields_planned']} fields, {s['structures_recorded']} structures, {took:.1f} s; driver reconnects "
          f"{getattr(driver, 'reconnects', '-')}; faults the runner met: "
          f"{[(f.cell, f.error.split(':')[0], f.action) for f in log.stage_faults()]}", flush=True)
    return outcome, took


def contents(out: Path) -> ScanContents:
    """The one scan in ``out``, checked whole (integrity ``ok``, every named file opens)."""
    problems, scans = check_scan(out / "scan", out / "t.db")
    assert not problems, problems
    assert len(scans) == 1, f"{len(scans)} scans in one folder"
    return scans[0]


class AtMotion:
    """Fire ``action(transport)`` once: at the first ``<Run`` report after ``after_fields`` fields committed.

    Attach with :meth:`attach`; :attr:`cell` is the field in flight when it fired.
    """

    def __init__(self, after_fields: int, action: Callable[[FaultyTransport], None]) -> None:
        self.after_fields = after_fields
        self.action = action
        self.armed = after_fields == 0
        self.cell: int | None = None
        self.fired_after: int | None = None  # events logged before it fired
        self._log: Log | None = None

    def attach(self, log: Log, faults: Faults) -> AtMotion:
        self._log = log
        log.listeners.append(self._on_event)
        previous = faults.on_board_line

        def on_line(line: bytes, transport: FaultyTransport) -> None:
            if previous is not None:
                previous(line, transport)
            self._on_line(line, transport)
        faults.on_board_line = on_line
        return self

    @property
    def fired(self) -> bool:
        return self.fired_after is not None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, FieldDone) and event.status.fields_done >= self.after_fields:
            self.armed = True

    def _on_line(self, line: bytes, transport: FaultyTransport) -> None:
        if self.armed and not self.fired and line.startswith(b"<Run") and self._log is not None:
            self.cell = self._log.cell_in_flight()
            self.fired_after = len(self._log.events)
            self.action(transport)

"""Serial faults inside a whole scan (issue 12, "Serial"): the real firmware in simavr as the stage.

Each test scans the same small virtual slide (15 fields, two structures) with ``GrblStage`` driving the
firmware through the fault transport, puts one kind of fault on the line mid-scan, and compares the result
with an uninterrupted scan of the slide on the same firmware: the same cells, each committed once, the same
structures by type and position and the same debris (``scans.differences``). Where the runner had to bring the
stage back, the field in flight must be the one redone and committed next (never skipped, never twice).

The stage faults the driver cannot absorb reach the runner, which recovers (reopen, re-home, resynchronise)
and redoes the field, or stops, as the plan's ``faults`` section says (``appliance/scan/stage_recovery.py``).
"""

from __future__ import annotations

import threading
import time

import pytest

from appliance.results.store import ResultStore
from appliance.scan.calibration import Calibration
from appliance.scan.events import FieldDone, StageFault
from appliance.scan.runner import FinishReason
from tests.faults.scans import ScanContents, differences
from tests.faults.serial_scan import AtMotion, Log, contents, fake_grbl_rig, plan, scan, simavr_rig
from tests.faults.transport import Faults, FaultyTransport
from tests.stage.fake_grbl import FakeGrbl

pytestmark = [pytest.mark.simavr, pytest.mark.slow]

RESET = b"\x18"


@pytest.fixture(scope="module")
def reference(firmware_paths, tmp_path_factory) -> tuple[ScanContents, Calibration, float]:
    """The uninterrupted scan on the firmware: its contents, its calibration (shared by the faulted scans,
    so their positions are comparable to the micrometre) and its wall time."""
    out = tmp_path_factory.mktemp("reference")
    with simavr_rig(firmware_paths) as rig:
        outcome, took = scan(rig, out, plan())
        assert rig.stage.reconnects == 0
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    ref = contents(out)
    assert len(ref.structures) == 2 and sorted(ref.cells) == list(range(ref.fields_planned))
    with ResultStore(out / "t.db") as store:
        cal = Calibration.from_mapping(store.scan(outcome.scan_id).config["calibration"])
    return ref, cal, took


def _vanish(faults: Faults, seconds: float) -> None:
    """The port disappears (reads, writes and opens fail) and comes back after ``seconds``."""
    faults.unplugged = True
    threading.Timer(seconds, lambda: setattr(faults, "unplugged", False)).start()


def _blackhole(faults: Faults, seconds: float | None) -> None:
    """Nothing the board sends reaches the driver, for ``seconds`` (None: until the test says)."""
    faults.blackhole = True
    if seconds is not None:
        threading.Timer(seconds, lambda: setattr(faults, "blackhole", False)).start()


def _redone(log: Log, trigger: AtMotion) -> None:
    """The field in flight when the fault fired was brought back and committed next, once."""
    assert trigger.fired and trigger.cell is not None, "the fault never fired: the test proved nothing"
    after = log.events[trigger.fired_after:]
    recovered = [e for e in after if isinstance(e, StageFault)]
    assert recovered and recovered[0].cell == trigger.cell, [(e.cell, e.error) for e in recovered]
    done = [e.field.cell for e in after if isinstance(e, FieldDone)]
    assert done[0] == trigger.cell, f"fault in field {trigger.cell}, next committed {done[:3]}"
    assert log.done_cells().count(trigger.cell) == 1


def test_port_vanishes_mid_move_briefly_the_driver_reconnects_and_the_scan_goes_on(firmware_paths, tmp_path,
                                                                                   reference):
    ref, cal, _ = reference
    log = Log()
    with simavr_rig(firmware_paths) as rig:
        trigger = AtMotion(3, lambda t: _vanish(rig.faults, 0.5)).attach(log, rig.faults)
        outcome, _took = scan(rig, tmp_path, plan(), log, cal)
        reconnects = rig.stage.reconnects
    assert trigger.fired
    # the chip kept running (a USB-serial hiccup): the driver re-found the port, re-handshook and finished
    # the move itself; the runner never saw a fault, and the field in flight went on to be committed once
    assert reconnects == 1 and not log.stage_faults()
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    assert log.done_cells().count(trigger.cell) == 1
    assert differences(contents(tmp_path), ref) == []


def test_port_gone_past_the_drivers_reconnects_the_scan_reopens_rehomes_and_redoes_the_field(
        firmware_paths, tmp_path, reference):
    ref, cal, _ = reference
    log = Log()
    with simavr_rig(firmware_paths) as rig:
        # gone 2.5 s: longer than the driver's 3 reconnects 0.3 s apart, shorter than its first retry by the runner
        trigger = AtMotion(3, lambda t: _vanish(rig.faults, 2.5)).attach(log, rig.faults)
        outcome, _took = scan(rig, tmp_path, plan(stage_retry_wait_s=2.0), log, cal)
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    faults = log.stage_faults()
    assert [f.action for f in faults] == ["reopened and homed"], [(f.error, f.action) for f in faults]
    assert "StageConnectionError" in faults[0].error
    _redone(log, trigger)
    assert differences(contents(tmp_path), ref) == []


def test_board_reset_mid_scan_rehomes_and_the_scan_continues(firmware_paths, tmp_path, reference):
    ref, cal, _ = reference
    log = Log()
    with simavr_rig(firmware_paths) as rig:
        # behind the driver's back, as a brown-out or the watchdog would: once in motion (ALARM:3, then the
        # banner), once at rest while a focus line is on its way (the banner alone)
        moving = AtMotion(3, lambda t: t.inner.write(RESET)).attach(log, rig.faults)
        armed = {"after": 9, "fired_cell": None}

        def reset_on_focus(data: bytes, t: FaultyTransport) -> None:
            if armed["fired_cell"] is None and data.startswith(b"M280") and len(log.done_cells()) >= armed["after"]:
                armed["fired_cell"] = log.cell_in_flight()
                t.inner.write(RESET)
        rig.faults.on_write = reset_on_focus
        outcome, _took = scan(rig, tmp_path, plan(), log, cal)
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    faults = log.stage_faults()
    assert [f.action for f in faults] == ["homed", "homed"], [(f.error, f.action) for f in faults]
    assert all("StageResetError" in f.error or "StageAlarm" in f.error for f in faults)
    _redone(log, moving)
    assert faults[1].cell == armed["fired_cell"] and log.done_cells().count(armed["fired_cell"]) == 1
    assert differences(contents(tmp_path), ref) == []


def test_garbage_split_and_non_utf8_lines_during_a_scan_change_no_result(firmware_paths, tmp_path, reference):
    ref, cal, _ = reference
    log = Log()
    with simavr_rig(firmware_paths, Faults(seed=1212)) as rig:
        rig.faults.split = 3      # every read hands over 1..3 bytes
        rig.faults.noise = 0.1    # a garbage line (random bytes, 0x80..0xFF and control bytes) before 1 line in 10
        # and once, in a field's move, more in a row than the driver's repeats absorb, so the runner surely
        # meets one (the random ones reach it only now and then)
        burst = rig.stage.config.garbled_repeats + 1
        twice = AtMotion(4, lambda t: setattr(rig.faults, "garble_next", burst)).attach(log, rig.faults)
        # the driver asks again up to twice after a garbled reply; on a line this noisy all three tries fail
        # about once in a thousand exchanges, a field with a structure makes a few hundred, and the plan allows
        # a field more recoveries than the default 3, as a lab with a noisy cable would set it
        outcome, _took = scan(rig, tmp_path, plan(stage_recoveries=10), log, cal)
        injected = rig.faults.noise_lines
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    faults = log.stage_faults()
    print(f"\n{injected} garbage lines injected; {len(faults)} reached the runner "
          f"({sorted({f.action for f in faults})}), the driver absorbed the rest (asked again, drained)")
    assert injected > 0 and twice.fired
    assert all(f.error.startswith("GarbledLineError") and f.action == "resynchronised" for f in faults), faults
    assert twice.cell in [f.cell for f in faults] and log.done_cells().count(twice.cell) == 1
    assert differences(contents(tmp_path), ref) == []


def test_a_reply_that_stops_briefly_is_a_timeout_then_the_scan_recovers(firmware_paths, tmp_path, reference):
    ref, cal, _ = reference
    log = Log()
    with simavr_rig(firmware_paths) as rig:
        trigger = AtMotion(3, lambda t: _blackhole(rig.faults, 1.5)).attach(log, rig.faults)
        outcome, _took = scan(rig, tmp_path, plan(), log, cal)
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    faults = log.stage_faults()
    assert faults and "StageTimeout" in faults[0].error, [(f.error, f.action) for f in faults]
    _redone(log, trigger)
    assert differences(contents(tmp_path), ref) == []


@pytest.mark.parametrize("on_stage_error", ["stop", "recover"])
def test_a_reply_that_never_comes_stops_the_scan_in_bounded_time_and_a_rerun_completes_it(
        firmware_paths, tmp_path, reference, on_stage_error):
    ref, cal, t_ref = reference
    p = plan(on_stage_error=on_stage_error)
    log = Log()
    with simavr_rig(firmware_paths) as rig:
        gone_at: list[float] = []

        def silence(t: FaultyTransport) -> None:
            gone_at.append(time.monotonic())
            _blackhole(rig.faults, None)
        trigger = AtMotion(3, silence).attach(log, rig.faults)
        outcome, _took = scan(rig, tmp_path, p, log, cal)
        stopped_after = time.monotonic() - gone_at[0]
        first = contents(tmp_path)
        rig.faults.blackhole = False
        rerun, _ = scan(rig, tmp_path, p, Log(), cal)
    assert trigger.fired
    st = outcome.status
    assert st.reason is FinishReason.FAILED and st.error is not None and "\n" not in st.error
    assert st.error.startswith("StageFaultLimit: stage fault at field") and "StageTimeout" in st.error, st.error
    assert "run the scan again" in st.error
    # never a hang: each fault costs one reply timeout (1 s) and one retry wait (0.3 s), the stop a few more;
    # "stop" stops at the first, "recover" after faults.stage_recoveries (3) more
    bound = {"stop": 10.0, "recover": 20.0}[on_stage_error]
    print(f"  {on_stage_error}: stopped {stopped_after:.1f} s after the line went silent ({st.stage_faults} faults, "
          f"{len(first.cells)} fields kept): {st.error}")
    assert stopped_after < bound, f"the scan took {stopped_after:.1f} s to stop after the line went silent"
    assert st.stage_faults == {"stop": 1, "recover": 4}[on_stage_error]
    # the committed fields are kept (the field in flight is not among them) and the rerun resumes from them
    assert first.status == "failed" and len(first.cells) >= 3 and trigger.cell not in first.cells
    assert rerun.status.reason is FinishReason.COMPLETED, rerun.status.error
    final = contents(tmp_path)
    assert final.cells[:len(first.cells)] == first.cells
    assert differences(final, ref) == []


# -- stock GRBL (the fake): a replugged Uno comes back power-cycled -----------------------------------------

@pytest.fixture(scope="module")
def fake_reference(tmp_path_factory) -> tuple[ScanContents, Calibration]:
    """The uninterrupted scan on the stock-GRBL fake (its own reference: a stepper focus, another step grid)."""
    out = tmp_path_factory.mktemp("fake-reference")
    board = FakeGrbl(out).start()
    try:
        with fake_grbl_rig(board) as rig:
            outcome, _took = scan(rig, out, plan())
    finally:
        board.stop()
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    ref = contents(out)
    assert len(ref.structures) == 2 and sorted(ref.cells) == list(range(ref.fields_planned))
    with ResultStore(out / "t.db") as store:
        cal = Calibration.from_mapping(store.scan(outcome.scan_id).config["calibration"])
    return ref, cal


def test_stock_grbl_power_cycled_by_a_replug_mid_move_is_rehomed_and_the_scan_continues(
        tmp_path, fake_reference, fake_grbl):
    ref, cal = fake_reference
    log = Log()
    with fake_grbl_rig(fake_grbl) as rig:
        def pull(t: FaultyTransport) -> None:
            rig.faults.unplugged = True
            fake_grbl.unplug()

            def back() -> None:
                rig.faults.unplugged = False
                fake_grbl.replug()   # an Uno resets when its port opens: power-up, Alarm (homing lock), at 0
            threading.Timer(0.5, back).start()
        trigger = AtMotion(3, pull).attach(log, rig.faults)
        outcome, _took = scan(rig, tmp_path, plan(), log, cal)
        reconnects = rig.stage.inner.reconnects
    assert outcome.status.reason is FinishReason.COMPLETED, outcome.status.error
    # the driver got the port back (one reconnect) to a board that had lost its position and said so (Alarm);
    # the runner homed it and redid the field in flight
    faults = log.stage_faults()
    assert reconnects == 1 and [f.action for f in faults] == ["homed"], [(f.error, f.action) for f in faults]
    assert "StageAlarm" in faults[0].error
    _redone(log, trigger)
    assert differences(contents(tmp_path), ref) == []

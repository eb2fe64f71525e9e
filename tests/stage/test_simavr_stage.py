"""Must-show: the REAL compiled firmware in simavr, on a pty, driven by GrblStage.

Step pulses are counted by the simavr runner from the step and direction pins; the servo pulse is read
from the timer registers. Nothing here is mocked: if the firmware or the runner is missing, these fail.
"""

import random
import threading
import time

import pytest

from appliance.hardware.stage.base import StageAlarm, StageLimitError
from appliance.hardware.stage.grbl_protocol import LineKind, classify

pytestmark = pytest.mark.simavr


def steps_for(um: float, steps_per_mm: float) -> int:
    """The firmware's target in steps: the 3-decimal mm the driver sends, times steps/mm, rounded."""
    return round(round(um / 1000.0, 3) * steps_per_mm)


def wait_state(stage, states, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while True:
        report = stage.status()
        if report.state in states:
            return report
        assert time.monotonic() < deadline, f"never reached {states}: {report.raw}"
        time.sleep(0.01)


def test_handshake_sees_our_firmware(simstage):
    assert simstage.build_info.is_grbl_11
    assert "tppscan" in simstage.build_info.build_name
    assert simstage.focus_mode == "servo"
    assert simstage.status().alarm  # homing enabled: locked at power-up until homed or unlocked


def test_homing_finds_the_switches(simboard, simstage, switches):
    with pytest.raises(StageAlarm, match="error:9"):
        simstage.move_to_um(x=1000)
    spm = simstage.board_settings[100], simstage.board_settings[101]
    pulloff = simstage.board_settings[27]
    # the carriage powers up 3 mm (X) and 2 mm (Y) above its switches
    thresholds = {"x": -round(3 * spm[0]), "y": -round(2 * spm[1])}
    with switches(simboard, thresholds) as sw:
        pos = simstage.home()
    assert sw.presses["x"] >= 2 and sw.presses["y"] >= 2  # fast seek, then the slow locate
    assert (pos.x_um, pos.y_um) == (0.0, 0.0)
    x, y, _ = simboard.step_counts()
    # after homing the carriage sits one pull-off above the switch (the emulator lags by <= 2 steps)
    assert abs(x - (thresholds["x"] + pulloff * spm[0])) <= 2
    assert abs(y - (thresholds["y"] + pulloff * spm[1])) <= 2
    before = simboard.step_counts()
    assert simstage.move_to_um(x=2500, y=1000).x_um == 2500.0
    after = simboard.step_counts()
    assert (after[0] - before[0], after[1] - before[1]) == (steps_for(2500, spm[0]), steps_for(1000, spm[1]))


def test_moves_both_ways_step_counts_match_steps_per_mm(simboard, simstage, stage_config):
    from appliance.hardware.stage.grbl import GrblStage

    simstage.close()
    cfg = stage_config(simboard.pty_path, settings={100: 320.0, 101: 250.0, 102: 800.0},
                       feed_xy_mm_per_min=600.0, feed_z_mm_per_min=300.0, reply_timeout_s=2.0,
                       move_timeout_margin_s=10.0, focus="stepper")
    with GrblStage(cfg) as stage:  # settings synced to the real firmware's EEPROM on open
        assert (stage.board_settings[100], stage.board_settings[101]) == (320.0, 250.0)
        stage.unlock()
        spm = (320.0, 250.0, 800.0)
        pos_steps = [0, 0, 0]
        for target in [(5000.0, 2000.0, 1000.0), (1234.0, 3333.0, 250.0), (4000.5, 17.0, 900.0),
                       (0.0, 0.0, 0.0)]:
            c0, p0 = simboard.step_counts(), simboard.pulse_counts()
            reached = stage.move_to_um(*target)
            c1, p1 = simboard.step_counts(), simboard.pulse_counts()
            want = [steps_for(t, s) for t, s in zip(target, spm, strict=True)]
            assert [b - a for a, b in zip(c0, c1, strict=True)] == [w - p for w, p in zip(want, pos_steps,
                                                                                          strict=True)]
            assert [b - a for a, b in zip(p0, p1, strict=True)] == [abs(w - p) for w, p in zip(want, pos_steps,
                                                                                               strict=True)]
            # the board's report is its step position, in mm with 3 decimals
            for axis in range(3):
                assert reached[axis] == pytest.approx(round(want[axis] / spm[axis], 3) * 1000, abs=1e-6)
            pos_steps = want
        assert stage.move_by_um(dx=-0.0, dy=500.0).y_um == 500.0


def test_status_reports_during_and_after_a_move(simboard, simstage):
    simstage.unlock()
    idle = simstage.status()
    assert idle.state == "Idle" and idle.mpos_mm == (0.0, 0.0, 0.0) and idle.buffer is not None
    target = simstage.begin_move_to_um(x=3000)
    running = wait_state(simstage, {"Run"})
    assert 0.0 <= running.mpos_mm[0] <= 3.0
    seen = [running.mpos_mm[0]]
    while True:
        r = simstage.status()
        seen.append(r.mpos_mm[0])
        if r.idle:
            break
    assert seen == sorted(seen) and len(set(seen)) > 3  # position advances monotonically in the reports
    assert simstage.wait_for_move(target).x_um == 3000.0
    spm = simstage.board_settings[100]
    assert simboard.step_counts()[0] == steps_for(3000, spm)
    assert simstage.status().mpos_mm[0] == round(simboard.step_counts()[0] / spm, 3)


def test_servo_angle_via_the_timer(simboard, simstage, stage_config):
    from appliance.hardware.stage.grbl import GrblStage

    simstage.close()
    cfg = stage_config(simboard.pty_path, um_per_servo_degree=2.0, backlash_approach_um=20.0)
    with GrblStage(cfg) as stage:
        lo, hi = stage.board_settings[201], stage.board_settings[202]
        stage.unlock()
        for z_um in (60.0, 180.0, 10.0, 359.0):
            pos = stage.focus_to_um(z_um)
            angle = round(z_um / 2.0)
            assert pos.z_um == angle * 2.0
            assert simboard.servo_pulse_us() == pytest.approx(lo + (hi - lo) * angle / 180.0, abs=1.0)
            assert simboard.servo_period_us() == pytest.approx(20000.0, rel=0.005)
        assert simboard.step_counts()[2] == 0  # servo focus moves no stepper


def test_soft_limit_refusal_no_motion(simboard, simstage):
    simstage.unlock()
    simstage.move_to_um(x=1000)
    counts = simboard.step_counts()
    travel_um = simstage.board_settings[130] * 1000
    with pytest.raises(StageLimitError, match=r"error:15"):
        simstage.move_to_um(x=travel_um + 100)
    with pytest.raises(StageLimitError, match=r"error:15"):
        simstage.move_to_um(y=-50)
    time.sleep(0.2)
    assert simboard.step_counts() == counts
    assert simstage.status().idle  # a refusal, not an alarm
    assert simstage.move_to_um(x=travel_um).x_um == travel_um  # the edge itself is allowed


def test_feed_hold_and_resume(simboard, simstage):
    simstage.unlock()
    target = simstage.begin_move_to_um(x=6000)  # 0.6 s at 600 mm/min plus ramps
    wait_state(simstage, {"Run"})
    time.sleep(0.15)
    simstage.feed_hold()
    held = wait_state(simstage, {"Hold"})
    assert held.state == "Hold"
    deadline = time.monotonic() + 3
    while simstage.status().substate != 0:  # Hold:1 decelerating, Hold:0 stopped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stopped = simboard.step_counts()
    time.sleep(0.3)
    assert simboard.step_counts() == stopped  # no steps while held
    assert 0 < stopped[0] < steps_for(6000, simstage.board_settings[100])
    simstage.resume()
    assert simstage.wait_for_move(target).x_um == 6000.0
    assert simboard.step_counts()[0] == steps_for(6000, simstage.board_settings[100])


def test_soft_reset_mid_move_loses_position_until_homed(simboard, simstage, switches):
    simstage.unlock()
    simstage.begin_move_to_um(x=8000)
    wait_state(simstage, {"Run"})
    time.sleep(0.2)
    simstage.stop()
    assert simstage.link.last_alarm == 3  # ALARM:3, reset while in motion
    assert simstage.status().alarm
    with pytest.raises(StageAlarm, match="error:9"):
        simstage.move_to_um(x=1000)
    counts = simboard.step_counts()
    assert 0 < counts[0] < steps_for(8000, simstage.board_settings[100])
    spm = simstage.board_settings[100]
    with switches(simboard, {"x": counts[0] - round(2 * spm), "y": -round(spm)}):
        simstage.home()
    assert simstage.move_to_um(x=1000).x_um == 1000.0


def test_limit_switch_hit_is_alarm(simboard, simstage):
    simstage.unlock()
    target = simstage.begin_move_to_um(x=8000)
    wait_state(simstage, {"Run"})
    threading.Timer(0.2, simboard.set_limit, args=("x", True)).start()
    with pytest.raises(StageAlarm, match=r"ALARM:1"):
        simstage.wait_for_move(target)
    stopped = simboard.step_counts()
    time.sleep(0.2)
    assert simboard.step_counts() == stopped
    assert simstage.status().pins == "X"  # the report shows the pressed switch
    simboard.set_limit("x", False)
    time.sleep(0.05)
    assert simstage.status().pins == ""
    with pytest.raises(StageAlarm):
        simstage.move_to_um(x=1000)


def replies_to(link, data: bytes, timeout_s: float = 10.0) -> list[str]:
    """Write raw bytes; return every non-empty line up to the first ok/error and any that follow quickly."""
    link.transport.write(data)
    deadline = time.monotonic() + timeout_s
    got = []
    while True:
        text = link.read_line(deadline, "waiting for a reply to raw bytes")
        assert text is not None, f"no ok/error within {timeout_s} s for {data[:40]!r}...; got {got}"
        if classify(text).kind is not LineKind.EMPTY:
            got.append(text)
        if classify(text).kind in (LineKind.OK, LineKind.ERROR):
            break
    got += [t for t in link.drain(quiet_s=0.2, max_s=1.0) if classify(t).kind is not LineKind.EMPTY]
    return got


def test_garbage_and_overlong_lines_get_errors_and_no_motion(simboard, simstage):
    simstage.unlock()
    link = simstage.link
    counts = simboard.step_counts()
    rng = random.Random(4)
    realtime = {0x18, ord("?"), ord("!"), ord("~"), 0x0A, 0x0D}
    for _ in range(40):
        body = bytes(b for b in rng.randbytes(rng.randint(1, 60)) if b not in realtime)
        line = bytes([rng.choice(b"#*@0123456789.=%&")]) + body  # never a valid first character
        got = replies_to(link, line + b"\n")
        assert len(got) == 1 and classify(got[0]).kind is LineKind.ERROR, (line, got)
    for overlong in (b"G1X5F100" + b"Y0" * 496, b"G1F100X" + b"1" * 993):
        assert len(overlong) >= 1000
        assert replies_to(link, overlong + b"\n") == ["error:11"]
    time.sleep(0.2)
    assert simboard.step_counts() == counts  # nothing moved
    assert simstage.status().idle
    assert simstage.move_to_um(x=500).x_um == 500.0  # and the board still works


def test_reconnect_after_the_board_goes_away(firmware_paths, stage_config, tmp_path):
    """Unplug = the runner dies (its pty vanishes); replug = a new runner behind the same by-id style link."""
    from appliance.hardware.stage.grbl import GrblStage
    from appliance.hardware.stage.simavr_board import SimavrBoard

    link = tmp_path / "ttyACM-stage"
    eeprom = tmp_path / "eeprom.bin"
    board = SimavrBoard(*firmware_paths, eeprom=eeprom)
    board.start()
    link.symlink_to(board.pty_path)
    stage = GrblStage(stage_config(str(link), settings={100: 500.0}, reconnect_delay_s=0.5,
                                   handshake_timeout_s=5.0, reply_timeout_s=2.0))
    replug: SimavrBoard | None = None
    try:
        stage.open()
        stage.unlock()
        assert stage.move_to_um(x=1000).x_um == 1000.0
        board.stop()  # the cable is pulled: the EEPROM is saved, the pty disappears
        replug = SimavrBoard(*firmware_paths, eeprom=eeprom)

        def plug_in() -> None:
            replug.start()
            tmp = tmp_path / "new-link"
            tmp.symlink_to(replug.pty_path)
            tmp.replace(link)
        threading.Timer(0.2, plug_in).start()
        report = stage.status()  # fails on the dead port, re-finds the link, re-opens, handshakes
        assert stage.reconnects == 1
        assert report.alarm  # a fresh power-up: locked until homed or unlocked
        assert stage.board_settings[100] == 500.0  # kept in the (saved and reloaded) EEPROM
    finally:
        stage.close()
        board.stop()
        if replug is not None:
            replug.stop()


def test_button_pushes_reach_the_driver(simboard, simstage):
    simstage.unlock()
    simboard.set_button(True)
    time.sleep(0.2)  # longer than the firmware's debounce
    simboard.set_button(False)
    deadline = time.monotonic() + 3
    seen: list[str] = []
    while len(seen) < 2 and time.monotonic() < deadline:
        seen += [m for m in simstage.pending_messages() if m.startswith("[MSG:BUTTON")]
        time.sleep(0.02)
    assert seen == ["[MSG:BUTTON PRESSED]", "[MSG:BUTTON RELEASED]"]
    assert simstage.move_to_um(x=100).x_um == 100.0  # pushes do not disturb the command stream


def test_homing_without_switches_fails_with_alarm_9(simboard, stage_config):
    from appliance.hardware.stage.grbl import GrblStage

    # short travel so the seek gives up quickly (1.5 x the longest homed axis travel)
    cfg = stage_config(simboard.pty_path, settings={130: 2.0, 131: 2.0}, homing_timeout_s=20.0)
    with GrblStage(cfg) as stage:
        with pytest.raises(StageAlarm, match=r"ALARM:9 \(Homing fail: could not find the limit switch"):
            stage.home()
        assert stage.status().alarm
        with pytest.raises(StageAlarm, match="error:9"):
            stage.move_to_um(x=100)

"""GrblStage against FakeGrbl, a stock GRBL 1.1 board on a pty (see conftest.py)."""

import errno
import os
import threading
import time
from types import SimpleNamespace

import pytest
import serial

from appliance.hardware.stage.base import (
    HomingDisabled,
    Position,
    StageAlarm,
    StageError,
    StageLimitError,
    StageProtocolError,
    StageTimeout,
    focus_travel_of,
)
from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig, StagePortBusy
from appliance.hardware.stage.grbl_link import GrblLink, SoftLimitAlarm, StageConnectionError
from appliance.hardware.stage.ports import PortNotFound, find_port


def test_handshake_reads_version_and_settings_stock_board_means_stepper_focus(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        assert stage.build_info.version == "1.1h.20190825"
        assert stage.focus_mode == "stepper"
        assert stage.board_settings[100] == 250.0
        assert stage.status().alarm  # homing enabled: stock GRBL powers up locked
    assert fake_grbl.received[:3] == ["", "$I", "$$"]  # never waits for a banner


def test_focus_step_is_one_z_step_on_a_stepper_and_the_servo_resolution_on_a_servo(fake_grbl, stage_config):
    stage = GrblStage(stage_config(fake_grbl.path))
    assert stage.focus_step_um is None  # not open: nothing read from the board yet
    with stage:
        assert stage.focus_step_um == pytest.approx(4.0)  # stock $102=250 steps/mm
        stage.sync_settings({102: 3200})
        assert stage.focus_step_um == pytest.approx(1.0)  # 0.31 um steps, but lines and reports carry 1 um
    servo = GrblStage(stage_config(fake_grbl.path, focus="servo", um_per_servo_degree=0.5,
                                   servo_resolution_deg=2.0))
    with servo:
        assert servo.focus_step_um == pytest.approx(1.0)


def test_focus_travel_is_the_boards_own(make_fake_grbl, stage_config):
    """Stock GRBL's machine space runs from minus $132 up to its home switches at 0; a fixed 0-180 um (the
    service's travel before session 36) sent every focus search above the switches, where it may not go."""
    homed = make_fake_grbl()
    with GrblStage(stage_config(homed.path)) as stage:
        assert stage.focus_travel_um == (-200_000.0, 0.0)  # $132 = 200 mm
        stage.home()
        assert focus_travel_of(stage) == (-200_000.0, 0.0)
    free = make_fake_grbl(homing=False)
    with GrblStage(stage_config(free.path)) as stage:
        assert stage.focus_travel_um is None  # no homing: its zero is wherever it powered up
        stage.move_to_um(z=-40.0)
        assert focus_travel_of(stage) == (-130.0, 50.0)  # 90 um either side of where it is
    with GrblStage(stage_config(free.path, focus="servo", um_per_servo_degree=0.5)) as servo:
        assert servo.focus_travel_um == (0.0, 90.0)  # 0..180 degrees at 0.5 um a degree
    assert GrblStage(stage_config(free.path)).focus_travel_um is None  # not open


def test_move_in_alarm_is_refused_until_homed(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        with pytest.raises(StageAlarm, match=r"error:9 \(G-code locked out"):
            stage.move_to_um(x=-100)
        assert stage.home() == Position(0.0, 0.0, 0.0)
        assert stage.move_to_um(x=-1500, y=-248) == Position(-1500.0, -248.0, 0.0)
        assert stage.move_by_um(dx=700) == Position(-800.0, -248.0, 0.0)
        assert stage.move_to_um(y=-250).y_um == -252  # -62.5 steps of 4 um: GRBL rounds half away from zero
        # GRBL lines carry 1 um (-0.030 mm), then the planner rounds to a whole step: -7.5 -> -8 steps of 4 um
        assert stage.move_to_um(z=-30.4).z_um == pytest.approx(-32.0)
        assert tuple(round(v, 3) for v in fake_grbl.mpos) == (-0.8, -0.252, -0.032)


def test_soft_limit_on_stock_grbl_is_alarm_2(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        stage.home()
        with pytest.raises(SoftLimitAlarm, match="ALARM:2") as err:
            stage.move_to_um(x=+5000)  # stock GRBL travel is 0..-200 mm
        assert isinstance(err.value, StageAlarm)
        assert fake_grbl.mpos == [0.0, 0.0, 0.0]
        stage.soft_reset()
        stage.home()
        assert stage.move_to_um(x=-12).x_um == -12  # on a 4 um step


def test_limit_switch_during_move_raises_alarm(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=300)) as stage:
        stage.home()
        target = stage.begin_move_to_um(x=-5000)
        threading.Timer(0.1, fake_grbl.trigger_limit, args=("x",)).start()
        with pytest.raises(StageAlarm, match=r"ALARM:1 \(Hard limit.*during 'G17 G21 G90 G94 G54 G1 X-5 F300'"):
            stage.wait_for_move(target)
        with pytest.raises(StageAlarm, match="ALARM:1.*no answer to '\\?'"):  # stock GRBL: silent until reset
            stage.position_um()
        stage.stop()
        assert -5000 < stage.position_um().x_um < 0


def test_reset_mid_move_loses_position_until_homed(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=300)) as stage:
        stage.home()
        stage.begin_move_to_um(x=-5000)
        time.sleep(0.1)
        stage.soft_reset()  # no hold first: a reset in motion
        assert stage.link.last_alarm == 3
        assert stage.status().alarm
        with pytest.raises(StageAlarm):
            stage.move_to_um(x=-10)
        stage.home()
        assert stage.move_to_um(x=-12).x_um == -12  # on a 4 um step


def test_stop_from_a_completed_hold_keeps_the_position_without_alarm(fake_grbl, stage_config):
    """GRBL 1.1h: a reset after the hold completed (Hold:0) is not a reset in motion: Idle, no ALARM:3."""
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=300)) as stage:
        stage.home()
        stage.begin_move_to_um(x=-5000)
        time.sleep(0.1)
        stage.stop()
        assert stage.link.last_alarm is None
        report = stage.status()
        assert report.idle and -5.0 < report.mpos_mm[0] < 0.0
        time.sleep(0.1)
        assert stage.status().mpos_mm == report.mpos_mm  # the rest of the move was dropped


def test_feed_hold_and_resume(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=600)) as stage:
        stage.home()
        target = stage.begin_move_to_um(x=-2000)
        time.sleep(0.05)
        stage.feed_hold()
        time.sleep(0.05)
        held = stage.status()
        assert held.state == "Hold"
        time.sleep(0.1)
        assert stage.status().mpos_mm == held.mpos_mm  # not moving while held
        stage.resume()
        assert stage.wait_for_move(target).x_um == -2000


def test_servo_focus_on_stock_grbl_is_refused_with_grbl_text(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, focus="servo")) as stage:
        stage.home()
        # stock GRBL squeezes M280's 280 into a byte (24, remainder 256): error:23, not error:20
        with pytest.raises(StageProtocolError, match=r"'M280 P0 S\d+'.*error:23 \(G-code command in block requires "
                                                     r"an integer value\); this board has no servo command"):
            stage.focus_to_um(10)


def test_stepper_focus_always_finishes_from_below(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, backlash_approach_um=50)) as stage:
        stage.home()
        stage.move_to_um(z=-100)
        n = len(fake_grbl.received)
        assert stage.focus_to_um(-120).z_um == -120  # downwards: overshoot below, come up
        assert fake_grbl.received[n:] == ["G17G21G90G94G54G1Z-0.17F600", "G17G21G90G94G54G1Z-0.12F600"]
        n = len(fake_grbl.received)
        assert stage.focus_to_um(-108).z_um == -108  # upwards after an upward move: direct
        assert fake_grbl.received[n:] == ["G17G21G90G94G54G1Z-0.108F600"]


def test_settings_sync_writes_only_differences_and_verifies(fake_grbl, stage_config):
    cfg = stage_config(fake_grbl.path, settings={100: 800.0, 101: 250.0, 110: 1000})
    with GrblStage(cfg):
        pass
    assert fake_grbl.settings[100] == 800.0 and fake_grbl.settings[110] == 1000
    writes = [line for line in fake_grbl.received if "=" in line]
    assert writes == ["$100=800", "$110=1000"]
    with GrblStage(cfg):
        pass
    assert [line for line in fake_grbl.received if "=" in line] == writes  # nothing differs now


def test_unknown_setting_is_an_error(fake_grbl, stage_config):
    with pytest.raises(StageProtocolError, match=r"no setting \$77"):
        with GrblStage(stage_config(fake_grbl.path, settings={77: 1})):
            pass


def test_inches_mode_refused(fake_grbl, stage_config):
    fake_grbl.settings[13] = 1
    with pytest.raises(StageProtocolError, match=r"\$13=1"):
        GrblStage(stage_config(fake_grbl.path)).open()
    with GrblStage(stage_config(fake_grbl.path, settings={13: 0})) as stage:
        assert stage.board_settings[13] == 0


def test_wrong_grbl_version_refused(fake_grbl, stage_config):
    fake_grbl.version = "0.9j.20160316"
    with pytest.raises(StageProtocolError, match="'0.9j.20160316'.*GRBL 1.1 only"):
        GrblStage(stage_config(fake_grbl.path)).open()


def test_work_offset_and_wpos_reports_are_converted(fake_grbl, stage_config):
    fake_grbl.settings[10] = 0  # report WPos instead of MPos
    fake_grbl.coord_systems[0] = [-1.0, 0.0, 0.0]  # a G54 offset a previous host left
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        stage.home()
        assert stage.move_to_um(x=-3000).x_um == pytest.approx(-3000)
    assert fake_grbl.mpos[0] == pytest.approx(-3.0)  # machine coordinates, not work ones
    assert "G17G21G90G94G54G1X-2F1200" in fake_grbl.received


def test_silent_board_times_out_with_clear_error(fake_grbl, stage_config):
    fake_grbl.silent = True
    t0 = time.monotonic()
    with pytest.raises(StageTimeout, match=r"no GRBL status report from .* within 2 s"):
        GrblStage(stage_config(fake_grbl.path)).open()
    assert time.monotonic() - t0 < 5


def test_board_hangs_mid_session(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        stage.home()
        fake_grbl.silent = True
        with pytest.raises(StageTimeout, match=r"no ok/error for 'G17 G21 G90 G94 G54 G1 X-0.001 F1200' within 1 s"):
            stage.move_to_um(x=-1)
        with pytest.raises(StageTimeout, match="no status report"):
            stage.position_um()
        fake_grbl.silent = False
        assert stage.move_to_um(x=-4).x_um == -4  # the link resynchronises


def test_malformed_replies_are_protocol_errors_and_link_recovers(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        stage.home()
        fake_grbl.reply_override["G17G21G90G94G54G1X-0.001F1200"] = ["okay"]
        with pytest.raises(StageProtocolError, match="unexpected reply 'okay' to 'G17 G21 G90 G94 G54 G1 X-0.001"):
            stage.move_to_um(x=-1)
        fake_grbl.reply_override.clear()
        fake_grbl.status_override = "<Idle|MPos:0.000,zz,0.000>"
        with pytest.raises(StageProtocolError, match="non-numeric"):
            stage.position_um()
        fake_grbl.status_override = None
        assert stage.move_to_um(x=-4).x_um == -4


def test_unexpected_reset_while_waiting_is_reported(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        fake_grbl.reply_override["$$"] = ["", "Grbl 1.1h ['$' for help]"]
        with pytest.raises(StageProtocolError, match="board reset"):
            stage.read_settings()


def test_reconnect_after_unplug(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, reconnect_delay_s=0.3)) as stage:
        stage.home()
        fake_grbl.unplug()
        threading.Timer(0.2, fake_grbl.replug).start()
        pos = stage.position_um()  # fails, reconnects to the re-plugged board, answers
        assert stage.reconnects == 1
        assert fake_grbl.received.count("$I") == 2  # a second handshake on the re-plugged board
        assert pos == Position(0.0, 0.0, 0.0)
        with pytest.raises(StageAlarm):  # power cycled: stock GRBL wants homing again
            stage.move_to_um(x=-1)


def test_reconnect_gives_up_after_bounded_attempts(fake_grbl, stage_config):
    stage = GrblStage(stage_config(fake_grbl.path, reconnect_attempts=2, reconnect_delay_s=0.1))
    stage.open()
    fake_grbl.unplug()
    t0 = time.monotonic()
    with pytest.raises(StageConnectionError, match="2 reconnect attempts failed"):
        stage.position_um()
    assert time.monotonic() - t0 < 3
    stage.close()
    stage.close()  # safe twice


def test_reconnect_finds_the_port_again_by_usb_id(make_fake_grbl, stage_config, monkeypatch):
    board = make_fake_grbl(stable_name=False)

    def comports():
        return [SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None),
                SimpleNamespace(device=board.slave_path, vid=0x2341, pid=0x0043)]
    monkeypatch.setattr("serial.tools.list_ports.comports", comports)
    cfg = stage_config(None, usb_id="2341:0043", reconnect_delay_s=0.3)
    with GrblStage(cfg) as stage:
        assert stage.port == board.slave_path
        board.unplug()
        threading.Timer(0.1, board.replug).start()
        stage.position_um()
        assert stage.port == board.slave_path and stage.reconnects == 1


def test_find_port_errors_name_what_was_seen(monkeypatch):
    monkeypatch.setattr("serial.tools.list_ports.comports",
                        lambda: [SimpleNamespace(device="/dev/ttyUSB0", vid=0x1A86, pid=0x7523)])
    assert find_port("/dev/ttyACM3", "2341:0043") == "/dev/ttyACM3"
    assert find_port(None, "1a86:7523") == "/dev/ttyUSB0"
    with pytest.raises(PortNotFound, match=r"2341:0043; ports seen: /dev/ttyUSB0 \(1a86:7523\)"):
        find_port(None, "2341:0043")
    with pytest.raises(PortNotFound, match=r"CH340 1a86:7523.*/dev/tppscan-stage"):
        find_port(None, "2341:0043")
    with pytest.raises(PortNotFound, match="no serial port configured"):
        find_port(None, None)


def test_open_missing_port_is_a_connection_error(tmp_path, stage_config):
    with pytest.raises(StageConnectionError, match="nonexistent"):
        GrblStage(stage_config(str(tmp_path / "nonexistent"))).open()


def test_a_port_in_use_is_refused_and_its_holder_carries_on(fake_grbl, stage_config):
    """A second scan on the same board (into another folder) must not share the line with the first."""
    with GrblStage(stage_config(fake_grbl.path)) as first:
        first.home()
        second = GrblStage(stage_config(fake_grbl.path, reconnect_attempts=1))
        with pytest.raises(StagePortBusy, match="in use by another program"):
            second.open()
        assert fake_grbl.received.count("$I") == 1  # the second never spoke on the line
        first.move_to_um(x=-100)
        assert first.position_um().x_um == pytest.approx(-100)
    with GrblStage(stage_config(fake_grbl.path)) as again:  # the lock goes with its holder
        assert again.position_um() is not None


@pytest.mark.parametrize("err, hint", [
    (errno.EACCES, "usermod -aG dialout"),  # a user not in the port's group (root opens anything, so faked)
    (errno.ENOENT, "plugged in"),
])
def test_a_port_that_will_not_open_says_what_to_do(stage_config, err, hint):
    def opener(port, baud, poll_s, write_timeout_s):
        raise serial.SerialException(err, f"could not open port {port}: [Errno {err}] {os.strerror(err)}")

    stage = GrblStage(stage_config("/dev/ttyACM7", reconnect_attempts=1), opener=opener)
    with pytest.raises(StageConnectionError, match="cannot open stage port '/dev/ttyACM7'") as info:
        stage.open()
    assert hint in str(info.value)


def test_not_open_is_a_clear_error(stage_config):
    with pytest.raises(StageError, match="not open"):
        GrblStage(stage_config("/dev/null")).position_um()


@pytest.mark.parametrize("kw,needle", [
    ({"port": None}, "GrblStageConfig.port"),
    ({"usb_id": "arduino"}, "GrblStageConfig.usb_id"),
    ({"baud": 1234}, "GrblStageConfig.baud: must be one of"),
    ({"focus": "magic"}, "GrblStageConfig.focus"),
    ({"um_per_servo_degree": 0}, "GrblStageConfig.um_per_servo_degree: must be a finite number > 0 and <= 1000, "
                                 "got 0"),
    ({"boot_delay_s": 1e9}, "GrblStageConfig.boot_delay_s: must be a finite number >= 0 and <= 60, got 1000000000.0"),
    ({"reply_timeout_s": float("inf")}, "GrblStageConfig.reply_timeout_s: must be a finite number > 0 and <= 600"),
    ({"feed_xy_mm_per_min": float("nan")}, "GrblStageConfig.feed_xy_mm_per_min"),
    ({"backlash_approach_um": -1}, "GrblStageConfig.backlash_approach_um: must be a finite number >= 0"),
    ({"servo_min_deg": 100, "servo_max_deg": 90}, "GrblStageConfig.servo_min_deg/servo_max_deg"),
    ({"reconnect_attempts": -1}, "GrblStageConfig.reconnect_attempts"),
    ({"garbled_repeats": 11}, "GrblStageConfig.garbled_repeats: must be an integer 0..10, got 11"),
    ({"garbled_repeats": True}, "GrblStageConfig.garbled_repeats"),
    ({"settings": {300: 1}}, "GrblStageConfig.settings: keys are $ numbers 0..255, got 300"),
    ({"settings": {100: "fast"}}, "GrblStageConfig.settings[100]: must be a finite number, got 'fast'"),
])
def test_config_errors_name_the_field(kw, needle):
    base = {"port": "/dev/ttyACM0"}
    base.update(kw)
    with pytest.raises(ValueError) as err:
        GrblStageConfig(**base)
    assert needle in str(err.value)


def test_bad_targets_are_value_errors(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        stage.home()
        with pytest.raises(ValueError, match="finite"):
            stage.move_to_um(x=float("nan"))
        with pytest.raises(ValueError, match="at least one axis"):
            stage.begin_move_to_um()
        with pytest.raises(ValueError, match="at most 80 characters"):
            stage.link.send("G1 X" + "1" * 90, 1.0)
        with pytest.raises(ValueError, match="printable ASCII"):
            stage.link.send("G1 X1\nG1 X2", 1.0)
        with pytest.raises(ValueError, match="real-time characters"):
            stage.link.send("$X!", 1.0)


def test_servo_range_is_a_limit_error(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, focus="servo", um_per_servo_degree=2.0)) as stage:
        with pytest.raises(StageLimitError, match=r"z=400 um needs servo angle 200 deg.*z 0\.\.360 um"):
            stage.focus_to_um(400)
        with pytest.raises(StageError, match="focus position is unknown"):
            stage.move_by_um(dz=1)


def test_button_messages_are_collected(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path)) as stage:
        fake_grbl._out("[MSG:BUTTON PRESSED]")
        time.sleep(0.05)
        assert stage.pending_messages() == ["[MSG:BUTTON PRESSED]"]
        assert stage.pending_messages() == []


def test_link_rejects_endless_line_when_waiting_for_a_reply(fake_grbl):
    import serial

    port = serial.Serial(fake_grbl.path, 115200, timeout=0.02)
    link = GrblLink(port)
    fake_grbl.silent = True
    link.transport.write(b"$I\n")
    fake_grbl.out_raw(b"x" * 600)
    with pytest.raises(StageProtocolError, match="longer than 512 bytes"):
        link._await_reply("$I", time.monotonic() + 1.0, 1.0)
    fake_grbl.silent = False
    assert link.send("$I", 1.0).ok  # the rest of the noise line is dropped, the link answers again
    port.close()


def test_a_second_thread_can_poll_messages_while_moving(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=600)) as stage:
        stage.home()
        seen, errors, done = [], [], threading.Event()

        def poll():
            try:
                while not done.is_set():
                    seen.extend(stage.pending_messages())
                    time.sleep(0.001)
            except Exception as exc:  # noqa: BLE001 - any failure in the poller fails the test below
                errors.append(exc)
        t = threading.Thread(target=poll)
        t.start()
        try:
            for i in range(1, 6):
                fake_grbl._out("[MSG:BUTTON PRESSED]")
                assert stage.move_to_um(x=-200.0 * i).x_um == -200.0 * i
        finally:
            done.set()
            t.join(2)
        assert errors == []
        assert seen + stage.pending_messages() == ["[MSG:BUTTON PRESSED]"] * 5


def test_move_that_stops_short_is_an_error(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=300)) as stage:
        stage.home()
        target = stage.begin_move_to_um(x=-3000)
        time.sleep(0.1)
        fake_grbl.drop_queue()
        with pytest.raises(StageError, match=r"stopped at .* not at the target of 'G17 G21 G90 G94 G54 G1 X-3 F300'"):
            stage.wait_for_move(target)


def test_move_slower_than_its_deadline_times_out(fake_grbl, stage_config):
    with GrblStage(stage_config(fake_grbl.path, feed_xy_mm_per_min=600, move_timeout_margin_s=0.3)) as stage:
        stage.home()
        fake_grbl.speed_factor = 0.1  # 1 mm at 600 mm/min should take 0.1 s; it takes 1 s
        t0 = time.monotonic()
        with pytest.raises(StageTimeout, match=r"'G17 G21 G90 G94 G54 G1 X-1 F600' not finished by its deadline: "
                                               r"last status <Run"):
            stage.move_to_um(x=-1000)
        assert 0.4 < time.monotonic() - t0 < 1.0  # 1.5 x 0.1 s + 0.3 s margin


def test_homing_refused_on_a_board_with_homing_off_says_which_setting(make_fake_grbl, stage_config):
    # stock GRBL ships with $22=0 and answers $H with error:5 (seen on GRBL 1.1h in simavr)
    board = make_fake_grbl(homing=False)
    with GrblStage(stage_config(board.path)) as stage:
        with pytest.raises(HomingDisabled, match=r"error:5 .*`tppscan stage settings --set 22=1` turns it on"):
            stage.home()  # a StageProtocolError, which a scan answers by carrying its coordinates over
        assert stage.move_to_um(x=-100).x_um == -100.0  # the board is usable as it is


# -- a board that stops answering while it homes (session 48) -----------------------------------------

def _silent_once_homing(board, after_s: float = 0.0) -> threading.Thread:
    """Make ``board`` fall silent ``after_s`` into its homing cycle (a board unplugged or hung mid-cycle)."""
    def watch() -> None:
        deadline = time.monotonic() + 10.0
        while board.state != "Home" and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(after_s)
        board.silent = True
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_homing_on_our_firmware_that_stops_answering_fails_within_the_reply_timeout(fake_grbl, stage_config):
    """Our firmware reports Home throughout $H: a silent '?' ends homing in reply_timeout_s, not 120 s."""
    fake_grbl.build_name, fake_grbl.reports_while_homing, fake_grbl.homing_s = "tppscan-stage", True, 60.0
    with GrblStage(stage_config(fake_grbl.path, reply_timeout_s=0.5, homing_timeout_s=120.0)) as stage:
        fake_grbl.silent = True  # it never even starts the cycle
        t0 = time.monotonic()
        with pytest.raises(StageTimeout, match=rf"no status report from {fake_grbl.path} within 0.5 s of '\?' "
                                               r"while '\$H' ran: this firmware reports throughout"):
            stage.home()
        assert time.monotonic() - t0 < 3.0


def test_homing_on_a_board_that_reported_then_fell_silent_fails_quickly(fake_grbl, stage_config):
    """A board of unknown make that has answered '?' during $H is gone once it stops answering."""
    fake_grbl.reports_while_homing, fake_grbl.homing_s = True, 60.0
    with GrblStage(stage_config(fake_grbl.path, reply_timeout_s=0.5, homing_timeout_s=120.0)) as stage:
        _silent_once_homing(fake_grbl, after_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(StageTimeout, match=r"it had reported 'Home' earlier while the line ran"):
            stage.home()
        assert time.monotonic() - t0 < 4.0


@pytest.mark.parametrize("ours", [True, False], ids=["reports-throughout", "stock-reports-at-the-end"])
def test_a_slow_live_board_still_homes(fake_grbl, stage_config, ours):
    """Homing far longer than the reply timeout is fine while the board answers '?' (ours) and also on stock
    GRBL 1.1h, which answers no '?' until its cycle ends (limits.c runs no real-time commands in its loop)."""
    fake_grbl.homing_s = 3.0   # 6 reply timeouts: stands for a 60 s cycle against the default 2 s
    if ours:
        fake_grbl.build_name, fake_grbl.reports_while_homing = "tppscan-stage", True
    with GrblStage(stage_config(fake_grbl.path, reply_timeout_s=0.5, homing_timeout_s=20.0)) as stage:
        t0 = time.monotonic()
        pos = stage.home()
        assert time.monotonic() - t0 >= 3.0
        assert (pos.x_um, pos.y_um) == (0.0, 0.0)  # z: unknown on a servo (ours) until a focus move
        assert stage.move_to_um(x=-100).x_um == -100.0  # the answer to the last '?' did not get in the way

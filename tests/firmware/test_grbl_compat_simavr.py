"""GRBL 1.1 host compatibility of the firmware in simavr, raw protocol: real-time bytes and overrides, jogging,
work coordinates and $#, $G, $C, $N, G43.1/G49, program flow (M0, M2, M30) and the safe-start lines of CAM
programs (G40, G61, G80, M5, M9), the move-length bound, and the runner across a watchdog reset.

Exact step counts come from the simavr runner (``SimavrBoard.step_counts``), never from the firmware's own report.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.simavr

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
BANNER = "Grbl 1.1h ['$' for help]"
STEPS_PER_MM = 400


def status(link) -> re.Match[str]:
    """One status report, checked against the full GRBL 1.1 field syntax (conftest's STATUS_RE)."""
    return link.status()


def status_line(link) -> str:
    return status(link).group(0)


def send_realtime(link, board, data: bytes) -> None:
    """Real-time bytes one at a time, each 2 ms of simulated time after the last: GRBL (and this firmware) keep
    one flag per kind, so two equal bytes arriving before the main loop looks count once, and a simulation that
    runs behind the wall clock under host load would otherwise get them back to back from the pty."""
    for byte in data:
        start = board.cycles()
        link.write(bytes([byte]))
        while board.cycles() - start < 32000:
            time.sleep(0.001)


def sim_sleep(board, seconds: float) -> None:
    """Wait for `seconds` of simulated time: under host load simavr runs behind the wall clock, so a wall-clock
    sleep can end before a ramp the test waits for has run."""
    start = board.cycles()
    while board.cycles() - start < seconds * 16e6:
        time.sleep(0.005)


def step_feed_override(link, board, byte: int, count: int) -> str:
    """Send a feed-override byte `count` times, each only after the report shows the last one took effect.

    GRBL keeps one flag per override kind, so two equal bytes that reach the firmware before its main loop looks
    count once; spacing them in simulated time is not enough when the pty hands them to a lagging simulation
    together. The report after a change carries Ov at once, which confirms every step.
    """
    value = None
    for _ in range(count):
        before = value
        send_realtime(link, board, bytes([byte]))
        for _ in range(5):
            m = status(link)
            if m.group(13) and m.group(14) != before:
                value = m.group(14)
                break
        else:
            raise AssertionError(f"feed override byte {byte:#x} not shown in 5 reports (still {before})")
    return value


def overrides(link) -> tuple[str, str, str]:
    """The Ov values of the next report that carries them (every 10th to 20th report, at once after a change)."""
    for _ in range(25):
        m = status(link)
        if m.group(13):
            return m.group(14, 15, 16)
    raise AssertionError("no Ov field in 25 status reports")


def parser_state(link) -> str:
    reply, lines = link.command("$G")
    assert reply == "ok"
    return lines[0]


def ngc_parameters(link) -> dict[str, str]:
    reply, lines = link.command("$#")
    assert reply == "ok"
    return dict(re.fullmatch(r"\[(\w+):(.*)\]", line).groups() for line in lines)


def rate_steps_per_s(board, axis: int = 0, window_s: float = 0.25) -> float:
    """Step rate over a window of simulated time (16e6 cycles a second): true under host load, too."""
    c0, start = board.cycles(), board.pulse_counts()[axis]
    time.sleep(window_s)
    end, c1 = board.pulse_counts()[axis], board.cycles()
    return (end - start) / ((c1 - c0) / 16e6)


# -- real-time bytes -------------------------------------------------------------------------------------------


def test_extended_bytes_inside_a_line_never_reach_it(board, unlocked):
    # every byte >= 0x80 in the middle of a line: overrides act, the rest is dropped; the line stays intact
    noise = bytes(range(0x80, 0x100))
    assert unlocked.command(b"G91" + noise)[0] == "ok"   # (0x85 and 0x9x inside, CNCjs's failure)
    assert unlocked.command(b"G0X" + noise[:40] + b"1" + noise[40:])[0] == "ok"
    unlocked.wait_idle()
    assert board.step_counts() == (400, 0, 0)                    # relative: the G91 line was not lost
    assert parser_state(unlocked).startswith("[GC:G0 G54 G17 G21 G91 G94")
    # each of 0x90..0x9D once: feed reset +10 -10 +1 -1 = 100, rapid reset/50/25 = 25, spindle as feed
    assert overrides(unlocked) == ("100", "25", "100")


def test_overrides_reported_in_ov_and_clamped(board, unlocked):
    status(unlocked)   # the first report after a reset carries WCO, which (as in GRBL) defers Ov by one report
    send_realtime(unlocked, board, bytes([0x91] * 3 + [0x93] * 2 + [0x96] + [0x9B]))
    m = status(unlocked)
    assert m.group(13), "an override change shows Ov: in the very next report"
    assert m.group(14, 15, 16) == ("132", "50", "90")
    send_realtime(unlocked, board, bytes([0x91] * 15 + [0x97] + [0x9A] * 20))
    assert status(unlocked).group(14, 15, 16) == ("200", "25", "200")   # clamped at 200 %, rapid low 25 %
    send_realtime(unlocked, board, bytes([0x92] * 30 + [0x94]))
    assert status(unlocked).group(14) == "10"                            # clamped at 10 %
    send_realtime(unlocked, board, bytes([0x90, 0x95, 0x99]))
    assert status(unlocked).group(14, 15, 16) == ("100", "100", "100")
    send_realtime(unlocked, board, bytes([0x9E, 0xA0, 0xA1, 0x84, 0x98, 0xFF]))   # not overrides: dropped
    assert unlocked.drain(0.3) == []
    assert overrides(unlocked) == ("100", "100", "100")


def test_wco_and_ov_refresh_as_grbl(link):
    # GRBL 1.1 (report.c): after a reset WCO comes in the 1st report and every 10th while idle, Ov one report later
    link.reset()
    fields = []
    for _ in range(13):
        line = status_line(link)
        fields.append(("WCO" in line, "Ov" in line))
    assert [i for i, f in enumerate(fields, 1) if f[0]] == [1, 11]
    assert [i for i, f in enumerate(fields, 1) if f[1]] == [2, 12]


def test_feed_override_scales_a_running_move_and_keeps_the_count(board, unlocked):
    assert unlocked.command("G1X8F150")[0] == "ok"            # 1000 steps/s
    sim_sleep(board, 0.5)
    before = rate_steps_per_s(board)
    assert step_feed_override(unlocked, board, 0x91, 10) == "200"
    sim_sleep(board, 0.4)
    after = rate_steps_per_s(board)
    assert before == pytest.approx(1000, rel=0.2)
    assert after == pytest.approx(2000, rel=0.2)
    assert step_feed_override(unlocked, board, 0x92, 19) == "10"
    sim_sleep(board, 0.5)
    assert rate_steps_per_s(board, window_s=0.6) == pytest.approx(100, rel=0.25)
    unlocked.write(bytes([0x90]))
    unlocked.wait_idle(30)
    assert board.step_counts() == (3200, 0, 0)


def test_rapid_override_limits_g0_but_not_g1(board, unlocked):
    unlocked.write(bytes([0x97]))                              # rapids at 25 %
    assert unlocked.command("G0X6")[0] == "ok"                 # 600 mm/min max: 4000 -> 1000 steps/s
    sim_sleep(board, 0.5)
    assert rate_steps_per_s(board) == pytest.approx(1000, rel=0.2)
    unlocked.write(b"\x18")
    unlocked.reset()
    assert unlocked.command("$X")[0] == "ok"
    position = board.step_counts()[0]
    unlocked.write(bytes([0x97]))
    assert unlocked.command("G1X16F300")[0] == "ok"            # feed move: 2000 steps/s regardless
    sim_sleep(board, 0.5)
    assert rate_steps_per_s(board) == pytest.approx(2000, rel=0.2)
    unlocked.wait_idle(30)
    assert board.step_counts()[0] == 6400 and position < 6400


# -- jogging ---------------------------------------------------------------------------------------------------


def test_jog_in_both_distance_modes_leaves_the_modal_state(board, unlocked):
    assert unlocked.command("G90")[0] == "ok"
    assert unlocked.command("$J=G91X1F600")[0] == "ok"
    m = unlocked.wait_idle()
    assert board.step_counts() == (400, 0, 0)
    assert parser_state(unlocked).startswith("[GC:G0 G54 G17 G21 G90 G94")
    assert unlocked.command("G91")[0] == "ok"
    assert unlocked.command("$J=G90X0.5Y0.25F600")[0] == "ok"
    unlocked.wait_idle()
    assert board.step_counts() == (200, 100, 0)
    assert parser_state(unlocked).startswith("[GC:G0 G54 G17 G21 G91 G94")
    assert unlocked.command("$J=X0.5F300")[0] == "ok"          # the modal G91 applies to the jog
    m = unlocked.wait_idle()
    assert board.step_counts() == (400, 100, 0) and m.group(2) == "1.000"
    assert unlocked.command("$J=G20G91Y0.1F10")[0] == "ok"    # inches inside a jog only: 2.54 mm
    unlocked.wait_idle()
    assert board.step_counts() == (400, 100 + 1016, 0)
    assert parser_state(unlocked).split()[3] == "G21"
    assert unlocked.command("G0X0.5")[0] == "ok"               # G91 still: relative 0.5 mm
    unlocked.wait_idle()
    assert board.step_counts()[0] == 600


def test_jog_rules_and_errors(board, unlocked):
    assert unlocked.command("$J=G91X1")[0] == "error:22"       # F is required
    assert unlocked.command("$J=G1X1F100")[0] == "error:16"    # no motion modes
    assert unlocked.command("$J=G4P1F100")[0] == "error:16"
    assert unlocked.command("$J=G54X1F100")[0] == "error:16"
    assert unlocked.command("$J=M280P0S90X1F100")[0] == "error:16"
    assert unlocked.command("$J=X1F100S5")[0] == "error:36"
    assert unlocked.command("$J X1F100")[0] == "error:3"
    assert unlocked.command("$J=G90X70.5F600")[0] == "error:15"   # beyond travel: refused before any motion
    assert unlocked.command("$J=G91Y-0.01F600")[0] == "error:15"
    time.sleep(0.2)
    assert board.pulse_counts() == (0, 0, 0)
    assert unlocked.command("$J=G53X10F100000")[0] == "ok"     # bCNC's F100000: capped at $110 (600 mm/min)
    time.sleep(0.3)
    assert status(unlocked).group(1) == "Jog"
    assert unlocked.command("G0X1")[0] == "error:9"            # G-code waits until the jog is over, as GRBL
    assert rate_steps_per_s(board) <= 4000 * 1.1
    unlocked.wait_idle()
    assert board.step_counts() == (4000, 0, 0)


def test_jog_cancel_stops_within_the_deceleration_distance(board, unlocked):
    assert unlocked.command("$120=20")[0] == "ok"              # 20 mm/s^2: 10 mm/s stops in 2.5 mm
    assert unlocked.command("$J=G91X30F600")[0] == "ok"
    assert unlocked.command("$J=G91Y10F600")[0] == "ok"        # queued behind: flushed by the cancel
    sim_sleep(board, 1.2)                                      # cruising at 10 mm/s
    at_cancel = board.step_counts()[0]
    unlocked.write(b"\x85")
    m = unlocked.wait_idle(10)
    stopped = board.step_counts()
    decel_steps = 10.0 ** 2 / (2 * 20) * STEPS_PER_MM           # v^2 / 2a = 2.5 mm
    # + 40 steps: the ~10 ms between reading the count and the byte's arrival, at 4000 steps/s
    assert 0 < stopped[0] - at_cancel <= decel_steps * 1.1 + 40
    assert stopped[0] < 30 * STEPS_PER_MM and stopped[1] == 0
    assert m.group(1) == "Idle" and float(m.group(2)) == pytest.approx(stopped[0] / STEPS_PER_MM, abs=1e-3)
    assert unlocked.command("$J=G91X-1F600")[0] == "ok"        # the parser follows the real position
    unlocked.wait_idle()
    assert board.step_counts()[0] == stopped[0] - 400
    assert unlocked.command("G0X0")[0] == "ok"
    unlocked.wait_idle(10)
    assert board.step_counts() == (0, 0, 0)


def test_jog_cancel_outside_a_jog_does_nothing(board, unlocked):
    assert unlocked.command("G1X2F300")[0] == "ok"
    time.sleep(0.2)
    unlocked.write(b"\x85")
    unlocked.wait_idle()
    assert board.step_counts() == (800, 0, 0)


# -- work coordinates, $#, $G ----------------------------------------------------------------------------------


def test_ngc_parameters_format(unlocked):
    params = ngc_parameters(unlocked)
    assert list(params) == ["G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92", "TLO", "PRB"]
    assert params["G54"] == "0.000,0.000,0.000" and params["TLO"] == "0.000"
    assert params["PRB"] == "0.000,0.000,0.000:0"


def test_g10_l20_sets_the_offset_and_moves_honour_it(board, unlocked):
    assert unlocked.command("G0X5Y2")[0] == "ok"
    unlocked.wait_idle()
    assert unlocked.command("G10L20P1X0Y0")[0] == "ok"        # "zero here" of every GUI
    assert ngc_parameters(unlocked)["G54"] == "5.000,2.000,0.000"
    line = status_line(unlocked)
    assert "|WCO:5.000,2.000,0.000" in line                   # at once after a change, as GRBL
    assert unlocked.command("G0X1Y1")[0] == "ok"               # work coordinates
    unlocked.wait_idle()
    assert board.step_counts() == (2400, 1200, 0)
    assert unlocked.command("G53G0X1")[0] == "ok"              # machine coordinates, this line only
    unlocked.wait_idle()
    assert board.step_counts()[0] == 400
    assert unlocked.command("G10L2P2X10Y10Z1")[0] == "ok"     # G55 directly
    assert unlocked.command("G55G0X0Y0")[0] == "ok"
    unlocked.wait_idle()
    assert board.step_counts() == (4000, 4000, 0)              # Z had no word: it stays
    assert parser_state(unlocked).startswith("[GC:G0 G55 G17 G21 G90 G94")
    assert unlocked.command("G10L2P7X0")[0] == "error:29"
    assert unlocked.command("G10L3P1X0")[0] == "error:20"
    assert unlocked.command("G10L2X0")[0] == "error:28"
    assert unlocked.command("G10L2P1")[0] == "error:26"


def test_offsets_persist_in_eeprom_and_g92_does_not(firmware_build, make_link, tmp_path):
    from appliance.hardware.stage.simavr_board import SimavrBoard

    eeprom = tmp_path / "eeprom.bin"
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:
        lk = make_link(board)
        assert lk.command("$X")[0] == "ok"
        assert lk.command("G10L2P3X1.5Y2.5Z0.5")[0] == "ok"
        assert lk.command("G0X3")[0] == "ok"
        lk.wait_idle()
        assert lk.command("G92X0")[0] == "ok"
        assert ngc_parameters(lk)["G92"] == "3.000,0.000,0.000"
        assert lk.command("G28.1")[0] == "ok"
        lk.port.close()
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:
        lk = make_link(board)
        params = ngc_parameters(lk)
        assert params["G56"] == "1.500,2.500,0.500" and params["G92"] == "0.000,0.000,0.000"
        assert params["G28"] == "3.000,0.000,0.000"
        assert lk.command("$RST=#")[0] == "ok"
        assert ngc_parameters(lk)["G56"] == "0.000,0.000,0.000"
        lk.port.close()


def test_g92_offsets_and_g28(board, unlocked):
    assert unlocked.command("G0X2")[0] == "ok"
    unlocked.wait_idle()
    assert unlocked.command("G92X0")[0] == "ok"
    assert "|WCO:2.000,0.000,0.000" in status_line(unlocked)
    assert unlocked.command("G0X1")[0] == "ok"                 # 3 mm machine
    unlocked.wait_idle()
    assert board.step_counts()[0] == 1200
    assert unlocked.command("G92.1")[0] == "ok"
    assert unlocked.command("G28.1")[0] == "ok"                # store machine 3 mm
    assert unlocked.command("G0X0")[0] == "ok"
    assert unlocked.command("G28")[0] == "ok"                  # back to the stored position
    unlocked.wait_idle()
    assert board.step_counts()[0] == 1200
    assert unlocked.command("G92")[0] == "error:26"


def test_tool_length_offset(board, unlocked):
    assert unlocked.command("G43.1Z0")[0] == "ok"              # bCNC after every stop
    assert unlocked.command("G43.1Z1.25")[0] == "ok"
    assert ngc_parameters(unlocked)["TLO"] == "1.250"
    assert "|WCO:0.000,0.000,1.250" in status_line(unlocked)
    assert unlocked.command("G0Z0.5")[0] == "ok"               # Z work 0.5 = machine 1.75
    unlocked.wait_idle()
    assert board.step_counts()[2] == 700
    assert unlocked.command("G43.1X1")[0] == "error:37"
    assert unlocked.command("G43.1")[0] == "error:37"
    assert unlocked.command("G43Z1")[0] == "error:20"
    assert unlocked.command("G43.1G0Z1")[0] == "error:24"
    assert unlocked.command("G49")[0] == "ok"
    assert ngc_parameters(unlocked)["TLO"] == "0.000"


def test_parser_state_complete(unlocked):
    for line in ("G1F250", "G91", "G57"):
        assert unlocked.command(line)[0] == "ok"
    assert parser_state(unlocked) == "[GC:G1 G57 G17 G21 G91 G94 M5 M9 T0 F250 S0]"


# -- program flow and the single-mode groups of CAM programs ---------------------------------------------------


def test_safe_start_lines_are_accepted_and_g80_refuses_axis_words(board, unlocked):
    for line in ("G17 G21 G40 G49 G80 G90 G94", "M5 M9", "M1", "G61"):
        assert unlocked.command(line)[0] == "ok", line
    assert parser_state(unlocked).startswith("[GC:G80 G54 ")
    assert unlocked.command("X1")[0] == "error:31"           # G80 in force: GRBL's "axis words exist"
    assert unlocked.command("G92X0")[0] == "error:31"
    assert unlocked.command("M3S1000")[0] == "error:20"      # no spindle to switch on
    assert unlocked.command("M8")[0] == "error:20"
    assert unlocked.command("G40G40")[0] == "error:21"
    time.sleep(0.2)
    assert board.pulse_counts() == (0, 0, 0)
    assert unlocked.command("G0X1")[0] == "ok"
    unlocked.wait_idle()
    assert board.pulse_counts()[0] == 400


def test_program_end_waits_for_the_moves_then_resets_the_modes(board, unlocked):
    assert unlocked.command("G10L2P2X1")[0] == "ok"
    assert unlocked.command("G55G91G1X1F300")[0] == "ok"      # 1 mm at 5 mm/s: still moving when M30 arrives
    send_realtime(unlocked, board, b"\x91")                   # feed override +10 %
    reply, lines = unlocked.command("M30", timeout_s=10.0)
    assert (reply, lines) == ("ok", ["[MSG:Pgm End]"])
    assert board.step_counts()[0] == 400                      # answered only once the move was done
    assert status(unlocked).group(1) == "Idle"
    assert parser_state(unlocked) == "[GC:G1 G54 G17 G21 G90 G94 M5 M9 T0 F300 S0]"
    assert overrides(unlocked) == ("100", "100", "100")


def test_m0_holds_until_cycle_start(board, unlocked):
    unlocked.write(b"G1X1F600\nM0\n")
    assert unlocked.reply()[0] == "ok"                        # the move's line
    end = time.monotonic() + 10.0
    while status(unlocked).group(1) != "Hold:0":
        assert time.monotonic() < end, "no Hold:0 after M0"
    assert board.step_counts()[0] == 400                      # held at rest after the move
    with pytest.raises(AssertionError, match="no ok/error"):
        unlocked.reply(timeout_s=0.5)                         # M0's ok waits for the cycle start
    send_realtime(unlocked, board, b"~")
    assert unlocked.reply()[0] == "ok"
    assert status(unlocked).group(1) == "Idle"
    assert unlocked.command("G0X0")[0] == "ok"                # and the stage moves again
    unlocked.wait_idle()
    assert board.step_counts()[0] == 0


# -- check mode, startup lines ---------------------------------------------------------------------------------


def test_check_mode_runs_a_program_with_zero_steps(board, unlocked):
    reply, lines = unlocked.command("$C")
    assert (reply, lines) == ("ok", ["[MSG:Enabled]"])
    assert status(unlocked).group(1) == "Check"
    program = ["G90G21", "G0X5Y5", "G1X10F300", "G4P5", "M280P0S90", "G10L20P1X0", "G0X70.5", "G1X1"]
    replies = [unlocked.command(line)[0] for line in program]
    assert replies == ["ok"] * 6 + ["error:15", "ok"]           # errors found, nothing moved, no 5 s dwell
    time.sleep(0.3)
    assert board.pulse_counts() == (0, 0, 0) and board.servo_pulse_us() is None
    assert unlocked.command("$J=X1F100")[0] == "error:8"
    reply, lines = unlocked.command("$C")
    assert (reply, lines) == ("ok", ["[MSG:Disabled]"])
    unlocked.expect_line(re.escape(BANNER), 3.0)                # leaving check mode resets, as GRBL
    assert status(unlocked).group(1) == "Idle"
    assert ngc_parameters(unlocked)["G54"] == "0.000,0.000,0.000"   # G10 in check mode stored nothing


def test_startup_lines(board, unlocked):
    reply, lines = unlocked.command("$N")
    assert (reply, lines) == ("ok", ["$N0=", "$N1="])
    assert unlocked.command("$N0=G91 G0")[0] == "ok"
    assert unlocked.command("$N1=G4P0.1")[0] == "ok"
    assert unlocked.command("$N1=G2X1")[0] == "error:20"      # checked before it is stored
    assert unlocked.command("$N0=$H")[0] == "error:3"
    assert unlocked.command("$N2=G0")[0] == "error:3"
    _, lines = unlocked.command("$N")
    assert lines == ["$N0=G91G0", "$N1=G4P0.1"]
    assert parser_state(unlocked).split()[4] == "G90"          # stored, not run
    lines = unlocked.reset()
    assert lines[-3:] == [BANNER, ">G91G0:ok", ">G4P0.1:ok"]
    assert parser_state(unlocked).split()[4] == "G91"
    assert board.pulse_counts() == (0, 0, 0)


def test_startup_lines_do_not_run_in_alarm(firmware_build, make_link, tmp_path):
    from appliance.hardware.stage.simavr_board import SimavrBoard

    eeprom = tmp_path / "eeprom.bin"
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:
        lk = make_link(board)
        assert lk.command("$X")[0] == "ok"
        assert lk.command("$N0=G91")[0] == "ok"
        lk.port.close()
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:   # power-up with homing on: Alarm
        lk = make_link(board)
        assert parser_state(lk).split()[4] == "G90"
        assert lk.command("$X")[0] == "ok"                     # unlocking does not run them either (GRBL)
        assert parser_state(lk).split()[4] == "G90"
        lk.port.close()


# -- the move-length bound and the watchdog ----------------------------------------------------------------------


def test_moves_beyond_the_step_range_are_refused_not_reversed(board, unlocked):
    for cmd in ("$20=0", "$110=6", "$100=100000"):            # the adversarial run's settings
        assert unlocked.command(cmd)[0] == "ok"
    assert unlocked.command("G90G0X-19999")[0] == "error:33"  # -2e9 steps: beyond the +-1e9 step bound
    assert unlocked.command("G0X19999")[0] == "error:33"      # (was: planned 2^32 - 4e9 steps the wrong way)
    time.sleep(0.2)
    assert board.pulse_counts() == (0, 0, 0)
    assert unlocked.command("$130=20000")[0] == "error:3"     # homing would put 2e9 steps in the position
    assert unlocked.command("G0X-9999")[0] == "ok"             # -1e9 steps, the largest target there is
    assert unlocked.command("G0X9999")[0] == "ok"              # then 2e9 steps back: fits in 31 bits
    time.sleep(0.3)
    assert board.step_counts()[0] < 0                           # the first move runs toward minus
    unlocked.write(b"\x18")
    lines = unlocked.reset()
    assert "ALARM:3" in lines


def test_watchdog_reset_keeps_the_link(make_link):
    from appliance.hardware.stage.simavr_board import SimavrBoard

    done = subprocess.run(["make", "-C", str(FIRMWARE), "starve"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    elf = FIRMWARE / "build" / "tppscan-stage-starve.elf"
    with SimavrBoard(elf, FIRMWARE / "build" / "simrunner") as board:
        lk = make_link(board)
        assert lk.command("$X")[0] == "ok"
        assert board.resets() == 0
        lk.write(b"$W\n")                                        # hangs without feeding the watchdog
        lk.expect_line(re.escape(BANNER), 3.0)                   # 250 ms later the chip reboots
        assert board.resets() == 1
        lk.drain(0.3)
        assert lk.command("$I")[0] == "ok"                       # and still hears the host
        assert status(lk).group(1) == "Alarm"   # power-up state: homing is on
        board.set_limit("x", True)                               # the runner drives its pins again
        assert status(lk).group(8) == "X"
        lk.port.close()


# -- the tppscan host driver with work offsets in force ----------------------------------------------------------


def test_grbl_stage_moves_in_machine_coordinates_with_an_offset_in_force(firmware_build, make_link, tmp_path):
    """GrblStage speaks machine coordinates; a G54 offset another host left in EEPROM must not shift its moves."""
    from appliance.hardware.stage.grbl import GrblStage, GrblStageConfig
    from appliance.hardware.stage.simavr_board import SimavrBoard

    with SimavrBoard(*firmware_build, eeprom=tmp_path / "eeprom.bin") as board:
        lk = make_link(board)
        assert lk.command("$X")[0] == "ok"
        assert lk.command("G10L2P1X5Y2Z1")[0] == "ok"          # e.g. a GUI's "zero here" from another session
        lk.port.close()
        cfg = GrblStageConfig(port=board.pty_path, focus="stepper", reset_on_open=True, reply_timeout_s=2.0,
                              handshake_timeout_s=5.0, move_timeout_margin_s=10.0, servo_settle_s=0.0,
                              backlash_approach_um=0.0, feed_xy_mm_per_min=600.0, feed_z_mm_per_min=300.0)
        with GrblStage(cfg) as stage:
            stage.unlock()
            reached = stage.move_to_um(x=2000.0, y=3000.0, z=1000.0)
            assert (reached.x_um, reached.y_um, reached.z_um) == (2000.0, 3000.0, 1000.0)
            assert board.step_counts() == (800, 1200, 400)      # machine millimetres, exactly
        lk = make_link(board)
        assert ngc_parameters(lk)["G54"] == "5.000,2.000,1.000"   # and the host's offset was left alone
        lk.port.close()

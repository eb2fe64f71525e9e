"""The compiled firmware in simavr, driven over its pty with raw pyserial: the wire protocol as docs/protocol.md.

These run the real ``.elf``; step pulses, the servo timer and the limit/button pins are observed and driven by
the simavr runner (``SimavrBoard``).
"""

from __future__ import annotations

import random
import re
import time

import pytest

pytestmark = pytest.mark.simavr

BANNER = "Grbl 1.1h ['$' for help]"


def test_banner_after_soft_reset_and_power_up_alarm(link):
    lines = link.reset()
    assert lines[-2:] == [BANNER, "[MSG:'$H'|'$X' to unlock]"]
    # homing is on by default ($22=1): position unknown at power-up until homed or unlocked
    assert link.status().group(1) == "Alarm"
    assert link.command("G0X1")[0] == "error:9"   # locked
    assert link.command("$X")[0] == "ok"
    assert link.status().group(1) == "Idle"
    link.reset()
    assert link.status().group(1) == "Idle"       # a reset while idle keeps position and state


def test_one_reply_per_line(unlocked):
    lines = ["G90", "", "(just a comment)", "; another", "G4P0", "G0X0.1", "G0G1X1", "Q5", "$I", "$$",
             "g0 x0.2 (lower case)", "\t", "M280P0S10", "$X", "X1X2", "G1X1F0", "N5G91", "G90"]
    expected_errors = {"G0G1X1": "error:21", "Q5": "error:20", "X1X2": "error:25", "G1X1F0": "error:22"}
    for line in lines:
        reply, _ = unlocked.command(line)
        assert reply == expected_errors.get(line, "ok"), line
    assert unlocked.drain(0.3) == []   # nothing extra
    # pipelined, as a character-counting sender does: 10 lines in one write, 10 replies in order
    batch = [f"G0X{i / 10:.1f}" if i % 3 else "G0X" for i in range(10)]
    unlocked.write(("\n".join(batch) + "\n").encode())
    replies = [unlocked.reply()[0] for _ in batch]
    assert replies == ["error:2" if i % 3 == 0 else "ok" for i in range(10)]
    assert unlocked.drain(0.5) == []


def test_status_report_format_and_states(board, unlocked):
    m = unlocked.status()
    assert m.group(1) == "Idle" and m.group(2, 3, 4) == ("0.000", "0.000", "0.000")
    assert int(m.group(5)) == 7 and int(m.group(6)) == 127   # planner blocks free, RX bytes free
    unlocked.command("G1X2F120")   # 1 s
    time.sleep(0.4)
    m = unlocked.status()
    assert m.group(1) == "Run" and 0.0 < float(m.group(2)) < 2.0
    assert int(m.group(5)) < 7    # a block is queued
    m = unlocked.wait_idle()
    assert m.group(2) == "2.000"
    assert board.step_counts() == (800, 0, 0)


def test_step_counts_match_steps_per_mm_both_ways(board, unlocked):
    for cmd in ("$100=320", "$101=250", "$102=800"):
        assert unlocked.command(cmd)[0] == "ok"
    assert unlocked.command("G0X2.5Y1.2Z0.5")[0] == "ok"
    unlocked.wait_idle()
    assert board.step_counts() == (800, 300, 400)
    assert unlocked.command("G1X1Y0.2Z0.125F300")[0] == "ok"   # back: X -480, Y -250, Z -300
    m = unlocked.wait_idle()
    assert board.step_counts() == (320, 50, 100)
    assert board.pulse_counts() == (800 + 480, 300 + 250, 400 + 300)
    assert m.group(2, 3, 4) == ("1.000", "0.200", "0.125")
    assert unlocked.command("G91G0X-0.003125")[0] == "ok"   # exactly one step at 320 steps/mm
    unlocked.wait_idle()
    assert board.step_counts()[0] == 319


def test_servo_pulse_from_timer(board, unlocked):
    assert board.servo_pulse_us() is None   # PWM off until the first M280
    for angle, pulse in ((90, 1500.0), (0, 1000.0), (180, 2000.0), (45.5, 1252.5)):
        assert unlocked.command(f"M280 P0 S{angle}")[0] == "ok"
        assert board.servo_pulse_us() == pytest.approx(pulse, abs=0.5)
        assert board.servo_period_us() == pytest.approx(20000.0, abs=0.5)   # 50 Hz
    assert unlocked.command("$201=600")[0] == "ok"
    assert unlocked.command("$202=2400")[0] == "ok"
    unlocked.command("M280P0S90")
    assert board.servo_pulse_us() == pytest.approx(1500.0, abs=0.5)
    unlocked.command("M280P0S0")
    assert board.servo_pulse_us() == pytest.approx(600.0, abs=0.5)
    assert unlocked.command("M280 P0 S181")[0] == "error:33"
    assert unlocked.command("M280 P1 S10")[0] == "error:20"
    assert board.servo_pulse_us() == pytest.approx(600.0, abs=0.5)
    assert board.step_counts() == (0, 0, 0)


def test_settings_listing(link):
    reply, lines = link.command("$$")
    assert reply == "ok"
    settings = dict(re.fullmatch(r"\$(\d+)=([-\d.]+)", line).groups() for line in lines)
    assert len(settings) == 31
    assert settings["100"] == "400.000" and settings["22"] == "1" and settings["130"] == "70.000"
    assert link.command("$100=-1")[0] == "error:4"
    assert link.command("$999=1")[0] == "error:3"
    assert link.command("$100=abc")[0] == "error:2"
    assert link.command("$0=2")[0] == "error:6"
    assert link.command("$110=5000")[0] == "error:12"   # 33 kHz at 400 steps/mm


def test_settings_persist_in_eeprom_with_checksum(firmware_build, make_link, tmp_path):
    from appliance.hardware.stage.simavr_board import SimavrBoard

    eeprom = tmp_path / "eeprom.bin"
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:
        lk = make_link(board)
        assert lk.command("$100=123.456")[0] == "ok"
        assert lk.command("$204=5")[0] == "ok"
        lk.port.close()
    assert eeprom.stat().st_size == 1024
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:
        lk = make_link(board)
        _, lines = lk.command("$$")
        assert "$100=123.456" in lines and "$204=5" in lines
        lk.port.close()
    data = bytearray(eeprom.read_bytes())
    data[5] ^= 0x40   # damage one byte inside the settings block: the checksum no longer matches
    eeprom.write_bytes(bytes(data))
    with SimavrBoard(*firmware_build, eeprom=eeprom) as board:
        lk = make_link(board)
        _, lines = lk.command("$$")
        assert "$100=400.000" in lines and "$204=20" in lines   # defaults restored
        lk.port.close()


def test_build_info(link):
    reply, lines = link.command("$I")
    assert reply == "ok"
    assert lines == ["[VER:1.1h.20261121:tppscan-stage]", "[OPT:,7,127]"]
    reply, lines = link.command("$G")
    assert reply == "ok" and lines[0].startswith("[GC:G0 G54 G17 G21 G90 G94")


def test_overlong_line_is_an_error_and_moves_nothing(board, unlocked):
    before = board.step_counts()
    assert unlocked.command(b"G1F100X" + b"1" * 993)[0] == "error:11"
    assert unlocked.command(b"G0X5" + b" " * 200 + b"Y" + b"1" * 78)[0] == "error:11"   # 83 characters
    time.sleep(0.3)
    assert board.step_counts() == before
    assert unlocked.status().group(1) == "Idle"
    assert unlocked.command("G0X0.5")[0] == "ok"   # the next line is fine
    unlocked.wait_idle()
    assert board.step_counts()[0] == before[0] + 200


def test_random_bytes_get_errors_and_no_motion(board, unlocked):
    rng = random.Random(1234)
    realtime = {0x18, ord("?"), ord("!"), ord("~"), ord("\n"), ord("\r")}
    # bytes >= 0x80 are real-time (never stored in a line), so a line cannot start with one
    starts = [b for b in range(0x80) if not (chr(b).isalpha() or chr(b) in " \t(;$" or b in realtime)]
    for _ in range(60):
        body = bytes(b for b in rng.randbytes(rng.randint(0, 70)) if b not in realtime)
        reply, _ = unlocked.command(bytes([rng.choice(starts)]) + body)
        assert reply.startswith("error:"), body
    # a raw burst with line breaks anywhere: whatever the replies, the board stays responsive and still
    burst = bytes(b for b in rng.randbytes(3000) if b not in {0x18, ord("!"), ord("~"), ord("$")})
    unlocked.write(burst + b"\n")
    replies = unlocked.drain(1.0)
    assert all(r.startswith(("ok", "error:", "<")) for r in replies), replies
    assert unlocked.status().group(1) == "Idle"
    assert board.step_counts() == (0, 0, 0) and board.pulse_counts() == (0, 0, 0)


def test_soft_limit_refused_without_motion(board, unlocked):
    assert unlocked.command("G0X70.1")[0] == "error:15"
    assert unlocked.command("G0Y-0.1")[0] == "error:15"
    assert unlocked.command("G1Z10.5F100")[0] == "error:15"
    time.sleep(0.2)
    assert board.pulse_counts() == (0, 0, 0)
    assert unlocked.status().group(1) == "Idle"


def test_limit_switch_raises_alarm(board, unlocked):
    assert unlocked.command("G1X10F300")[0] == "ok"
    time.sleep(0.4)
    board.set_limit("x", True)
    unlocked.expect_line(r"^ALARM:1$", 2.0)
    m = unlocked.status()
    assert m.group(1) == "Alarm" and m.group(8) == "X"
    stopped = board.step_counts()
    assert 0 < stopped[0] < 4000
    time.sleep(0.3)
    assert board.step_counts() == stopped
    assert unlocked.command("G0X1")[0] == "error:9"
    board.set_limit("x", False)
    assert unlocked.command("$X")[0] == "ok"
    assert unlocked.status().group(8) is None


def test_button_pushes_messages_debounced(board, unlocked):
    board.set_button(True)
    unlocked.expect_line(r"^\[MSG:BUTTON PRESSED\]$", 2.0)
    board.set_button(False)
    unlocked.expect_line(r"^\[MSG:BUTTON RELEASED\]$", 2.0)
    board.set_button(True)   # a glitch far shorter than the 20 ms debounce
    board.set_button(False)
    assert unlocked.drain(0.3) == []


def test_feed_hold_and_resume(board, unlocked):
    assert unlocked.command("G1X5F300")[0] == "ok"   # 1 s
    time.sleep(0.4)
    unlocked.write(b"!")
    time.sleep(0.4)
    m = unlocked.status()
    assert m.group(1) == "Hold:0"
    held = board.step_counts()
    assert unlocked.command("G1Y1")[0] == "ok"   # lines are still parsed and queued while held
    time.sleep(0.3)
    assert board.step_counts() == held and 0 < held[0] < 2000
    unlocked.write(b"~")
    m = unlocked.wait_idle()
    assert m.group(1) == "Idle" and m.group(2, 3) == ("5.000", "1.000")
    assert board.step_counts() == (2000, 400, 0)


def test_soft_reset_mid_move_loses_position_until_homed(board, unlocked):
    board.place_limit_switch("x", -800, "-")
    board.place_limit_switch("y", -400, "-")
    assert unlocked.command("G1X5F300")[0] == "ok"
    time.sleep(0.4)
    lines = unlocked.reset()
    assert lines[-3:] == ["ALARM:3", BANNER, "[MSG:'$H'|'$X' to unlock]"]
    assert unlocked.status().group(1) == "Alarm"
    assert unlocked.command("G0X1")[0] == "error:9"
    moved = board.step_counts()
    reply, others = unlocked.command("$H", timeout_s=30)
    assert reply == "ok", others
    m = unlocked.status()
    assert m.group(1) == "Idle" and m.group(2, 3) == ("0.000", "0.000")
    # seek to the switch, pull off 1 mm (400 steps), locate it again, pull off: 1 mm from the switch
    assert board.step_counts()[:2] == (-800 + 400, -400 + 400)
    assert moved[0] > 0
    assert unlocked.command("G0X1")[0] == "ok"
    unlocked.wait_idle()
    assert board.step_counts()[0] == -400 + 400


def test_homing_fails_without_switches(board, unlocked):
    assert unlocked.command("$130=2")[0] == "ok"   # short travel: the seek gives up after 3 mm
    assert unlocked.command("$131=2")[0] == "ok"
    reply, others = unlocked.command("$H", timeout_s=20)
    assert reply == "error:9" and "ALARM:9" in others
    assert unlocked.status().group(1) == "Alarm"


def test_dwell_waits_in_real_time(unlocked):
    start = time.monotonic()
    assert unlocked.command("G4P0.6")[0] == "ok"
    assert time.monotonic() - start >= 0.55
    assert unlocked.command("G4P-1")[0] == "error:4"


def test_pty_survives_reconnect(board, unlocked, make_link):
    unlocked.port.close()
    again = make_link(board, reset=False)   # no reset: the chip keeps running, unlocked
    assert again.status().group(1) == "Idle"
    again.port.close()


def test_watchdog_is_on(board, link):
    wdtcsr = board.peek(0x60)
    assert wdtcsr & 0x08, f"WDE clear in WDTCSR={wdtcsr:#04x}"   # system reset mode
    assert wdtcsr & 0x27 == 0x04, f"WDTCSR={wdtcsr:#04x}: timeout is not 250 ms"   # WDP = 0100
    assert link.status()   # and the firmware keeps feeding it: still alive a while later
    time.sleep(0.6)
    assert link.status().group(1) == "Alarm"   # no watchdog reset (that would print a banner)
    assert link.drain(0.2) == []


def test_full_planner_delays_replies_but_not_status(board, unlocked):
    moves = [f"G1X{0.2 * (i + 1):.1f}F600" for i in range(12)]   # 12 short moves, 8-block planner
    unlocked.write(("\n".join(moves) + "\n").encode())
    time.sleep(0.15)
    m = unlocked.status()   # answered while the main loop waits for a free block
    assert m.group(1) == "Run" and int(m.group(5)) == 0
    replies = [unlocked.reply(10)[0] for _ in moves]
    assert replies == ["ok"] * 12
    m = unlocked.wait_idle()
    assert m.group(2) == "2.400" and board.step_counts() == (960, 0, 0)


def test_status_stays_prompt_at_the_highest_step_rate_on_three_axes(board, unlocked):
    # 1500 mm/min x 400 steps/mm = 10 kHz, the step tick rate, on X, Y and Z at once
    for n in (110, 111, 112):
        assert unlocked.command(f"${n}=1500")[0] == "ok"
    for n in (120, 121, 122):
        assert unlocked.command(f"${n}=5000")[0] == "ok"
    assert unlocked.command("$111=1501")[0] == "error:12"   # one step per second too fast
    assert unlocked.command("G1X9Y9Z9F2598")[0] == "ok"   # 1500 mm/min per axis
    time.sleep(0.25)
    c0, t0 = board.pulse_counts(), time.monotonic()
    worst = 0.0
    for _ in range(10):
        start = time.monotonic()
        assert unlocked.status().group(1) == "Run"
        worst = max(worst, time.monotonic() - start)
    rate = (board.pulse_counts()[2] - c0[2]) / (time.monotonic() - t0)
    assert worst < 0.1, f"status took {worst * 1000:.0f} ms while stepping"   # the main loop is not starved
    assert rate == pytest.approx(10000, rel=0.25)
    unlocked.wait_idle()
    assert board.step_counts() == (3600, 3600, 3600)


def test_arbitrary_bytes_never_lock_it_up(board, link):
    # every byte value, real-time ones included, in bursts; the board stays in Alarm (locked) so nothing moves
    rng = random.Random(99)
    for _ in range(20):
        link.write(rng.randbytes(500))
        time.sleep(0.05)
    link.drain(0.5)
    lines = link.reset()   # whatever state the bytes left, a soft reset brings the banner back
    assert lines[-2:] == [BANNER, "[MSG:'$H'|'$X' to unlock]"]
    assert link.command("$I")[0] == "ok"
    assert link.status().group(1) == "Alarm"
    assert board.pulse_counts() == (0, 0, 0)

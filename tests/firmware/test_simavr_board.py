"""SimavrBoard, the wrapper around the simavr runner: life cycle, errors, pacing, runner protocol."""

from __future__ import annotations

import subprocess
import time

import pytest

from appliance.hardware.stage.simavr_board import SimavrBoard, SimavrBoardError, default_paths

pytestmark = pytest.mark.simavr


def test_default_paths_point_into_the_build(firmware_build):
    elf, runner = default_paths()
    assert (elf, runner) == firmware_build
    assert elf.name == "tppscan-stage.elf" and runner.name == "simrunner"


def test_missing_files_are_clear_errors(tmp_path, firmware_build):
    with pytest.raises(SimavrBoardError, match="does not exist"):
        SimavrBoard(tmp_path / "none.elf", firmware_build[1]).start()
    bogus = tmp_path / "bogus.elf"
    bogus.write_bytes(b"not an elf")
    with pytest.raises(SimavrBoardError, match="did not report its pty"):
        SimavrBoard(bogus, firmware_build[1]).start()


def test_not_started_and_stop_twice(firmware_build):
    board = SimavrBoard(*firmware_build)
    with pytest.raises(SimavrBoardError, match="not started"):
        _ = board.pty_path
    with pytest.raises(SimavrBoardError, match="not started"):
        board.step_counts()
    board.start()
    path = board.pty_path
    assert path.startswith("/dev/pts/")
    board.stop()
    board.stop()
    with pytest.raises(SimavrBoardError, match="not started"):
        board.step_counts()


def test_bad_arguments(board):
    with pytest.raises(ValueError, match="axis must be one of"):
        board.set_limit("w", True)
    with pytest.raises(ValueError, match="side must be"):
        board.place_limit_switch("x", 5, "<")
    assert board.step_counts() == (0, 0, 0)
    assert board.pulse_counts() == (0, 0, 0)
    assert board.servo_pulse_us() is None and board.servo_period_us() is None


def test_parallel_boards_have_their_own_pty(firmware_build):
    with SimavrBoard(*firmware_build) as a, SimavrBoard(*firmware_build) as b:
        assert a.pty_path != b.pty_path


def test_realtime_pacing_and_fast_mode(firmware_build):
    with SimavrBoard(*firmware_build, realtime=True) as board:
        c0, t0 = board.cycles(), time.monotonic()
        time.sleep(0.5)
        rate = (board.cycles() - c0) / (time.monotonic() - t0)
    assert rate == pytest.approx(16e6, rel=0.2)   # simulated 16 MHz follows the wall clock
    with SimavrBoard(*firmware_build, realtime=False) as board:
        c0, t0 = board.cycles(), time.monotonic()
        time.sleep(0.5)
        rate = (board.cycles() - c0) / (time.monotonic() - t0)
    assert rate > 2 * 16e6   # an idle firmware sleeps: unpaced, simulated time runs ahead


def test_runner_protocol_errors(firmware_build):
    with subprocess.Popen([str(firmware_build[1]), str(firmware_build[0])], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout.readline().startswith("PTY /dev/pts/")
            for command in ("HELLO", "LIMIT q 1", "LIMIT x 2", "SWITCH x 10 <", "BUTTON"):
                proc.stdin.write(command + "\n")
                proc.stdin.flush()
                assert proc.stdout.readline().startswith("ERR"), command
            proc.stdin.write("QUIT\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "BYE"
            assert proc.wait(timeout=5) == 0
        finally:
            proc.kill()


PINB = 0x23  # ATmega328P data-space address of the port B input register


@pytest.mark.parametrize("pins", ["ours", "grbl"])
def test_the_y_limit_switch_is_wired_where_the_firmware_reads_it(firmware_build, pins):
    # our firmware reads Y on D11 (PB3); stock GRBL 1.1 on D10 (PB2), which our firmware drives as the servo's
    # output, so with GRBL's wiring a Y switch leaves our PB3 alone; X on D9 (PB1) for both
    with SimavrBoard(*firmware_build, realtime=False, pins=pins) as board:
        deadline = time.monotonic() + 10.0
        while board.cycles() < 1_600_000 and time.monotonic() < deadline:  # 0.1 s of AVR time: its pull-ups set
            time.sleep(0.01)
        rest = board.peek(PINB)
        assert rest & (1 << 3) and rest & (1 << 1)
        board.set_limit("y", True)
        assert bool(board.peek(PINB) & (1 << 3)) == (pins == "grbl")
        board.set_limit("x", True)
        assert not board.peek(PINB) & (1 << 1)


def test_pins_other_than_ours_or_grbl_are_refused(firmware_build):
    with pytest.raises(ValueError, match="pins must be 'ours' or 'grbl', got 'ramps'"):
        SimavrBoard(*firmware_build, pins="ramps")

"""``tppscan stage ...`` against the fake stock-GRBL board."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main(["stage", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("action", ["status", "home", "move", "focus", "stream", "settings"])
def test_every_action_has_help(capsys, action):
    with pytest.raises(SystemExit) as done:
        main(["stage", action, "--help"])
    assert done.value.code == 0
    assert "--simavr" in capsys.readouterr().out


def test_status_home_move_focus(capsys, fake_grbl):
    port = ["--port", fake_grbl.path, "--boot-delay", "0"]
    code, out, _ = run(capsys, "status", *port)
    assert code == 0
    assert "firmware GRBL 1.1h.20190825" in out and "state    Alarm" in out and "focus    stepper" in out
    code, out, err = run(capsys, "move", *port, "--x", "-100")
    assert code == 1 and "error:9" in err
    code, out, _ = run(capsys, "move", *port, "--home", "--x", "-100", "--y", "-20")
    assert code == 0 and "x=-100.0 um  y=-20.0 um" in out
    code, out, _ = run(capsys, "move", *port, "--relative", "--x", "-48")
    assert code == 0 and "x=-148.0 um" in out
    code, out, _ = run(capsys, "focus", *port, "-25")
    assert code == 0 and "z=-24.0 um (stepper focus)" in out  # stock GRBL's Z: 4 um a step


def test_settings_list_and_set(capsys, fake_grbl):
    port = ["--port", fake_grbl.path, "--boot-delay", "0"]
    code, out, _ = run(capsys, "settings", *port, "--set", "100=400", "--set", "$101=300")
    assert code == 0 and "$100=400" in out and "$101=300" in out
    assert fake_grbl.settings[100] == 400
    with pytest.raises(SystemExit) as done:
        main(["stage", "settings", *port, "--set", "speed"])
    assert done.value.code == 2 and "argument --set: 'speed' is not N=VALUE" in capsys.readouterr().err


def test_stream_prints_transcript_and_fails_on_error(capsys, fake_grbl, tmp_path):
    port = ["--port", fake_grbl.path, "--boot-delay", "0"]
    prog = tmp_path / "p.gcode"
    prog.write_text("$X ; unlock\nG91\nG1 X-1 F600\nM280 P0 S90\nG1 X-1\n")
    code, out, err = run(capsys, "stream", *port, str(prog))
    assert code == 1
    assert out.splitlines() == ["$X -> ok", "G91 -> ok", "G1 X-1 F600 -> ok",
                                "M280 P0 S90 -> error:23 (G-code command in block requires an integer value)",
                                "board Idle: motion finished"]
    assert "1 line(s) rejected, stopped" in err


def test_clear_errors_without_a_board(capsys, tmp_path):
    code, _, err = run(capsys, "status")
    assert code == 2 and "--port DEVICE, --usb-id VID:PID or --simavr" in err
    code, _, err = run(capsys, "status", "--port", str(tmp_path / "ttyNONE"))
    assert code == 1 and "cannot open stage port" in err
    code, _, err = run(capsys, "stream", "--port", "/dev/null", str(tmp_path / "missing.gcode"))
    assert code == 1 and "missing.gcode: no such file" in err
    code, _, err = run(capsys, "move", "--port", "/dev/null")
    assert code == 2 and "at least one of --x, --y, --z" in err


def test_a_program_with_no_commands_or_a_setting_given_twice_is_refused_before_the_board(capsys, tmp_path):
    # both used to pass: the empty program exited 0 with no note, the second value of $110 silently won
    for name, text in (("empty.gcode", ""), ("notes.gcode", "; only a comment\n(another)\n\n")):
        (tmp_path / name).write_text(text)
        code, _, err = run(capsys, "stream", "--port", "/dev/null", str(tmp_path / name))
        assert code == 1 and f"{name}: no G-code commands in it" in err
    code, _, err = run(capsys, "settings", "--port", "/dev/null", "--set", "110=500", "--set", "$110=700")
    assert code == 2 and "--set $110 given 2 times (500, 700)" in err


@pytest.mark.simavr
def test_simavr_try_without_hardware(capsys, firmware_paths):
    code, out, _ = run(capsys, "status", "--simavr")
    assert code == 0 and "tppscan-stage" in out and "focus    servo" in out and "state    Alarm" in out
    code, out, _ = run(capsys, "move", "--simavr", "--unlock", "--x", "1500", "--y", "250")
    assert code == 0 and "x=1500.0 um  y=250.0 um" in out
    code, out, _ = run(capsys, "move", "--simavr", "--home", "--x", "1000", "--y", "500")
    assert code == 0 and "x=1000.0 um  y=500.0 um" in out  # virtual limit switches make homing work
    code, out, err = run(capsys, "move", "--simavr", "--unlock", "--x", "99000")
    assert code == 1 and "error:15" in err
    code, out, _ = run(capsys, "focus", "--simavr", "--unlock", "--um-per-degree", "2", "90")
    assert code == 0 and "z=90.0 um (servo focus)" in out
    program = Path(__file__).parent / "data" / "transcript.gcode"
    code, out, err = run(capsys, "stream", "--simavr", str(program))
    assert code == 1 and out.splitlines()[-2].startswith("G1 X100 F300 -> error:15")
    assert "1 line(s) rejected, stopped" in err


# -- every value option bounded (issue 8, must show 4) -------------------------------------------------

BAD_VALUES = [  # (argv after 'stage', option named in the message, value as typed, range text)
    (["status", "--boot-delay", "1e9"], "--boot-delay", "1e9", "[0, 30]"),
    (["status", "--boot-delay", "-1"], "--boot-delay", "-1", "[0, 30]"),
    (["status", "--boot-delay", "nan"], "--boot-delay", "nan", "[0, 30]"),
    (["status", "--usb-id", "arduino"], "--usb-id", "arduino", "VID:PID with 4 hex digits"),
    (["status", "--baud", "1234"], "--baud", "1234", "115200"),
    (["status", "--baud", "fast"], "--baud", "fast", "115200"),
    (["status", "--um-per-degree", "0"], "--um-per-degree", "0", "[0.001, 1000]"),
    (["status", "--um-per-degree", "inf"], "--um-per-degree", "inf", "[0.001, 1000]"),
    (["status", "--focus-mode", "magic"], "--focus-mode", "magic", "'auto', 'servo', 'stepper'"),
    (["move", "--x", "1e300"], "--x", "1e300", "[-1e+06, 1e+06]"),
    (["move", "--y", "nan"], "--y", "nan", "[-1e+06, 1e+06]"),
    (["move", "--z=-inf"], "--z", "-inf", "[-1e+06, 1e+06]"),
    (["move", "--x", "ten"], "--x", "ten", "[-1e+06, 1e+06]"),
    (["move", "--x", "1", "--on-interrupt", "panic"], "--on-interrupt", "panic", "'hold', 'reset'"),
    (["focus", "1e7"], "Z_UM", "1e7", "[-1e+06, 1e+06]"),
    (["stream", "p.gcode", "--line-timeout", "nan"], "--line-timeout", "nan", "[0.01, 3600]"),
    (["stream", "p.gcode", "--line-timeout", "inf"], "--line-timeout", "inf", "[0.01, 3600]"),
    (["stream", "p.gcode", "--line-timeout", "0"], "--line-timeout", "0", "[0.01, 3600]"),
    (["stream", "p.gcode", "--line-timeout", "-1"], "--line-timeout", "-1", "[0.01, 3600]"),
    (["settings", "--set", "300=1"], "--set", "300=1", "0..255"),
    (["settings", "--set", "100=1e300"], "--set", "100=1e300", "[-1e+06, 1e+06]"),
    (["settings", "--set", "100=nan"], "--set", "100=nan", "[-1e+06, 1e+06]"),
    (["settings", "--set", "speed"], "--set", "speed", "N=VALUE"),
    (["move", "--port", "/dev/null"], "--x, --y, --z", "", "at least one"),
]


@pytest.mark.parametrize("argv,option,value,allowed", BAD_VALUES, ids=[" ".join(b[0]) for b in BAD_VALUES])
def test_bad_values_exit_2_with_one_line(capsys, argv, option, value, allowed):
    try:
        code = main(["stage", *argv])
    except SystemExit as done:  # argparse's way out
        code = done.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert option in err and value in err and allowed in err, err
    assert "Traceback" not in err


def _one_line_exit_1(capsys, *argv):
    code, out, err = run(capsys, *argv)
    assert code == 1, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_device_and_file_errors_exit_1_with_one_line(capsys, fake_grbl, tmp_path):
    port = ["--port", fake_grbl.path, "--boot-delay", "0"]
    assert "cannot open stage port" in _one_line_exit_1(capsys, "status", "--port", str(tmp_path / "ttyNONE"))
    assert "/dev/zero: not a regular file" in _one_line_exit_1(capsys, "stream", *port, "/dev/zero")
    assert "not a regular file" in _one_line_exit_1(capsys, "stream", *port, str(tmp_path))
    latin = tmp_path / "latin.gcode"
    latin.write_bytes(b"G1 X1 (\xb5m)\n")
    assert "not UTF-8" in _one_line_exit_1(capsys, "stream", *port, str(latin))
    long_line = tmp_path / "long.gcode"
    long_line.write_text("G90\nG1 X" + "1" * 90 + "\n")
    assert "line 2: 94 characters" in _one_line_exit_1(capsys, "stream", *port, str(long_line))
    prog = tmp_path / "p.gcode"
    prog.write_text("$X\nG1 X-1 F600\n")
    fake_grbl.reply_override["G1X-1F600"] = []  # a board that never answers this line
    t0 = time.monotonic()
    err = _one_line_exit_1(capsys, "stream", *port, "--line-timeout", "0.5", str(prog))
    assert "no ok/error for 'G1 X-1 F600' within 0.5 s" in err and time.monotonic() - t0 < 5


def test_silent_board_is_a_one_line_error_not_a_hang(capsys, fake_grbl):
    fake_grbl.silent = True
    t0 = time.monotonic()
    err = _one_line_exit_1(capsys, "status", "--port", fake_grbl.path, "--boot-delay", "0")
    # the handshake's 5 s and one soft reset, plus the CLI's first imports when the test runs alone (8.6 s seen):
    # the bound is "not a hang", not the handshake's exact length
    assert "no GRBL status report" in err and time.monotonic() - t0 < 20


def test_message_flood_error_is_bounded(capsys, fake_grbl):
    fake_grbl.reply_override["$$"] = [f"[MSG:flood {i} {'x' * 30}]" for i in range(1000)]
    err = _one_line_exit_1(capsys, "status", "--port", fake_grbl.path, "--boot-delay", "0")
    assert len(err) < 600


# -- stale or wrong text (issue 8, case 17) -----------------------------------------------------------

def test_texts_a_user_meets(capsys, fake_grbl, tmp_path):
    port = ["--port", fake_grbl.path, "--boot-delay", "0"]
    with pytest.raises(SystemExit):
        main(["stage", "move", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "no switches" not in help_text and "--home works there too" in help_text
    docs = (Path(__file__).parents[2] / "docs" / "stage-driver.md").read_text()
    assert "no switches" not in docs
    # a fresh board with homing enabled is locked: the stream says what to do
    prog = tmp_path / "p.gcode"
    prog.write_text("G1 X-1 F600\n")
    code, _, err = run(capsys, "stream", *port, str(prog))
    assert code == 1 and "error:9" in err and "add --unlock or --home" in err
    # servo focus before any focus move: no 'nan', no Python hint
    code, out, _ = run(capsys, "status", *port, "--focus-mode", "servo")
    assert code == 0 and "nan" not in out and "z=unknown" in out
    code, _, err = run(capsys, "move", *port, "--focus-mode", "servo", "--unlock", "--relative", "--z", "5")
    assert code == 2 and "tppscan stage focus Z_UM" in err and "focus_to_um" not in err
    # a value the board refuses (our firmware: error:3 for a value outside a setting's range)
    fake_grbl.reply_override["$100=0"] = ["error:3"]
    code, _, err = run(capsys, "settings", *port, "--set", "100=0")
    assert code == 1 and "refused '$100=0'" in err and "outside what the board accepts for $100" in err
    assert "not recognised" not in err


def test_stream_waits_until_the_motion_has_ended(capsys, fake_grbl, tmp_path):
    prog = tmp_path / "p.gcode"
    prog.write_text("$H\nG1 X-10 F1200\n")  # 0.5 s of motion after the last 'ok'
    code, out, _ = run(capsys, "stream", "--port", fake_grbl.path, "--boot-delay", "0", str(prog))
    assert code == 0 and out.splitlines()[-1] == "board Idle: motion finished"
    assert fake_grbl.state == "Idle" and fake_grbl.mpos[0] == pytest.approx(-10.0)


# -- Ctrl-C stops the stage (issue 8, case 14; must show 3) -------------------------------------------

def _as_from_a_terminal() -> None:
    """In the child, before exec: SIGINT at its default and unblocked, as a shell gives it to a command.

    An ignored or blocked signal is inherited through exec, so without this the test would depend on whatever an
    earlier test or library left in the pytest process (seen once in a full run: the child never saw the Ctrl-C).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _cli(*argv: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "appliance.cli", "stage", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)


def _interrupt_when(proc: subprocess.Popen, moving: Callable[[], bool], timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while not moving():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stage never started moving"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    return time.monotonic()


def test_ctrl_c_with_on_interrupt_reset_drops_the_queued_motion(fake_grbl, tmp_path):
    proc = _cli("move", "--port", fake_grbl.path, "--boot-delay", "0", "--home", "--x", "-50000",
                "--on-interrupt", "reset")
    _interrupt_when(proc, lambda: fake_grbl.mpos[0] < -0.2)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "feed hold sent" in err and "then reset" in err and "Traceback" not in err
    assert fake_grbl.resets_received == 1 and fake_grbl.state == "Idle" and not fake_grbl.queue
    assert -50.0 < fake_grbl.mpos[0] < -0.2


def test_ctrl_c_during_homing_resets_by_default(fake_grbl):
    """A feed hold does not stop GRBL's homing cycle; Ctrl-C in 'stage home' resets (ALARM:6, stopped)."""
    fake_grbl.homing_s = 30.0
    proc = _cli("home", "--port", fake_grbl.path, "--boot-delay", "0")
    _interrupt_when(proc, lambda: fake_grbl.state == "Home")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "then reset" in err and "Traceback" not in err
    assert fake_grbl.resets_received == 1 and fake_grbl.state == "Alarm"


@pytest.mark.simavr
@pytest.mark.parametrize("action", ["move", "stream"])
def test_ctrl_c_stops_the_simavr_stage(simboard, tmp_path, action):
    """SIGINT to the CLI mid-move: the firmware's step count stops growing within 0.5 s.

    The test owns the simavr board (the CLI talks to its pty with --port) so the board outlives the CLI and
    its step pulses, counted by the runner, show whether the stage really stopped.
    """
    target_mm = 60.0  # 6 s at the default 600 mm/min
    if action == "move":
        proc = _cli("move", "--port", simboard.pty_path, "--boot-delay", "0", "--unlock", "--x", str(target_mm * 1000))
    else:
        prog = tmp_path / "long.gcode"
        prog.write_text(f"$X\nG1 X{target_mm:g} F600\n")
        proc = _cli("stream", "--port", simboard.pty_path, "--boot-delay", "0", str(prog))
    t_sig = _interrupt_when(proc, lambda: simboard.step_counts()[0] > 400)
    samples = []  # (seconds after SIGINT, X step count), every ~10 ms for 1 s
    while (now := time.monotonic() - t_sig) < 1.0:
        samples.append((now, simboard.step_counts()[0]))
        time.sleep(0.01)
    out, err = proc.communicate(timeout=20)
    final = simboard.step_counts()[0]
    last_change = max((t for (t, c) in samples if c != final), default=0.0)
    print(f"\n{action}: last step {last_change * 1000:.0f} ms after SIGINT, "
          f"{final - samples[0][1]} steps after it")
    assert last_change < 0.5  # the step count stops growing within 0.5 s...
    assert samples[-1][1] == final  # ...and stays put after the CLI has gone
    assert final < 0.5 * target_mm * 400  # far from the target (400 steps/mm by default)
    assert proc.returncode == 130, err
    assert "stage: feed hold sent at x=" in err and "Traceback" not in err


@pytest.mark.simavr
def test_ctrl_c_with_simavr_board_exits_cleanly(firmware_paths):
    """--simavr: the board lives in the CLI process and ends with it; the exit is still one clean line each."""
    proc = _cli("move", "--simavr", "--unlock", "--x", "60000")
    time.sleep(6.0)  # python start-up, make (up to date), simavr start, handshake, the move under way
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "feed hold sent" in err and "Traceback" not in err


def test_home_on_a_board_that_falls_silent_is_a_quick_one_line_error(capsys, fake_grbl):
    """`stage home` on our firmware gone silent at $H: one line naming the port within seconds, not 120 s."""
    fake_grbl.build_name, fake_grbl.reports_while_homing, fake_grbl.homing_s = "tppscan-stage", True, 60.0

    def silence_at_home() -> None:
        deadline = time.monotonic() + 10.0
        while "$H" not in fake_grbl.received and time.monotonic() < deadline:
            time.sleep(0.005)
        fake_grbl.silent = True
    threading.Thread(target=silence_at_home, daemon=True).start()
    t0 = time.monotonic()
    err = _one_line_exit_1(capsys, "home", "--port", fake_grbl.path, "--boot-delay", "0")
    assert f"no status report from {fake_grbl.path} within 2 s of '?' while '$H' ran" in err, err
    assert time.monotonic() - t0 < 8.0


def test_a_locked_board_is_told_what_to_do_in_this_clis_words(capsys, fake_grbl):
    """``status`` printed ``state Alarm`` with no next step, and a refused move said ``home ($H) or unlock ($X)``,
    the firmware's commands, where this CLI has ``tppscan stage home``, ``--home`` and ``--unlock``."""
    port = ["--port", fake_grbl.path, "--boot-delay", "0"]
    code, out, _ = run(capsys, "status", *port)
    assert code == 0 and "state    Alarm" in out
    assert "next     locked in alarm: run 'tppscan stage home', or add --home or --unlock to move" in out
    code, _, err = run(capsys, "move", *port, "--x", "10")
    assert code == 1 and err.count("\n") == 1 and "error:9" in err, err
    assert "add --home (homing cycle) or --unlock (trust the position)" in err and "$H" not in err, err

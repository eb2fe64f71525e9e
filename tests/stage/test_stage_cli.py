"""``tppscan stage ...`` against the fake stock-GRBL board."""

from pathlib import Path

import pytest

from appliance.cli import main


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
    code, out, _ = run(capsys, "move", *port, "--relative", "--x", "-50")
    assert code == 0 and "x=-150.0 um" in out
    code, out, _ = run(capsys, "focus", *port, "-25")
    assert code == 0 and "z=-25.0 um (stepper focus)" in out


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
    assert code == 1 and out.splitlines()[-1].startswith("G1 X100 F300 -> error:15")
    assert "1 line(s) rejected, stopped" in err

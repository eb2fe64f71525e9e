import subprocess
import sys

from appliance.cli import build_parser, main


def test_help_lists_every_command(capsys):
    parser = build_parser()
    text = parser.format_help()
    for cmd in ("scan", "calibrate", "results", "sim", "stage"):
        assert cmd in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: tppscan" in capsys.readouterr().out


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "appliance.cli", "--help"], capture_output=True, text=True,
                         check=True)
    assert "tppscan" in out.stdout


def test_device_errors_are_reported_not_raised(capsys, tmp_path):
    # a target beyond the simulated stage's travel: a clear message and exit 1, no traceback
    code = main(["sim", "field", "--seed", "1", "--x", "99999999", "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 1
    assert "StageLimitError" in err and "99999999" in err and "Traceback" not in err

import subprocess
import sys

import pytest

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
    # an output the file system refuses: a clear message and exit 1, no traceback
    code = main(["sim", "field", "--seed", "1", "--out", "/proc/f.png"])
    err = capsys.readouterr().err
    assert code == 1
    assert "/proc/f.png" in err and "Traceback" not in err
    # a target beyond the simulated stage's travel is a bad value: exit 2, refused before the stage moves
    with pytest.raises(SystemExit) as e:
        main(["sim", "field", "--seed", "1", "--x", "99999999", "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--x" in err and "99999999" in err and "travel" in err


class _ClosedPipe:
    """A stdout whose reader has gone away, as ``tppscan results show DIR | head`` leaves it."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_went_away_ends_the_command_quietly(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["config", "show", "--defaults"]) == 141
    assert capsys.readouterr().err == ""

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


def test_a_permission_refused_on_the_services_folders_names_the_group(capsys, monkeypatch):
    # a lab user not (yet) in group tppscan reading the installed service's results got a bare PermissionError
    import appliance.results.cli as results_cli

    def refuse(args):
        raise PermissionError(13, "Permission denied", "/var/lib/tppscan/tppscan.db")

    monkeypatch.setattr(results_cli, "_cmd_list", refuse)
    assert main(["results", "list"]) == 1
    err = capsys.readouterr().err
    assert "Permission denied" in err and "usermod -aG tppscan" in err and err.count("\n") == 1
    monkeypatch.setattr(results_cli, "_cmd_list", lambda args: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", "/home/me/x.db")))
    assert main(["results", "list"]) == 1
    assert "usermod" not in capsys.readouterr().err  # another folder: not the service's group to join


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

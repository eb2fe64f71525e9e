"""Every ``tppscan sim`` option, given a bad value: one line naming option, value and range, and the right code.

One row per bad value (issue 7, "Also in tppscan sim"): bad values exit 2, outputs that cannot be written
exit 1, both before anything is rendered. Rendering is replaced by a tripwire, so a row that reaches the
camera or the overview fails; no row may leave an output file behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.sim.camera import SimCamera
from appliance.sim.microscope import VirtualMicroscope

# (subcommand and options, exit code, words the one line must hold). "{tmp}" is the test's directory.
ROWS: list[tuple[list[str], int, list[str]]] = [
    # --seed (every subcommand)
    (["slide", "--seed", "-1"], 2, ["--seed", "-1", "[0, 4294967295]"]),
    (["field", "--seed", "x"], 2, ["--seed", "'x'", "integer"]),
    (["stack", "--seed", "1.5"], 2, ["--seed", "'1.5'", "integer"]),
    (["strip", "--cls", "pentagon", "--seed", "-7"], 2, ["--seed", "-7", "[0, 4294967295]"]),
    (["field", "--seed", "4294967296"], 2, ["--seed", "4294967296", "[0, 4294967295]"]),
    # --out: extension, no extension, directory, unwritable places (file errors: exit 1)
    (["slide", "--out", "{tmp}/map.jpg"], 2, ["--out", "map.jpg", ".png"]),
    (["field", "--out", "{tmp}/frame"], 2, ["--out", "frame", ".png"]),
    (["field", "--out", "{tmp}/.png"], 2, ["--out", ".png", "ending in .png"]),
    (["stack", "--out", "{tmp}/s.png"], 2, ["--out", "s.png", ".ome.tif"]),
    (["strip", "--cls", "pentagon", "--out", "{tmp}/p.tif"], 2, ["--out", "p.tif", ".png"]),
    (["field", "--out", "{tmp}"], 2, ["--out", "is a folder", "ending in .png"]),   # bad input, as focus stack's
    (["stack", "--out", "{tmp}/d.ome.tif.json/../d.ome.tif"], 1, ["sidecar", "d.ome.tif.json", "is a folder"]),
    (["field", "--out", "{tmp}/pipe.png"], 1, ["--out", "pipe.png", "not a regular file"]),   # opened, it blocked
    (["field", "--out", "/proc/x.png"], 1, ["--out", "/proc/x.png", "cannot write"]),
    (["slide", "--out", "{tmp}/file.txt/x.png"], 1, ["--out", "file.txt/x.png", "cannot write"]),
    # --slice-um (every subcommand)
    (["field", "--slice-um", "0.1"], 2, ["--slice-um", "0.1", "[0.5, 50.0]"]),
    (["slide", "--slice-um", "nan"], 2, ["--slice-um", "nan", "finite"]),
    (["strip", "--cls", "pentagon", "--slice-um", "inf"], 2, ["--slice-um", "inf", "finite"]),
    (["stack", "--slice-um", "60"], 2, ["--slice-um", "60", "[0.5, 50.0]"]),
    # slide: --um-per-px, --markers
    (["slide", "--um-per-px", "0.1"], 2, ["--um-per-px", "0.1", "[1.0, 200.0]"]),
    (["slide", "--um-per-px", "inf"], 2, ["--um-per-px", "inf", "finite"]),
    (["slide", "--markers=red"], 2, ["--markers", "'red'"]),
    # field/stack: --x, --y (finite, inside the stage's travel)
    (["field", "--x", "1e300"], 2, ["--x", "1e300", "[0, 25000]", "travel"]),
    (["field", "--x", "nan"], 2, ["--x", "nan", "finite"]),
    (["stack", "--x", "-5"], 2, ["--x", "-5", "[0, 25000]"]),
    (["field", "--y", "inf"], 2, ["--y", "inf", "finite"]),
    (["stack", "--y", "25001"], 2, ["--y", "25001", "[0, 25000]"]),
    (["field", "--y", "north"], 2, ["--y", "'north'", "number"]),
    # field/stack: --width, --height, --exposure-ms
    (["field", "--width", "4000"], 2, ["--width", "4000", "[16, 2592]"]),
    (["stack", "--width", "8"], 2, ["--width", "8", "[16, 2592]"]),
    (["field", "--height", "2000"], 2, ["--height", "2000", "[16, 1944]"]),
    (["stack", "--height", "480.5"], 2, ["--height", "'480.5'", "integer"]),
    (["field", "--exposure-ms", "-1"], 2, ["--exposure-ms", "-1", "[0.01, 10000.0]"]),
    (["stack", "--exposure-ms", "nan"], 2, ["--exposure-ms", "nan", "finite"]),
    # field: --z
    (["field", "--z", "200"], 2, ["--z", "200", "[0, 180]"]),
    (["field", "--z=-inf"], 2, ["--z", "-inf", "finite"]),
    # stack: --z-from, --z-to, --z-step, their order, the plane count, the memory the stack needs
    (["stack", "--z-to", "inf"], 2, ["--z-to", "inf", "finite", "[0, 180]"]),
    (["stack", "--z-from", "nan"], 2, ["--z-from", "nan", "finite", "[0, 180]"]),
    (["stack", "--z-from", "-1"], 2, ["--z-from", "-1", "[0, 180]"]),
    (["stack", "--z-step", "inf"], 2, ["--z-step", "inf", "finite", "(0.0, 180.0]"]),
    (["stack", "--z-step", "0"], 2, ["--z-step", "0", "(0.0, 180.0]"]),
    (["stack", "--z-step", "-1"], 2, ["--z-step", "-1", "(0.0, 180.0]"]),
    (["stack", "--z-from", "100", "--z-to", "90"], 2, ["--z-to", "--z-from", "100", "90"]),
    (["stack", "--z-from", "0", "--z-to", "180", "--z-step", "0.1"], 2, ["1000 planes", "1801", "--z-step"]),
    (["stack", "--width", "2592", "--height", "1944", "--z-from", "0", "--z-to", "179.82", "--z-step", "0.18"],
     2, ["1000 planes", "2592x1944", "5.04 GB", "--width", "--z-step"]),
    # every subcommand: --camera names a preset
    (["slide", "--camera", "webcam"], 2, ["--camera", "'webcam'", "cheap_colour", "default", "mono_raw"]),
    (["field", "--camera", "Default"], 2, ["--camera", "'Default'", "mono_raw"]),
    (["stack", "--camera", ""], 2, ["--camera", "''", "mono_raw"]),
    (["strip", "--cls", "pentagon", "--camera", "raw"], 2, ["--camera", "'raw'", "mono_raw"]),
    # strip: --cls, --dz, --index, --crop
    (["strip", "--cls", "hexagon"], 2, ["--cls", "'hexagon'", "pentagon", "dust"]),
    (["strip", "--cls", "pentagon", "--dz", "0", "nan"], 2, ["--dz", "nan", "finite"]),
    (["strip", "--cls", "pentagon", "--dz", "150"], 2, ["--dz", "150", "[-100.0, 100.0]"]),
    (["strip", "--cls", "pentagon", "--dz", "95"], 2, ["--dz", "+95", "z travel", "[0, 180]"]),
    (["strip", "--cls", "pentagon", "--index", "-1"], 2, ["--index", "-1", ">= 0"]),
    (["strip", "--cls", "pentagon", "--index", "99"], 2, ["--index", "99", "[0, 3]", "pentagon"]),
    (["strip", "--cls", "pentagon", "--crop", "600"], 2, ["--crop", "600", "[16, 480]"]),
    (["strip", "--cls", "pentagon", "--crop", "big"], 2, ["--crop", "'big'", "integer"]),
    # every subcommand: --sim-set, read and checked by scan's own parser (appliance.sim.overrides)
    (["slide", "--sim-set", "slide.debris_per_mm2"], 2, ["--sim-set", "SECTION.KEY=VALUE"]),
    (["field", "--sim-set", "sensor.bogus=1"], 2, ["--sim-set", "sensor.bogus", "unknown parameter", "width_px"]),
    (["stack", "--sim-set", "lens.na=0.3"], 2, ["--sim-set", "'lens.na=0.3'", "slide, optics, sensor"]),
    (["strip", "--cls", "pentagon", "--sim-set", "camera.preset=webcam"], 2, ["--sim-set", "camera.preset",
                                                                              "'webcam'", "mono_raw"]),
    (["field", "--sim-set", "sensor.width_px=800", "--width", "700"], 2,
     ["--width", "700", "--sim-set", "sensor.width_px=800", "give one"]),
    (["stack", "--sim-set", "sensor.width_px=2592", "--sim-set", "sensor.height_px=1944", "--z-from", "0", "--z-to",
      "179.82", "--z-step", "0.18"], 2, ["--sim-set", "1000 planes", "2592x1944", "GB"]),
]

#: Every option of every subcommand has at least one row (checked below).
OPTIONS = {
    "slide": {"--seed", "--out", "--slice-um", "--camera", "--sim-set", "--um-per-px", "--markers"},
    "field": {"--seed", "--out", "--slice-um", "--camera", "--sim-set", "--x", "--y", "--width", "--height",
              "--exposure-ms", "--z"},
    "stack": {"--seed", "--out", "--slice-um", "--camera", "--sim-set", "--x", "--y", "--width", "--height",
              "--exposure-ms", "--z-from", "--z-to", "--z-step"},
    "strip": {"--seed", "--out", "--slice-um", "--camera", "--sim-set", "--cls", "--dz", "--index", "--crop"},
}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own checks exit from inside parse_args
        return int(e.code or 0)


@pytest.fixture
def no_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered before the bad value was refused")
    monkeypatch.setattr(SimCamera, "capture", tripwire)
    monkeypatch.setattr(VirtualMicroscope, "overview", tripwire)


@pytest.mark.parametrize(("argv", "code", "words"), ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_bad_value(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_rendering: None, argv: list[str],
                   code: int, words: list[str]) -> None:
    (tmp_path / "file.txt").write_text("not a directory")
    (tmp_path / "d.ome.tif.json").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in args:
        args += ["--out", str(tmp_path / ("o.ome.tif" if args[0] == "stack" else "o.png"))]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert _run(["sim", *args]) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no probe left behind


def test_every_option_has_a_row() -> None:
    covered: dict[str, set[str]] = {k: set() for k in OPTIONS}
    for argv, _, words in ROWS:
        opts = {a.split("=")[0] for a in argv if a.startswith("--")}
        named = {w for w in words if w.startswith("--")}
        covered[argv[0]] |= opts & named
    assert covered == OPTIONS


def test_every_option_is_in_the_table() -> None:
    """The table lists each subcommand's options as the parser has them (a new option needs a row)."""
    from appliance.cli import build_parser

    parser = build_parser()
    sim = parser._subparsers._group_actions[0].choices["sim"]  # type: ignore[union-attr]
    subs = sim._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in subs.items():
        opts = {s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
        opts = {o for o in opts if not o.startswith("--no-")}
        assert opts == OPTIONS[name], name

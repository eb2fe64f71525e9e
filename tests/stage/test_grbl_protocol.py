import re

import pytest

from appliance.hardware.stage.base import StageProtocolError
from appliance.hardware.stage.grbl_protocol import (
    ALARM_CODES,
    ERROR_CODES,
    LineKind,
    alarm_text,
    classify,
    error_text,
    format_number,
    parse_build_info,
    parse_setting,
    parse_status,
)
from appliance.hardware.stage.streamer import clean_line, program_lines


@pytest.mark.parametrize("text,kind,code", [
    ("ok", LineKind.OK, None),
    ("error:20", LineKind.ERROR, 20),
    ("ALARM:3", LineKind.ALARM, 3),
    ("<Idle|MPos:0.000,0.000,0.000|FS:0,0>", LineKind.STATUS, None),
    ("[MSG:BUTTON PRESSED]", LineKind.FEEDBACK, None),
    ("[VER:1.1h.20190825:]", LineKind.FEEDBACK, None),
    ("$100=250.000", LineKind.SETTING, None),
    ("Grbl 1.1h ['$' for help]", LineKind.BANNER, None),
    ("", LineKind.EMPTY, None),
    ("okay", LineKind.OTHER, None),
    ("error:", LineKind.OTHER, None),
    ("error:x", LineKind.OTHER, None),
    ("\x00\xff garbage", LineKind.OTHER, None),
])
def test_classify(text, kind, code):
    line = classify(text)
    assert line.kind is kind
    assert line.code == code


def test_status_report_fields():
    r = parse_status("<Hold:1|MPos:1.250,-2.500,0.010|Bf:14,120|FS:600,0|Pn:XZ|Ov:100,100,100>")
    assert (r.state, r.substate) == ("Hold", 1)
    assert r.mpos_mm == (1.25, -2.5, 0.01)
    assert r.wpos_mm is None
    assert r.buffer == (14, 120)
    assert r.feed == 600
    assert r.pins == "XZ"
    assert r.extra == {"Ov": "100,100,100"}
    assert not r.idle and not r.alarm


def test_status_report_wpos_and_wco():
    r = parse_status("<Idle|WPos:1.000,2.000,3.000|F:0|WCO:-1.000,0.000,0.500>")
    assert r.idle and r.mpos_mm is None
    assert r.wpos_mm == (1.0, 2.0, 3.0)
    assert r.wco_mm == (-1.0, 0.0, 0.5)


@pytest.mark.parametrize("bad,needle", [
    ("Idle|MPos:0,0,0", "enclosed in <...>"),
    ("<Walking|MPos:0,0,0>", "'Walking' is not a GRBL 1.1 state"),
    ("<Idle|MPos:0,abc,0>", "non-numeric value '0,abc,0'"),
    ("<Idle|MPos:0,0>", "needs 3 axes"),
    ("<Idle|FS:0,0>", "neither MPos nor WPos"),
    ("<Idle|MPos:nan,0,0>", "not finite"),
    ("<Hold:x|MPos:0,0,0>", "substate 'x'"),
    ("<Idle|MPos0,0,0>", "not Name:value"),
])
def test_malformed_status_named(bad, needle):
    with pytest.raises(StageProtocolError, match=re.escape(needle)):
        parse_status(bad)


def test_settings_and_build_info():
    assert parse_setting("$110=500.000") == (110, 500.0)
    assert parse_setting("$22=1") == (22, 1.0)
    with pytest.raises(StageProtocolError, match="non-numeric"):
        parse_setting("$22=abc")
    with pytest.raises(StageProtocolError, match=r"\$N=value"):
        parse_setting("22=1")
    info = parse_build_info(["[VER:1.1h.20190825:tppscan-stage]", "[OPT:VS,15,128]"])
    assert info.is_grbl_11 and info.build_name == "tppscan-stage" and info.options == "VS,15,128"
    assert not parse_build_info(["[VER:0.9j.20160316:]"]).is_grbl_11
    assert not parse_build_info(["[VER:1.10.2:]"]).is_grbl_11
    with pytest.raises(StageProtocolError, match=r"no \[VER"):
        parse_build_info(["[OPT:V,15,128]"])


def test_code_tables_follow_grbl_11():
    assert ERROR_CODES[9].startswith("G-code locked out")
    assert ERROR_CODES[11].startswith("Max characters per line")
    assert ALARM_CODES[1].startswith("Hard limit")
    assert ALARM_CODES[3].startswith("Reset while in motion")
    assert "unknown error code 99" in error_text(99)
    assert "unknown alarm code 42" in alarm_text(42)


def test_format_number():
    assert format_number(1.0) == "1"
    assert format_number(-0.0001) == "0"
    assert format_number(0.1234) == "0.123"
    assert format_number(-12.5) == "-12.5"
    assert "e" not in format_number(1e-7) and "e" not in format_number(123456.0)


def test_gcode_cleaning():
    assert clean_line("G1 X1 ; move") == "G1 X1"
    assert clean_line("(header) G0 Y2 (inline)") == "G0 Y2"
    assert clean_line("%") == ""
    assert clean_line("   ") == ""
    with pytest.raises(ValueError, match="unbalanced"):
        clean_line("G1 (X1")
    prog = program_lines(["; comment only\n", "G90\n", "\n", "G1 X1 F100 (go)\n"])
    assert prog == [(2, "G90"), (4, "G1 X1 F100")]
    with pytest.raises(ValueError, match="line 2: 81 characters"):
        program_lines(["G90", "G1 X" + "1" * 77])
    with pytest.raises(ValueError, match="line 1: not printable ASCII"):
        program_lines(["G1 X1 \u00b5"])
    with pytest.raises(ValueError, match="line 2: contains a real-time character"):
        program_lines(["G1 X1 (why?)", "G1 X2 ~"])

"""Must-show: a plain GRBL streaming sender runs a G-code file against the real firmware in simavr."""

from pathlib import Path

import pytest

from appliance.hardware.stage.streamer import stream_file, wait_idle

pytestmark = pytest.mark.simavr

PROGRAM = Path(__file__).parent / "data" / "transcript.gcode"

EXPECTED = [  # (line in the file, line sent, reply)
    (4, "$X", "ok"),
    (5, "G21 G90", "ok"),
    (6, "G1 X2 Y1 F300", "ok"),
    (8, "G91", "ok"),
    (9, "G1 X-0.5 Y0.75", "ok"),
    (10, "G4 P0.1", "ok"),
    (11, "M280 P0 S45", "ok"),
    (12, "G90", "ok"),
    (13, "G0 X1.5 Y0.25", "ok"),
    (14, "G1 X100 F300", "error:15"),
]


def test_stream_stops_at_the_first_error(simboard, simstage):
    transcript = stream_file(simstage.link, PROGRAM)
    assert [(e.source_line, e.sent, e.result) for e in transcript.entries] == EXPECTED
    assert transcript.stopped_early
    assert [e.sent for e in transcript.errors] == ["G1 X100 F300"]
    assert "error:15 (Jog/move target exceeds machine travel" in transcript.text().splitlines()[-1]
    assert wait_idle(simstage.link, 10.0).startswith("<Idle|MPos:1.500,0.250,0.000")
    spm = simstage.board_settings[100], simstage.board_settings[101]
    assert simboard.step_counts()[:2] == (round(1.5 * spm[0]), round(0.25 * spm[1]))
    # every step the program made: 2,1 then -0.5,+0.75 then back to 1.5,0.25 (in mm)
    want_pulses = (round((2 + 0.5 + 0) * spm[0]), round((1 + 0.75 + 1.5) * spm[1]))
    assert simboard.pulse_counts()[:2] == want_pulses
    lo, hi = simstage.board_settings[201], simstage.board_settings[202]
    assert simboard.servo_pulse_us() == pytest.approx(lo + (hi - lo) * 45 / 180, abs=1.0)


def test_stream_keep_going_sends_every_line(simboard, simstage):
    transcript = stream_file(simstage.link, PROGRAM, stop_on_error=False)
    assert [(e.source_line, e.sent, e.result) for e in transcript.entries] == EXPECTED + [(15, "G0 X0 Y0", "ok")]
    assert not transcript.stopped_early
    wait_idle(simstage.link, 10.0)
    assert simboard.step_counts()[:2] == (0, 0)

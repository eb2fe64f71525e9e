"""FakeGrbl itself, over raw bytes: it must behave as GRBL 1.1h's source does (see fake_grbl.py's table).

These pin down the awkward parts the driver tests rely on, so a driver test that passes against the fake
passes for a reason a stock board would also give.
"""

import time

import pytest
import serial


@pytest.fixture
def wire(fake_grbl):
    port = serial.Serial(fake_grbl.path, 115200, timeout=0.02)
    yield port
    port.close()


def read_lines(port, wait_s: float = 0.15) -> list[str]:
    """Every line that arrives within ``wait_s`` (non-empty ones)."""
    end = time.monotonic() + wait_s
    data = b""
    while time.monotonic() < end:
        data += port.read(4096)
    return [t for t in data.decode("latin-1").replace("\r", "").split("\n") if t]


def send(port, text: str, wait_s: float = 0.15) -> list[str]:
    """Send a line; the lines that come back until its ok/error:N (or ``wait_s`` without one)."""
    port.write(text.encode() + b"\n")
    end = time.monotonic() + wait_s
    data = b""
    while time.monotonic() < end:
        data += port.read(4096)
        lines = [t for t in data.decode("latin-1").replace("\r", "").split("\n") if t]
        if data.endswith(b"\n") and lines and (lines[-1] == "ok" or lines[-1].startswith("error:")):
            break
    return [t for t in data.decode("latin-1").replace("\r", "").split("\n") if t]


def unlocked(port) -> None:
    assert send(port, "$H", 0.4)[-1] == "ok"


def test_after_hard_limit_silence_then_reset_to_continue_then_reset_honoured(fake_grbl, wire):
    fake_grbl.alarm_pause_s = 1.5  # GRBL's 500 ms, widened so a loaded test machine stays inside it
    unlocked(wire)
    fake_grbl.trigger_limit("x")
    t0 = time.monotonic()
    wire.write(b"?")
    assert read_lines(wire, 0.2) == ["ALARM:1"]            # the alarm, and no answer to '?'
    wire.write(b"\x18")                                     # inside the pause: discarded
    assert time.monotonic() - t0 < 1.0
    assert read_lines(wire, 0.3) == []
    assert fake_grbl.resets_dropped == 1
    got = read_lines(wire, 1.5 - (time.monotonic() - t0) + 0.3)
    assert got == ["[MSG:Reset to continue]"]
    wire.write(b"?")
    assert send(wire, "$I", 0.2) == []                      # nothing served: not '?', not a line
    wire.write(b"\x18")
    assert read_lines(wire) == ["Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"]
    wire.write(b"?")
    assert read_lines(wire)[0].startswith("<Alarm|")


def test_soft_limit_is_alarm_2_the_line_gets_no_reply(fake_grbl, wire):
    unlocked(wire)
    assert send(wire, "G1 X5 F100") == ["ALARM:2"]         # stock travel is 0..-200 mm
    assert read_lines(wire, 0.8) == ["[MSG:Reset to continue]"]


def test_reset_in_motion_is_alarm_3_and_banner_half_a_second_later(fake_grbl, wire):
    unlocked(wire)
    assert send(wire, "G1 X-50 F600") == ["ok"]
    wire.write(b"\x18")
    assert read_lines(wire, 0.2) == ["ALARM:3"]
    assert read_lines(wire, 0.8) == ["Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"]


def test_reset_in_a_completed_hold_is_no_alarm_and_keeps_the_position(fake_grbl, wire):
    unlocked(wire)
    assert send(wire, "G1 X-50 F600") == ["ok"]
    time.sleep(0.1)
    wire.write(b"!?")
    held = read_lines(wire)[0]
    assert held.startswith("<Hold:0|MPos:-")
    wire.write(b"\x18")
    assert read_lines(wire) == ["Grbl 1.1h ['$' for help]"]
    wire.write(b"?")
    after = read_lines(wire)[0]
    assert after.startswith("<Idle|") and after.split("|")[1] == held.split("|")[1]


def test_soft_limits_need_homing_and_homing_off_clears_them(make_fake_grbl):
    board = make_fake_grbl(homing=False, soft_limits=False)
    port = serial.Serial(board.path, 115200, timeout=0.02)
    try:
        assert send(port, "$20=1") == ["error:10"]
        assert send(port, "$22=1") == ["ok"]
        assert send(port, "$20=1") == ["ok"]
        assert send(port, "$22=0") == ["ok"]
        assert board.settings[20] == 0
    finally:
        port.close()


def test_wco_only_in_every_10th_idle_and_30th_busy_report(fake_grbl, wire):
    fake_grbl.coord_systems[0] = [-1.0, 0.0, 0.0]
    unlocked(wire)
    fake_grbl.wco_counter = 0
    with_wco = []
    for _ in range(21):
        wire.write(b"?")
        with_wco.append("WCO:" in read_lines(wire, 0.03)[0])
    assert [i for i, w in enumerate(with_wco) if w] == [0, 10, 20]
    assert send(wire, "G92 X0") == ["ok"]                    # an offset change: WCO in the next report
    wire.write(b"?")
    assert "WCO:" in read_lines(wire, 0.05)[0]
    assert send(wire, "G1 X-100 F600") == ["ok"]
    busy = []
    for _ in range(45):
        wire.write(b"?")
        busy.append("WCO:" in read_lines(wire, 0.03)[0])
    first = busy.index(True)                                 # the idle countdown (10) runs out first...
    assert first < 10 and [i for i, w in enumerate(busy) if w] == [first, first + 30]  # ...then every 30th


def test_modal_state_outlives_the_connection_but_not_a_reset(fake_grbl, wire):
    unlocked(wire)
    assert send(wire, "G20 G91 G55 G93") == ["ok"]
    wire.close()
    port = serial.Serial(fake_grbl.path, 115200, timeout=0.02)  # another host opens the port
    try:
        assert send(port, "$G")[0].startswith("[GC:G0 G55 G17 G20 G91 G93 ")
        port.write(b"\x18")
        read_lines(port)
        assert send(port, "$G")[0].startswith("[GC:G0 G54 G17 G21 G90 G94 ")
    finally:
        port.close()


def test_inches_and_g92_move_the_machine_as_grbl_does(fake_grbl, wire):
    unlocked(wire)
    assert send(wire, "G20 G1 X-1 F100") == ["ok"]          # 1 inch at 100 inch/min
    time.sleep(0.1)
    send(wire, "G4 P0", 0.8)
    assert fake_grbl.mpos[0] == pytest.approx(-25.4)
    assert send(wire, "G21 G92 X0") == ["ok"]
    assert send(wire, "G1 X-1 F6000") == ["ok"]
    send(wire, "G4 P0", 0.5)
    assert fake_grbl.mpos[0] == pytest.approx(-26.4)
    assert "[G92:-25.400,0.000,0.000]" in send(wire, "$#")


def test_dollar_commands_need_idle_and_m280_is_error_23(fake_grbl, wire):
    unlocked(wire)
    assert send(wire, "G1 X-50 F600") == ["ok"]
    assert send(wire, "$I") == ["error:8"]
    assert send(wire, "$#") == ["error:8"]
    assert send(wire, "$$") == ["error:8"]
    assert send(wire, "$G")[-1] == "ok"                      # $G is served in any state
    assert send(wire, "M280 P0 S90") == ["error:23"]         # 280 squeezed into a uint8_t: 24, remainder
    assert send(wire, "M7") == ["error:20"]

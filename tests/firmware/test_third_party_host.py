"""A GRBL host library nobody here wrote, from PyPI (``grbl-link``), drives the firmware in simavr through its own
public API: connect, read the settings, home, stream a program (CAM safe-start lines and M30 included), jog (and
cancel a jog), zero a work offset, hold and resume, soft reset, unlock. Every move is checked in exact step counts
from the simavr runner.

grbl-link's ``Grbl`` object owns the serial port and a reader/sender thread; lines go through ``send`` (one at a
time, the next after the previous ``ok``: its ``SimpleProtocol``), real-time bytes (``!``, ``~``, 0x18, 0x85)
bypass the queue. Its parser keeps ``state.settings`` ($$), ``state.status`` (the last ``<...>`` report, WCO and
Ov included), ``state.alarm_state`` and ``state.version``.

An awkward part of that library: its ``query_status()`` sends the str ``'?'``, which its real-time table (bytes)
does not match, so it goes through the line queue as ``?\n``. GRBL (and this firmware) read the ``?`` as the
real-time query and then the bare newline as an empty line, which it answers ``ok``. Those oks arrive after the
status report and would shift any count of replies; the host below pairs each reply with the line it answers
(one line in flight at a time) and leaves the oks of status queries out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import serial
from grbl_link.interface import Grbl
from grbl_link.messages import ErrorMessage, FeedbackMessage, OKMessage, StatusMessage

pytestmark = pytest.mark.simavr

STEPS_PER_MM = 400


class Host:
    """The library's Grbl object plus what the test reads from it: every parsed message, in order."""

    def __init__(self, port: serial.Serial) -> None:
        self.grbl = Grbl(port)
        self.messages: list[object] = []
        self.lines: list[bytes] = []            # every queued line as written, in order
        self.grbl.add_message_handler(lambda message, _grbl: self.messages.append(message))
        write = self.grbl.protocol.write

        def recording_write(data: bytes) -> None:
            if data.endswith(b"\n"):            # a queued line (real-time bytes carry no newline)
                self.lines.append(data)
            write(data)

        self.grbl.protocol.write = recording_write

    def replies(self) -> list[object]:
        """The replies to every line but the status queries' ``?\n``, in order."""
        answers = [m for m in self.messages if isinstance(m, (OKMessage, ErrorMessage))]
        return [a for line, a in zip(self.lines, answers, strict=False) if line != b"?\n"]

    def wait(self, what: str, predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last status {self.grbl.status}")

    def stream(self, lines: list[str]) -> None:
        """Send a program through the library's queue and wait for one ok per line (errors fail the test)."""
        before = len(self.replies())
        for line in lines:
            self.grbl.send(line)
        self.wait(f"{len(lines)} replies", lambda: len(self.replies()) >= before + len(lines))
        answers = self.replies()[before:before + len(lines)]
        assert all(isinstance(a, OKMessage) for a in answers), list(zip(lines, answers, strict=True))

    def acknowledged(self, call: Callable[[], None]) -> object:
        """Run a library call that sends one line; return that line's reply once it came (the library queues the
        line, so a status query sent meanwhile could still describe the state before it)."""
        before = len(self.replies())
        call()
        self.wait("the reply", lambda: len(self.replies()) > before)
        return self.replies()[before]

    def mode(self) -> str:
        """The state in a status report asked for now (never an older one; '' if none came within 1 s)."""
        before = sum(isinstance(m, StatusMessage) for m in self.messages)
        self.grbl.query_status()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if sum(isinstance(m, StatusMessage) for m in self.messages) > before:
                return str(self.grbl.status.get("mode"))
            time.sleep(0.01)
        return ""

    def wait_mode(self, mode: str, timeout_s: float = 30.0) -> None:
        self.wait(f"state {mode}", lambda: self.mode() == mode, timeout_s)


@pytest.fixture
def host(board) -> Iterator[Host]:
    board.place_limit_switch("x", -800, "-")   # switches for $H, 2 mm and 1 mm below where the run starts
    board.place_limit_switch("y", -400, "-")
    port = serial.Serial(board.pty_path, 115200, timeout=1.0)   # the library's readline() needs whole lines
    h = Host(port)
    yield h
    h.grbl.stop()
    port.close()


def steps_from(board, origin: tuple[int, int, int]) -> tuple[int, int, int]:
    now = board.step_counts()
    return (now[0] - origin[0], now[1] - origin[1], now[2] - origin[2])


def test_grbl_link_drives_the_firmware(board, host):
    grbl = host.grbl
    # connect: a soft reset and the banner
    grbl.soft_reset()
    host.wait("the banner", lambda: grbl.version == "1.1h")
    # settings
    assert isinstance(host.acknowledged(grbl.query_settings), OKMessage)
    assert len(grbl.state.settings) == 31
    assert grbl.state.settings["100"] == "400.000" and grbl.state.settings["110"] == "600.000"
    # home: seek, pull off 1 mm, locate, pull off: machine zero 1 mm from each switch
    host.stream(["$H"])
    zero = board.step_counts()
    assert zero[:2] == (-800 + 400, -400 + 400)
    # stream a program as CAM tools write one: safe-start lines, moves, M30 (its message once the moves are done)
    host.stream(["G90 G94 G17 G21 G40 G49 G80", "M5 M9", "G1 X2 Y1 F600", "G1 X3", "G0 X0.5 Y0.25",
                 "G91 G1 X1 Y0.25 F300", "M30"])
    assert steps_from(board, zero) == (600, 200, 0)
    assert any(isinstance(m, FeedbackMessage) and m.feedback == "Pgm End" for m in host.messages)
    host.wait_mode("Idle")
    # jog, relative and absolute, with the library's jog API; the modal G90 is untouched
    assert isinstance(host.acknowledged(lambda: grbl.jog(600, x=1.0, y=-0.5)), OKMessage)
    host.wait_mode("Idle")
    assert steps_from(board, zero) == (1000, 0, 0)
    assert isinstance(host.acknowledged(lambda: grbl.jog(300, relative=False, x=0.5, z=1.0)), OKMessage)
    host.wait_mode("Idle")
    assert steps_from(board, zero) == (200, 0, 400)
    # a long jog, cancelled with 0x85: a controlled stop short of the target, the parser at the real position
    assert isinstance(host.acknowledged(lambda: grbl.jog(600, x=30.0)), OKMessage)
    host.wait_mode("Jog", 5)
    time.sleep(0.4)
    grbl.jog_cancel()
    host.wait_mode("Idle")
    stopped = steps_from(board, zero)[0]
    assert 200 < stopped < 200 + 30 * STEPS_PER_MM
    host.stream(["G0 X1 Z0"])
    host.wait_mode("Idle")
    assert steps_from(board, zero) == (400, 0, 0)
    # zero here: G10 L20 P1, the WCO in the status report, then a move in work coordinates
    assert isinstance(host.acknowledged(lambda: grbl.set_coord_system(1, x=0, y=0)), OKMessage)
    host.wait("the WCO field", lambda: host.mode() == "Idle" and grbl.status.get("WCO") == [1.0, 0.0, 0.0])
    host.stream(["G0 X2 Y1"])
    host.wait_mode("Idle")
    assert steps_from(board, zero) == (1200, 400, 0)
    # hold and resume mid-move
    host.stream(["G1 X7 F300"])                          # 5 mm at 5 mm/s
    time.sleep(0.5)
    grbl.send(b"!")
    host.wait_mode("Hold:0", 5)
    held = board.step_counts()
    time.sleep(0.3)
    assert board.step_counts() == held
    grbl.send(b"~")
    host.wait_mode("Idle")
    assert steps_from(board, zero) == (1200 + 2000, 400, 0)
    # check mode through the library's toggle: a program is checked (one error found) with zero steps
    assert isinstance(host.acknowledged(grbl.toggle_check_mode), OKMessage)
    host.wait_mode("Check", 5)
    before = board.pulse_counts()
    replies = len(host.replies())
    for line in ["G0 X5 Y5", "G1 X10 F300", "G4 P3", "G0 X80"]:
        grbl.send(line)
    host.wait("4 replies", lambda: len(host.replies()) >= replies + 4)
    assert [type(r).__name__ for r in host.replies()[replies:]] == ["OKMessage"] * 3 + ["ErrorMessage"]
    assert host.replies()[-1].error_number == "15"
    assert isinstance(host.acknowledged(grbl.toggle_check_mode), OKMessage)   # off: a soft reset, as GRBL
    host.wait_mode("Idle", 5)
    assert board.pulse_counts() == before
    host.messages.clear()
    # soft reset mid-move: the position is lost (ALARM:3), the library's unlock clears it
    host.stream(["G1 X0 F300"])
    time.sleep(0.3)
    grbl.soft_reset()
    host.wait("ALARM:3", lambda: grbl.alarm_state == "3")
    host.wait_mode("Alarm", 5)
    assert isinstance(host.acknowledged(grbl.unlock), OKMessage)
    host.wait("the unlock message",
              lambda: any(isinstance(m, FeedbackMessage) and m.feedback == "Caution: Unlocked" for m in host.messages))
    host.wait_mode("Idle", 5)
    assert not any(isinstance(m, ErrorMessage) for m in host.messages), host.messages

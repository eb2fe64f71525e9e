"""GPIO button, board button and serial console: each with a fake or a pty that behaves like the real device."""

from __future__ import annotations

import os
import threading
import time
import tty

import pytest
import serial

from appliance.hardware.triggers.board_button import BoardButton
from appliance.hardware.triggers.events import Command, PressClassifier, TriggerEvent
from appliance.hardware.triggers.gpio_button import GpioButton, TriggerError
from appliance.hardware.triggers.serial_console import MAX_LINE, SerialConsole
from tests.triggers.fake_gpiod import Chip, make_gpiod

S = 1_000_000_000


class Recorder:
    def __init__(self) -> None:
        self.events: list[TriggerEvent] = []
        self.got = threading.Event()

    def __call__(self, ev: TriggerEvent) -> str:
        self.events.append(ev)
        self.got.set()
        return f"OK {ev.command.value}"


def test_press_classifier_short_long_and_lost_edges() -> None:
    p = PressClassifier(2.0)
    assert p.feed(True, 0) is None and p.feed(False, S // 5) is Command.BUTTON
    assert p.feed(True, 10 * S) is None and p.feed(False, 13 * S) is Command.STOP
    assert p.feed(False, 20 * S) is None  # a release whose press was lost in an overflow
    with pytest.raises(ValueError, match="long_press_s"):
        PressClassifier(0)


@pytest.mark.parametrize(("held_s", "cmd"), [(0.1, Command.BUTTON), (2.5, Command.STOP)])
def test_gpio_button_active_low_press(held_s: float, cmd: Command) -> None:
    chip = Chip("/dev/gpiochip0")
    rec = Recorder()
    btn = GpioButton(rec, "/dev/gpiochip0", 12, long_press_s=2.0, gpiod=make_gpiod({chip.path: chip}))
    btn.start()
    try:
        req = chip.requests[12]
        assert req.config[12].active_low and req.config[12].debounce_period.total_seconds() == 0.03
        req.drive(12, 0, 1 * S)  # button to ground: a logical rising edge
        req.drive(12, 1, 1 * S + int(held_s * S))
        assert rec.got.wait(2.0)
        assert [e.command for e in rec.events] == [cmd] and rec.events[0].source == "gpio"
    finally:
        btn.stop()
    assert 12 not in chip.requests  # released


def test_gpio_line_in_use_or_missing_chip_is_a_trigger_error() -> None:
    chip = Chip("/dev/gpiochip0")
    gpiod = make_gpiod({chip.path: chip})
    first = GpioButton(Recorder(), chip.path, 3, gpiod=gpiod)
    first.start()
    try:
        with pytest.raises(TriggerError, match="gpiochip0 line 3"):
            GpioButton(Recorder(), chip.path, 3, gpiod=gpiod).start()
    finally:
        first.stop()
    with pytest.raises(TriggerError, match="gpiochip9"):
        GpioButton(Recorder(), "/dev/gpiochip9", 3, gpiod=gpiod).start()


def test_board_button_messages() -> None:
    rec = Recorder()
    queue = [["[MSG:BUTTON PRESSED]"], ["[MSG:Reset to continue]", "[MSG:BUTTON RELEASED]"]]
    b = BoardButton(rec, lambda: queue.pop(0) if queue else [], poll_s=0.01)
    b.start()
    try:
        assert rec.got.wait(2.0)
    finally:
        b.stop()
    assert [e.command for e in rec.events] == [Command.BUTTON] and rec.events[0].source == "board"
    b.feed("[MSG:BUTTON PRESSED]", 0)
    b.feed("[MSG:BUTTON RELEASED]", 3 * S)
    assert rec.events[-1].command is Command.STOP


@pytest.fixture
def console() -> tuple[SerialConsole, int, Recorder]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    rec = Recorder()
    con = SerialConsole(rec, os.ttyname(slave))
    con.start()
    yield con, master, rec
    con.stop()
    os.close(master)
    os.close(slave)


def _ask(master: int, data: bytes, n_lines: int = 1) -> list[str]:
    os.write(master, data)
    buf = b""
    deadline = time.monotonic() + 3.0
    while buf.count(b"\r\n") < n_lines and time.monotonic() < deadline:
        import select

        if select.select([master], [], [], 0.1)[0]:
            buf += os.read(master, 4096)
    return buf.decode().split("\r\n")[:n_lines]


def test_serial_console_commands_over_a_pty(console: tuple[SerialConsole, int, Recorder]) -> None:
    _, master, rec = console
    assert _ask(master, b"START\r\n") == ["OK start"]
    assert _ask(master, b"status\n") == ["OK status"]
    assert [e.command for e in rec.events] == [Command.START, Command.STATUS]
    assert rec.events[0].source == "serial"


def test_serial_console_start_new_abandons_as_the_cli_does(console: tuple[SerialConsole, int, Recorder]) -> None:
    # `tppscan start --new` sends {"new": "yes"}: a PLC or terminal on the console can abandon an interrupted scan too
    _, master, rec = console
    assert _ask(master, b"start  new\r\n") == ["OK start"]
    assert (rec.events[-1].command, rec.events[-1].args) == (Command.START, {"new": "yes"})


@pytest.mark.parametrize(("data", "reply"), [
    (b"LAUNCH\n", "ERROR unknown command 'LAUNCH' (allowed: START, STOP, PAUSE, STATUS, START NEW)"),
    (b"START OLD\n", "ERROR unknown command 'START OLD' (allowed: START, STOP, PAUSE, STATUS, START NEW)"),
    (b"ST\xffART\n", "ERROR not ASCII text"),
    (b"X" * (MAX_LINE + 50) + b"\n", f"ERROR line longer than {MAX_LINE} bytes"),
])
def test_serial_console_bad_lines_get_one_error_each(console: tuple[SerialConsole, int, Recorder], data: bytes,
                                                     reply: str) -> None:
    _, master, rec = console
    assert _ask(master, data + b"STOP\n", 2) == [reply, "OK stop"]
    assert [e.command for e in rec.events] == [Command.STOP]


def test_serial_console_missing_port() -> None:
    with pytest.raises(TriggerError, match="/dev/ttyNOPE"):
        SerialConsole(Recorder(), "/dev/ttyNOPE").start()
    assert serial  # pyserial is the real transport here

"""Fixtures for the firmware tests: the build (once per session), a simavr board, and a raw serial link.

The simavr tests are never skipped: a missing toolchain or simulator is a failure that says to run
``scripts/setup.sh``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"

_NUM = r"(-?\d+\.\d{3})"
# groups: 1 state, 2-4 MPos, 5-6 Bf, 8 Pn, 10-12 WCO (every 10th/30th report), 14-16 Ov (every 10th/20th)
STATUS_RE = re.compile(rf"^<(Idle|Run|Hold:[01]|Home|Alarm|Jog|Check)\|MPos:{_NUM},{_NUM},{_NUM}"
                       rf"\|Bf:(\d+),(\d+)(\|Pn:([XYZ]+))?(\|WCO:{_NUM},{_NUM},{_NUM})?(\|Ov:(\d+),(\d+),(\d+))?>$")
REPLY_RE = re.compile(r"^(ok|error:\d+)$")


class Link:
    """A raw pyserial connection to the board, with just enough protocol to write tests in."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.pushed: list[str] = []   # every non-reply line seen (messages, alarms, status, banner)
        self._partial = b""
        self._backlog: list[str] = []   # lines read while looking for something else, in order

    def _lines(self, timeout_s: float) -> Iterator[str]:
        while self._backlog:
            yield self._backlog.pop(0)
        end = time.monotonic() + timeout_s
        while True:
            # complete lines left over from an earlier read come first: a burst of replies arrives in one read
            while b"\n" in self._partial:
                raw, self._partial = self._partial.split(b"\n", 1)
                yield raw.rstrip(b"\r").decode("ascii", errors="replace")
            if time.monotonic() >= end:
                return
            self._partial += self.port.read(self.port.in_waiting or 1)

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def command(self, line: str | bytes, timeout_s: float = 5.0) -> tuple[str, list[str]]:
        """Send one line; return its reply (ok / error:N) and the other lines that came before it."""
        data = line if isinstance(line, bytes) else line.encode("ascii")
        self.write(data + b"\n")
        return self.reply(timeout_s)

    def reply(self, timeout_s: float = 5.0) -> tuple[str, list[str]]:
        """The next ok / error:N, and the other lines that came before it."""
        others: list[str] = []
        for text in self._lines(timeout_s):
            if REPLY_RE.match(text):
                return text, others
            if text:
                others.append(text)
                self.pushed.append(text)
        raise AssertionError(f"no ok/error within {timeout_s} s; other lines: {others}")

    def expect_line(self, pattern: str, timeout_s: float = 5.0) -> str:
        """Wait for a line matching the regular expression; return it. Other lines stay for later reads."""
        seen: list[str] = []
        for text in self._lines(timeout_s):
            if re.match(pattern, text):
                self._backlog = seen + self._backlog
                return text
            seen.append(text)
        self._backlog = seen + self._backlog
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s; saw {seen}")

    def drain(self, quiet_s: float = 0.3) -> list[str]:
        """Everything that arrives until the line has been quiet for quiet_s."""
        got = []
        while True:
            before = len(got)
            got += [t for t in self._lines(quiet_s) if t]
            if len(got) == before:
                return got

    def status(self) -> re.Match[str]:
        self.write(b"?")
        line = self.expect_line(r"^<", 3.0)
        m = STATUS_RE.match(line)
        assert m, f"malformed status report {line!r}"
        return m

    def wait_idle(self, timeout_s: float = 30.0) -> re.Match[str]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            m = self.status()
            if m.group(1) in ("Idle", "Alarm"):
                return m
            time.sleep(0.05)
        raise AssertionError(f"still moving after {timeout_s} s")

    def reset(self, attempts: int = 4) -> list[str]:
        """Soft reset (0x18); return the lines seen up to the banner and just after it.

        Sent again after a second of silence: a chip still booting (writing default settings to a blank
        EEPROM) has its receiver off, like a real one.
        """
        lines: list[str] = []
        for _ in range(attempts):
            self.write(b"\x18")
            for text in self._lines(1.0):
                if text:
                    lines.append(text)
                if text.startswith("Grbl "):
                    return lines + self.drain(0.2)
        raise AssertionError(f"no banner after 0x18; saw {lines}")


@pytest.fixture(scope="session")
def firmware_build() -> tuple[Path, Path]:
    """``make -C firmware`` once per session: (elf, simrunner)."""
    from appliance.hardware.stage.simavr_board import SimavrBoardError, build_firmware

    try:
        return build_firmware(ROOT)
    except SimavrBoardError as exc:
        pytest.fail(f"cannot build the firmware and the simavr runner; run scripts/setup.sh: {exc}")


@pytest.fixture
def board(firmware_build):
    from appliance.hardware.stage.simavr_board import SimavrBoard

    with SimavrBoard(*firmware_build, realtime=True) as b:
        yield b


def open_link(board, reset: bool = True) -> Link:
    port = serial.Serial(board.pty_path, 115200, timeout=0.05)
    link = Link(port)
    if reset:
        link.reset()   # opening the pty does not reset the chip: start from a known state
    return link


@pytest.fixture
def make_link():
    """``make_link(board, reset=True)``: a Link on that board's pty (the caller closes its port)."""
    return open_link


@pytest.fixture
def link(board) -> Iterator[Link]:
    lk = open_link(board)
    yield lk
    lk.port.close()


@pytest.fixture
def unlocked(link) -> Link:
    reply, _ = link.command("$X")
    assert reply == "ok"
    return link

"""A serial transport that misbehaves on purpose, for ``GrblStage(config, opener=...)``.

It wraps the real ``serial.Serial`` of a simavr or fake GRBL board and can, switched at run time:

- ``split``: hand the driver at most this many bytes per read (a USB-serial chip delivering odd chunks);
- ``noise``: insert a whole garbage line (random bytes, non-UTF-8 and control bytes included) in front of
  a line the board sends, with this probability per line;
- ``garble_next``: insert a garbage line in front of each of the next this many lines the board sends;
- ``blackhole``: swallow every byte the board sends (a reply that never comes);
- ``write_stall``: every write times out (``serial.SerialTimeoutException``, as pyserial raises when the
  board stops reading and ``write_timeout`` passes);
- ``unplugged``: raise ``OSError`` on every read and write, and make the opener fail too (the port has
  vanished: pyserial raises ``SerialException``, an ``OSError`` subclass, when a USB port disappears).

Two hooks let a test time a fault to the protocol rather than to the clock (a scan on a loaded machine runs
at any pace): ``on_write(data, transport)`` after every write the driver makes (the board has the bytes),
``on_board_line(line, transport)`` for every whole line the board sends, before the driver sees it. A hook
may switch the faults above, or write to the board behind the driver's back (``transport.inner.write``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from appliance.hardware.stage.grbl import open_serial


@dataclass
class Faults:
    """The switches every transport the opener made shares (a reconnect sees the same faults)."""

    split: int = 0
    noise: float = 0.0
    garble_next: int = 0
    blackhole: bool = False
    write_stall: bool = False
    unplugged: bool = False
    seed: int = 0
    opens: int = 0
    noise_lines: int = 0
    on_write: Callable[[bytes, FaultyTransport], None] | None = None
    on_board_line: Callable[[bytes, FaultyTransport], None] | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def garbage(self) -> bytes:
        """One garbage line: random bytes with no newline inside, then CR LF."""
        n = self.rng.randint(1, 40)
        body = bytes(b for b in self.rng.randbytes(n) if b not in (0x0A, 0x0D))
        return body + b"\r\n"


class FaultyTransport:
    """``serial.Serial`` for the link, with the faults of a shared :class:`Faults` applied."""

    def __init__(self, inner: serial.Serial, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults
        self._pending = bytearray()
        self._line_start = True
        self._line = bytearray()  # the board's line being received, for on_board_line

    def _check(self) -> None:
        if self.faults.unplugged:
            raise serial.SerialException("device reports readiness to read but returned no data "
                                         "(device disconnected or multiple access on port?)")

    @property
    def in_waiting(self) -> int:
        self._check()
        return len(self._pending) + self.inner.in_waiting

    def read(self, size: int = 1) -> bytes:
        self._check()
        f = self.faults
        if not self._pending:
            chunk = self.inner.read(max(1, size))
            self._watch(chunk)
            if f.blackhole or f.unplugged:   # a hook may have switched a fault on
                self._check()
                return b""
            out = bytearray()
            for b in chunk:
                # the garbage goes in front of a line, so it can land between a command and its reply
                if self._line_start and (f.garble_next > 0 or (f.noise and f.rng.random() < f.noise)):
                    out += f.garbage()
                    f.noise_lines += 1
                    f.garble_next = max(0, f.garble_next - 1)
                out.append(b)
                self._line_start = b == 0x0A
            self._pending += out
        n = min(size, len(self._pending))
        if f.split:
            n = min(n, f.rng.randint(1, f.split))
        data = bytes(self._pending[:n])
        del self._pending[:n]
        return data

    def _watch(self, chunk: bytes) -> None:
        """Hand every whole line the board sent to ``on_board_line``."""
        hook = self.faults.on_board_line
        if hook is None:
            return
        for b in chunk:
            if b == 0x0A:
                line, self._line = bytes(self._line).rstrip(b"\r"), bytearray()
                hook(line, self)
            else:
                self._line.append(b)

    def write(self, data: bytes) -> int | None:
        self._check()
        if self.faults.write_stall:
            time.sleep(min(self.inner.write_timeout or 0.0, 0.5))
            raise serial.SerialTimeoutException("Write timeout")
        n = self.inner.write(data)
        if self.faults.on_write is not None:
            self.faults.on_write(bytes(data), self)
        return n

    def reset_input_buffer(self) -> None:
        self._check()
        self._pending.clear()
        self.inner.reset_input_buffer()

    def close(self) -> None:
        self.inner.close()


def faulty_opener(faults: Faults):
    """An opener for ``GrblStage`` that fails while unplugged and wraps what it opens."""

    def opener(port: str, baud: int, poll_s: float, write_timeout_s: float) -> FaultyTransport:
        if faults.unplugged:
            raise serial.SerialException(f"[Errno 2] could not open port {port}: No such file or directory")
        faults.opens += 1
        return FaultyTransport(open_serial(port, baud, poll_s, write_timeout_s), faults)  # type: ignore[arg-type]
    return opener

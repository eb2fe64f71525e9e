"""Fixtures for the stage driver tests.

``FakeGrbl`` is a stock GRBL 1.1 board (CNC shield, Z stepper, no M280) answering on a pseudo-terminal,
written from GRBL 1.1's documented interface (doc/markdown/interface.md, commands.md, settings.md):
one ``ok``/``error:N`` per line, an empty line answered ``ok``, real-time ``?`` ``!`` ``~`` 0x18 picked
out of the byte stream, ``$$``/``$N=``/``$I``/``$H``/``$X``, power-up in ``Alarm`` when homing is enabled,
``error:9`` for G-code in alarm, ``error:11`` past 80 characters, ``ALARM:2`` + ``[MSG:Reset to continue]``
for a target beyond the soft limits (then only reset and ``?`` are served), ``ALARM:3`` for a reset in
motion, ``ALARM:1`` for a limit switch, machine coordinates 0..-travel after homing to the positive end.
Simplified, and said so: moves run at constant feed (no acceleration) and a feed hold stops at once.

The ``simavr`` fixtures run the REAL firmware (``SimavrBoard``) for the must-show tests.
"""

from __future__ import annotations

import math
import os
import select
import threading
import time
import tty
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STOCK_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0, 20: 0, 21: 0, 22: 0,
    23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0, 100: 250.0, 101: 250.0,
    102: 250.0, 110: 500.0, 111: 500.0, 112: 500.0, 120: 10.0, 121: 10.0, 122: 10.0, 130: 200.0,
    131: 200.0, 132: 200.0,
}
BANNER = "Grbl 1.1h ['$' for help]"
MOTION_STATES = ("Run", "Hold", "Home", "Jog")


class FakeGrbl:
    """A stock GRBL 1.1 board on a pty (see the module docstring for what it models)."""

    def __init__(self, tmp: Path, *, homing: bool = True, soft_limits: bool = True, version: str = "1.1h.20190825",
                 stable_name: bool = True) -> None:
        self.settings = dict(STOCK_SETTINGS)
        self.settings[22] = 1 if homing else 0
        self.settings[20] = 1 if soft_limits else 0
        self.version = version
        self.link_path = tmp / "ttyFAKEGRBL" if stable_name else None
        self.received: list[str] = []          # every line the board read, for assertions
        self.silent = False                    # read everything, answer nothing (a hung board)
        self.status_override: str | None = None   # answer '?' with this text instead
        self.reply_override: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None
        self._running = False
        self.slave_path = ""
        self.wco = (0.0, 0.0, 0.0)
        self.speed_factor = 1.0                # < 1: a board whose motors run slower than commanded
        self.power_on()

    # -- board state ------------------------------------------------------------------------------

    def power_on(self) -> None:
        """Reset everything a power cycle resets (settings stay: they live in EEPROM)."""
        with self._lock:
            self.mpos = [0.0, 0.0, 0.0]
            self.queue: deque[tuple[str, list[float], float]] = deque()
            self.absolute = True
            self.motion = 0
            self.feed: float | None = None
            self.state = "Alarm" if self.settings[22] else "Idle"
            self.substate: int | None = None
            self.critical = False
            self.rx = bytearray()
            self.overflow = False
            self.pending_ok_at: float | None = None
            self.pending_lines: deque[str] = deque()
            self.reports = 0
            self.limit_pins = ""
            self.home_done_at = math.inf

    def _banner(self) -> None:
        self._out("")
        self._out(BANNER)
        if self.state == "Alarm":
            self._out("[MSG:'$H'|'$X' to unlock]")

    # -- pty plumbing -----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """What a host opens: a stable symlink (like /dev/serial/by-id) or the pty itself."""
        return str(self.link_path) if self.link_path else self.slave_path

    def start(self) -> FakeGrbl:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.slave_path = os.ttyname(self._slave)
        if self.link_path:
            tmp_link = self.link_path.with_suffix(".new")
            if tmp_link.is_symlink():
                tmp_link.unlink()
            tmp_link.symlink_to(self.slave_path)
            os.replace(tmp_link, self.link_path)
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def unplug(self) -> None:
        """Pull the USB cable: the pty disappears; the host's reads and writes fail."""
        self._running = False
        if self._thread:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def replug(self) -> None:
        """Plug it back: a new pty (new /dev/pts/N), the symlink re-pointed, the board powered up afresh."""
        self.power_on()
        self.start()

    def stop(self) -> None:
        if self._running or self._master >= 0:
            self.unplug()

    def _out(self, text: str) -> None:
        if self._master >= 0:
            try:
                os.write(self._master, text.encode() + b"\r\n")
            except OSError:
                pass  # nobody listening (host closed the port): bytes fall on the floor, as on a wire

    def _loop(self) -> None:
        last = time.monotonic()
        while self._running:
            try:
                ready, _, _ = select.select([self._master], [], [], 0.002)
                data = os.read(self._master, 4096) if ready else b""
            except OSError:
                data = b""
            now = time.monotonic()
            with self._lock:
                for b in data:
                    self._byte(b)
                self._advance(now - last, now)
                self._serve_pending(now)
            last = now

    # -- input ------------------------------------------------------------------------------------

    def _byte(self, b: int) -> None:
        if self.silent:
            return
        if b == 0x18:
            return self._soft_reset()
        if b == ord("?"):
            return self._status()
        if b == ord("!"):
            if self.state == "Run":
                self.state, self.substate = "Hold", 0
            return
        if b == ord("~"):
            if self.state == "Hold":
                self.state, self.substate = ("Run" if self.queue else "Idle"), None
            return
        if self.critical:
            return  # after ALARM:1/2 GRBL serves only reset and status until reset
        if b in (0x0A, 0x0D):
            line = self.rx.decode("latin-1")
            self.pending_lines.append("\x00OVERFLOW" if self.overflow else line)
            self.rx.clear()
            self.overflow = False
        elif b > 0x20:  # GRBL drops spaces and control characters
            if len(self.rx) >= 79:
                self.overflow = True
            else:
                self.rx.append(b)

    def _serve_pending(self, now: float) -> None:
        if self.pending_ok_at is not None:
            if now < self.pending_ok_at:
                return
            self.pending_ok_at = None
            self._out("ok")
        while self.pending_lines and not self.critical:
            if len(self.queue) >= 15 and not self.pending_lines[0].startswith("$"):
                return  # planner full: GRBL stops reading until a block finishes
            line = self.pending_lines.popleft()
            self.received.append(line)
            if line in self.reply_override:
                for text in self.reply_override[line]:
                    self._out(text)
                continue
            result = self._line(line.upper(), now)
            if result == "defer":
                return
            if result is not None:
                self._out(result)

    def _line(self, line: str, now: float) -> str | None:
        if line == "\x00OVERFLOW":
            return "error:11"
        if line == "":
            return "ok"
        if line.startswith("$"):
            return self._system(line, now)
        return self._gcode(line, now)

    # -- $ commands -------------------------------------------------------------------------------

    def _system(self, line: str, now: float) -> str | None:
        if line == "$$":
            if self.state in MOTION_STATES:
                return "error:8"
            for n, v in sorted(self.settings.items()):
                self._out(f"${n}={v:.3f}" if n in (11, 12, 24, 25, 27) or n >= 100 else f"${n}={int(v)}")
            return "ok"
        if line == "$I":
            self._out(f"[VER:{self.version}:]")
            self._out("[OPT:V,15,128]")
            return "ok"
        if line == "$G":
            self._out(f"[GC:G{self.motion} G54 G17 G21 G{90 if self.absolute else 91} G94 M5 M9 T0 F0 S0]")
            return "ok"
        if line == "$X":
            if self.state == "Alarm":
                self.state = "Idle"
                self._out("[MSG:Caution: Unlocked]")
            return "ok"
        if line == "$H":
            if not self.settings[22]:
                return "error:5"
            if self.state not in ("Idle", "Alarm"):
                return "error:8"
            self.state = "Home"
            self.pending_ok_at = math.inf  # GRBL answers $H when the cycle is over
            self.home_done_at = now + 0.2
            return "defer"
        if "=" in line and line[1:line.index("=")].isdigit():
            n = int(line[1:line.index("=")])
            try:
                value = float(line[line.index("=") + 1:])
            except ValueError:
                return "error:2"
            if n not in self.settings:
                return "error:3"
            if value < 0:
                return "error:4"
            if n == 20 and value and not self.settings[22]:
                return "error:10"
            self.settings[n] = value
            return "ok"
        return "error:3"

    # -- G-code -----------------------------------------------------------------------------------

    @staticmethod
    def _words(line: str) -> list[tuple[str, float]] | str:
        words, i = [], 0
        while i < len(line):
            letter = line[i]
            if not letter.isalpha():
                return "error:1"
            j = i + 1
            while j < len(line) and (line[j].isdigit() or line[j] in ".-+"):
                j += 1
            try:
                value = float(line[i + 1:j])
            except ValueError:
                return "error:2"
            words.append((letter, value))
            i = j
        return words

    def _gcode(self, line: str, now: float) -> str | None:
        if "(" in line or ";" in line:
            line = line.split(";")[0].split("(")[0]
        words = self._words(line)
        if isinstance(words, str):
            return words
        if self.state == "Alarm":
            return "error:9"
        target: dict[str, float] = {}
        motion, dwell = None, None
        absolute = self.absolute
        for letter, value in words:
            if letter == "G":
                if value in (0, 1):
                    motion = int(value)
                elif value == 4:
                    dwell = 0.0
                elif value in (90, 91):
                    absolute = value == 90
                elif value not in (17, 21, 94, 54):
                    return "error:20"
            elif letter == "M":
                if value not in (0, 2, 5, 9, 30):
                    return "error:20"  # stock GRBL: no M280 servo command
            elif letter in "XYZ":
                target[letter] = value
            elif letter == "F":
                self.feed = value
            elif letter == "P":
                dwell = value
            elif letter not in "NST":
                return "error:20"
        self.absolute = absolute
        if dwell is not None:
            self.queue.append(("dwell", [dwell], 0.0))
            self.pending_ok_at = math.inf  # G4 is answered once the buffer has run and the dwell ended
            return "defer"
        if motion is not None:
            self.motion = motion
        if not target:
            return "ok"
        if self.motion == 1 and not self.feed:
            return "error:22"
        end = self._planned_end()
        dest = []
        for i, axis in enumerate("XYZ"):
            if axis in target:
                dest.append(target[axis] + self.wco[i] if absolute else end[i] + target[axis])
            else:
                dest.append(end[i])
        if self.settings[20] and any(not (-self.settings[130 + i] <= dest[i] <= 0) for i in range(3)):
            self.queue.clear()
            self.state = "Alarm"
            self.critical = True
            self._out("ALARM:2")
            self._out("[MSG:Reset to continue]")
            return None
        rate = self.feed if self.motion == 1 else self.settings[110]
        self.queue.append(("move", dest, rate or 1.0))
        if self.state == "Idle":
            self.state = "Run"
        return "ok"

    def _planned_end(self) -> list[float]:
        for kind, dest, _ in reversed(self.queue):
            if kind == "move":
                return list(dest)
        return list(self.mpos)

    # -- motion -----------------------------------------------------------------------------------

    def _advance(self, dt: float, now: float) -> None:
        if self.state == "Home" and now >= self.home_done_at:
            self.mpos = [0.0, 0.0, 0.0]
            self.state = "Idle"
            self.pending_ok_at = now
        if self.state not in ("Run", "Idle") or not self.queue:
            if self.state == "Run" and not self.queue:
                self.state = "Idle"
            return
        kind, dest, rate = self.queue[0]
        if kind == "dwell":
            if self.pending_ok_at == math.inf:
                self.pending_ok_at = now + dest[0]
                self.queue.popleft()
            return
        self.state = "Run"
        step = rate / 60.0 * dt * self.speed_factor
        delta = [d - p for d, p in zip(dest, self.mpos, strict=True)]
        dist = math.sqrt(sum(d * d for d in delta))
        if dist <= step:
            self.mpos = list(dest)
            self.queue.popleft()
            if not self.queue:
                self.state = "Idle"
        else:
            self.mpos = [p + d * step / dist for p, d in zip(self.mpos, delta, strict=True)]

    def _status(self) -> None:
        if self.status_override is not None:
            self._out(self.status_override)
            return
        state = self.state if self.substate is None or self.state != "Hold" else f"Hold:{self.substate}"
        fields = [state]
        if int(self.settings[10]) & 1:
            fields.append("MPos:" + ",".join(f"{v:.3f}" for v in self.mpos))
        else:
            fields.append("WPos:" + ",".join(f"{v - o:.3f}" for v, o in zip(self.mpos, self.wco, strict=True)))
        if int(self.settings[10]) & 2:
            fields.append(f"Bf:{15 - len(self.queue)},128")
        fields.append(f"FS:{int(self.feed or 0) if self.state == 'Run' else 0},0")
        if self.limit_pins:
            fields.append(f"Pn:{self.limit_pins}")
        if self.reports % 10 == 0:
            fields.append("WCO:" + ",".join(f"{v:.3f}" for v in self.wco))
        self.reports += 1
        self._out("<" + "|".join(fields) + ">")

    def _soft_reset(self) -> None:
        in_motion = self.state in MOTION_STATES
        homing = self.state == "Home"
        was_alarm = self.state == "Alarm"
        keep = list(self.mpos)
        self.power_on()
        if in_motion:
            self._out("ALARM:6" if homing else "ALARM:3")
            self.state = "Alarm"
        else:
            self.mpos = keep
            self.state = "Alarm" if was_alarm else "Idle"
        self._banner()

    # -- test hooks -------------------------------------------------------------------------------

    def drop_queue(self) -> None:
        """Forget the queued moves and go Idle where the carriage is (a board that lost its plan)."""
        with self._lock:
            self.queue.clear()
            self.state = "Idle"

    def trigger_limit(self, axis: str) -> None:
        """A limit switch closes: hard limits stop everything, ALARM:1, then only reset is served."""
        with self._lock:
            self.queue.clear()
            self.limit_pins = axis.upper()
            self.state = "Alarm"
            self.critical = True
            self._out("ALARM:1")
            self._out("[MSG:Reset to continue]")


@pytest.fixture
def fake_grbl(tmp_path):
    board = FakeGrbl(tmp_path).start()
    yield board
    board.stop()


@pytest.fixture
def make_fake_grbl(tmp_path):
    boards: list[FakeGrbl] = []

    def make(**kw) -> FakeGrbl:
        d = tmp_path / f"board{len(boards)}"
        d.mkdir()
        board = FakeGrbl(d, **kw).start()
        boards.append(board)
        return board
    yield make
    for b in boards:
        b.stop()


@pytest.fixture
def stage_config():
    """Config for a GrblStage on a fake/simulated board: short timeouts, no servo settle wait."""
    from appliance.hardware.stage.grbl import GrblStageConfig

    def make(port: str, **kw) -> GrblStageConfig:
        base = dict(port=port, reply_timeout_s=1.0, handshake_timeout_s=2.0, servo_settle_s=0.0,
                    move_timeout_margin_s=3.0, homing_timeout_s=10.0, reconnect_delay_s=0.2,
                    feed_xy_mm_per_min=1200.0, feed_z_mm_per_min=600.0, backlash_approach_um=50.0)
        base.update(kw)
        return GrblStageConfig(**base)
    return make


# -- the real firmware in simavr ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def firmware_paths():
    """Build the firmware and the simavr runner once per session (``make -C firmware``)."""
    try:
        from appliance.hardware.stage.simavr_board import build_firmware
    except ImportError as exc:  # never skip: a missing runner is a failure, not a reason to pass quietly
        pytest.fail(f"appliance.hardware.stage.simavr_board is missing ({exc}); it runs the firmware in simavr")
    try:
        return build_firmware(ROOT)
    except Exception as exc:
        pytest.fail(f"cannot build the firmware and simavr runner (run scripts/setup.sh for avr-gcc, "
                    f"simavr, libsimavr-dev): {exc}")


@pytest.fixture
def simboard(firmware_paths):
    """The compiled firmware running in simavr (paced to real time), its UART on a fresh pty."""
    from appliance.hardware.stage.simavr_board import SimavrBoard

    board = SimavrBoard(*firmware_paths, realtime=True)
    board.start()
    yield board
    board.stop()


@pytest.fixture
def simstage(simboard, stage_config):
    """A GrblStage open on the simavr board (fresh EEPROM: default settings, power-up alarm)."""
    from appliance.hardware.stage.grbl import GrblStage

    stage = GrblStage(stage_config(simboard.pty_path, feed_xy_mm_per_min=600.0, feed_z_mm_per_min=300.0,
                                   reply_timeout_s=2.0, handshake_timeout_s=5.0, homing_timeout_s=60.0,
                                   move_timeout_margin_s=10.0))
    stage.open()
    yield stage
    stage.close()


class SwitchEmulator:
    """Limit switches at fixed carriage positions for the simavr board.

    The runner counts the firmware's step pulses; a switch on an axis reads pressed while that axis'
    net step count is at or below ``threshold`` (a switch at the negative end, the carriage starting
    above it). A thread polls the counts and drives the limit pins, so ``$H`` finds real switches.
    """

    def __init__(self, board, thresholds: dict[str, int], period_s: float = 0.001) -> None:
        self.board = board
        self.thresholds = thresholds
        self.period_s = period_s
        self.pressed = {axis: False for axis in thresholds}
        self.presses = {axis: 0 for axis in thresholds}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            counts = dict(zip("xyz", self.board.step_counts(), strict=True))
            for axis, threshold in self.thresholds.items():
                now = counts[axis] <= threshold
                if now != self.pressed[axis]:
                    self.board.set_limit(axis, now)
                    self.pressed[axis] = now
                    self.presses[axis] += now
            time.sleep(self.period_s)

    def __enter__(self) -> SwitchEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        for axis in self.thresholds:
            if self.pressed[axis]:
                self.board.set_limit(axis, False)


@pytest.fixture
def switches():
    return SwitchEmulator

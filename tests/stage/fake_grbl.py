"""``FakeGrbl``: a stock GRBL 1.1h board (CNC shield, Z stepper, no servo) answering on a pseudo-terminal.

Written from GRBL 1.1h's source (github.com/gnea/grbl, ``grbl/*.c``) and its interface documents
(``doc/markdown/interface.md``, ``commands.md``, ``settings.md``), awkward parts included. Where each
behaviour comes from:

======================================================  ========================================================
behaviour                                               where GRBL 1.1h does it
======================================================  ========================================================
one ``ok``/``error:N`` per line; an empty line is       ``protocol.c`` ``protocol_main_loop`` (empty line →
answered ``ok``                                         ``STATUS_OK``), ``report.c`` ``report_status_message``
``?`` ``!`` ``~`` 0x18 taken out of the byte stream     ``serial.c`` ``ISR(SERIAL_RX)``
spaces and control characters dropped; more than 80     ``protocol.c`` (``LINE_BUFFER_SIZE`` 80,
characters → ``error:11``                               ``STATUS_OVERFLOW``)
power-up in ``Alarm`` with ``[MSG:'$H'|'$X' to          ``main.c`` (``HOMING_INIT_LOCK``), ``protocol.c`` top of
unlock]`` when ``$22=1``                                ``protocol_main_loop``
G-code refused with ``error:9`` in Alarm                ``protocol.c`` (``STATUS_SYSTEM_GC_LOCK``)
``ALARM:N`` then a 500 ms pause before anything else    ``report.c`` ``report_alarm_message`` (``delay_ms(500)``)
ALARM:1 (hard limit) and ALARM:2 (soft limit): after    ``protocol.c`` ``protocol_exec_rt_system``: prints
the pause ``[MSG:Reset to continue]``, a reset received ``MESSAGE_CRITICAL_EVENT``, clears ``EXEC_RESET``, then
before it is discarded, then nothing is served — not    spins until ``EXEC_RESET``; the status flag set by
even ``?`` — until a reset                              ``?`` is never serviced in that loop and is cleared
                                                        by the reset (``main.c``)
a G-code target beyond the travel → ``ALARM:2``, the    ``limits.c`` ``limits_soft_check``; ``mc_reset`` first,
line gets no reply                                      so it is not ``ALARM:3``
reset while moving (Run, Jog, Home, Hold:1              ``motion_control.c`` ``mc_reset``: ``ALARM:3``
decelerating) → ``ALARM:3`` (``ALARM:6`` homing), then  (``ALARM:6``) only in cycle/homing/jog or while the
the banner ~0.5 s later; a reset in ``Hold:0`` (hold    hold still executes (``STEP_CONTROL_EXECUTE_HOLD``,
complete) → no alarm, ``Idle``, position kept           cleared at hold completion, ``stepper.c``)
a reset drops the queue and resets the G-code modes:    ``main.c`` → ``gc_init`` (``memset`` of the parser
G21 G90 G17 G94 G54, G92 offset cleared; G54..G59       state; coordinate systems reloaded from EEPROM)
offsets are kept (EEPROM)
opening the port resets nothing: modal state (G20,      no reset without DTR (simavr, boards with DTR reset
G91, G92, G55...) stays as the previous host left it    disabled); ``gc_state`` lives until a reset
``$20=1`` refused with ``error:10`` unless ``$22=1``;   ``settings.c`` ``settings_store_global_setting`` cases
``$22=0`` also clears ``$20``                           20 and 22
``$I``, ``$#``, ``$H``, ``$N=`` → ``error:8`` unless    ``system.c`` ``system_execute_line`` default branch
Idle or Alarm; ``$$`` → ``error:8`` in Run or Hold
``WCO:`` only in the first report after a reset and     ``report.c`` ``report_realtime_status``
then every 10th report when idle, every 30th when       (``REPORT_WCO_REFRESH_IDLE_COUNT`` 10, ``_BUSY_COUNT``
busy; at once after the offsets change                  30, ``config.h``); ``system_flag_wco_change``
``M280`` → ``error:23``: the M word's value is          ``gcode.c`` ``gc_execute_line``: ``int_value`` is a
truncated into a ``uint8_t`` (280 → 24), so its         ``uint8_t``; ``mantissa > 0`` →
"mantissa" is not zero                                  ``STATUS_GCODE_COMMAND_VALUE_NOT_INTEGER``
other unknown M codes → ``error:20``                    ``gcode.c`` (``STATUS_GCODE_UNSUPPORTED_COMMAND``)
``$#``: ``[G54:..]``..``[G59:..]``, ``[G28:..]``,       ``report.c`` ``report_ngc_parameters``
``[G30:..]``, ``[G92:..]``, ``[TLO:..]``, ``[PRB:..]``
machine coordinates 0..-travel after homing to the      ``limits.c`` (homing toward +, ``$23=0``), soft limits
positive end                                            checked against ``-$13x..0``
a move ends on whole steps: the target in mm times      ``planner.c`` ``plan_buffer_line``: ``target_steps =
``$10x``, rounded half away from zero (at the stock     lround(target[idx] * settings.steps_per_mm[idx])``;
250 steps/mm Z moves 4 um at a time)                    ``MPos`` is ``sys_position / steps_per_mm``
``?`` during ``$H`` answered once, when the cycle      ``limits.c`` ``limits_go_home`` ("No time to run
ends (state ``Home``, before the ``ok``); a reset       protocol_execute_realtime() in this loop"), then
meanwhile drops it (our firmware and grblHAL report     ``motion_control.c`` ``mc_homing_cycle`` runs it;
throughout: ``reports_while_homing``)                   ``EXEC_RESET`` returns before the report
======================================================  ========================================================

Simplified, and said so: moves run at constant feed (no acceleration) and a feed hold stops at once
(``Hold:0`` straight away); a soft-limit violation while moving stops at once instead of holding first.

Hooks for a misbehaving board (``reboot``, ``silent``, ``status_override``, ``reply_override``, raw
``_out``) are named as such: stock GRBL never does those on its own.
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

STOCK_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0, 20: 0, 21: 0, 22: 0,
    23: 0, 24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0, 100: 250.0, 101: 250.0,
    102: 250.0, 110: 500.0, 111: 500.0, 112: 500.0, 120: 10.0, 121: 10.0, 122: 10.0, 130: 200.0,
    131: 200.0, 132: 200.0,
}
BANNER = "Grbl 1.1h ['$' for help]"
MOTION_STATES = ("Run", "Hold", "Home", "Jog")
ALARM_PAUSE_S = 0.5          # report_alarm_message's delay_ms(500)
WCO_IDLE_EVERY, WCO_BUSY_EVERY = 10, 30
INCH_MM = 25.4


class FakeGrbl:
    """A stock GRBL 1.1h board on a pty (see the module docstring for what it models and where from)."""

    def __init__(self, tmp: Path, *, homing: bool = True, soft_limits: bool = True, version: str = "1.1h.20190825",
                 stable_name: bool = True) -> None:
        self.settings = dict(STOCK_SETTINGS)
        self.settings[22] = 1 if homing else 0
        self.settings[20] = 1 if soft_limits and homing else 0
        self.version = version
        self.link_path = tmp / "ttyFAKEGRBL" if stable_name else None
        self.received: list[str] = []          # every line the board read, for assertions
        self.silent = False                    # misbehaving: read everything, answer nothing (a hung board)
        self.status_override: str | None = None   # misbehaving: answer '?' with this text instead
        self.reply_override: dict[str, list[str]] = {}   # misbehaving: answer a line with these lines
        self.resets_received = 0               # 0x18 bytes acted on
        self.resets_dropped = 0                # 0x18 bytes discarded (the window after ALARM:1/2)
        self._lock = threading.RLock()
        self._master = self._slave = -1
        self._thread: threading.Thread | None = None
        self._running = False
        self.slave_path = ""
        # EEPROM: G54..G59 coordinate systems survive resets and power cycles
        self.coord_systems = [[0.0, 0.0, 0.0] for _ in range(6)]
        self.speed_factor = 1.0                # < 1: a board whose motors run slower than commanded
        self.homing_s = 0.2                    # how long $H takes (switches found at once, simplified)
        self.reports_while_homing = False      # stock 1.1h: '?' during $H answered when the cycle ends
        self.build_name = ""                   # $I's build field ("tppscan-stage": our firmware)
        self.alarm_pause_s = ALARM_PAUSE_S     # GRBL's is 500 ms; a test on a loaded machine may widen it
        self.power_on()

    # -- board state ------------------------------------------------------------------------------

    def power_on(self) -> None:
        """Reset everything a power cycle resets (settings and G54..G59 stay: they live in EEPROM)."""
        with self._lock:
            self.mpos = [0.0, 0.0, 0.0]
            self.state = "Alarm" if self.settings[22] else "Idle"
            self.limit_pins = ""
            self._reset_runtime()

    def _reset_runtime(self) -> None:
        """What main.c's reset loop clears: queue, line buffer, parser modes (gc_init), report counters."""
        self.queue: deque[tuple[str, list[float], float]] = deque()
        self.substate: int | None = None
        self.critical = False                  # in the ALARM:1/2 loop: nothing served until reset
        self.reset_armed_at = 0.0              # a reset before this time is discarded
        self.reset_msg_at: float | None = None
        self.paused_until = 0.0                # report_alarm_message's 500 ms: nothing served
        self.banner_at: float | None = None
        self.rx = bytearray()
        self.overflow = False
        self.pending_ok_at: float | None = None
        self.pending_lines: deque[str] = deque()
        self.wco_counter = 0                   # first report after a reset carries WCO
        self.home_done_at = math.inf
        self.status_pending = False            # a '?' received during $H, answered when the cycle ends
        # gc_init: every modal group at its default, G92 cleared
        self.motion = 0
        self.absolute = True
        self.inches = False
        self.plane = 17
        self.inverse_time = False
        self.coord_select = 0
        self.g92 = [0.0, 0.0, 0.0]
        self.feed: float | None = None

    @property
    def wco(self) -> tuple[float, float, float]:
        """Work coordinate offset: the selected G5x system plus G92 (no tool length offset here)."""
        cs = self.coord_systems[self.coord_select]
        return (cs[0] + self.g92[0], cs[1] + self.g92[1], cs[2] + self.g92[2])

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

    def out_raw(self, data: bytes) -> threading.Thread:
        """Misbehaving: put raw bytes on the wire (noise, half lines), from a thread (a pty holds only a few KB).

        Returns the writer thread; join it to know every byte has been read by the host.
        """
        def write() -> None:
            view = memoryview(data)
            while view and self._master >= 0:
                try:
                    n = os.write(self._master, view[:1024])
                except OSError:
                    return
                view = view[n:]
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        return writer

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
                    self._byte(b, now)
                self._timers(now)
                if now >= self.paused_until and not self.critical:
                    self._advance(now - last, now)
                    self._serve_pending(now)
            last = now

    def _timers(self, now: float) -> None:
        if self.reset_msg_at is not None and now >= self.reset_msg_at:
            self.reset_msg_at = None
            self._out("[MSG:Reset to continue]")
        if self.banner_at is not None and now >= self.banner_at:
            self.banner_at = None
            self._reset_runtime()
            self._banner()

    # -- input ------------------------------------------------------------------------------------

    def _byte(self, b: int, now: float) -> None:
        if self.silent:
            return
        if b == 0x18:
            return self._soft_reset(now)
        if self.critical or self.banner_at is not None:
            return  # the ALARM:1/2 loop, or report_alarm_message's pause before a reset: '?' is never served
        if b == ord("?"):
            if now < self.paused_until:
                return
            if self.state == "Home" and not self.reports_while_homing:
                self.status_pending = True   # stock GRBL's homing loop runs no real-time commands
                return
            return self._status()
        if b == ord("!"):
            if self.state == "Run":
                self.state, self.substate = "Hold", 0
            return
        if b == ord("~"):
            if self.state == "Hold":
                self.state, self.substate = ("Run" if self.queue else "Idle"), None
            return
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
        while self.pending_lines and not self.critical and now >= self.paused_until:
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
        if line in ("$$", "$G", "$X", "$C") or line.startswith("$J"):
            return self._system_any_state(line)
        if self.state not in ("Idle", "Alarm"):
            return "error:8"
        if line == "$I":
            self._out(f"[VER:{self.version}:{self.build_name}]")
            self._out("[OPT:V,15,128]")
            return "ok"
        if line == "$#":
            for i, cs in enumerate(self.coord_systems):
                self._out(f"[G{54 + i}:{self._axes(cs)}]")
            self._out("[G28:0.000,0.000,0.000]")
            self._out("[G30:0.000,0.000,0.000]")
            self._out(f"[G92:{self._axes(self.g92)}]")
            self._out("[TLO:0.000]")
            self._out("[PRB:0.000,0.000,0.000:0]")
            return "ok"
        if line == "$H":
            if not self.settings[22]:
                return "error:5"
            self.state = "Home"
            self.pending_ok_at = math.inf  # GRBL answers $H when the cycle is over
            self.home_done_at = now + self.homing_s
            return "defer"
        if "=" in line and line[1:line.index("=")].isdigit():
            return self._store_setting(int(line[1:line.index("=")]), line[line.index("=") + 1:])
        return "error:3"

    def _system_any_state(self, line: str) -> str:
        if line == "$$":
            if self.state in ("Run", "Hold"):
                return "error:8"  # "Block during cycle. Takes too long to print."
            for n, v in sorted(self.settings.items()):
                self._out(f"${n}={v:.3f}" if n in (11, 12, 24, 25, 27) or n >= 100 else f"${n}={int(v)}")
            return "ok"
        if line == "$G":
            self._out(f"[GC:G{self.motion} G{54 + self.coord_select} G{self.plane} G{20 if self.inches else 21} "
                      f"G{90 if self.absolute else 91} G{93 if self.inverse_time else 94} M5 M9 T0 "
                      f"F{self.feed or 0:g} S0]")
            return "ok"
        if line == "$X":
            if self.state == "Alarm":
                self.state = "Idle"
                self._out("[MSG:Caution: Unlocked]")
            return "ok"
        return "error:3"  # $C check mode and $J= jogging are not modelled

    def _store_setting(self, n: int, text: str) -> str:
        try:
            value = float(text)
        except ValueError:
            return "error:2"
        if n not in self.settings:
            return "error:3"
        if value < 0:
            return "error:4"
        if n == 20 and value and not self.settings[22]:
            return "error:10"
        if n == 22 and not value:
            self.settings[20] = 0  # "Force disable soft-limits."
        self.settings[n] = value
        return "ok"

    @staticmethod
    def _axes(values: list[float] | tuple[float, ...]) -> str:
        return ",".join(f"{v:.3f}" for v in values)

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
        motion, dwell, g53, g92, g10 = None, None, False, False, False
        modal: dict[str, int] = {"absolute": self.absolute, "inches": self.inches, "plane": self.plane,
                                 "inverse_time": self.inverse_time, "coord_select": self.coord_select}
        feed, p_word, l_word = None, None, None
        for letter, value in words:
            if letter == "M":
                int_value = int(value) % 256          # GRBL: uint8_t int_value = trunc(value)
                if round(100 * (value - int_value)) > 0:
                    return "error:23"                 # M280 → 280 - 24: "requires an integer value"
                if int_value not in (0, 1, 2, 5, 8, 9, 30):
                    return "error:20"
            elif letter == "G":
                g = value
                if g in (0, 1):
                    motion = int(g)
                elif g == 4:
                    dwell = 0.0
                elif g in (90, 91):
                    modal["absolute"] = g == 90
                elif g in (20, 21):
                    modal["inches"] = g == 20
                elif g in (17, 18, 19):
                    modal["plane"] = int(g)
                elif g in (93, 94):
                    modal["inverse_time"] = g == 93
                elif g in (54, 55, 56, 57, 58, 59):
                    modal["coord_select"] = int(g) - 54
                elif g == 53:
                    g53 = True
                elif g == 92:
                    g92 = True
                elif g == 10:
                    g10 = True
                else:
                    return "error:20"
            elif letter in "XYZ":
                target[letter] = value
            elif letter == "F":
                feed = value
            elif letter == "P":
                p_word = value
            elif letter == "L":
                l_word = value
            elif letter not in "NST":
                return "error:20"
        if g53 and (motion if motion is not None else self.motion) not in (0, 1):
            return "error:30"
        scale = INCH_MM if modal["inches"] else 1.0
        self.absolute, self.inches = bool(modal["absolute"]), bool(modal["inches"])
        self.plane, self.inverse_time = modal["plane"], bool(modal["inverse_time"])
        if modal["coord_select"] != self.coord_select:
            self.coord_select = modal["coord_select"]
            self.wco_counter = 0
        if feed is not None:
            self.feed = feed * scale
        if g10:
            if l_word != 2 or p_word is None or not 0 <= p_word <= 6:
                return "error:20"
            cs = self.coord_systems[int(p_word) - 1 if p_word else self.coord_select]
            for i, axis in enumerate("XYZ"):
                if axis in target:
                    cs[i] = target[axis] * scale
            self.wco_counter = 0
            return "ok"
        if g92:
            for i, axis in enumerate("XYZ"):
                if axis in target:
                    self.g92[i] = self._planned_end()[i] - self.coord_systems[self.coord_select][i] \
                        - target[axis] * scale
            self.wco_counter = 0
            return "ok"
        if dwell is not None:
            self.queue.append(("dwell", [p_word or 0.0], 0.0))
            self.pending_ok_at = math.inf  # G4 is answered once the buffer has run and the dwell ended
            return "defer"
        if motion is not None:
            self.motion = motion
        if not target:
            return "ok"
        if self.motion == 1 and not self.feed:
            return "error:22"
        end = self._planned_end()
        offset = (0.0, 0.0, 0.0) if g53 else self.wco
        dest = []
        for i, axis in enumerate("XYZ"):
            if axis not in target:
                dest.append(end[i])
            elif self.absolute or g53:
                dest.append(target[axis] * scale + offset[i])
            else:
                dest.append(end[i] + target[axis] * scale)
        if self.settings[20] and any(not (-self.settings[130 + i] <= dest[i] <= 0) for i in range(3)):
            self.queue.clear()
            self._critical_alarm(2, now)
            return None  # the line is never answered: GRBL spins until reset
        rate = self.feed if self.motion == 1 else self.settings[110]
        if self.motion == 1 and self.inverse_time:
            rate = math.dist(dest, end) * feed if feed else 0.0  # G93: F is 1/minutes
            if not rate:
                return "error:22"
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
            if self.status_pending:
                self.status_pending = False
                self._status()               # mc_homing_cycle's protocol_execute_realtime: still Home
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
            self.mpos = self._on_steps(dest)
            self.queue.popleft()
            if not self.queue:
                self.state = "Idle"
        else:
            self.mpos = [p + d * step / dist for p, d in zip(self.mpos, delta, strict=True)]

    def _on_steps(self, dest: list[float]) -> list[float]:
        """Where a move to ``dest`` (mm) ends: on the nearest whole step of each axis, as GRBL's planner rounds."""
        out = []
        for i, v in enumerate(dest):
            spm = float(self.settings[100 + i])
            out.append(math.copysign(math.floor(abs(v) * spm + 0.5), v) / spm if spm > 0 else v)
        return out

    def _status(self) -> None:
        if self.status_override is not None:
            self._out(self.status_override)
            return
        state = self.state if self.substate is None or self.state != "Hold" else f"Hold:{self.substate}"
        fields = [state]
        if int(self.settings[10]) & 1:
            fields.append("MPos:" + self._axes(self.mpos))
        else:
            fields.append("WPos:" + ",".join(f"{v - o:.3f}" for v, o in zip(self.mpos, self.wco, strict=True)))
        if int(self.settings[10]) & 2:
            fields.append(f"Bf:{15 - len(self.queue)},128")
        fields.append(f"FS:{int(self.feed or 0) if self.state == 'Run' else 0},0")
        if self.limit_pins:
            fields.append(f"Pn:{self.limit_pins}")
        if self.wco_counter > 0:
            self.wco_counter -= 1
        else:
            busy = self.state in ("Home", "Run", "Hold", "Jog", "Door")
            self.wco_counter = (WCO_BUSY_EVERY if busy else WCO_IDLE_EVERY) - 1
            fields.append("WCO:" + self._axes(self.wco))
        self._out("<" + "|".join(fields) + ">")

    def _critical_alarm(self, code: int, now: float) -> None:
        """ALARM:1/2: print it, pause 500 ms (resets in that window are lost), then spin until reset."""
        self.state = "Alarm"
        self.critical = True
        self._out(f"ALARM:{code}")
        self.reset_armed_at = now + self.alarm_pause_s
        self.reset_msg_at = now + self.alarm_pause_s

    def _soft_reset(self, now: float) -> None:
        if self.banner_at is not None:
            return  # already resetting (mc_reset runs once)
        if self.critical:
            if now < self.reset_armed_at or self.reset_msg_at is not None:
                self.resets_dropped += 1
                return  # protocol_exec_rt_system clears EXEC_RESET after the pause
            self.resets_received += 1
            self.critical = False
            self._reset_runtime()
            self.state = "Alarm"
            self._banner()
            return
        self.resets_received += 1
        moving = self.state in ("Run", "Home", "Jog") or (self.state == "Hold" and self.substate != 0)
        homing = self.state == "Home"
        self.queue.clear()
        if moving:
            self.state = "Alarm"
            self._out("ALARM:6" if homing else "ALARM:3")
            self.paused_until = now + self.alarm_pause_s
            self.banner_at = now + self.alarm_pause_s   # report_alarm_message's pause, then the reset loop
            return
        if self.state != "Alarm":
            self.state = "Idle"  # from Idle or a completed hold (Hold:0): no alarm, position kept
        self._reset_runtime()
        self._banner()

    # -- test hooks -------------------------------------------------------------------------------

    def drop_queue(self) -> None:
        """Misbehaving: forget the queued moves and go Idle where the carriage is (a board that lost its plan)."""
        with self._lock:
            self.queue.clear()
            self.state = "Idle"

    def trigger_limit(self, axis: str) -> None:
        """A limit switch closes: mc_reset stops everything, then ALARM:1 and the critical-event loop."""
        with self._lock:
            self.queue.clear()
            self.limit_pins = axis.upper()
            self._critical_alarm(1, time.monotonic())

    def reboot(self, *, homing_lock: bool = False) -> None:
        """Misbehaving: the board resets by itself (brown-out, watchdog): position 0, banner, no host command."""
        with self._lock:
            self.mpos = [0.0, 0.0, 0.0]
            self.limit_pins = ""
            self._reset_runtime()
            self.state = "Alarm" if homing_lock else "Idle"
            self._banner()

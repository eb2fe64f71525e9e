"""The compiled stage firmware running in simavr: a virtual serial board for tests, benches and trials.

``firmware/build/simrunner`` (C on libsimavr) runs the real ``.elf`` and exposes the AVR's UART on a
pseudo-terminal at the wire rate of 115200 baud (its own pty bridge: simavr 1.6's ``uart_pty`` part stalls on
input bursts, see ``docs/firmware.md``). This module starts it and speaks its small stdin/stdout line protocol
(documented in ``docs/firmware.md``) to read the step pulses it counts per axis, to read the servo timer
registers, and to drive the limit and button pins.

Opening the pseudo-terminal does not reset the simulated chip and pyserial's ``open()`` flushes input, so a
host asks for status (``?``) or sends a soft reset (``0x18``) rather than waiting for the banner.
"""

from __future__ import annotations

import select
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["SimavrBoard", "SimavrBoardError", "build_firmware", "default_paths"]

_AXES = "xyz"
_START_TIMEOUT_S = 10.0
_REPLY_TIMEOUT_S = 5.0


class SimavrBoardError(RuntimeError):
    """The simulator runner failed to start, died, or answered something unexpected."""


def _repo_root(repo_root: Path | None) -> Path:
    return repo_root if repo_root is not None else Path(__file__).resolve().parents[3]


def default_paths(repo_root: Path | None = None) -> tuple[Path, Path]:
    """Return ``(firmware elf, simrunner)`` under ``firmware/build`` of the repository.

    Parameters
    ----------
    repo_root : Path, optional
        The repository root; by default the one this package lives in.
    """
    build = _repo_root(repo_root) / "firmware" / "build"
    return build / "tppscan-stage.elf", build / "simrunner"


def build_firmware(repo_root: Path | None = None) -> tuple[Path, Path]:
    """Run ``make -C firmware`` (firmware ``.elf``/``.hex`` and the simulator runner) and return their paths.

    Raises
    ------
    SimavrBoardError
        When ``make`` is missing or fails; the message carries make's output.
    """
    root = _repo_root(repo_root)
    try:
        done = subprocess.run(["make", "-C", str(root / "firmware")], capture_output=True, text=True,
                              timeout=600, check=False)
    except FileNotFoundError as exc:
        raise SimavrBoardError("make is not installed: run scripts/setup.sh") from exc
    if done.returncode != 0:
        raise SimavrBoardError(
            f"make -C firmware failed (exit {done.returncode}); the AVR toolchain and libsimavr come from "
            f"scripts/setup.sh.\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    elf, runner = default_paths(root)
    for path in (elf, runner):
        if not path.is_file():
            raise SimavrBoardError(f"make -C firmware succeeded but {path} is missing")
    return elf, runner


class SimavrBoard:
    """The compiled stage firmware running in simavr, its UART on a pseudo-terminal.

    Parameters
    ----------
    elf : Path
        The firmware (``firmware/build/tppscan-stage.elf``).
    runner : Path
        The simulator runner (``firmware/build/simrunner``).
    realtime : bool
        Pace simulated time to the wall clock (default). ``False`` runs as fast as the host allows.
    eeprom : Path, optional
        A file the EEPROM is loaded from at start (when it exists) and saved to at :meth:`stop`;
        without it the EEPROM starts blank (all 0xFF), so the firmware restores default settings.
    pins : {"ours", "grbl"}
        Where the limit switches are wired: this firmware's pins (default), or stock GRBL 1.1's (Y on D10
        instead of D11), to run a stock GRBL build's homing cycle.

    Examples
    --------
    >>> with SimavrBoard(*build_firmware()) as board:            # doctest: +SKIP
    ...     port = serial.Serial(board.pty_path, 115200, timeout=1)
    """

    def __init__(self, elf: Path, runner: Path, *, realtime: bool = True, eeprom: Path | None = None,
                 pins: str = "ours") -> None:
        if pins not in ("ours", "grbl"):
            raise ValueError(f"pins must be 'ours' or 'grbl', got {pins!r}")
        self._pins = pins
        self._elf = Path(elf)
        self._runner = Path(runner)
        self._realtime = realtime
        self._eeprom = Path(eeprom) if eeprom is not None else None
        self._proc: subprocess.Popen[str] | None = None
        self._pty: str | None = None
        self._lock = threading.Lock()
        self._stderr: IO[str] | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch the runner and read its pseudo-terminal path.

        Raises
        ------
        SimavrBoardError
            When the files are missing, or the runner exits or stays silent instead of printing its pty.
        """
        if self._proc is not None:
            raise SimavrBoardError("SimavrBoard.start: already started")
        for what, path in (("firmware", self._elf), ("runner", self._runner)):
            if not path.is_file():
                raise SimavrBoardError(f"{what} {path} does not exist: build it with `make -C firmware`")
        args = [str(self._runner)]
        if not self._realtime:
            args.append("--fast")
        if self._eeprom is not None:
            args += ["--eeprom", str(self._eeprom)]
        if self._pins == "grbl":
            args += ["--pins", "grbl"]
        args.append(str(self._elf))
        # stderr to a file: a pipe nobody reads could fill up and stall the simulation
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="simrunner-")
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, text=True, bufsize=1)
        try:
            first = self._read_line(_START_TIMEOUT_S)
        except SimavrBoardError as exc:
            first = f"nothing ({exc})"
        if not first.startswith("PTY "):
            err = self._drain_stderr()
            self._kill()
            raise SimavrBoardError(f"simrunner did not report its pty (got {first!r}); stderr: {err}")
        self._pty = first[4:].strip()

    def stop(self) -> None:
        """Stop the runner (saving the EEPROM when one was named); safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._command("QUIT", expect="BYE")
                proc.wait(timeout=5)
        except (SimavrBoardError, subprocess.TimeoutExpired, OSError):
            pass
        finally:
            self._kill()

    def __enter__(self) -> SimavrBoard:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- what the runner measures and drives ------------------------------------------------------

    @property
    def pty_path(self) -> str:
        """The pseudo-terminal to open with pyserial at 115200 baud."""
        if self._pty is None:
            raise SimavrBoardError("SimavrBoard: not started")
        return self._pty

    def step_counts(self) -> tuple[int, int, int]:
        """Net signed step pulses per axis (X, Y, Z): rising step edges, minus when the direction pin is high."""
        return self._three_ints("STEPS?", "STEPS")

    def pulse_counts(self) -> tuple[int, int, int]:
        """Total step pulses per axis regardless of direction."""
        return self._three_ints("PULSES?", "PULSES")

    def servo_pulse_us(self) -> float | None:
        """Servo pulse width from the Timer1 registers (OCR1B), or ``None`` while the PWM output is off."""
        servo = self._servo()
        return None if servo is None else servo[0]

    def servo_period_us(self) -> float | None:
        """Servo PWM period from the Timer1 registers (20000 us for 50 Hz), or ``None`` while off."""
        servo = self._servo()
        return None if servo is None else servo[1]

    def cycles(self) -> int:
        """Simulated CPU cycles since start (16 per microsecond)."""
        reply = self._command("CYCLES?", expect="CYCLES")
        return int(reply.split()[1])

    def resets(self) -> int:
        """AVR resets since start (a watchdog reset); the runner re-arms its UART pump after each."""
        reply = self._command("RESETS?", expect="RESETS")
        return int(reply.split()[1])

    def cpu_load(self) -> float:
        """Fraction of simulated cycles the AVR was awake (not sleeping) since the previous call."""
        parts = self._command("LOAD?", expect="LOAD").split()
        busy, total = int(parts[1]), int(parts[2])
        return busy / total if total else 0.0

    def peek(self, address: int) -> int:
        """One byte of the AVR's data space (registers from 0x20, SRAM from 0x100), e.g. WDTCSR at 0x60."""
        if not 0 <= int(address) <= 0x8FF:
            raise ValueError(f"address must lie in 0..0x8ff (ATmega328P data space), got {address:#x}")
        reply = self._command(f"PEEK {int(address)}", expect="PEEK")
        return int(reply.split()[2], 16)

    def set_limit(self, axis: str, pressed: bool) -> None:
        """Close (``pressed``) or open the limit switch of ``axis`` ('x', 'y' or 'z')."""
        self._command(f"LIMIT {self._axis(axis)} {int(bool(pressed))}", expect="OK")

    def place_limit_switch(self, axis: str, at_steps: int | None, side: str = "-") -> None:
        """Put a virtual switch on ``axis`` that closes while the net step count is at or beyond ``at_steps``.

        Parameters
        ----------
        axis : str
            'x', 'y' or 'z'.
        at_steps : int or None
            Net step count (as :meth:`step_counts`) where the switch closes; ``None`` removes the switch.
        side : str
            '-' closes at counts <= ``at_steps`` (a switch at the minus end), '+' at counts >= ``at_steps``.
        """
        name = self._axis(axis)
        if at_steps is None:
            self._command(f"SWITCH {name} off", expect="OK")
            return
        if side not in ("-", "+"):
            raise ValueError(f"side must be '-' or '+', got {side!r}")
        self._command(f"SWITCH {name} {int(at_steps)} {side}", expect="OK")

    def set_button(self, pressed: bool) -> None:
        """Press or release the user button (the firmware debounces it and pushes [MSG:BUTTON ...])."""
        self._command(f"BUTTON {int(bool(pressed))}", expect="OK")

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _axis(axis: str) -> str:
        if not isinstance(axis, str) or axis.lower() not in _AXES or len(axis) != 1:
            raise ValueError(f"axis must be one of 'x', 'y', 'z', got {axis!r}")
        return axis.lower()

    def _servo(self) -> tuple[float, float] | None:
        reply = self._command("SERVO?", expect="SERVO")
        parts = reply.split()
        if parts[1:] == ["off"]:
            return None
        return float(parts[1]), float(parts[2])

    def _three_ints(self, command: str, tag: str) -> tuple[int, int, int]:
        parts = self._command(command, expect=tag).split()
        if len(parts) != 4:
            raise SimavrBoardError(f"simrunner answered {command} with {' '.join(parts)!r}")
        return int(parts[1]), int(parts[2]), int(parts[3])

    def _command(self, command: str, *, expect: str) -> str:
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise SimavrBoardError("SimavrBoard: not started")
            if proc.poll() is not None:
                raise SimavrBoardError(f"simrunner has exited (code {proc.returncode}): "
                                       f"{self._drain_stderr()}")
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            reply = self._read_line(_REPLY_TIMEOUT_S)
        if not reply.startswith(expect):
            raise SimavrBoardError(f"simrunner answered {command!r} with {reply!r}, expected {expect} ...")
        return reply.strip()

    def _read_line(self, timeout_s: float) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            raise SimavrBoardError(f"simrunner gave no answer within {timeout_s} s")
        line = proc.stdout.readline()
        if line == "":
            raise SimavrBoardError(f"simrunner closed its output (exit {proc.poll()}): {self._drain_stderr()}")
        return line

    def _drain_stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        self._pty = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, self._stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr = None


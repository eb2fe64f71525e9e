"""Fixtures for the stage driver tests.

``FakeGrbl`` (``fake_grbl.py``) is a stock GRBL 1.1h board on a pty; its docstring lists each behaviour and
where GRBL's source does it.

The ``simavr`` fixtures run the REAL firmware (``SimavrBoard``) for the must-show tests.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.stage.fake_grbl import FakeGrbl

ROOT = Path(__file__).resolve().parents[2]


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

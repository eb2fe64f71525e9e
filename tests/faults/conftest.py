"""Fixtures for the fault suite: the firmware build and simavr boards (from ``tests/firmware``), scaled by env.

``TPPSCAN_FAULT_RUNS`` scales every randomised fault test (default 1: the CI sample); the long runs and their
figures are in ``docs/reliability.md``.
"""

from __future__ import annotations

import os

import pytest

from tests.firmware.conftest import firmware_build  # noqa: F401  (a session fixture shared with tests/firmware)


def scale() -> int:
    """``TPPSCAN_FAULT_RUNS`` as a positive integer (1 when unset)."""
    raw = os.environ.get("TPPSCAN_FAULT_RUNS", "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        pytest.fail(f"TPPSCAN_FAULT_RUNS must be a positive integer, got {raw!r}")
    return value


# the board fixtures of tests/stage, shared rather than copied
from tests.stage.conftest import (  # noqa: E402,F401
    fake_grbl,
    firmware_paths,
    simboard,
    stage_config,
    switches,
)

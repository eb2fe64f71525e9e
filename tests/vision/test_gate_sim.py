"""The candidate gate finds the simulated structures: a small run of ``scripts/gate_recall.py`` (issue 7).

The full figure (10 held-out slides x 20 fields) is measured by the script itself (docs/gate.md). Here one
held-out slide, 10 fields and 3 fields of clear glass: every structure found, and nothing on clear glass.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gate_recall.py"


def _script() -> object:
    spec = importlib.util.spec_from_file_location("gate_recall", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gate_recall"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_gate_finds_simulated_structures() -> None:
    gr = _script()
    tally = gr.Tally()  # type: ignore[attr-defined]
    gr.measure_slide(7004, 10, 3, tally)  # type: ignore[attr-defined]
    assert tally.structures >= 10
    assert tally.recall >= 0.99, tally.missed
    assert tally.empty_fields == 3 and tally.empty_candidates == 0


def test_iou() -> None:
    gr = _script()
    assert gr.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0  # type: ignore[attr-defined]
    assert gr.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)  # type: ignore[attr-defined]
    assert gr.iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0  # type: ignore[attr-defined]

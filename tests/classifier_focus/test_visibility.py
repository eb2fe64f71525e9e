"""The through-focus visibility check (``models.focusnet.visibility``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.focusnet.visibility import main, visibility


def test_visibility_by_hand():
    base = np.zeros((4, 4), np.float32)
    crops = {(0.0, 1): base, (0.0, 2): base + 1.0, (2.0, 2): base + 3.0, (2.0, 1): base}
    assert visibility(crops, 0.0, 2.0) == pytest.approx(3.0)   # crop(0, exp 1) vs crop(2, exp 2): 3 over noise 1
    assert visibility(crops, 0.0, 0.0) == pytest.approx(1.0)   # same defocus: the noise itself


def test_cli_renders_a_sweep_and_its_sheet(tmp_path: Path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["--um-per-px", "0.35", "0.35", "--slides", "1", "--per-slide", "1", "--sheet", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("type")
    values = [float(v) for v in lines[1].split()[1:]]
    assert len(values) == 4 and all(v > 0.5 for v in values)
    assert values[-1] > 1.5  # -10 vs +10 µm at 20x / NA ~0.4: plainly different crops
    assert out.stat().st_size > 1000


def test_cli_bad_values_exit_2(capsys):
    assert main(["--slides", "0"]) == 2
    assert "--slides" in capsys.readouterr().err
    assert main(["--um-per-px", "0.01", "0.02"]) == 2
    assert "um_per_px" in capsys.readouterr().err

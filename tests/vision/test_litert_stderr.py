"""LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` is kept off stderr, and nothing else is.

It came from the C++ runtime on fd 2 with every interpreter, so every command printed it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from appliance.vision import litert
from appliance.vision.litert import XNNPACK_INFO, LiteModel, ModelFileError, OutputSpec, quiet_xnnpack_info

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER = ROOT / "models" / "classifier" / "classifier.tflite"


def _classifier(path: Path) -> LiteModel:
    return LiteModel(path, (64, 64, 1), [OutputSpec("probs", None)])


def test_loading_a_model_keeps_the_xnnpack_info_line_off_stderr(capfd):
    assert CLASSIFIER.is_file()
    _classifier(CLASSIFIER)
    out, err = capfd.readouterr()
    assert "XNNPACK" not in err and "XNNPACK" not in out
    os.write(2, b"after\n")  # fd 2 is back where it was
    assert capfd.readouterr().err == "after\n"


def test_other_lines_written_on_fd_2_during_loading_are_written_after(capfd):
    with quiet_xnnpack_info():
        os.write(2, b"ERROR: first\n" + XNNPACK_INFO.encode() + b"\nWARNING: second\n")
    assert capfd.readouterr().err == "ERROR: first\nWARNING: second\n"


def test_a_runtime_error_at_construction_is_shown_and_reported(capfd, monkeypatch, tmp_path):
    # LiteRT prints why it refuses a model on fd 2 before it raises: that line must still reach the user.
    class Refusing:
        def __init__(self, **kwargs: Any) -> None:
            os.write(2, b"ERROR: Didn't find op for builtin opcode 'CONV_2D' version '9'\n")
            raise RuntimeError("Encountered unresolved custom op")

    monkeypatch.setattr(litert, "_interpreter_class", lambda: Refusing)
    with pytest.raises(ModelFileError, match="LiteRT cannot load it"):
        _classifier(CLASSIFIER)
    assert "ERROR: Didn't find op for builtin opcode 'CONV_2D'" in capfd.readouterr().err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_a_damaged_model_file_still_gets_its_clear_error(capfd, tmp_path):
    data = bytearray(CLASSIFIER.read_bytes())
    (tmp_path / "cut.tflite").write_bytes(bytes(data[:len(data) // 3]))
    with pytest.raises(ModelFileError, match=r"cut\.tflite: LiteRT cannot load it, truncated or corrupt\?"):
        _classifier(tmp_path / "cut.tflite")
    assert "XNNPACK" not in capfd.readouterr().err

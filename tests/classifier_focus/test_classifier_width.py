"""``tppscan train classifier --width``: bounded, and it sets the network's channels."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from models.classifier import train


@pytest.mark.parametrize("value", ["7", "65", "-16"])
def test_width_out_of_range_exits_2_naming_it(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    rc = train.run(p.parse_args(["--data", str(tmp_path), "--out", str(tmp_path), "--width", value]))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--width" in err and value in err and "[8, 64]" in err


def test_width_sets_the_channels() -> None:
    import keras

    small, wide = train.build_model(keras, width=8), train.build_model(keras, width=24)
    convs = [[layer.filters for layer in m.layers if isinstance(layer, keras.layers.Conv2D)] for m in (small, wide)]
    assert convs == [[8, 16, 16], [24, 48, 48]]

"""Shared fixtures: tiny rendered datasets and models from the trainers' --quick runs (real LiteRT files)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from appliance.cli import main as cli_main


def _dataset(root: Path, kind: str, split: str, count: int, seed: int) -> Path:
    out = root / f"{kind}_{split}"
    rc = cli_main(["dataset", kind, "--seed", str(seed), "--count", str(count), "--split", split,
                   "--out", str(out), "--jobs", "1", "--per-slide", "32"])
    assert rc == 0
    return out


def _train(module: str, data: Path, out: Path, *extra: str) -> int:
    import importlib

    mod = importlib.import_module(module)
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    return int(mod.run(p.parse_args(["--data", str(data), "--out", str(out), "--quick", "--threads", "2", *extra])))


@pytest.fixture(scope="session")
def classifier_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clf")
    return {"train": _dataset(root, "classifier", "train", 64, 5), "test": _dataset(root, "classifier", "test", 32, 5)}


@pytest.fixture(scope="session")
def focus_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("focus")
    return {"train": _dataset(root, "focus", "train", 64, 5), "test": _dataset(root, "focus", "test", 32, 5)}


@pytest.fixture(scope="session")
def quick_classifier(tmp_path_factory: pytest.TempPathFactory, classifier_data: dict[str, Path]) -> Path:
    """Folder holding classifier.tflite (+ dynamic, int8), labels.txt and metrics.json of a --quick run."""
    out = tmp_path_factory.mktemp("clf_model")
    assert _train("models.classifier.train", classifier_data["train"], out, "--test", str(classifier_data["test"])) == 0
    return out


@pytest.fixture(scope="session")
def quick_focus(tmp_path_factory: pytest.TempPathFactory, focus_data: dict[str, Path]) -> Path:
    """Folder holding focusnet.tflite (+ variants) and its metrics file from a --quick run."""
    out = tmp_path_factory.mktemp("focus_model")
    assert _train("models.focusnet.train", focus_data["train"], out) == 0
    return out

"""Style and typing gates, run with the tests so they cannot drift (ruff + mypy, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean():
    res = _run("ruff", "check", "--no-cache", "appliance", "kernels", "tests", "bench", "models")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_mypy_clean():
    res = _run("mypy", "--no-incremental", "--cache-dir", "/dev/null")
    assert res.returncode == 0, res.stdout + res.stderr

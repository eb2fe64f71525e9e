"""Puts ``bench/`` on the import path: pytest runs with ``--import-mode=importlib``, which adds no test folder to
``sys.path``, and the benches share :mod:`timing`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

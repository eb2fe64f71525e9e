"""The documentation names files that exist: every repository path in the README, `docs/` and the model cards.

A doc that points at a missing file sends the next engineer (or a lab user) nowhere; this catches a renamed
module or a page that was never written. Paths are recognised by their top-level folder and a file suffix;
markdown links and images are checked relative to the page that holds them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("models/*/MODEL_CARD.md")])
TOP = "appliance|kernels|models|firmware|systemd|scripts|bench|tests|docs|\\.ci"
SUFFIX = "md|py|png|jpg|svg|sh|service|rules|conf|json|txt|onnx|tflite|yaml|c|h|ino"
# A repo path in running text or code: top folder, then path characters, ending in a known suffix.
PATH_RE = re.compile(rf"(?<![\w./-])((?:{TOP})/[\w./*-]*?\.(?:{SUFFIX}))(?![\w/])")
LINK_RE = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _missing(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    bad = []
    for m in PATH_RE.finditer(text):
        p = m.group(1)
        if "*" in p or "<" in p:
            if not list(ROOT.glob(p)):
                bad.append(p)
            continue
        if not (ROOT / p).exists():
            bad.append(p)
    for m in LINK_RE.finditer(text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):  # http:, mailto:
            continue
        if not (page.parent / target).exists():
            bad.append(f"link {target}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_path_a_page_names_exists(page: Path) -> None:
    assert _missing(page) == []


def test_the_checker_sees_a_missing_path(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See `docs/no-such-page.md` and [this](missing.png); `docs/appliance.md` is there.\n")
    assert _missing(page) == ["docs/no-such-page.md", "link missing.png"]

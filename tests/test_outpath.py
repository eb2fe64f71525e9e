"""``appliance.outpath``: the output-file checks ``sim``, ``focus stack`` and ``calibrate`` make before their work."""

from __future__ import annotations

import os
from pathlib import Path

from appliance.outpath import out_file_problem, out_file_unwritable


def test_a_folder_or_another_extension_is_bad_input(tmp_path: Path) -> None:
    assert out_file_problem(tmp_path, (".png",)) == f"--out {tmp_path} is a folder; give a file name ending in .png"
    assert "ending in .yaml or .yml, got 'c.png'" in (out_file_problem(Path("c.png"), (".yaml", ".yml")) or "")
    assert out_file_problem(tmp_path / "c.yml", (".yaml", ".yml")) is None


def test_the_probe_leaves_a_new_file_absent_and_an_old_one_untouched(tmp_path: Path) -> None:
    new = tmp_path / "sub" / "new.png"
    assert out_file_unwritable(new) is None
    assert not new.exists() and new.parent.is_dir()  # the folders a write needs are made, the file is not
    old = tmp_path / "old.png"
    old.write_bytes(b"kept")
    assert out_file_unwritable(old) is None and old.read_bytes() == b"kept"


def test_what_the_file_system_refuses_is_named(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    os.mkfifo(tmp_path / "pipe.png")
    assert out_file_unwritable(tmp_path, "the sidecar") == f"cannot write the sidecar {tmp_path}: it is a folder"
    assert out_file_unwritable(tmp_path / "pipe.png") == f"cannot write --out {tmp_path / 'pipe.png'}: not a " \
                                                         "regular file"  # never opened: that blocks
    assert "cannot write --out " in (out_file_unwritable(tmp_path / "file.txt" / "x.png") or "")
    assert "cannot write --out /proc/x.png: " in (out_file_unwritable(Path("/proc/x.png")) or "")

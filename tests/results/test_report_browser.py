import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image


@pytest.mark.slow
def test_report_renders_in_headless_chromium(finished_scan, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert browser, "chromium is missing: scripts/setup.sh installs it"
    out, _ = finished_scan
    shot = tmp_path / "report.png"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--allow-file-access-from-files", f"--screenshot={shot}", "--window-size=1280,2000",
                           (out.out_dir / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    # the plots drew: plenty of non-white pixels, and colour (the slide map's types, the heat map)
    non_white = (img < 235).any(axis=2).mean()
    colourful = (np.ptp(img.astype(int), axis=2) > 60).mean()
    assert non_white > 0.1 and colourful > 0.02

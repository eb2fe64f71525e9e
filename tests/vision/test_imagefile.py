"""Reading a user's image files for ``tppscan detect``: bit depths, floats, stacks, broken files."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import tifffile

from appliance.cli import main
from appliance.vision.imagefile import ImageFileError, bit_depth, read_frames, to_uint8


def _ramp(top: int) -> np.ndarray:
    return np.linspace(0, top, 64 * 48).reshape(48, 64).round().astype(np.uint16)


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_a_camera_depth_in_16_bits_keeps_its_full_scale(tmp_path, bits):
    # A 12-bit camera saved as 16-bit TIFF: shifting by 8 would leave it at 0..15 (black to the models).
    tifffile.imwrite(tmp_path / "f.tif", _ramp((1 << bits) - 1))
    [(name, img)] = read_frames(tmp_path / "f.tif")
    assert name == "f.tif" and img.dtype == np.uint8
    assert img.max() == 255 and img.min() == 0
    assert bit_depth(_ramp((1 << bits) - 1)) == bits


def test_an_lzw_tiff_as_opencv_writes_it_is_read_without_imagecodecs(tmp_path):
    cv2.imwrite(str(tmp_path / "w.tif"), (_ramp(4095) << 4).astype(np.uint16))  # OpenCV writes LZW
    [(name, img)] = read_frames(tmp_path / "w.tif")
    assert name == "w.tif" and img.dtype == np.uint8 and img.max() == 255


def test_floats_in_0_1_are_fractions_of_full_scale_and_others_are_stretched():
    half = np.full((8, 8), 0.5, np.float32)
    assert to_uint8(half).max() == 128
    wide = np.linspace(-3.0, 7.0, 64).reshape(8, 8)
    out = to_uint8(wide)
    assert out.min() == 0 and out.max() == 255


def test_nan_pixels_are_an_error_naming_the_file():
    bad = np.zeros((8, 8), np.float32)
    bad[2, 3] = np.nan
    with pytest.raises(ImageFileError, match="x.tif: holds NaN"):
        to_uint8(bad, "x.tif")


def test_every_page_of_a_stack_is_a_frame_and_planar_rgb_is_one_colour_frame(tmp_path):
    tifffile.imwrite(tmp_path / "z.tif", np.stack([_ramp(255).astype(np.uint8)] * 4), photometric="minisblack")
    frames = read_frames(tmp_path / "z.tif")
    assert [n for n, _ in frames] == [f"z.tif[{k}]" for k in range(4)]
    rgb = np.zeros((3, 48, 64), np.uint8)
    rgb[0] = 200  # red plane only
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb", planarconfig="separate")
    [(_, img)] = read_frames(tmp_path / "c.tif")
    assert img.shape == (48, 64, 3)
    assert img[0, 0].tolist() == [0, 0, 200]  # BGR, as OpenCV reads a PNG


def test_a_broken_or_empty_file_is_one_clear_error_without_opencv_noise(tmp_path, capfd):
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(ImageFileError, match="b.png: not a readable image"):
        read_frames(tmp_path / "b.png")
    with pytest.raises(ImageFileError, match="e.jpg: empty file"):
        read_frames(tmp_path / "e.jpg")
    (tmp_path / "t.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageFileError, match="t.tif: not a readable TIFF"):
        read_frames(tmp_path / "t.tif")
    assert "ERROR" not in capfd.readouterr().err


def test_detect_skips_an_unreadable_file_and_still_writes_the_others(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    frame = np.full((240, 320), 150, np.uint8)
    cv2.circle(frame, (160, 120), 30, 40, 4)
    cv2.imwrite(str(src / "a.png"), frame)
    tifffile.imwrite(src / "b12.tif", (frame.astype(np.uint16) << 4))  # 12-bit pixels in 16 bits
    (src / "c.png").write_bytes(b"broken")
    out = tmp_path / "out"
    rc = main(["detect", str(src), "--out", str(out), "--no-classifier", "--backend", "onnxruntime"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "c.png" in err and "1 of 3 files" in err
    with open(out / "detections.csv") as fh:
        names = {r["filename"] for r in csv.DictReader(fh)}
    report = json.loads((out / "detections.json").read_text())
    assert {i["filename"] for i in report["images"]} == {"a.png", "b12.tif"}
    assert names <= {"a.png", "b12.tif"}
    assert [e["path"] for e in report["errors"]] == [str(src / "c.png")]
    # The 12-bit frame reads like its 8-bit twin, so the models see the same picture.
    a = next(i for i in report["images"] if i["filename"] == "a.png")
    b = next(i for i in report["images"] if i["filename"] == "b12.tif")
    assert len(a["detections"]) == len(b["detections"])
    assert (out / "a.detections.png").is_file() and (out / "b12.detections.png").is_file()

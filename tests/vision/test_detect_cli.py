"""Bad input to ``tppscan detect``: refused before any work, with a message naming the option or file."""

from __future__ import annotations

import csv
import json
import os
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.vision.detector import ModelError, load_labels
from appliance.vision.tiles import READABLE_UM_PER_PX, canvas_size, zoom_tiles


@pytest.mark.parametrize("value", ["0.05", "5.5", "100", "nan"])
def test_a_pixel_size_the_detector_cannot_read_is_refused_naming_the_range(tmp_path, capsys, value):
    (tmp_path / "a.png").write_bytes(b"never read")
    rc = main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--um-per-px", value])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--um-per-px" in err and "[0.1, 5]" in err and "trained" in err
    assert not (tmp_path / "out").exists()


def test_no_pixel_size_makes_the_tiles_or_the_canvas_unbounded():
    # Past the readable range the detector reads as at its edge (100 µm/px used to mean 40,000 tiles).
    lo, hi = READABLE_UM_PER_PX
    assert len(zoom_tiles((640, 480), (240, 320), 1e6)) == len(zoom_tiles((640, 480), (240, 320), hi))
    assert canvas_size((640, 480), (240, 320), 1e-9) == canvas_size((640, 480), (240, 320), lo)


def test_a_detector_labels_file_repeating_a_class_is_refused(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("BACKGROUND\nstructure\nstructure\n")
    with pytest.raises(ModelError, match="repeats a class name \\(structure\\)"):
        load_labels(labels, 3)


def test_no_classifier_with_a_classifier_file_is_refused(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"never read")
    rc = main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-classifier",
               "--classifier", str(tmp_path / "c.tflite")])
    assert rc == 2
    assert "--no-classifier and --classifier" in capsys.readouterr().err


def test_an_image_named_twice_is_read_once(tmp_path, capsys):
    frame = np.full((240, 320), 150, np.uint8)
    cv2.circle(frame, (160, 120), 30, 40, 4)
    cv2.imwrite(str(tmp_path / "a.png"), frame)
    out = tmp_path / "out"
    rc = main(["detect", str(tmp_path / "a.png"), str(tmp_path), str(tmp_path / "." / "a.png"), "--out", str(out),
               "--no-classifier", "--backend", "onnxruntime"])
    assert rc == 0
    assert "wrote 1 annotated images" in capsys.readouterr().out
    assert [i["filename"] for i in json.loads((out / "detections.json").read_text())["images"]] == ["a.png"]


def _bound_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the socket file stays after the socket is closed


@pytest.mark.parametrize("make, kind", [
    (lambda p: os.mkfifo(p), "a named pipe (FIFO)"),   # opening it for reading would block until a writer came
    (lambda p: _bound_socket(p), "a socket"),
])
def test_an_image_that_is_no_regular_file_is_named_for_what_it_is(tmp_path, capsys, make, kind):
    image = tmp_path / "frame.png"
    make(image)
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(main(["detect", str(image), "--out",
                                                                 str(tmp_path / "out")])), daemon=True)
    worker.start()
    worker.join(60)
    assert done == [1], "tppscan detect blocked on the file or did not refuse it"
    err = capsys.readouterr().err
    assert f"{image}: not a regular file: {kind}" in err and "no such file" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_folder_entry_that_is_no_regular_file_is_named_and_listed(tmp_path, capsys):
    """A FIFO, socket or broken link inside a folder given to ``detect`` was skipped without a word (one named on
    the command line was already refused); it is said on stderr and under ``errors``, never opened, and the run
    exits 1 as for an unreadable file, with the other frames' results written."""
    frames = tmp_path / "frames"
    frames.mkdir()
    _frame(frames / "a.png")
    os.mkfifo(frames / "b.png")  # opening it to read would block until a writer came
    _bound_socket(frames / "c.tif")
    (frames / "d.jpg").symlink_to(tmp_path / "gone.jpg")
    (frames / "e.tiff").mkdir()
    os.mkfifo(frames / "notes")  # not an image file's name: not looked at, as a notes.txt is not
    out = tmp_path / "out"
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(main(["detect", str(frames), "--out", str(out),
                                                                 "--no-classifier", "--backend", "onnxruntime"])),
                              daemon=True)
    worker.start()
    worker.join(120)
    assert done == [1], "tppscan detect blocked on the FIFO or did not say it skipped entries"
    err = capsys.readouterr().err
    want = {frames / "b.png": "not a regular file: a named pipe (FIFO)",
            frames / "c.tif": "not a regular file: a socket",
            frames / "d.jpg": f"a broken symbolic link (to {tmp_path / 'gone.jpg'})",
            frames / "e.tiff": "not a regular file: a folder"}
    for path, why in want.items():
        assert f"tppscan detect: skipped: {path}: {why}\n" in err, err
    assert "notes" not in err and "4 of 5 files could not be read" in err, err
    data = json.loads((out / "detections.json").read_text())
    assert [i["filename"] for i in data["images"]] == ["a.png"]
    assert data["errors"] == [{"path": str(p), "error": f"{p}: {why}"} for p, why in want.items()]
    # nothing but the entries: still one line each, and no results to write
    (frames / "a.png").unlink()
    assert main(["detect", str(frames), "--out", str(tmp_path / "out2"), "--no-classifier"]) == 1
    err = capsys.readouterr().err
    assert err.count("skipped: ") == 4 and "no image files in" in err and not (tmp_path / "out2").exists()


def test_read_frames_names_a_fifo_without_opening_it(tmp_path):
    from appliance.vision.imagefile import ImageFileError, read_frames

    fifo = tmp_path / "f.tif"
    os.mkfifo(fifo)
    with pytest.raises(ImageFileError, match=r"f\.tif: not a regular file: a named pipe \(FIFO\)"):
        read_frames(fifo)
    with pytest.raises(ImageFileError, match=r"/dev/null: not a regular file: a character device"):
        read_frames(Path("/dev/null"))


def _frame(path: Path) -> None:
    frame = np.full((240, 320), 150, np.uint8)
    cv2.circle(frame, (160, 120), 30, 40, 4)
    cv2.imwrite(str(path), frame)


@pytest.mark.parametrize("earlier", ["detections.csv", "detections.json", "b.detections.png"])
def test_an_out_holding_earlier_results_is_refused_naming_it(tmp_path, capsys, earlier):
    # The new CSV replaced the old while the old run's annotated PNGs stayed: 4 PNGs beside a CSV for 1 image.
    _frame(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / earlier).write_bytes(b"an earlier run's")
    rc = main(["detect", str(tmp_path / "a.png"), "--out", str(out), "--no-classifier", "--backend", "onnxruntime"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {out} already holds detect results ({earlier})" in err
    assert "another --out or remove it" in err
    assert sorted(p.name for p in out.iterdir()) == [earlier] and (out / earlier).read_bytes() == b"an earlier run's"


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    _frame(tmp_path / "a.png")
    (tmp_path / "out").write_text("x")
    rc = main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-classifier"])
    assert rc == 2
    assert "is a file; give a folder" in capsys.readouterr().err


def test_an_empty_or_unrelated_out_folder_is_used(tmp_path, capsys):
    _frame(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rc = main(["detect", str(tmp_path / "a.png"), "--out", str(out), "--no-classifier", "--backend", "onnxruntime"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.detections.png", "detections.csv", "detections.json",
                                                     "notes.txt"]
    # ... and a second run into it is refused
    assert main(["detect", str(tmp_path / "a.png"), "--out", str(out), "--no-classifier"]) == 2


def _glass(path: Path, size: tuple[int, int]) -> None:
    frame = np.full((size[1], size[0]), 150, np.uint8)
    cv2.circle(frame, (size[0] // 2, size[1] // 2), 30, 40, 4)
    cv2.imwrite(str(path), frame)


def test_frames_larger_than_the_training_without_a_pixel_size_get_one_note(tmp_path, capsys):
    # A real pentagon tile padded into a 1280 x 960 frame gave 0 structures without --um-per-px, 1 with it, silently.
    for name in ("a.png", "b.png"):
        _glass(tmp_path / name, (1280, 960))
    _glass(tmp_path / "c.png", (640, 480))
    rc = main(["detect", str(tmp_path), "--out", str(tmp_path / "out"), "--no-classifier", "--backend",
               "onnxruntime"])
    assert rc == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "NOTE" in ln]
    assert len(notes) == 1, notes  # one per run, not per frame
    assert "a.png is 1280 x 960, larger than the detector's training frames (640 x 480)" in notes[0]
    assert "may be missed" in notes[0] and "pass --um-per-px" in notes[0]


@pytest.mark.parametrize("size, extra", [((640, 480), []), ((960, 540), []), ((2560, 480), []),
                                         ((1280, 960), ["--um-per-px", "0.56"])])
def test_a_note_only_for_frames_shrunk_beyond_the_training_without_a_pixel_size(tmp_path, capsys, size, extra):
    # 960 x 540 is padded to 960 x 720 and shrunk 3x: noted; a 2560 x 480 strip is read in 640 x 480 tiles: not.
    _glass(tmp_path / "a.png", size)
    rc = main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-classifier", "--backend",
               "onnxruntime", *extra])
    assert rc == 0
    assert ("NOTE" in capsys.readouterr().err) == (size == (960, 540))


def test_the_trained_frame_size_follows_from_the_trained_pixel_sizes_and_the_input():
    from appliance.vision.tiles import shrunk_beyond_training, trained_frame_size

    assert trained_frame_size((240, 320)) == (640, 480)
    assert not shrunk_beyond_training((640, 480), (240, 320))
    assert shrunk_beyond_training((648, 486), (240, 320))
    assert not shrunk_beyond_training((1280, 960), (480, 640))  # a detector with a 640 x 480 input


@pytest.mark.parametrize("box", [(600, 200, 639, 260), (630, 0, 639, 20), (0, 0, 640, 480), (-5, 470, 5, 479),
                                 (100, 100, 200, 200)])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_an_annotation_label_lies_inside_the_image(box, scale):
    # A box at the right edge had its label drawn from its left corner on, past the edge: type and score cut off.
    from appliance.vision.detect_cli import label_origin

    size = (640 * scale // 2, 480 * scale // 2) if box == (100, 100, 200, 200) else (640, 480)
    (tw, th), base = cv2.getTextSize("split_ring 0.87 ?", cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, 1)
    x, y = label_origin((tw, th, base), box, size)
    assert 0 <= x and x + tw < size[0] and y - th >= 0 and y + base < size[1]
    if box == (100, 100, 200, 200):
        assert (x, y) == (100, 97)  # where it fits, above the box's left corner as before


def test_the_output_says_which_csv_column_is_the_verdict(tmp_path, capsys):
    # 'class' comes first, in the seed paper's order, but is the detector's raw call: a reader took it for the answer.
    from appliance.cli import build_parser
    from appliance.vision.detect_cli import CSV_COLUMNS

    assert CSV_COLUMNS[:11] == ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax", "score",
                                "type", "type_score")  # the seed's contract
    _frame(tmp_path / "a.png")
    assert main(["detect", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--no-classifier",
                 "--backend", "onnxruntime"]) == 0
    assert "the verdict is the 'verdict' column; 'class' is the detector's alone" in capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "the answer is the 'verdict' column" in " ".join(sub.choices["detect"].format_help().split())


def test_files_of_one_name_from_two_folders_are_told_apart(tmp_path, capsys):
    # Both were 'f.png' in the CSV and the JSON, their annotated PNGs f.detections.png and f-2.detections.png.
    for folder in ("cam1", "cam2", "cam2/old"):
        (tmp_path / folder).mkdir()
        _frame(tmp_path / folder / "f.png")
    out = tmp_path / "out"
    rc = main(["detect", str(tmp_path / "cam1" / "f.png"), str(tmp_path / "cam2"), str(tmp_path / "cam2/old/f.png"),
               "--out", str(out), "--no-classifier", "--backend", "onnxruntime"])
    assert rc == 0
    names = ["cam1/f.png", "cam2/f.png", "cam2/old/f.png"]
    printed = capsys.readouterr().out
    assert all(f"{n}: " in printed for n in names)
    assert [i["filename"] for i in json.loads((out / "detections.json").read_text())["images"]] == names
    with open(out / "detections.csv") as fh:
        assert {r["filename"] for r in csv.DictReader(fh)} <= set(names)
    assert sorted(p.name for p in out.glob("*.detections.png")) == [
        "cam1__f.detections.png", "cam2__f.detections.png", "cam2__old__f.detections.png"]


def test_files_of_one_folder_keep_their_bare_names():
    from appliance.vision.detect_cli import relative_folders

    assert relative_folders([Path("d/a.png"), Path("d/b.png")]) == {Path("d/a.png"): "", Path("d/b.png"): ""}
    assert relative_folders([Path("/x/a.png"), Path("/x/y/a.png")]) == {Path("/x/a.png"): "",
                                                                        Path("/x/y/a.png"): "y/"}

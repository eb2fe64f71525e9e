"""``tppscan detect IMAGE|DIR... --out DIR``: try the vision chain on image files from any microscope.

Each image (PNG, JPEG, TIFF; grey or colour, 8 or 16 bit, any size) goes through the gate, the detector and
the classifier. Written to ``--out``: one annotated PNG per image (boxes coloured by verdict, labelled with
type and score), ``detections.csv`` (the seed paper's columns ``filename,width,height,class,xmin,ymin,xmax,ymax``,
then ``score,type,type_score``; pixels, rounded outward to whole pixels; then ``object,verdict,agree``)
and ``detections.json`` (the same, plus each image's gate count).

``class`` is the detector's call alone, as the seed paper's CSV has it, one row per box; detectNet suppresses
per class, so one object can have a ``structure`` and a ``debris`` box. ``object`` numbers the objects of an
image (boxes overlapping by IoU 0.5 or more are one), and ``verdict`` (``structure`` or ``debris``) weighs the
detector's call against the classifier's over all of an object's boxes, as a scan's first look at a frame does
(:func:`appliance.vision.pipeline.verdicts`). It is written on the object's strongest box only (empty on its
other boxes), so the rows whose ``verdict`` is ``structure`` count the structures. ``agree`` says whether the two
models agreed (``no``: a scan would centre and refocus on the object before deciding, which one image cannot).

Without ``--um-per-px``, a frame larger than the detector's training frames (640 x 480 for the shipped input) gets
one NOTE line per run on stderr: small objects in it may be missed; the pixel size lets the detector read it in finer
tiles (:func:`appliance.vision.tiles.shrunk_beyond_training`).

An ``--out`` already holding an earlier run's results is refused (exit 2) before anything is read.

A folder argument is searched (not recursively) for image files. Each file is named by its path from the inputs'
common folder (``cam1/f.png``; a bare name when all share a folder), so files of one name stay apart. Files are read by
:mod:`appliance.vision.imagefile` (any bit depth, float TIFF, every page of a stack); a file that cannot be read
is reported and skipped, the others' results are still written, and the command then exits 1. So is an entry of a
folder with an image file's name that is no regular file (a FIFO, socket, device, folder or broken link): found by
``stat``, never opened (a FIFO would block).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
CSV_COLUMNS: tuple[str, ...] = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax", "score",
                                "type", "type_score", "object", "verdict", "agree")
#: The column holding the final call (the seed's ``class`` column keeps the detector's raw class, by contract).
VERDICT_COLUMN = "verdict"
COLOURS = {"structure": (0, 0, 255), "debris": (0, 170, 0)}
#: What a run writes into --out: these two, and one ``<stem>ANNOTATED_SUFFIX`` per frame.
RESULT_FILES: tuple[str, ...] = ("detections.csv", "detections.json")
ANNOTATED_SUFFIX = ".detections.png"


def register(sub: Any) -> None:
    """Add the ``detect`` command."""
    p = sub.add_parser("detect", help="run the gate, detector and classifier on image files",
                       description="Find TPP structures and debris in image files; write annotated PNGs, "
                                   "detections.csv and detections.json. Each box has the detector's class and the "
                                   "classifier's type, and the verdict of both weighed together, as a scan's first "
                                   "look decides (agree=no: the models disagreed). In detections.csv the answer is "
                                   f"the '{VERDICT_COLUMN}' column (structure or debris, on each object's strongest "
                                   "box); 'class' is the detector's call alone, kept where the seed paper's CSV has "
                                   "it.",
                       epilog="example: tppscan detect frames/ --out results --um-per-px 0.56")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE|DIR", help="image files or folders of them")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (created; one holding an earlier run's results is refused)")
    p.add_argument("--model", type=Path, default=None, help="detector ONNX (default: the shipped one)")
    p.add_argument("--labels", type=Path, default=None, help="detector labels (default: beside the model)")
    p.add_argument("--classifier", type=Path, default=None, help="classifier .tflite (default: the shipped one)")
    p.add_argument("--no-classifier", action="store_true", help="do not name structure types")
    p.add_argument("--backend", default="auto", help="detector backend: auto, jetson, onnxruntime, opencv")
    p.add_argument("--threshold", type=float, default=None,
                   help="detector score threshold, (0, 1] (default: the shipped model's, 0.25)")
    p.add_argument("--um-per-px", type=float, default=None,
                   help="pixel size at the sample, 0.1..5 µm (what the models were trained to read): the gate's size "
                        "limits, and the detector reads frames at the scale it was trained on (default: unknown; the "
                        "gate takes 1.0, and small objects in frames over 640 x 480 may be missed)")
    p.set_defaults(func=_cmd_detect)


def _bad(option: str, value: object, allowed: str) -> int:
    print(f"tppscan detect: error: {option} must be {allowed}, got {value!r}", file=sys.stderr)
    return 2


def out_problem(out: Path) -> str | None:
    """Why ``out`` cannot take this run's results (one line), or None for a new, empty or unrelated folder.

    A folder holding an earlier run's results is refused: the new CSV and JSON would replace the old ones while the
    old run's annotated PNGs stayed beside them, describing images the new CSV does not list.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        return f"--out {out} is a file; give a folder (created if missing)"
    found = next((n for n in RESULT_FILES if (out / n).exists()), None)
    if found is None:
        found = next((q.name for q in out.glob("*" + ANNOTATED_SUFFIX)), None)
    if found is None:
        return None
    return (f"--out {out} already holds detect results ({found}); give another --out or remove it, so that "
            f"earlier results are not mixed with these")


def collect_images(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files named or inside the named folders, in order, each once (``OSError`` for a missing path).

    A named FIFO, device or socket is an ``OSError`` saying what it is; it is never opened (a FIFO would block).
    Inside a named folder, an entry with an image file's name that is no regular file is returned second, with why
    (it was skipped without a word): ``stat`` alone finds it. A file named twice (or named and inside a named
    folder) is read once: its objects would otherwise be counted twice in the CSV and the summary.
    """
    from appliance.vision.imagefile import file_problem

    out: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for p in inputs:
        if p.is_dir():
            for q in sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES):
                problem = file_problem(q)
                if problem == "no such file" and q.is_symlink():  # stat followed the link to nothing
                    problem = f"a broken symbolic link (to {os.readlink(q)})"
                if problem:
                    skipped.append((q, problem))
                else:
                    out.append(q)
            continue
        problem = file_problem(p)
        if problem == "no such file":
            raise OSError(f"{p}: no such file or folder")
        if problem:
            raise OSError(f"{p}: {problem}; give an image file or a folder of them")
        out.append(p)
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values()), skipped


def _cmd_detect(args: argparse.Namespace) -> int:
    from appliance.vision.detector import BACKENDS
    from appliance.vision.imagefile import ImageFileError, read_frames
    from appliance.vision.pipeline import verdicts
    from appliance.vision.tiles import READABLE_UM_PER_PX, shrunk_beyond_training

    if args.backend not in BACKENDS:
        return _bad("--backend", args.backend, "one of " + ", ".join(BACKENDS))
    from appliance.vision.detector import DEFAULT_THRESHOLD

    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD
    if not (0 < args.threshold <= 1):
        return _bad("--threshold", args.threshold, "a number in (0, 1]")
    lo, hi = READABLE_UM_PER_PX
    if args.um_per_px is not None and not lo <= args.um_per_px <= hi:  # NaN fails the comparison too
        return _bad("--um-per-px", args.um_per_px,
                    f"a number in [{lo:g}, {hi:g}] µm, the pixel sizes the detector can read (trained on frames of "
                    f"0.3-1.2 µm/px; coarser than {hi:g} a 10 µm print is under 2 pixels, which upsampling cannot "
                    f"restore)")
    if args.no_classifier and args.classifier is not None:
        print("tppscan detect: error: --no-classifier and --classifier both given; drop one", file=sys.stderr)
        return 2
    if problem := out_problem(args.out):
        print(f"tppscan detect: error: {problem}", file=sys.stderr)
        return 2
    images, skipped = collect_images(args.inputs)
    # said as an unreadable file is, and counted as one in the exit status: a script learns not every frame was read
    errors: list[dict[str, str]] = [_report_error(q, f"{q}: {why}") for q, why in skipped]
    if not images:
        print("tppscan detect: OSError: no image files in " + ", ".join(map(str, args.inputs)), file=sys.stderr)
        return 1
    pipe = _pipeline(args)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    per_image: list[dict[str, Any]] = []
    used: set[str] = set()
    folders = relative_folders(images)
    noted = args.um_per_px is not None  # told the pixel size: large frames are read at the trained scale
    for path in images:
        # One unreadable file is reported and skipped: the other frames' results are still written.
        try:
            frames = read_frames(path)
        except ImageFileError as exc:
            errors.append(_report_error(path, str(exc)))
            continue
        for page, img in frames:
            name = folders[path] + page  # unique: the same file name in two folders is told apart
            try:
                res = pipe.run(img)
            except ValueError as exc:
                errors.append(_report_error(path, f"{name}: {exc}"))
                continue
            if not noted and shrunk_beyond_training((res.width, res.height), pipe.detector.input_hw):
                noted = True  # once per run: the advice is the same for every large frame
                _note_large(name, (res.width, res.height), pipe.detector.input_hw)
            calls = verdicts(res.objects, args.um_per_px)
            _annotate(img, res, calls, args.out / _annotated_name(folders[path] + path.name, page, len(frames), used))
            objs = _rows(name, res, calls)
            rows.extend(objs)
            per_image.append({"filename": name, "path": str(path), "width": res.width, "height": res.height,
                              "gate_candidates": res.gate_candidates,
                              "detections": [{**r, "type_score": None if r["type_score"] == "" else r["type_score"],
                                              "agree": None if r["agree"] == "" else r["agree"] == "yes",
                                              "verdict": r["verdict"] or None, "box": [round(v, 2) for v in o.box]}
                                             for r, o in zip(objs, res.objects, strict=True)]})
            print(f"{name}: {_count(calls, 'structure')} structure, {_count(calls, 'debris')} debris "
                  f"(detector: {sum(o.cls == 'structure' for o in res.objects)} structure, "
                  f"{sum(o.cls == 'debris' for o in res.objects)} debris boxes)")
    _write(args, pipe, rows, per_image, errors)
    print(f"wrote {len(per_image)} annotated images, detections.csv and detections.json to {args.out} "
          f"(the verdict is the '{VERDICT_COLUMN}' column; 'class' is the detector's alone)")
    if errors:
        print(f"tppscan detect: {len(errors)} of {len(images) + len(skipped)} files could not be read or run "
              f"(listed above and under 'errors' in detections.json)", file=sys.stderr)
        return 1
    return 0


def _note_large(name: str, size: tuple[int, int], input_hw: tuple[int, int]) -> None:
    """One line on stderr: a frame larger than the training's was read without its pixel size."""
    from appliance.vision.tiles import trained_frame_size

    tw, th = trained_frame_size(input_hw)
    print(f"tppscan detect: NOTE: {name} is {size[0]} x {size[1]}, larger than the detector's training frames "
          f"({tw} x {th}), and no --um-per-px was given: small objects in it (and in any such frame) may be missed; "
          f"pass --um-per-px (the camera's µm per pixel at the sample) to read them at the trained scale",
          file=sys.stderr)


def _report_error(path: Path, message: str) -> dict[str, str]:
    print(f"tppscan detect: skipped: {message}", file=sys.stderr)
    return {"path": str(path), "error": message}


def relative_folders(images: list[Path]) -> dict[Path, str]:
    """Each image's folder relative to the images' common folder, ``""`` or ending in ``/`` (``a/``, ``a/b/``).

    Prefixed to a file's name in the CSV, the JSON and the annotated PNG's name, it tells apart files of one name
    from different folders (two cameras' ``f.png``), which were both ``f.png``; files of one folder keep their
    bare names.
    """
    parents = {p: os.path.abspath(p.parent) for p in images}
    common = os.path.commonpath(list(parents.values()))
    out: dict[Path, str] = {}
    for p, parent in parents.items():
        rel = os.path.relpath(parent, common)
        out[p] = "" if rel == "." else Path(rel).as_posix() + "/"
    return out


def _annotated_name(relative: str, name: str, pages: int, used: set[str]) -> str:
    """``stem.detections.png`` (``stem_p<k>`` for a page of a stack) in ``--out`` itself, unique.

    ``relative`` is the image's path relative to the inputs' common folder: its folders become part of the name
    (``a/f.png``: ``a__f.detections.png``), and a stem two files share (``f.png``, ``f.tif``) gets ``-2``.
    """
    path = Path(relative)
    flat = "__".join((*path.parent.parts, path.stem))
    stem = flat if pages == 1 else f"{flat}_p{name.rsplit('[', 1)[1].rstrip(']')}"
    out, n = f"{stem}{ANNOTATED_SUFFIX}", 1
    while out in used:
        n += 1
        out = f"{stem}-{n}{ANNOTATED_SUFFIX}"
    used.add(out)
    return out


def _count(calls: list[Any], kind: str) -> int:
    """Objects (not boxes: boxes of one object share their verdict) with the verdict ``kind``."""
    return sum(c.lead and c.verdict.kind == kind for c in calls)


def _rows(name: str, res: Any, calls: list[Any]) -> list[dict[str, Any]]:
    """The CSV rows of one frame's detections (pixels rounded outward to whole pixels) with their verdicts."""
    return [{"filename": name, "width": res.width, "height": res.height, "class": o.cls,
             "xmin": int(math.floor(o.box[0])), "ymin": int(math.floor(o.box[1])),
             "xmax": int(math.ceil(o.box[2])), "ymax": int(math.ceil(o.box[3])), "score": round(o.score, 4),
             "type": o.type, "type_score": "" if math.isnan(o.type_score) else round(o.type_score, 4),
             "object": c.object, "verdict": c.verdict.kind if c.lead else "",
             "agree": ("yes" if c.verdict.agree else "no") if c.lead else ""}
            for o, c in zip(res.objects, calls, strict=True)]


def _write(args: argparse.Namespace, pipe: Any, rows: list[dict[str, Any]], per_image: list[dict[str, Any]],
           errors: list[dict[str, str]]) -> None:
    with open(args.out / "detections.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        wr.writeheader()
        wr.writerows(rows)
    meta = {"model": str(pipe.detector.model_path), "backend": pipe.detector.backend,
            "threshold": args.threshold, "um_per_px": args.um_per_px,
            "classifier": None if pipe.classifier is None else str(args.classifier or "default")}
    (args.out / "detections.json").write_text(json.dumps({"meta": meta, "images": per_image, "errors": errors},
                                                         indent=1))


def _pipeline(args: argparse.Namespace) -> Any:
    from appliance.vision.detector import Detector
    from appliance.vision.pipeline import Pipeline

    det = Detector(args.model, args.labels, backend=args.backend, threshold=args.threshold)
    clf = None
    if not args.no_classifier:
        from appliance.vision.classifier import StructureClassifier

        clf = StructureClassifier(args.classifier)
    known = args.um_per_px is not None
    return Pipeline(det, clf, um_per_px=args.um_per_px if known else 1.0, scale_known=known)


def label_origin(text: tuple[int, int, int], box: tuple[int, int, int, int],
                 size: tuple[int, int]) -> tuple[int, int]:
    """Where a label of ``text`` (width, height, baseline; ``cv2.getTextSize``) starts: inside an image of ``size``.

    Above the box's left corner where it fits, else just below the box, else inside its top; shifted left where
    it would run past the right edge (a box at the edge had its type and score cut off).
    """
    tw, th, base = text
    w, h = size
    x = max(0, min(box[0], w - tw - 1))
    y = box[1] - 3
    if y - th < 0:
        y = box[3] + th + 3 if box[3] + th + 3 + base < h else th + 1
    return x, min(y, h - base - 1)


def _annotate(img: Any, res: Any, calls: list[Any], path: Path) -> None:
    """Write the image with each object's strongest box drawn in its verdict's colour.

    Each box is labelled with its type (or ``debris``), the detector's score and a ``?`` where the two models
    disagreed.
    """
    import cv2
    import numpy as np

    from appliance.vision.detector import to_gray

    canvas = cv2.cvtColor(to_gray(img), cv2.COLOR_GRAY2BGR)
    scale = max(1, int(round(max(canvas.shape[:2]) / 640)))
    for o, c in zip(res.objects, calls, strict=True):
        if not c.lead:  # one box per object: its strongest
            continue
        v = c.verdict
        col = COLOURS.get(v.kind, (255, 0, 0))
        x1, y1, x2, y2 = (int(round(u)) for u in o.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), col, scale)
        text = f"{v.cls or v.kind} {o.score:.2f}{'' if v.agree else ' ?'}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, 1)
        at = label_origin((tw, th, base), (x1, y1, x2, y2), (canvas.shape[1], canvas.shape[0]))
        cv2.putText(canvas, text, at, cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, col, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), np.ascontiguousarray(canvas)):
        raise OSError(f"{path}: cannot write the annotated image")

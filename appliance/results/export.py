"""Exports that turn a scan into training data: the seed's CSV and COCO JSON, with the frames they name.

CSV columns ``filename,width,height,class,xmin,ymin,xmax,ymax`` (the TensorFlow object-detection convention
the seed paper used; max coordinates exclusive, as the boxes are stored). COCO: one ``images`` entry per
saved frame, ``annotations`` with ``bbox = [x, y, width, height]``, ``categories`` from the classes seen
(``debris`` included), ids from 1. File names are relative to the folder the annotation files are in: the
scan folder itself, or an export folder that :func:`write_export` copies the frames into.

The boxes are those the detector drew in each saved frame, named by the scan's records where they show a
recorded object (:func:`named_by_records`). Small specks the detector never boxed are in the frames unlabelled
(:data:`UNLABELLED_NOTE`).

``tppscan train detector`` and ``tppscan models eval detector`` read such a folder (the scan's own, or an export
elsewhere) as a detection dataset: ``models.data.detection.from_export`` maps each name to its supercategory,
``structure`` or ``debris``, the detector's two classes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.results.store import Annotation, ObjectRecord, ScanRecord, write_durably

CSV_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")

#: What a trainer must know about the boxes: only what the scan's detector boxed is labelled. The frames also
#: show dust specks a few pixels across that the detector's gate passes over; the scan keeps no box for them,
#: so they cannot be marked as COCO ``iscrowd`` ignore regions either.
UNLABELLED_NOTE = ("Only objects the scan's detector boxed are labelled (printed structures, and debris large "
                   "enough to be a candidate); the frames also hold small dust specks that carry no box. Treat "
                   "unlabelled objects as unknown (ignore them in the loss, or label them first), not as "
                   "background.")

#: A box the detector drew in a frame shows a recorded object when it overlaps the object's box, as the
#: calibration places it in that frame and cut by the frame's edges, by at least this intersection over union.
#: A split ring cut by the frame's edge was boxed 598-638 px, its record's box there 592-640 px: 0.71 (README
#: slide, frame obj_001_00001); a speck on a print overlaps the print's box by its own small area only.
RECORD_IOU = 0.5


def to_csv(annotations: Sequence[Annotation]) -> str:
    """The annotations as CSV text with the seed's header."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for a in annotations:
        w.writerow((a.filename, a.width, a.height, a.cls, a.xmin, a.ymin, a.xmax, a.ymax))
    return buf.getvalue()


def to_coco(annotations: Sequence[Annotation], description: str = "tppscan scan",
            um_per_px: float | None = None) -> dict[str, Any]:
    """The annotations as a COCO detection dataset (a dict ready for ``json.dump``).

    ``um_per_px``: the scan's pixel size at the sample, given each image as ``um_per_px`` (as a rendered
    dataset's images have it), so ``tppscan models eval detector --at-scale`` reads the frames as the scan did.
    """
    scale = {} if um_per_px is None else {"um_per_px": float(um_per_px)}
    images: dict[str, dict[str, Any]] = {}
    cats: dict[str, int] = {}
    anns: list[dict[str, Any]] = []
    for a in annotations:
        img = images.setdefault(a.filename, {"id": len(images) + 1, "file_name": a.filename, "width": a.width,
                                             "height": a.height, **scale})
        cid = cats.setdefault(a.cls, len(cats) + 1)
        w, h = a.xmax - a.xmin, a.ymax - a.ymin
        anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cid,
                     "bbox": [a.xmin, a.ymin, w, h], "area": w * h, "iscrowd": 0, "segmentation": []})
    return {"info": {"description": description, "version": "1.0", "labels": UNLABELLED_NOTE}, "licenses": [],
            "images": list(images.values()), "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": "debris" if n == "debris" else "structure"}
                           for n, i in cats.items()]}


def to_coco_json(annotations: Sequence[Annotation], description: str = "tppscan scan",
                 um_per_px: float | None = None) -> str:
    """:func:`to_coco` as indented JSON text."""
    return json.dumps(to_coco(annotations, description, um_per_px), indent=1)


def named_by_records(annotations: Sequence[Annotation], objects: Sequence[ObjectRecord],
                     calibration: Mapping[str, Any] | None) -> list[Annotation]:
    """The annotations, each box that shows a recorded object named as the record names it.

    A frame's boxes carry the class the detector gave them in that frame; the scan's record of an object is
    named from its own focus stack and views, and that is the name to train on. Two ways the frame's class
    was wrong (README slide): a structure's own box, where the views renamed it after the frame was read
    (microlens 371 boxed ``debris``), and a neighbour cut by the frame's edge, which the detector calls debris
    and the scan records whole from another field (split ring 34 in the pentagon's frame). Its own box is
    matched exactly; a neighbour through ``calibration`` (the scan's) and the frame's stage position.
    """
    own = {(o.frame_path, *o.box): o.cls for o in objects if o.frame_path and o.box}
    at = {o.frame_path: (o.extra or {}).get("stage_xy_um") for o in objects if o.frame_path}
    cal = _calibration(calibration)
    near: dict[str, list[ObjectRecord]] = {}  # per frame, the records that may show in it
    out = []
    for a in annotations:
        cls = own.get((a.filename, a.xmin, a.ymin, a.xmax, a.ymax))
        xy = at.get(a.filename)
        if cls is None and cal is not None and isinstance(xy, (list, tuple)) and len(xy) == 2:
            sxy = (float(xy[0]), float(xy[1]))
            if a.filename not in near:
                near[a.filename] = _near_frame(objects, sxy, cal.fov_um)
            cls = _record_shown(a, near[a.filename], cal, sxy)
        out.append(a if cls is None or cls == a.cls else replace(a, cls=cls))
    return out


def _near_frame(objects: Sequence[ObjectRecord], stage_xy: tuple[float, float],
                fov_um: tuple[float, float]) -> list[ObjectRecord]:
    """The records close enough to a frame taken at ``stage_xy`` to show in it (a cheap test before the exact one).

    A scan of thousands of frames and records would otherwise place every record in every frame.
    """
    return [o for o in objects if abs(o.x_um - stage_xy[0]) <= fov_um[0] + o.width_um
            and abs(o.y_um - stage_xy[1]) <= fov_um[1] + o.height_um]


def scan_um_per_px(scan: ScanRecord) -> float | None:
    """The scan's pixel size at the sample from its calibration, or None where its record is missing or damaged."""
    cal = _calibration((scan.config or {}).get("calibration"))
    return None if cal is None else float(cal.um_per_px)


def scan_annotations(store: Any, scan: ScanRecord) -> list[Annotation]:
    """A scan's boxes from its database (``store``, a ``ResultStore``), named by its records."""
    return named_by_records(store.annotations(scan.id), store.objects(scan.id), (scan.config or {}).get("calibration"))


def _calibration(mapping: Mapping[str, Any] | None) -> Any:
    """The scan's calibration, or None where its record is missing or damaged (boxes then keep their class)."""
    from appliance.scan.calibration import Calibration

    try:
        return Calibration.from_mapping(dict(mapping)) if mapping else None
    except (TypeError, ValueError):
        return None


def _record_shown(a: Annotation, objects: Sequence[ObjectRecord], cal: Any,
                  stage_xy: tuple[float, float]) -> str | None:
    """The class of the recorded object box ``a`` shows best (:data:`RECORD_IOU`), or None."""
    best, name = RECORD_IOU, None
    for o in objects:
        corners = [cal.stage_to_pixel(o.x_um + sx * o.width_um / 2, o.y_um + sy * o.height_um / 2, stage_xy)
                   for sx in (-1, 1) for sy in (-1, 1)]
        us, vs = [c[0] for c in corners], [c[1] for c in corners]
        box = (max(0.0, min(us)), max(0.0, min(vs)), min(float(a.width), max(us)), min(float(a.height), max(vs)))
        iou = _iou(box, (a.xmin, a.ymin, a.xmax, a.ymax))
        if iou >= best:
            best, name = iou, o.cls
    return name


def _iou(p: Sequence[float], q: Sequence[float]) -> float:
    """Intersection over union of two ``(xmin, ymin, xmax, ymax)`` boxes (0 where either is empty)."""
    iw = min(p[2], q[2]) - max(p[0], q[0])
    ih = min(p[3], q[3]) - max(p[1], q[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
    return inter / union if union > 0 else 0.0


def write_export(out: Path, scan_dir: Path, annotations: Sequence[Annotation], description: str,
                 formats: Iterable[str] = ("csv", "coco"), objects: Sequence[ObjectRecord] = (),
                 um_per_px: float | None = None) -> list[Path]:
    """Write ``export.csv`` and/or ``export_coco.json``, and ``structures.csv``, into ``out``; return the paths.

    ``um_per_px``: the scan's pixel size (:func:`scan_um_per_px`), given each COCO image (:func:`to_coco`).

    ``structures.csv`` lists the recorded structures among ``objects`` with their files
    (:mod:`appliance.results.structures`). An ``out`` other than the scan folder gets the frames the annotations
    name and the structures' files, at the same relative paths, and a ``README.txt`` saying what is labelled: the
    folder is a dataset on its own, to be copied anywhere.

    Raises
    ------
    OSError
        Exporting elsewhere, a frame the annotations name is not in the scan folder (nothing is written then).
    """
    from appliance.results.structures import structure_files, structures_csv

    formats = tuple(formats)  # read more than once
    frames = sorted({a.filename for a in annotations})
    files = sorted({*frames, *structure_files(objects)})
    elsewhere = out.resolve() != scan_dir.resolve()
    missing = [f for f in files if elsewhere and not (scan_dir / f).is_file()]
    if missing:  # in the scan folder itself the files name its frames wherever they are, as before
        raise OSError(f"{scan_dir / missing[0]}: a file the scan's records name is missing "
                      f"({len(missing)} of {len(files)}); nothing exported")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if elsewhere:
        for f in files:
            link_or_copy(scan_dir / f, out / f)
        write_durably(out / "README.txt", readme(description, len(frames), len(annotations), formats).encode())
        written.append(out / "README.txt")
    if "csv" in formats:
        write_durably(out / "export.csv", to_csv(annotations).encode())
        written.append(out / "export.csv")
    if "coco" in formats:
        write_durably(out / "export_coco.json", to_coco_json(annotations, description, um_per_px).encode())
        written.append(out / "export_coco.json")
    write_durably(out / "structures.csv", structures_csv(objects).encode())
    written.append(out / "structures.csv")
    return written


def link_or_copy(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst``: a hard link on the same file system (no space used), else a copy.

    The link or copy is made under a temporary name and renamed into place, so a ``dst`` is always whole.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # another file system (EXDEV), or one without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def readme(description: str, n_frames: int, n_boxes: int, formats: Iterable[str] = ("csv", "coco")) -> str:
    """The export folder's ``README.txt``: what it holds (the files of ``formats``) and what is labelled."""
    formats = tuple(formats)
    coco = "coco" in formats
    return (f"{description}: {n_frames} frames (frames/), {n_boxes} boxes.\n\n"
            + ("export_coco.json: COCO detection (bbox = x, y, width, height; file names relative to this folder).\n"
               if coco else "")
            + ("export.csv: filename,width,height,class,xmin,ymin,xmax,ymax (max exclusive).\n"
               if "csv" in formats else "")
            + "structures.csv: one row per recorded structure (its id, type, position, focus, measured height) and "
            "its crop, stack, height map and 3-D plot under crops/, stacks/, heights/, plots/.\n\n"
            f"Labels: {UNLABELLED_NOTE}\n"
            + ("\nTraining data as it stands: `tppscan train detector --data <this folder> ...` and `tppscan models "
               "eval detector --data <this folder> --at-scale` read export_coco.json (each type counts as a "
               "structure; docs/datasets.md, \"A scan as training data\").\n" if coco else ""))

"""Exports that turn a scan into training data: the seed's CSV and COCO JSON.

CSV columns ``filename,width,height,class,xmin,ymin,xmax,ymax`` (the TensorFlow object-detection convention
the seed paper used; max coordinates exclusive, as the boxes are stored). COCO: one ``images`` entry per
saved frame, ``annotations`` with ``bbox = [x, y, width, height]``, ``categories`` from the classes seen
(``debris`` included), ids from 1. File names are relative to the scan folder.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from appliance.results.store import Annotation

CSV_COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def to_csv(annotations: Sequence[Annotation]) -> str:
    """The annotations as CSV text with the seed's header."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for a in annotations:
        w.writerow((a.filename, a.width, a.height, a.cls, a.xmin, a.ymin, a.xmax, a.ymax))
    return buf.getvalue()


def to_coco(annotations: Sequence[Annotation], description: str = "tppscan scan") -> dict[str, Any]:
    """The annotations as a COCO detection dataset (a dict ready for ``json.dump``)."""
    images: dict[str, dict[str, Any]] = {}
    cats: dict[str, int] = {}
    anns: list[dict[str, Any]] = []
    for a in annotations:
        img = images.setdefault(a.filename, {"id": len(images) + 1, "file_name": a.filename, "width": a.width,
                                             "height": a.height})
        cid = cats.setdefault(a.cls, len(cats) + 1)
        w, h = a.xmax - a.xmin, a.ymax - a.ymin
        anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cid,
                     "bbox": [a.xmin, a.ymin, w, h], "area": w * h, "iscrowd": 0, "segmentation": []})
    return {"info": {"description": description, "version": "1.0"}, "licenses": [],
            "images": list(images.values()), "annotations": anns,
            "categories": [{"id": i, "name": n, "supercategory": "debris" if n == "debris" else "structure"}
                           for n, i in cats.items()]}


def to_coco_json(annotations: Sequence[Annotation], description: str = "tppscan scan") -> str:
    """:func:`to_coco` as indented JSON text."""
    return json.dumps(to_coco(annotations, description), indent=1)

"""One row per recorded structure, with the files that go by its id: ``structures.csv`` and ``summary.json``.

A structure goes by its database id (``tppscan results show`` and the report list it; the 3-D plot and the
stack's OME name carry it) and its files by the order it was recorded in (``obj_001_00001.*``: written before the
database gave the id). This table maps one to the other.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from appliance.results.store import ObjectRecord

#: ``structures.csv``'s columns and ``summary.json``'s ``structures`` keys. ``height_um`` is the measured height
#: of the print (98th percentile of its height map above the glass: ``extra.max_height_um``), not its box's
#: y extent (the record's own ``height_um``); file paths are relative to the folder the table is in.
COLUMNS = ("id", "type", "type_score", "x_um", "y_um", "focus_z_um", "focus_ok", "height_um", "crop", "stack",
           "height_map", "plot_3d", "frame")

#: The columns that name files, and the record's field each comes from.
FILE_COLUMNS = {"crop": "crop_path", "stack": "stack_path", "height_map": "height_map_path", "plot_3d": "plot_path",
                "frame": "frame_path"}


def structure_row(o: ObjectRecord) -> dict[str, Any]:
    """One structure's row: :data:`COLUMNS` (numbers rounded as the report shows them, None where unknown)."""
    extra = o.extra or {}
    height = extra.get("max_height_um")
    return {"id": o.id, "type": o.cls, "type_score": round(o.confidence, 4), "x_um": round(o.x_um, 2),
            "y_um": round(o.y_um, 2), "focus_z_um": None if o.z_um is None else round(o.z_um, 2),
            "focus_ok": not o.focus_unsure,
            "height_um": round(float(height), 2) if isinstance(height, (int, float)) else None,
            **{col: getattr(o, field) for col, field in FILE_COLUMNS.items()}}


def structure_rows(objects: Sequence[ObjectRecord]) -> list[dict[str, Any]]:
    """The rows of the recorded structures (debris left out), in id order."""
    return [structure_row(o) for o in sorted(objects, key=lambda o: o.id) if o.kind == "structure"]


def structures_csv(objects: Sequence[ObjectRecord]) -> str:
    """``structures.csv``'s text: a header of :data:`COLUMNS`, one line per structure (empty cells for None)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in structure_rows(objects):
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def structure_files(objects: Sequence[ObjectRecord]) -> list[str]:
    """Every file the structures' rows name (relative paths), once each."""
    return sorted({p for row in structure_rows(objects) for col in FILE_COLUMNS if (p := row[col])})

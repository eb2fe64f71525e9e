"""One record per print: structure records whose footprints overlap are pieces of one print, merged at a scan's end.

The runner records a structure once by its centre (``ScanRunner._duplicate``: a later view whose centre lies in a
recorded box is the same object). A print larger than the field defeats that test: at 40x (a field of 90 x 67 µm)
a 137 µm scaffold was stitched once from the views of one row of fields and once from the next, two partial
footprints overlapping by 29 % of the smaller, each centre outside the other's box (seed 1641); with a 320 x 960
sensor a 106 µm pentagon was first recorded from a 17 x 20 µm piece, then whole around it (seed 1781). Two
prints cannot lie on the same glass: the virtual slide keeps 30 µm between their boxes, a real array its pitch,
and on 13 slides at 10x (260 prints) and the fourteen 40x slides of docs/held-out.md no two records of distinct
prints overlapped at all. So records whose slide boxes overlap by at least :data:`PIECE_OVERLAP` of the smaller
one are one print.

:func:`pieces_to_merge` groups them: the record with the largest box keeps the print (it saw most of it), its
box grows to the union of the group's (the pieces are parts of one footprint), and the others go into its
``extra["pieces"]`` with their files, so nothing recorded is lost. :func:`merge_pieces` applies that to a scan in
the store, in one transaction; it is idempotent, and the scan runs it after its last field, before its summary
and exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.results.store import ObjectRecord, ResultStore
from appliance.scan.stitch import BoxUm, area, intersect, union

#: Two structure records whose slide boxes overlap by at least this fraction of the smaller box's area are one
#: print. Boxes of neighbouring prints may touch by a pixel or two of blur, never more (none overlapped on the
#: slides above); the two halves of the 40x scaffold overlapped by 0.29, a piece inside its print by 1.
PIECE_OVERLAP = 0.2

#: What a merged piece keeps in its print's record (its files stay on disk and are named here).
_PIECE_KEYS = ("id", "cell", "cls", "confidence", "x_um", "y_um", "z_um", "width_um", "height_um", "frame_path",
               "crop_path", "stack_path", "height_map_path", "plot_path")


@dataclass(frozen=True)
class Merge:
    """One print recorded more than once: the record that keeps it, its new box, and the pieces merged into it."""

    keep: ObjectRecord
    box_um: BoxUm
    pieces: tuple[ObjectRecord, ...]


def box_of(o: ObjectRecord) -> BoxUm:
    """A record's slide box (µm): its centre and size."""
    return (o.x_um - o.width_um / 2, o.y_um - o.height_um / 2, o.x_um + o.width_um / 2, o.y_um + o.height_um / 2)


def boxes_of_one_print(a: BoxUm, b: BoxUm, min_overlap: float = PIECE_OVERLAP) -> bool:
    """Whether two slide boxes overlap by at least ``min_overlap`` of the smaller one's area."""
    smaller = min(area(a), area(b))
    return smaller > 0 and area(intersect(a, b)) >= min_overlap * smaller


def pieces_to_merge(records: Sequence[ObjectRecord], min_overlap: float = PIECE_OVERLAP) -> list[Merge]:
    """The groups of structure records that are one print; debris is left alone.

    Largest box first, each record joins the first print whose (growing) box it overlaps by ``min_overlap`` of
    the smaller, or starts a print of its own. Only groups of two or more are returned.
    """
    structures = sorted((o for o in records if o.kind == "structure"), key=lambda o: (-area(box_of(o)), o.id))
    prints: list[tuple[ObjectRecord, BoxUm, list[ObjectRecord]]] = []
    for o in structures:
        b = box_of(o)
        for i, (keep, kb, pieces) in enumerate(prints):
            if boxes_of_one_print(kb, b, min_overlap):
                pieces.append(o)
                prints[i] = (keep, union(kb, b), pieces)
                break
        else:
            prints.append((o, b, []))
    return [Merge(keep, kb, tuple(pieces)) for keep, kb, pieces in prints if pieces]


def merged_extra(m: Merge) -> dict[str, object]:
    """The keeping record's ``extra`` after the merge: its own box before it, and each piece's record."""
    own = box_of(m.keep)
    extra = dict(m.keep.extra or {})
    extra.setdefault("box_before_pieces_um", [round(v, 2) for v in own])
    extra["pieces"] = list(extra.get("pieces", [])) + [
        {k: getattr(p, k) for k in _PIECE_KEYS} for p in m.pieces]
    return extra


def merge_pieces(store: ResultStore, scan_id: int) -> list[Merge]:
    """Merge the scan's structure records that are one print (:func:`pieces_to_merge`); return what was merged."""
    merges = pieces_to_merge(store.objects(scan_id, "structure"))
    for m in merges:
        x0, y0, x1, y1 = m.box_um
        store.merge_objects(scan_id, m.keep.id, [p.id for p in m.pieces], ((x0 + x1) / 2, (y0 + y1) / 2),
                            (x1 - x0, y1 - y0), merged_extra(m))
    return merges

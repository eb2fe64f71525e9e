"""Score a scan against the virtual slide's ground truth (``summary.json``'s metrics).

Matching: a recorded structure matches the true object whose bounding box contains its position (grown by
``MATCH_MARGIN_UM``; the nearest centre wins if several do). Only true objects whose box lies wholly inside the
scanned area are counted as truth (records of objects reaching out of it are left out). Then:

- ``recall``: true structures matched by at least one recorded structure, over true structures;
- ``type_accuracy``: of the matched true structures, those whose first record has the true type (1.0 when
  the area holds no true structure, 0.0 when it holds some and none was matched);
- ``debris_as_structure``: true debris pieces matched by a recorded structure, over true debris pieces;
- ``false_structures``: recorded structures that match no true object at all;
- ``position_error_um_median``: median distance from a matched record to its true centre, µm;
- ``duplicates``: recorded structures beyond the first for the same true structure;
- ``focus_error_um_median``, ``focus_error_um_p95``, ``focus_within_1um``: how far each matched structure's
  recorded focus (``z_um``: where its focus stack reads it, else where the autofocus put the stage) lies from
  its true focus (its mid-plane, ``focus_z_um``): median and 95th percentile of the absolute error, µm, and the
  share within 1 µm, over first records with a z; ``per_type`` counts ``focus_within_1um`` per type;
- ``autofocus_error_um_median``, ``autofocus_error_um_p95``, ``autofocus_within_1um``: the same for where the
  autofocus put the stage (the focused frame's true stage z), issue 9's measure inside a scan, where the map
  holds every field's glass (the autofocus bench measures one search per structure on bare slides).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.results.store import ObjectRecord

MATCH_MARGIN_UM = 5.0


def _inside(box: Sequence[float], area: Sequence[float]) -> bool:
    return box[0] >= area[0] and box[1] >= area[1] and box[2] <= area[2] and box[3] <= area[3]


def _match(o: ObjectRecord, truth: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    best, best_d = None, math.inf
    for t in truth:
        x0, y0, x1, y1 = t["bbox_um"]
        m = MATCH_MARGIN_UM
        if x0 - m <= o.x_um <= x1 + m and y0 - m <= o.y_um <= y1 + m:
            d = math.hypot(o.x_um - t["center_um"][0], o.y_um - t["center_um"][1])
            if d < best_d:
                best, best_d = t, d
    return best


def _focus_error(o: ObjectRecord, t: Mapping[str, Any], autofocus: bool = False) -> float | None:
    """The record's focus z minus the true object's focus, µm (None without a z or a true focus).

    ``autofocus``: where the autofocus put the stage instead (the frame's true stage z where the simulator
    gives one, else ``extra.autofocus_z_um``; records from before it was kept have only ``z_um``).

    The recorded z is the drive's. Where the simulator says which true plane it is (``extra.true_focus_z_um``,
    read off the stack's frames by the runner) that plane is scored: the same z on a sound drive, but not on one
    whose focus drifted (``stage.z_drift_um_per_min``) or that is wired the other way round and not said to be.
    """
    extra = o.extra or {}
    z = o.z_um
    if autofocus:
        true = extra.get("true_position_um")
        z = float(true[2]) if isinstance(true, (list, tuple)) and len(true) == 3 else extra.get("autofocus_z_um", z)
    elif extra.get("true_focus_z_um") is not None:
        z = float(extra["true_focus_z_um"])
    if z is None or t.get("focus_z_um") is None:
        return None
    return float(z) - float(t["focus_z_um"])


def _focus_keys(prefix: str, errors: Sequence[float]) -> dict[str, float | None]:
    e = np.abs(np.asarray(errors, dtype=np.float64))
    return {f"{prefix}_error_um_median": float(np.median(e)) if e.size else None,
            f"{prefix}_error_um_p95": float(np.percentile(e, 95)) if e.size else None,
            f"{prefix}_within_1um": float(np.mean(e <= 1.0)) if e.size else None}


def score(objects: Sequence[ObjectRecord], truth: Mapping[str, Any],
          area_um: tuple[float, float, float, float]) -> dict[str, Any]:
    """The summary metrics of a scan (see the module doc).

    Parameters
    ----------
    objects : sequence of ObjectRecord
        Everything the scan recorded.
    truth : mapping
        ``Slide.truth()`` (its ``objects`` list is used).
    area_um : (left, top, right, bottom)
        The scanned area, µm.
    """
    inside = [t for t in truth["objects"] if _inside(t["bbox_um"], area_um)]
    t_struct = [t for t in inside if t["kind"] == "structure"]
    t_debris = [t for t in inside if t["kind"] == "debris"]
    m = _match_all(objects, truth["objects"], {t["id"] for t in inside})
    first = m.first
    by_id = {t["id"]: t for t in t_struct}
    correct = sum(by_id[i]["cls"] == o.cls for i, o in first.items())
    return {
        "recall": len(first) / len(t_struct) if t_struct else 1.0,
        # a slide without structures has nothing to type, as it has nothing to miss (recall 1.0 above)
        "type_accuracy": correct / len(first) if first else (0.0 if t_struct else 1.0),
        "debris_as_structure": len(m.debris_hit) / len(t_debris) if t_debris else 0.0,
        "position_error_um_median": float(np.median(m.errors)) if m.errors else None,
        "duplicates": m.dup,
        **_focus_keys("focus", list(m.focus.values())),
        **_focus_keys("autofocus", m.autofocus),
        "structures_truth": len(t_struct),
        "structures_found": sum(o.kind == "structure" for o in objects),
        "structures_matched": len(first),
        "false_structures": m.false_structures,
        "debris_truth": len(t_debris),
        "debris_recorded": sum(o.kind == "debris" for o in objects),
        "per_type": _per_type(t_struct, first, m.focus),
        "missed": sorted(({"id": t["id"], "cls": t["cls"], "center_um": t["center_um"]} for t in t_struct
                          if t["id"] not in first), key=lambda d: d["id"]),
    }


@dataclass
class _Matches:
    """The recorded structures matched to the truth (:func:`_match_all`)."""

    first: dict[int, ObjectRecord] = field(default_factory=dict)  # true structure's id -> its first record
    dup: int = 0  # records beyond the first of a true structure
    errors: list[float] = field(default_factory=list)  # first records' distances from their true centres, µm
    focus: dict[int, float] = field(default_factory=dict)  # true structure's id -> its first record's focus error
    autofocus: list[float] = field(default_factory=list)  # the first records' autofocus errors, µm
    debris_hit: set[int] = field(default_factory=set)  # true debris recorded as a structure
    false_structures: int = 0  # records that match no true object


def _match_all(objects: Sequence[ObjectRecord], truth: Sequence[Mapping[str, Any]], inside_ids: set[Any]) -> _Matches:
    """Match every recorded structure to the true objects; those matching one outside the area are not scored."""
    m = _Matches()
    for o in objects:
        if o.kind != "structure":
            continue
        t = _match(o, truth)
        if t is not None and t["id"] not in inside_ids:
            continue  # a true object reaching out of the area, seen by a border field: not scored
        if t is None:
            m.false_structures += 1
        elif t["kind"] == "debris":
            m.debris_hit.add(t["id"])
        elif t["id"] in m.first:
            m.dup += 1
        else:
            m.first[t["id"]] = o
            m.errors.append(math.hypot(o.x_um - t["center_um"][0], o.y_um - t["center_um"][1]))
            dz, dz_auto = _focus_error(o, t), _focus_error(o, t, autofocus=True)
            if dz is not None:
                m.focus[t["id"]] = dz
            if dz_auto is not None:
                m.autofocus.append(dz_auto)
    return m


def _per_type(t_struct: Sequence[Mapping[str, Any]], first: Mapping[int, ObjectRecord],
              focus: Mapping[int, float]) -> dict[str, dict[str, int]]:
    """Per true type: structures, those found, typed right, and focused within 1 µm."""
    per_type: dict[str, dict[str, int]] = {}
    for t in t_struct:
        row = per_type.setdefault(t["cls"], {"truth": 0, "found": 0, "type_correct": 0, "focus_within_1um": 0})
        row["truth"] += 1
        if t["id"] in first:
            row["found"] += 1
            row["type_correct"] += int(first[t["id"]].cls == t["cls"])
            row["focus_within_1um"] += int(abs(focus.get(t["id"], math.inf)) <= 1.0)
    return per_type


def height_errors(heights: np.ndarray, true_heights: np.ndarray) -> tuple[float, int]:
    """RMSE (µm) between a measured height map and the true one on the same pixels.

    Over the true footprint and every pixel the measurement put above the glass (so a map cannot gain by
    spreading height over glass); pixels the measurement left NaN count as height 0 (a part it missed).

    Returns
    -------
    rmse_um : float
    n_pixels : int
    """
    if heights.shape != true_heights.shape:
        raise ValueError(f"height maps differ in shape: {heights.shape} vs {true_heights.shape}")
    measured = np.nan_to_num(heights, nan=0.0)
    foot = (true_heights > 0.05) | (measured > 0.05)
    if not foot.any():
        return 0.0, 0
    d = measured[foot] - true_heights[foot]
    return float(np.sqrt(np.mean(d * d))), int(foot.sum())


def true_heights_on_pixels(obj_center_um: tuple[float, float], obj_pitch_um: float, obj_heights: np.ndarray,
                           stage_true_xy: tuple[float, float], frame_size_px: tuple[int, int], um_per_px: float,
                           crop_origin_px: tuple[int, int], crop_shape: tuple[int, int]) -> np.ndarray:
    """The true height map of an object resampled onto a crop's camera pixels (area-averaged, bilinear).

    Pixel ``(u, v)`` of a frame taken with the stage truly at ``stage_true_xy`` sees slide point
    ``stage + ((u - (W - 1) / 2) s, (v - (H - 1) / 2) s)`` (the simulator's camera model).
    """
    import cv2

    w, h = frame_size_px
    hh, ww = obj_heights.shape
    sigma = max(0.0, 0.5 * um_per_px / obj_pitch_um)  # about one camera pixel's worth of map samples
    src = cv2.GaussianBlur(obj_heights.astype(np.float32), (0, 0), sigma) if sigma > 0.3 else \
        obj_heights.astype(np.float32)
    v, u = np.mgrid[0:crop_shape[0], 0:crop_shape[1]].astype(np.float64)
    x = stage_true_xy[0] + (u + crop_origin_px[0] - (w - 1) / 2.0) * um_per_px
    y = stage_true_xy[1] + (v + crop_origin_px[1] - (h - 1) / 2.0) * um_per_px
    j = (x - obj_center_um[0]) / obj_pitch_um + (ww - 1) / 2.0
    i = (y - obj_center_um[1]) / obj_pitch_um + (hh - 1) / 2.0
    return cv2.remap(src, j.astype(np.float32), i.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)

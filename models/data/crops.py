"""Classifier and focus crops: 64 x 64 grey crops cut from randomised virtual-microscope frames.

Each item is one target object on a randomised slide (:mod:`models.data.randomise`), imaged in a frame
whose position puts the target anywhere in view (sometimes cut by the frame's edge), at a drawn defocus,
through the sensor and the camera chain. Only the part of the frame around the target is rendered (the
same pixels a full frame would have there: same geometry, lamp field, vignetting, noise model), which makes
an item about ten times cheaper than a full frame.

- **classifier**: the target's class is drawn evenly over the five structure types and ``debris``. A debris
  target is drawn by kind as a scan meets debris (``DEBRIS_DRAW``): a scan only classifies pieces the
  candidate gate passes, so most are large dust clumps, bubbles, fibres and scratches, and few are the
  small specks that make up most of a slide's dust; ``DEBRIS_FAR_FRACTION`` of debris crops are imaged up
  to ``DEBRIS_FAR_UM`` out of focus, as a scan sees dirt when it focuses on it as on a print (at the glass
  plus a print's height). The crop is cut by
  :func:`appliance.vision.crops.box_crop` around the target's true box, jittered as a detector's box is
  (each side moves by about 5 % of the box), after the seed paper's augmentation (rotation, shear, zoom,
  shift, flip) of the surrounding window. Defocus follows ``Ranges.dz_um`` / ``p_near_focus`` (scans
  spend most frames near focus).
- **focus**: a structure, drawn evenly over the five types; defocus uniform over ``Ranges.dz_um`` and, for
  ``BEYOND_FRACTION`` of the items, up to ``BEYOND_UM`` beyond it on either side (so the net has seen what
  lies outside its 41 classes). The crop is :func:`appliance.vision.crops.focus_crop` (48 µm at 0.75 µm per
  pixel) around one of :func:`appliance.vision.crops.focus_points` (the centre of a small structure, an edge
  midpoint of a large one, so the crop holds an edge), jittered by 15 % of the crop, after rotation and
  flip only: zoom and shear would change the blur's size in µm, which is what the net measures.

Files: ``images/<split>_<seed>_<item>.png`` (64 x 64 uint8) and ``labels.csv`` with one row per crop:
classifier ``filename,class,type,dz_um,um_per_px,slide_seed``; focus
``filename,defocus_um,type,um_per_px,slide_seed`` (``defocus_um`` = stage z - the object's focus z).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.vision.crops import FOCUS_CROP_UM, box_crop, focus_crop, focus_points
from models.data.cli import SlideJob
from models.data.detection import _scope_for
from models.data.randomise import HARD_BOUNDS, Shot, augment_matrix, draw_dz_um, render_frame, sample_shot

CLASSIFIER_LABELS: tuple[str, ...] = ("woodpile", "microlens", "scaffold", "pentagon", "split_ring", "debris")
CLASSIFIER_COLUMNS: tuple[str, ...] = ("filename", "class", "type", "dz_um", "um_per_px", "slide_seed")
FOCUS_COLUMNS: tuple[str, ...] = ("filename", "defocus_um", "type", "um_per_px", "slide_seed")
# Spread of a detector box's sides around the truth, as a fraction of the box size.
BOX_JITTER = 0.05
# Debris targets by kind, as a scan meets them. The candidate gate (docs/gate.md) passes only pieces of at
# least 150 µm² and 10 µm, so the dust a scan classifies is the large clumps (4 % of the simulator's dust,
# 15-60 µm), not the 1-8 µm specks, which drawn like any dust were 96 % of the dust crops: the classifier had
# seen about 30 clumps, and named 18 of 24 dirt pieces recorded as prints on the default slide pentagons or
# woodpiles. Bubbles (taken for micro-lenses) are weighted up as the next most misread kind.
DEBRIS_DRAW: tuple[tuple[str, float], ...] = (("dust_large", 0.35), ("bubble", 0.25), ("fibre", 0.15),
                                              ("scratch", 0.10), ("dust_small", 0.15))
# Fraction of debris crops drawn uniformly within +-DEBRIS_FAR_UM of the piece's focus instead of by Ranges.
DEBRIS_FAR_FRACTION = 0.3
DEBRIS_FAR_UM = 20.0
# Focus items drawn beyond the dz range, and how far beyond, µm.
BEYOND_FRACTION = 0.1
BEYOND_UM = 3.0
# Largest |defocus_um| a focus label may have, µm: the farthest `tppscan dataset focus` draws (the widest dz
# range plus the items drawn beyond it). A larger one is a damaged file, and one NaN or 1e308 label trains a NaN
# net.
MAX_DEFOCUS_UM = HARD_BOUNDS["dz_um"][1] + BEYOND_UM
# The augmentation window is this much larger than the crop, so rotated corners hold real pixels.
WINDOW_FACTOR = 1.5
# Largest |defocus| of any object in a crop's window, µm (the farthest debris dz + the slide's tilt across a window).
MAX_WINDOW_DZ_UM = 24.0


class _NearSlide:
    """A view of a slide for one renderer: queries skip objects whose blurred image cannot reach the window.

    The renderer asks for objects within ``PAD_UM`` (80 µm, enough for any defocus the stage can reach) of a
    frame; each object's patch only reaches ``pad_for_dz_um(dz)`` beyond its footprint (12 µm at the defocus
    of these crops), so the rest, mostly dust, is imaged at every new defocus for nothing. Shrinking the query
    by the difference changes no pixel (``tests/classifier_focus/test_crops_dataset.py`` checks it) and makes
    crops about three times cheaper.
    """

    def __init__(self, slide: Any, shrink_um: float) -> None:
        self._slide = slide
        self._shrink = max(0.0, float(shrink_um))

    def objects_in_rect(self, x0: float, y0: float, x1: float, y1: float) -> Any:
        """Objects overlapping the rectangle shrunk by the unneeded part of the renderer's pad."""
        e = self._shrink
        return self._slide.objects_in_rect(x0 + e, y0 + e, x1 - e, y1 - e)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._slide, name)


def scope_for_crops(job: SlideJob) -> Any:
    """The job's virtual microscope, its renderer looking only as far as the crops' defocus can blur."""
    from appliance.sim.camera import PAD_UM, pad_for_dz_um

    scope = _scope_for(job)
    r = scope.camera.renderer
    r.slide = _NearSlide(r.slide, PAD_UM - pad_for_dz_um(MAX_WINDOW_DZ_UM, r.optics.na))
    return scope


def _window_around(scope: Any, x_um: float, y_um: float, z_um: float, shot: Shot, seed: int,
                   center_px: tuple[float, float], side_px: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A ``side_px`` square of the frame around ``center_px``; parts outside the frame repeat its edge.

    Returns the window and its top-left corner in frame pixels.
    """
    fw, fh = scope.camera.size_px
    u0 = int(round(center_px[0] - side_px / 2.0 + 0.5))
    v0 = int(round(center_px[1] - side_px / 2.0 + 0.5))
    a0, b0 = max(0, v0), max(0, u0)
    a1, b1 = min(fh, v0 + side_px), min(fw, u0 + side_px)
    if a1 - a0 < 2 or b1 - b0 < 2:  # the target is (nearly) outside the frame: a blank edge window
        a0, b0 = min(max(a0, 0), fh - 2), min(max(b0, 0), fw - 2)
        a1, b1 = a0 + 2, b0 + 2
    core = render_frame(scope, x_um, y_um, z_um, shot, seed, window=(b0, a0, b1 - b0, a1 - a0))
    win = cv2.copyMakeBorder(core, max(0, a0 - v0), max(0, v0 + side_px - a1), max(0, b0 - u0),
                             max(0, u0 + side_px - b1), cv2.BORDER_REPLICATE)
    return np.asarray(win)[:side_px, :side_px], (u0, v0)


def _frame_center_for(rng: np.random.Generator, target_um: tuple[float, float], frame_um: tuple[float, float],
                      spread: float) -> tuple[float, float]:
    """A stage x, y that puts ``target_um`` at a random place within ``spread`` of the frame's half-size."""
    return (target_um[0] + rng.uniform(-spread, spread) * frame_um[0] / 2.0,
            target_um[1] + rng.uniform(-spread, spread) * frame_um[1] / 2.0)


def _warp(win: np.ndarray, rng: np.random.Generator, job: SlideJob, scale_free: bool) -> tuple[np.ndarray, np.ndarray]:
    """The seed paper's augmentation of a square window about its centre (no zoom/shear when ``scale_free``).

    Returns the warped window and the 2x3 map (destination <- source, window pixels).
    """
    side = win.shape[0]
    r = job.ranges.with_changes(zoom=(0.0, 0.0), shear=(0.0, 0.0)) if scale_free else job.ranges
    # Shift is applied through the box/centre jitter instead, so the target stays in the crop.
    r = r.with_changes(shift=(0.0, 0.0))
    m = augment_matrix(rng, r, (side, side))
    out = cv2.warpAffine(win, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < job.ranges.p_hflip:
        out = out[:, ::-1]
        m = np.vstack([np.array([[-1.0, 0.0, side - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])])
    return np.ascontiguousarray(out), m


def _gate_sized(obj: Any) -> bool:
    """Whether the candidate gate can pass the object in focus (its footprint meets the gate's size limits)."""
    from appliance.vision.gate import GateParams

    w, h = obj.footprint_um
    return bool(w * h >= GateParams.min_area_um2 and max(w, h) >= GateParams.min_size_um)


def _debris_kind(obj: Any) -> str:
    if obj.cls == "dust":
        return "dust_large" if _gate_sized(obj) else "dust_small"
    return str(obj.cls)


def debris_draw(bubble_share: float) -> tuple[tuple[str, float], ...]:
    """``DEBRIS_DRAW`` with bubbles given ``bubble_share`` and the other kinds their proportions of the rest."""
    base = dict(DEBRIS_DRAW)
    if bubble_share == base["bubble"]:
        return DEBRIS_DRAW
    rest = 1.0 - base["bubble"]
    return tuple((k, bubble_share if k == "bubble" else w * (1.0 - bubble_share) / rest) for k, w in DEBRIS_DRAW)


def _pick_classifier_target(rng: np.random.Generator, objs: Sequence[Any],
                            draw: Sequence[tuple[str, float]] = DEBRIS_DRAW) -> tuple[Any, str] | None:
    """A target object and its class label, drawn evenly over the labels present on the slide.

    Debris is drawn by kind with the weights of ``draw`` (:func:`debris_draw`) over the kinds the slide has.
    """
    by_label: dict[str, list[Any]] = {}
    for o in objs:
        by_label.setdefault(o.cls if o.kind == "structure" else "debris", []).append(o)
    labels = [c for c in CLASSIFIER_LABELS if by_label.get(c)]
    if not labels:
        return None
    label = labels[int(rng.integers(len(labels)))]
    pool = by_label[label]
    if label == "debris":
        kinds: dict[str, list[Any]] = {}
        for o in pool:
            kinds.setdefault(_debris_kind(o), []).append(o)
        present = [(k, w) for k, w in draw if kinds.get(k) and w > 0]
        if not present:
            return None
        p = np.array([w for _, w in present])
        pool = kinds[present[int(rng.choice(len(present), p=p / p.sum()))][0]]
    return pool[int(rng.integers(len(pool)))], label


def _target_box(scope: Any, obj: Any, x_um: float, y_um: float) -> tuple[int, int, int, int] | None:
    """The target's clipped pixel box in the frame at (x, y), or None when it is out of view."""
    for vb in scope.boxes_at(x_um, y_um):
        if vb.id == obj.id:
            return tuple(vb.box_px)
    return None


def _jitter_box(rng: np.random.Generator, box: Sequence[float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    d = rng.normal(0.0, BOX_JITTER, size=4) * np.array([w, h, w, h])
    nx0, ny0, nx1, ny1 = x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]
    if nx1 - nx0 < 1.0 or ny1 - ny0 < 1.0:
        return x0, y0, x1, y1
    return nx0, ny0, nx1, ny1


Item = tuple[np.ndarray, dict[str, Any]]


def _classifier_item(scope: Any, job: SlideJob, i: int, objs: Sequence[Any]) -> Item | None:
    rng = job.rng(i)
    picked = _pick_classifier_target(rng, objs, debris_draw(job.ranges.p_bubble_debris))
    if picked is None:
        return None
    obj, label = picked
    s = scope.camera.um_per_px
    fw, fh = scope.camera.size_px
    x, y = _frame_center_for(rng, obj.center_um, (fw * s, fh * s), 0.9)
    box = _target_box(scope, obj, x, y)
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) * s * s < 0.4 * obj.footprint_um[0] * obj.footprint_um[1]:
        x, y = _frame_center_for(rng, obj.center_um, (fw * s, fh * s), 0.5)  # keep most of it in view
        box = _target_box(scope, obj, x, y)
    if box is None:
        return None
    dz = draw_dz_um(rng, job.ranges)
    far = DEBRIS_FAR_FRACTION if label == "debris" else job.ranges.p_far_print
    if far > 0.0 and rng.random() < far:
        dz = float(rng.uniform(-DEBRIS_FAR_UM, DEBRIS_FAR_UM))
    shot = sample_shot(rng, job.ranges, False, scope.camera.size_px)
    jb = _jitter_box(rng, box)
    side = int(np.ceil(max(jb[2] - jb[0], jb[3] - jb[1]) * 1.3 * WINDOW_FACTOR)) + 4
    cx, cy = (jb[0] + jb[2] - 1) / 2.0, (jb[1] + jb[3] - 1) / 2.0
    win, (u0, v0) = _window_around(scope, x, y, obj.focus_z_um + dz, shot, int(rng.integers(2**31)), (cx, cy), side)
    if job.augment:
        win, _ = _warp(win, rng, job, scale_free=False)
    local = (jb[0] - u0, jb[1] - v0, jb[2] - u0, jb[3] - v0)
    crop = box_crop(win, local)
    return crop, {"class": label, "type": obj.cls, "dz_um": round(dz, 3), "um_per_px": round(s, 5)}


def _focus_item(scope: Any, job: SlideJob, i: int, objs: Sequence[Any]) -> Item | None:
    rng = job.rng(i)
    structs = [o for o in objs if o.kind == "structure"]
    types = sorted({o.cls for o in structs})
    if not types:
        return None
    t = types[int(rng.integers(len(types)))]
    pool = [o for o in structs if o.cls == t]
    obj = pool[int(rng.integers(len(pool)))]
    lo, hi = job.ranges.dz_um
    if rng.random() < BEYOND_FRACTION:
        dz = float(rng.uniform(hi, hi + BEYOND_UM)) if rng.random() < 0.5 else float(rng.uniform(lo - BEYOND_UM, lo))
    else:
        dz = float(rng.uniform(lo, hi))
    s = scope.camera.um_per_px
    fw, fh = scope.camera.size_px
    # The crop's centre: one of the points the scan loop uses (focus_points: the centre of a small structure,
    # an edge midpoint of a large one), jittered by up to 15 % of the crop.
    (ox, oy), (w_um, h_um) = obj.center_um, obj.footprint_um
    points = focus_points((ox - w_um / 2, oy - h_um / 2, ox + w_um / 2, oy + h_um / 2), 1.0)
    p0 = points[int(rng.integers(len(points)))]
    px_um = (p0[0] + 0.5 * (len(points) > 1) + rng.uniform(-0.15, 0.15) * FOCUS_CROP_UM,
             p0[1] + 0.5 * (len(points) > 1) + rng.uniform(-0.15, 0.15) * FOCUS_CROP_UM)
    x, y = _frame_center_for(rng, px_um, (fw * s, fh * s), 0.7)
    # Pixel of px_um in the frame at (x, y): u = (x' - x)/s + (W - 1)/2.
    cu = (px_um[0] - x) / s + (fw - 1) / 2.0
    cv = (px_um[1] - y) / s + (fh - 1) / 2.0
    shot = sample_shot(rng, job.ranges, False, scope.camera.size_px)
    side = int(np.ceil(FOCUS_CROP_UM / s * WINDOW_FACTOR)) + 4
    win, (u0, v0) = _window_around(scope, x, y, obj.focus_z_um + dz, shot, int(rng.integers(2**31)), (cu, cv), side)
    c = (cu - u0, cv - v0)
    if job.augment:
        win, m = _warp(win, rng, job, scale_free=True)
        c = (m[0, 0] * c[0] + m[0, 1] * c[1] + m[0, 2], m[1, 0] * c[0] + m[1, 1] * c[1] + m[1, 2])
    crop = focus_crop(win, c, s)
    return crop, {"defocus_um": round(dz, 3), "type": obj.cls, "um_per_px": round(s, 5)}


def _render(job: SlideJob, make: Any) -> list[dict[str, Any]]:
    scope = scope_for_crops(job)
    objs = list(scope.slide.objects)
    out = job.out_dir / "images"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in job.items():
        item = make(scope, job, i, objs)
        if item is None:  # an empty slide (possible with --structures-per-mm2 0): no crop for this item
            continue
        crop, row = item
        name = f"{job.split}_{job.seed}_{i:06d}.png"
        cv2.imwrite(str(out / name), crop)
        rows.append({"filename": f"images/{name}", **row, "slide_seed": job.slide_seed})
    return rows


def render_classifier(job: SlideJob) -> list[dict[str, Any]]:
    """Render a slide job's classifier crops; one row per crop (see the module doc for the columns)."""
    return _render(job, _classifier_item)


def render_focus(job: SlideJob) -> list[dict[str, Any]]:
    """Render a slide job's focus crops; one row per crop (see the module doc for the columns)."""
    return _render(job, _focus_item)


def _write(out_dir: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    with open(Path(out_dir) / "labels.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(columns))
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r[k] for k in columns})


def write_classifier_index(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``labels.csv`` of a classifier dataset."""
    _write(out_dir, rows, CLASSIFIER_COLUMNS)


def write_focus_index(out_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``labels.csv`` of a focus dataset."""
    _write(out_dir, rows, FOCUS_COLUMNS)


def load_crops(data_dir: Path, kind: str) -> tuple[np.ndarray, list[dict[str, str]]]:
    """All crops of a dataset as ``(N, 64, 64)`` uint8 and their ``labels.csv`` rows (checked by ``read_labels``).

    Raises
    ------
    OSError
        As ``read_labels``, or an image is missing or unreadable.
    """
    rows = read_labels(data_dir, kind)
    imgs = np.zeros((len(rows), 64, 64), np.uint8)
    for k, r in enumerate(rows):
        img = cv2.imread(str(Path(data_dir) / r["filename"]), cv2.IMREAD_GRAYSCALE)
        if img is None or img.shape != (64, 64):
            raise OSError(f"{Path(data_dir) / r['filename']}: missing or not a 64 x 64 grey crop")
        imgs[k] = img
    return imgs, rows


def read_labels(data_dir: Path, kind: str) -> list[dict[str, str]]:
    """A ``kind`` dataset's ``labels.csv`` rows, checked (``check_rows``) without reading the images.

    Raises
    ------
    OSError
        The folder is not a ``kind`` dataset made by ``tppscan dataset``, it has no crops, or a label is not one
        its kind allows (naming the file, row, column and value).
    """
    from models.data.cli import read_meta

    meta = read_meta(data_dir)
    if meta.get("kind") != kind:
        raise OSError(f"{data_dir}: a {meta.get('kind')!r} dataset; expected one made by `tppscan dataset {kind}`")
    path = Path(data_dir) / "labels.csv"
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OSError(f"{path}: cannot read the dataset's labels ({exc})") from None
    check_rows(path, rows, kind)
    return rows


def check_rows(path: Path, rows: list[dict[str, str]], kind: str) -> None:
    """Raise ``OSError`` naming ``path``, the row (line of the file), column and value of the first bad label.

    The one check of a crop dataset's labels, shared by training and ``tppscan models eval``: an empty set
    would make every metric NaN (or TensorFlow fail), an unknown class a KeyError, and a NaN or absurd defocus
    a NaN model with exit 0.
    """
    if not rows:
        raise OSError(f"{path}: no crops (the file has no data rows); a dataset needs at least one")
    column = "class" if kind == "classifier" else "defocus_um"
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        for col in ("filename", column):
            if not r.get(col):
                raise OSError(f"{path}: row {line}: column {col!r} is missing or empty")
        if kind == "classifier" and r["class"] not in CLASSIFIER_LABELS:
            raise OSError(f"{path}: row {line}: column 'class' is {r['class']!r}, not one of "
                          f"{', '.join(CLASSIFIER_LABELS)}")
        if kind == "focus":
            _defocus(path, line, r["defocus_um"])


def _defocus(path: Path, line: int, text: str) -> float:
    """One ``defocus_um`` cell as a number in [-MAX_DEFOCUS_UM, MAX_DEFOCUS_UM], or an ``OSError`` saying where."""
    try:
        dz = float(text)
    except ValueError:
        dz = math.nan
    if not -MAX_DEFOCUS_UM <= dz <= MAX_DEFOCUS_UM:  # also false for NaN
        raise OSError(f"{path}: row {line}: column 'defocus_um' is {text!r}; it must be a number in "
                      f"[{-MAX_DEFOCUS_UM:g}, {MAX_DEFOCUS_UM:g}] µm")
    return dz


def defocus_labels(rows: list[dict[str, str]]) -> np.ndarray:
    """The ``defocus_um`` of rows ``load_crops`` returned (already checked), µm, float64."""
    return np.array([float(r["defocus_um"]) for r in rows], dtype=np.float64)

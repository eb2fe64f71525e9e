"""Detection frames: whole camera frames with the box of every structure and piece of debris in view.

Each slide job builds one randomised virtual slide and renders its items: a frame centred near a structure
(``p_on_structure``), near a fibre, scratch or bubble (``p_on_line_debris``, so rare line debris is common
enough to learn), or anywhere (empty glass and dust); focused at the target's focus plus a drawn defocus;
through the sensor and camera chain; then augmented. Boxes come from the simulator's ground truth
(object footprints): the box of the footprint's part in the frame, and after augmentation the box of where the
footprint's samples land (not the old box moved), so cut and rotated thin fibres keep tight boxes. Kept as
*ignore* regions (COCO ``iscrowd``: neither counted as misses nor as false detections): objects cut by the edge
to less than ``MIN_VISIBLE`` of their area, boxes under ``MIN_SIDE_PX``, and specks whose longer side is under
``MIN_OBJECT_UM`` (10 µm, the candidate gate's ``min_size_um``: the scan never looks closer at anything smaller,
and a 2 µm speck is a pixel or two), all judged on the whole-pixel box.

Files: ``images/<split>_<seed>_<item>.png`` (8-bit grey), ``annotations.csv`` (the seed paper's columns
``filename,width,height,class,xmin,ymin,xmax,ymax``, pixels, exclusive max, ignore regions left out) and
``annotations.coco.json`` (every image, also empty ones; categories 1 ``structure``, 2 ``debris``; each
annotation also carries ``type`` (woodpile, dust, ...), ``visible`` (fraction of its box in the frame), ``dz_um``
and ``anchor``: the point of the visible object nearest its box's centre, where the detector learns to peak).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.data.cli import SlideJob
from models.data.randomise import (
    augment,
    build_microscope,
    draw_dz_um,
    move_points,
    render_frame,
    sample_scene,
    sample_shot,
)

CATEGORIES: tuple[str, ...] = ("structure", "debris")
CSV_COLUMNS: tuple[str, ...] = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
#: The COCO file a scan (and ``tppscan results export``) writes beside its frames; read where a folder has no
#: ``annotations.coco.json`` (:func:`coco_path`), so a scan is training and test data as it stands.
EXPORT_COCO = "export_coco.json"
MIN_VISIBLE = 0.2
MIN_SIDE_PX = 2.0
MIN_OBJECT_UM = 10.0
FOOTPRINT_SAMPLES = 200_000


def is_ignored(box: Sequence[float], um_per_px: float, visible: float) -> bool:
    """Whether a box becomes an ignore region (see the module docstring)."""
    w, h = box[2] - box[0], box[3] - box[1]
    return min(w, h) < MIN_SIDE_PX or max(w, h) * um_per_px < MIN_OBJECT_UM or visible < MIN_VISIBLE


def _scope_for(job: SlideJob) -> Any:
    """Build the job's slide; on a slide too crowded for its structures, draw again (deterministically)."""
    rng = job.slide_rng()
    for _ in range(5):
        scene = sample_scene(rng, job.ranges, job.size_px)
        try:
            return build_microscope(scene, job.slide_seed)
        except ValueError as exc:
            if "do not fit" not in str(exc):
                raise
    raise ValueError(f"slide {job.slide_seed}: could not place the structures in 5 draws; lower "
                     f"--structures-per-mm2")


def _pick_view(scope: Any, rng: np.random.Generator, job: SlideJob) -> tuple[float, float, float]:
    """Stage (x, y, z) of one frame: near a target object, or anywhere on the slide."""
    objs = scope.slide.objects
    w_um = job.size_px[0] * scope.camera.um_per_px
    h_um = job.size_px[1] * scope.camera.um_per_px
    r = job.ranges
    u = rng.random()
    pool = []
    if u < r.p_on_structure:
        pool = [o for o in objs if o.kind == "structure"]
    elif u < r.p_on_structure + r.p_on_line_debris:
        pool = [o for o in objs if o.kind == "debris" and o.cls != "dust"]
    p = scope.slide.params
    if pool:
        o = pool[int(rng.integers(len(pool)))]
        x = o.center_um[0] + rng.uniform(-0.4, 0.4) * w_um
        y = o.center_um[1] + rng.uniform(-0.4, 0.4) * h_um
        z = o.focus_z_um + draw_dz_um(rng, r)
    else:
        x = rng.uniform(0.0, p.width_um)
        y = rng.uniform(0.0, p.height_um)
        # Focused somewhere a structure could be in focus: 2.5-15 µm above the glass.
        z = scope.slide.surface_z_um(x, y) + rng.uniform(2.5, 15.0) + draw_dz_um(rng, r)
    return float(x), float(y), float(z)


def _footprint_points(o: Any, x: float, y: float, s: float, size_px: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Samples of the object's footprint that lie in the frame, in box coordinates, and half a sample's size (px).

    Box coordinates: pixel ``u`` spans ``[u, u + 1)``. The object's height map is read on a grid of at most about
    ``FOOTPRINT_SAMPLES`` points (every k-th row and column, so thin lines keep their extremes to within one
    grid step, which the returned half-size covers).
    """
    hm = np.asarray(o.height_um)
    k = max(1, math.ceil(math.sqrt(hm.size / FOOTPRINT_SAMPLES)))
    ii, jj = np.nonzero(hm[::k, ::k])
    ii, jj = ii * k, jj * k
    mh, mw = hm.shape
    px = (o.center_um[0] + (jj - (mw - 1) / 2.0) * o.pitch_um - x) / s + (size_px[0] - 1) / 2.0 + 0.5
    py = (o.center_um[1] + (ii - (mh - 1) / 2.0) * o.pitch_um - y) / s + (size_px[1] - 1) / 2.0 + 0.5
    inside = (px >= 0) & (px < size_px[0]) & (py >= 0) & (py < size_px[1])
    return np.stack([px[inside], py[inside]], axis=1), 0.5 * k * o.pitch_um / s


def _points_box(points: np.ndarray, half: float, size_px: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box of footprint samples (each ``2 * half`` px wide), clipped to the frame."""
    x1, y1 = points.min(axis=0) - half
    x2, y2 = points.max(axis=0) + half
    return (max(0.0, float(x1)), max(0.0, float(y1)), min(float(size_px[0]), float(x2)),
            min(float(size_px[1]), float(y2)))


def _anchor(points: np.ndarray, box: tuple[float, float, float, float] | np.ndarray) -> tuple[float, float]:
    """The footprint sample nearest the box's centre (box coordinates), or the centre when there is none.

    For a compact object that is the box centre; for a fibre, scratch or curved object whose box centre is bare
    glass, and for an object cut by the frame edge, it is a point on the visible object: where the detector
    is taught to put its peak (it regresses the four box sides from there).
    """
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    if not len(points):
        return float(cx), float(cy)
    k = int(np.argmin((points[:, 0] - cx) ** 2 + (points[:, 1] - cy) ** 2))
    return float(points[k, 0]), float(points[k, 1])


def _truth_boxes(scope: Any, x: float, y: float) -> tuple[np.ndarray, list[tuple[np.ndarray, float]],
                                                         list[dict[str, Any]]]:
    """Boxes in view, their objects' in-frame footprint samples and, per box, category, type, visible fraction, focus.

    An object cut by the frame edge gets the box of its samples in the frame, not its footprint box clipped to
    the frame: a diagonal fibre cut by the edge otherwise keeps a corner of bare glass it no longer crosses.
    """
    s = scope.camera.um_per_px
    size = scope.camera.size_px
    by_id = {o.id: o for o in scope.slide.objects}
    boxes, samples, info = [], [], []
    for vb in scope.boxes_at(x, y):
        o = by_id[vb.id]
        full = (o.footprint_um[0] / s) * (o.footprint_um[1] / s)
        b = vb.box_px
        vis = min(1.0, (b[2] - b[0]) * (b[3] - b[1]) / max(full, 1e-9))
        pts, half = _footprint_points(o, x, y, s, size)
        if not vb.complete and len(pts):
            b = _points_box(pts, half, size)
        boxes.append(b)
        samples.append((pts, half))
        info.append({"category": vb.kind, "type": vb.cls, "visible": vis, "focus_z_um": vb.focus_z_um})
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), samples, info


def _augmented_boxes(samples: list[tuple[np.ndarray, float]], boxes: np.ndarray, shot: Any,
                     size_px: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Boxes after the shot's augmentation, from where the objects' own samples land.

    The box of a rotated or sheared object is the box of its moved footprint samples that stay in the frame:
    a thin diagonal fibre turned by 30 degrees has a narrow box, which the box's corners or its inscribed
    ellipse (a circle for a square box) would make square. Without an affine map (a flip or nothing) the
    boxes move exactly as they are.

    Returns
    -------
    boxes : (K, 4) ndarray
        All K boxes (rows of dropped objects are meaningless).
    points : list of ndarray
        Moved samples in the output frame, per object.
    keep : (K,) ndarray of bool
        Objects with samples left in the frame and a box of at least a pixel each way.
    kept_fraction : (K,) ndarray
        Per object, the fraction of its in-frame samples still in the frame.
    """
    w, h = size_px
    out = boxes.astype(np.float64).reshape(-1, 4).copy()
    keep = np.ones(len(out), dtype=bool)
    frac = np.ones(len(out))
    moved: list[np.ndarray] = []
    zoom = math.sqrt(abs(float(np.linalg.det(shot.augment[:, :2])))) if shot.augment is not None else 1.0
    for k, (pts, half) in enumerate(samples):
        q = move_points(pts, shot, w)
        if shot.augment is None:
            moved.append(q)
            if shot.hflip:
                out[k] = (w - boxes[k, 2], boxes[k, 1], w - boxes[k, 0], boxes[k, 3])
            continue
        inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h)
        q = q[inside]
        moved.append(q)
        frac[k] = q.shape[0] / max(1, pts.shape[0])
        if not len(q):
            keep[k] = False
            continue
        out[k] = _points_box(q, half * zoom, size_px)
    if len(out):
        keep &= ((out[:, 2] - out[:, 0]) >= 1.0) & ((out[:, 3] - out[:, 1]) >= 1.0)
    return out, moved, keep, frac


def render_detection(job: SlideJob) -> list[dict[str, Any]]:
    """Render a slide job's detection frames; returns one record per image (with its annotations)."""
    scope = _scope_for(job)
    out = job.out_dir / "images"
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i in job.items():
        rng = job.rng(i)
        x, y, z = _pick_view(scope, rng, job)
        shot = sample_shot(rng, job.ranges, job.augment, job.size_px)
        img = render_frame(scope, x, y, z, shot, exposure_seed=int(rng.integers(0, 2**31)))
        boxes, samples, info = _truth_boxes(scope, x, y)
        img, _, _ = augment(img, boxes, shot, min_side_px=1.0)
        boxes, moved, keep, kept = _augmented_boxes(samples, boxes, shot, job.size_px)
        anchors = [_anchor(q, b) for q, b in zip(moved, boxes, strict=True)]
        for d, f in zip(info, kept, strict=True):
            d["visible"] *= float(f)
        boxes = boxes[keep]
        anchors = [a for a, k in zip(anchors, keep, strict=True) if k]
        info = [d for d, k in zip(info, keep, strict=True) if k]
        name = f"{job.split}_{job.seed}_{i:06d}.png"
        cv2.imwrite(str(out / name), img)
        anns = []
        for b, pt, d in zip(boxes, anchors, info, strict=True):
            xb = [int(np.floor(b[0])), int(np.floor(b[1])), int(np.ceil(b[2])), int(np.ceil(b[3]))]
            # The anchor stays inside the (augmented, clipped) box.
            d["anchor"] = [round(float(np.clip(pt[0], b[0], b[2])), 2), round(float(np.clip(pt[1], b[1], b[3])), 2)]
            anns.append({"category": d["category"], "type": d["type"], "box": xb,
                         # Judged on the whole-pixel box, as an unaugmented frame's boxes are (the simulator's):
                         # the exact box of an augmented 9 um speck would otherwise fall under 10 um where an
                         # unaugmented one's box rounds up to it.
                         "ignore": is_ignored(xb, scope.camera.um_per_px, d["visible"]),
                         "visible": round(d["visible"], 3), "anchor": d["anchor"],
                         "dz_um": round(z - d["focus_z_um"], 3)})
        records.append({"file": f"images/{name}", "width": img.shape[1], "height": img.shape[0],
                        "item": i, "slide_seed": job.slide_seed, "um_per_px": scope.camera.um_per_px,
                        "stage_um": [round(x, 3), round(y, 3), round(z, 3)], "annotations": anns})
    return records


def write_detection_index(out_dir: Path, records: list[dict[str, Any]]) -> None:
    """Write ``annotations.csv`` (seed paper's columns) and ``annotations.coco.json``."""
    with open(out_dir / "annotations.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(CSV_COLUMNS)
        for r in records:
            for a in r["annotations"]:
                if not a["ignore"]:
                    wr.writerow([r["file"], r["width"], r["height"], a["category"], *a["box"]])
    (out_dir / "annotations.coco.json").write_text(json.dumps(to_coco(records)))


def to_coco(records: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO detection dict of the records (boxes as ``[x, y, w, h]``; ignore regions as ``iscrowd``)."""
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    cat_id = {c: k + 1 for k, c in enumerate(CATEGORIES)}
    for img_id, r in enumerate(records, start=1):
        images.append({"id": img_id, "file_name": r["file"], "width": r["width"], "height": r["height"],
                       "slide_seed": r["slide_seed"], "um_per_px": r["um_per_px"], "stage_um": r["stage_um"]})
        for a in r["annotations"]:
            x0, y0, x1, y1 = a["box"]
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat_id[a["category"]],
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                         "iscrowd": int(a["ignore"]), "type": a["type"], "visible": a["visible"],
                         "anchor": a["anchor"], "dz_um": a["dz_um"]})
    return {"images": images, "annotations": anns,
            "categories": [{"id": cat_id[c], "name": c} for c in CATEGORIES]}


def coco_path(data_dir: Path) -> Path:
    """The COCO file of a detection dataset folder: ``tppscan dataset``'s, else a scan export's.

    A folder with only :data:`EXPORT_COCO` is a scan (or ``tppscan results export --out``): its boxes are read
    as training data (:func:`from_export`). Where neither file is there, the dataset's name (for the error).
    """
    own = Path(data_dir) / "annotations.coco.json"
    export = Path(data_dir) / EXPORT_COCO
    return export if not own.exists() and export.is_file() else own


def load_coco(data_dir: Path) -> dict[str, Any]:
    """A detection dataset's COCO dict and frame files, checked (``OSError`` naming the file otherwise).

    ``check_coco`` checks the dict, ``check_image_files`` each frame's file and size. A scan's export
    (:func:`coco_path`) is first mapped to the dataset's two categories (:func:`from_export`).
    """
    path = coco_path(data_dir)
    kind = _kind(Path(data_dir))
    if kind not in (None, "detection"):  # say what it is, as the classifier and focus trainers do
        raise OSError(f"{data_dir}: a {kind!r} dataset; expected one made by `tppscan dataset detection` or a scan's "
                      "`tppscan results export`")
    try:
        coco = json.loads(path.read_text())
        _ = coco["images"], coco["annotations"], coco["categories"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OSError(f"{path}: not a detection dataset made by `tppscan dataset detection` or a scan's "
                      f"`tppscan results export` ({exc})") from None
    if path.name == EXPORT_COCO:
        coco, problem = from_export(coco)
        if problem:
            raise OSError(f"{path}: {problem}")
    problem = check_coco(coco)
    if problem:
        raise OSError(f"{path}: {problem}")
    check_image_files(Path(data_dir), coco["images"], path)
    for a in coco["annotations"]:  # optional in COCO; pycocotools' evaluation reads both
        a.setdefault("iscrowd", 0)
        a.setdefault("area", a["bbox"][2] * a["bbox"][3])
    return dict(coco)


def _kind(data_dir: Path) -> Any:
    """The ``kind`` a folder's ``meta.json`` gives, or None where it has none that can be read."""
    try:
        meta = json.loads((data_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("kind") if isinstance(meta, dict) else None


def from_export(coco: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A scan export's COCO dict (``appliance.results.export``) in the dataset's categories, or a problem.

    The export names each box by what the scan recorded (``woodpile``, ``pentagon``, ..., ``debris``) and gives
    each category a ``supercategory`` of ``structure`` or ``debris``: that is the detector's class, and the
    name is kept as the annotation's ``type`` as in a rendered dataset. Everything else is left to
    :func:`check_coco`.
    """
    cats = coco["categories"]
    if not isinstance(cats, list) or not all(isinstance(c, dict) for c in cats):
        return coco, f"'categories' must be a list of objects, got {_short(cats)}"
    to_class: dict[Any, tuple[int, str]] = {}
    for c in cats:
        sup = "debris" if c.get("name") == "debris" else c.get("supercategory")
        if sup not in CATEGORIES:
            return coco, (f"category {_short(c.get('name'))} has supercategory {_short(c.get('supercategory'))}; "
                          f"a scan export's are {' or '.join(map(repr, CATEGORIES))}")
        to_class[c.get("id")] = (CATEGORIES.index(sup) + 1, str(c.get("name")))
    anns = []
    for a in coco["annotations"]:
        if isinstance(a, dict) and a.get("category_id") in to_class:
            cid, name = to_class[a["category_id"]]
            a = {**a, "category_id": cid, "type": name}
        anns.append(a)  # an unknown category_id is left for check_coco to name
    return ({**coco, "annotations": anns,
             "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CATEGORIES)]}, None)


def check_image_files(data_dir: Path, images: list[dict[str, Any]], listed: Path | None = None) -> None:
    """Refuse a frame that is missing, not an image, or not the size its COCO entry gives.

    Boxes are in the listed size's pixels: a frame of another size (replaced, resized) would train and score
    boxes in the wrong place without a word. Only each file's header is read (PIL opens lazily), so thousands
    of frames cost well under a second; an entry without ``width``/``height`` is not compared.

    Raises
    ------
    OSError
        Naming the file, and for a size mismatch both sizes.
    """
    from PIL import Image

    listed = listed if listed is not None else data_dir / "annotations.coco.json"
    for k, im in enumerate(images):
        path = data_dir / im["file_name"]
        if not path.is_file():  # a FIFO or device would block the open below
            raise OSError(f"{path}: missing or not a regular file (images[{k}] of {listed})")
        try:
            with Image.open(path) as img:
                real = img.size
        except (OSError, Image.DecompressionBombError) as exc:
            raise OSError(f"{path}: not an image ({exc}; images[{k}] of {listed})") from None
        given = (im.get("width", real[0]), im.get("height", real[1]))
        if given != real:
            raise OSError(f"{path}: {real[0]} x {real[1]} pixels, but {listed} gives {given[0]!r} x {given[1]!r} "
                          f"(images[{k}]); its boxes would land in the wrong place")


def check_coco(coco: dict[str, Any]) -> str | None:
    """The first thing wrong with a detection COCO dict, or None.

    What training and ``tppscan models eval`` rely on: at least one image, unique integer ids, the categories
    ``CATEGORIES`` (ids 1, 2: training reads ``category_id - 1`` as the class), and annotations on listed
    images and categories with finite boxes of non-negative size. Left unchecked these gave TypeErrors,
    pycocotools exceptions, or an exit 0 with pycocotools' "no data" mAP of -1.
    """
    parts = [coco["images"], coco["annotations"], coco["categories"]]
    for name, part in zip(("images", "annotations", "categories"), parts, strict=True):
        if not isinstance(part, list) or not all(isinstance(x, dict) for x in part):
            return f"{name!r} must be a list of objects, got {_short(part)}"
    images, annotations, categories = parts
    if not images:
        return "'images' is empty; a dataset needs at least one frame"
    want = [{"id": k + 1, "name": n} for k, n in enumerate(CATEGORIES)]
    if [{"id": c.get("id"), "name": c.get("name")} for c in categories] != want:
        return f"'categories' must be {want}, got {_short(categories)}"
    for k, im in enumerate(images):
        if not _is_int(im.get("id")) or not isinstance(im.get("file_name"), str):
            return f"images[{k}] needs an integer 'id' and a 'file_name' string, got {_short(im)}"
    image_ids = {im["id"] for im in images}
    if len(image_ids) < len(images):
        return "'images' repeats an id"
    for k, a in enumerate(annotations):
        problem = _check_annotation(a, image_ids)
        if problem:
            return f"annotations[{k}]: {problem}"
    if len({a["id"] for a in annotations}) < len(annotations):
        return "'annotations' repeats an id"
    return None


def _check_annotation(a: dict[str, Any], image_ids: set[int]) -> str | None:
    """What is wrong with one COCO annotation (see ``check_coco``), or None."""
    if not _is_int(a.get("id")):  # pycocotools indexes annotations by id
        return f"'id' must be an integer, got {_short(a.get('id'))}"
    if a.get("image_id") not in image_ids or not _is_int(a.get("image_id")):
        return f"'image_id' is {_short(a.get('image_id'))}, not the id of an image in 'images'"
    if a.get("category_id") not in range(1, len(CATEGORIES) + 1) or not _is_int(a.get("category_id")):
        return (f"'category_id' is {_short(a.get('category_id'))}, not one of "
                f"{', '.join(f'{k + 1} ({n})' for k, n in enumerate(CATEGORIES))}")
    box = a.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)
            and box[2] >= 0 and box[3] >= 0):
        return f"'bbox' must be [x, y, width, height], finite numbers, width and height >= 0; got {_short(box)}"
    if a.get("iscrowd", 0) not in (0, 1):
        return f"'iscrowd' must be 0 or 1, got {_short(a.get('iscrowd'))}"
    if not (_is_number(a.get("area", 0)) and a.get("area", 0) >= 0):
        return f"'area' must be a finite number >= 0, got {_short(a.get('area'))}"
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v: Any) -> str:
    """``repr`` cut to one readable line (a damaged list can be megabytes)."""
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."

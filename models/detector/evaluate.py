"""Detector metrics on a ``tppscan dataset detection`` folder: COCO mAP through pycocotools.

The model runs through the appliance's own :class:`~appliance.vision.detector.Detector` (the same
preprocessing and detectNet post-processing as in a scan) at a low score threshold, so the precision-recall
curve is complete. Ignore regions of the dataset (COCO ``iscrowd``) count neither as misses nor as false
detections, as COCO defines them.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from appliance.vision.detector import Detector

EVAL_THRESHOLD = 0.05
MAX_DETS = (1, 10, 300)


def evaluate_detector(data_dir: Path, model: Path | None = None, limit: int | None = None,
                      threshold: float = EVAL_THRESHOLD, backend: str = "onnxruntime",
                      threads: int = 1, at_scale: bool = False) -> dict[str, Any]:
    """COCO mAP of a detector on a detection dataset.

    Parameters
    ----------
    data_dir : pathlib.Path
        Dataset folder (``annotations.coco.json`` and ``images/``), or a scan's folder or export
        (``export_coco.json`` and ``frames/``; ``models.data.detection.coco_path``).
    model : pathlib.Path, optional
        ONNX file (default: the shipped detector); ``labels.txt`` beside it.
    limit : int, optional
        Use only the first ``limit`` frames.
    threshold : float
        Score threshold of the detections scored.
    backend : str
        Detector backend.
    threads : int
        ONNX Runtime threads (one: the figure is per-core latency, and a shared machine stays usable).
    at_scale : bool
        Tell the detector each frame's pixel size (the dataset's ``um_per_px``), as a scan does: it reads frames
        at the scale it was trained on (``appliance.vision.detector.Detector.detect``).

    Returns
    -------
    dict
        ``map50`` (AP at IoU 0.5, all classes), ``map`` (AP at IoU 0.5:0.95), ``ap50`` per class, ``n`` (frames),
        ``objects`` per class, ``seconds_per_frame``.

    Raises
    ------
    OSError
        Not a detection dataset (``models.data.detection.check_coco``), no objects to score, a frame missing,
        or a model file that cannot be used.
    """
    from pycocotools.coco import COCO  # the training extra's: missing, the command fails before a frame is run
    from pycocotools.cocoeval import COCOeval

    from appliance.vision.detector import Detector

    coco_dict = _frames(data_dir, limit)
    det = Detector(model, backend=backend, threshold=threshold, threads=threads)
    results, t_run = _detections(det, coco_dict, data_dir, at_scale)
    out = _run_figures(coco_dict, results, t_run, at_scale, threshold, det.backend)
    if not results:
        out.update(map50=0.0, map=0.0, ap50={c["name"]: 0.0 for c in coco_dict["categories"]})
        return out
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        gt = COCO()
        gt.dataset = coco_dict
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = list(MAX_DETS)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out.update(_average_precisions(ev, coco_dict["categories"]))
    return out


def _frames(data_dir: Path, limit: int | None) -> dict[str, Any]:
    """The dataset's COCO dict, cut to its first ``limit`` frames; ``OSError`` when they hold no object."""
    from models.data.detection import coco_path, load_coco

    coco_dict = load_coco(data_dir)
    if limit:
        keep = {im["id"] for im in coco_dict["images"][:limit]}
        coco_dict["images"] = [im for im in coco_dict["images"] if im["id"] in keep]
        coco_dict["annotations"] = [a for a in coco_dict["annotations"] if a["image_id"] in keep]
    if not any(not a["iscrowd"] for a in coco_dict["annotations"]):
        # pycocotools scores a set without objects -1 ("no data"), which read as a mAP means nothing
        raise OSError(f"{coco_path(data_dir)}: no annotated objects in the "
                      f"{len(coco_dict['images'])} frames evaluated; mAP needs at least one")
    return coco_dict


def _detections(det: Detector, coco_dict: dict[str, Any], data_dir: Path,
                at_scale: bool) -> tuple[list[dict[str, Any]], float]:
    """The detector's boxes on every frame, as COCO results (its labels' categories only), and its seconds."""
    import time

    import cv2

    from models.data.detection import coco_path

    listed = coco_path(data_dir)  # named in the errors: the dataset's COCO file, or a scan export's
    name_to_cat = {c["name"]: c["id"] for c in coco_dict["categories"]}
    results = []
    t_run = 0.0
    for im in coco_dict["images"]:
        path = Path(data_dir) / im["file_name"]
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise OSError(f"{path}: missing or not an image (listed in {listed})")
        t0 = time.perf_counter()
        found = det.detect(img, _pixel_size(im, path, listed) if at_scale else None)
        t_run += time.perf_counter() - t0
        for d in found:
            if d.label not in name_to_cat:
                continue
            x1, y1, x2, y2 = d.box
            results.append({"image_id": im["id"], "category_id": name_to_cat[d.label],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": d.score})
    return results, t_run


def _run_figures(coco_dict: dict[str, Any], results: list[dict[str, Any]], t_run: float, at_scale: bool,
                 threshold: float, backend: str) -> dict[str, Any]:
    """The result's figures before the scoring: frames, time per frame, objects per class, detections."""
    n = len(coco_dict["images"])
    return {"n": n, "seconds_per_frame": round(t_run / max(n, 1), 5), "at_scale": at_scale,
            "objects": {c["name"]: sum(1 for a in coco_dict["annotations"]
                                       if a["category_id"] == c["id"] and not a["iscrowd"])
                        for c in coco_dict["categories"]},
            "detections": len(results), "threshold": threshold, "backend": backend}


def _average_precisions(ev: Any, categories: list[dict[str, Any]]) -> dict[str, Any]:
    """``map`` (IoU 0.5:0.95), ``map50`` and ``ap50`` per class of an evaluated, accumulated ``COCOeval``."""
    # precision[T, R, K, A, M]: IoU 0.5 is T=0, area 'all' A=0, the largest maxDets M=-1. (COCOeval.stats[0]
    # is read at 100 detections per image, which MAX_DETS does not list, so it is computed here.)
    prec = ev.eval["precision"]
    all_t = prec[:, :, :, 0, -1]
    out: dict[str, Any] = {"map": round(float(all_t[all_t > -1].mean()), 4) if (all_t > -1).any() else 0.0}
    out["map50"] = round(float(ev.stats[1]), 4)
    ap50 = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = prec[0, :, k, 0, -1]
        p = p[p > -1]
        name = next(c["name"] for c in categories if c["id"] == cat_id)
        ap50[name] = round(float(np.mean(p)), 4) if p.size else float("nan")
    out["ap50"] = ap50
    return out


def _pixel_size(image: dict[str, Any], path: Path, listed: Path) -> float:
    """The frame's pixel size at the sample from its COCO image record, or an error naming the frame."""
    from models.data.detection import EXPORT_COCO

    upp = image.get("um_per_px")
    if isinstance(upp, bool) or not isinstance(upp, (int, float)) or not 0.01 <= upp <= 100:
        raise OSError(f"{path}: its record in {listed.name} has no pixel size 'um_per_px' in [0.01, 100] "
                      f"(got {upp!r}), which --at-scale needs"
                      + ("; a scan's export from before the pixel size was written gets it from `tppscan results "
                         "export SCAN_DIR` run again" if listed.name == EXPORT_COCO else ""))
    return float(upp)

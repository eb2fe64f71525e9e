"""Training targets and losses of the detector (TTFNet's recipe: Gaussian heat, GIoU from many cells).

Each box puts an elliptical Gaussian (sigma = 0.54 x its side / 6) of its class into the heat map, peaking at 1
in the cell holding its anchor (the visible object's point nearest the box centre: the centre itself for a
compact object, a point on the fibre or on the visible part of a cut object otherwise); the cells under that
Gaussian all regress the box (weighted by the Gaussian, so a 200-cell box and a 1-cell speck weigh the same in
total times log of their area). Ignore regions (objects mostly outside the frame, specks under 10 µm) mask the
heat loss and train no box.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from models.detector.spec import STRIDE

ALPHA = 0.54


def encode(boxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray, out_hw: tuple[int, int],
           n_fg: int = 2, anchors: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Targets of one image.

    Parameters
    ----------
    boxes : (K, 4) ndarray of float
        ``x1, y1, x2, y2`` in network-input pixels.
    labels : (K,) ndarray of int
        Foreground class index, 0-based (0 structure, 1 debris).
    ignore : (K,) ndarray of bool
        Ignore regions.
    out_hw : (int, int)
        Output grid (h, w).
    n_fg : int
        Foreground classes.
    anchors : (K, 2) ndarray of float, optional
        Per box, the point of the visible object nearest its centre (network-input pixels): the heat peaks
        there instead of at the box centre, so a fibre's or a cut object's peak lies on the object itself.

    Returns
    -------
    dict
        ``heat`` (n_fg, h, w) float32 in [0, 1]; ``box`` (4, h, w) float32 target box per cell;
        ``weight`` (h, w) float32 regression weight; ``care`` (h, w) float32, 0 inside ignore regions.
    """
    h, w = out_hw
    heat = np.zeros((n_fg, h, w), np.float32)
    box = np.zeros((4, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    care = np.ones((h, w), np.float32)
    area_at = np.full((h, w), np.inf, np.float32)
    ys = (np.arange(h, dtype=np.float32) + 0.5) * STRIDE
    xs = (np.arange(w, dtype=np.float32) + 0.5) * STRIDE
    # Largest first, so a small object inside a large one's Gaussian owns its cells.
    order: Any = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) if len(boxes) else []
    for k in order:
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        if ignore[k]:
            c0, c1 = int(max(0, math.floor(x1 / STRIDE))), int(min(w, math.ceil(x2 / STRIDE)))
            r0, r1 = int(max(0, math.floor(y1 / STRIDE))), int(min(h, math.ceil(y2 / STRIDE)))
            care[r0:r1, c0:c1] = 0.0
            continue
        bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if anchors is not None:
            cx, cy = float(anchors[k][0]), float(anchors[k][1])
        ci, cj = min(h - 1, max(0, int(cy // STRIDE))), min(w - 1, max(0, int(cx // STRIDE)))
        sx, sy = max(ALPHA * bw / 6, 0.35 * STRIDE), max(ALPHA * bh / 6, 0.35 * STRIDE)
        # Centred on the peak cell's own centre, so that cell is exactly 1.
        px, py = (cj + 0.5) * STRIDE, (ci + 0.5) * STRIDE
        g = np.exp(-((xs[None, :] - px) ** 2) / (2 * sx * sx) - ((ys[:, None] - py) ** 2) / (2 * sy * sy))
        g[g < 0.05] = 0.0
        c = int(labels[k])
        np.maximum(heat[c], g, out=heat[c])
        heat[c, ci, cj] = 1.0
        g[ci, cj] = 1.0
        own = (g > 0) & (bw * bh <= area_at)
        if own.any():
            area_at[own] = bw * bh
            box[:, own] = np.array([x1, y1, x2, y2], np.float32)[:, None]
            weight[own] = g[own] * math.log(bw * bh + 2.0) / float(g[own].sum())
    return {"heat": heat, "box": box, "weight": weight, "care": care}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, care: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed and divided by the number of peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 1.0).float()
    neg = (1.0 - pos) * care.unsqueeze(1)
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    n = pos.sum().clamp(min=1.0)
    return (pos_loss.sum() + neg_loss.sum()) / n


def giou_loss(box_raw: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted GIoU loss of the cells' predicted boxes against their targets."""
    from models.detector.net import cell_centres, side_distances

    b, _, h, w = box_raw.shape
    cx, cy = (c[0, 0] for c in cell_centres(h, w))
    d = side_distances(box_raw)
    px1, py1, px2, py2 = cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]
    tx1, ty1, tx2, ty2 = target[:, 0], target[:, 1], target[:, 2], target[:, 3]
    m = weight > 0
    if not bool(m.any()):
        return box_raw.sum() * 0.0
    px1, py1, px2, py2 = px1[m], py1[m], px2[m], py2[m]
    tx1, ty1, tx2, ty2 = tx1[m], ty1[m], tx2[m], ty2[m]
    wgt = weight[m]
    inter = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0) * \
        (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(min=0)
    pa = (px2 - px1) * (py2 - py1)
    ta = (tx2 - tx1) * (ty2 - ty1)
    union = pa + ta - inter + 1e-6
    iou = inter / union
    enclose = (torch.max(px2, tx2) - torch.min(px1, tx1)) * (torch.max(py2, ty2) - torch.min(py1, ty1)) + 1e-6
    giou = iou - (enclose - union) / enclose
    return ((1 - giou) * wgt).sum() / wgt.sum().clamp(min=1e-6) * 5.0


def losses(heat_raw: torch.Tensor, box_raw: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Heat and box losses of a batch (targets stacked from :func:`encode`)."""
    return {"heat": focal_loss(heat_raw, t["heat"], t["care"]), "box": giou_loss(box_raw, t["box"], t["weight"])}


def flip_targets(t: dict[str, np.ndarray], width: float, height: float, horizontal: bool) -> dict[str, np.ndarray]:
    """Targets of the mirrored image (maps mirrored, target boxes' coordinates mirrored)."""
    ax = 2 if horizontal else 1
    out = {k: np.flip(v, axis=ax if v.ndim == 3 else ax - 1).copy() for k, v in t.items()}
    b = out["box"]
    nz = out["weight"] > 0
    if horizontal:
        x1, x2 = b[0].copy(), b[2].copy()
        b[0] = np.where(nz, width - x2, 0)
        b[2] = np.where(nz, width - x1, 0)
    else:
        y1, y2 = b[1].copy(), b[3].copy()
        b[1] = np.where(nz, height - y2, 0)
        b[3] = np.where(nz, height - y1, 0)
    return out


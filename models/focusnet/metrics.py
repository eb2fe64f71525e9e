"""Focus-net metrics: MAE, 41-class accuracy, within-one-class accuracy and sign accuracy (µm of defocus).

All headline figures are over crops whose true defocus lies within ±10 µm (the 41 classes' range); crops
beyond it are counted separately (``n_beyond``, and how often their sign is right).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Sign accuracy counts crops at least this far from focus (closer, the sign is a coin toss by definition).
SIGN_MIN_UM = 1.0
# Bands of |dz| for the sign-near-focus table, µm.
SIGN_BANDS_UM: tuple[tuple[float, float], ...] = ((0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 10.0))


def focus_metrics(dz_true: np.ndarray, dz_pred: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Focus metrics of predictions against true defocus.

    Parameters
    ----------
    dz_true, dz_pred : (N,) array of float
        True and regressed defocus, µm.
    probs : (N, 41) array of float
        Class probabilities (the 41 classes of :data:`appliance.vision.focusnet.DZ_CLASSES_UM`).

    Returns
    -------
    dict
        ``mae_um`` (regression), ``class_accuracy`` and ``within_one_accuracy`` (argmax class against the
        true class), ``sign_accuracy`` (regression sign where ``|dz| >= 1 µm``), ``n``; ``sign_by_band``,
        ``mae_class_um`` (MAE of the argmax class's centre), ``n_beyond`` and ``sign_accuracy_beyond``.

    Raises
    ------
    ValueError
        Shapes that do not match.
    """
    from appliance.vision.focusnet import DZ_CLASSES_UM, DZ_MAX_UM, N_CLASSES, dz_to_class

    t = np.asarray(dz_true, np.float64).ravel()
    p = np.asarray(dz_pred, np.float64).ravel()
    pr = np.asarray(probs, np.float64)
    if len(t) != len(p) or pr.shape != (len(t), N_CLASSES):
        raise ValueError(f"dz_true {t.shape}, dz_pred {p.shape} and probs {pr.shape} do not match "
                         f"(expected N, N and N x {N_CLASSES})")
    inside = np.abs(t) <= DZ_MAX_UM + 1e-9
    ti, pi, pri = t[inside], p[inside], pr[inside]
    n = int(inside.sum())
    k_true = dz_to_class(ti)
    k_pred = pri.argmax(axis=1) if n else np.zeros(0, np.int64)
    far = np.abs(ti) >= SIGN_MIN_UM
    out: dict[str, Any] = {
        "n": n,
        "mae_um": float(np.abs(pi - ti).mean()) if n else float("nan"),
        "class_accuracy": float((k_pred == k_true).mean()) if n else float("nan"),
        "within_one_accuracy": float((np.abs(k_pred - k_true) <= 1).mean()) if n else float("nan"),
        "sign_accuracy": float((np.sign(pi[far]) == np.sign(ti[far])).mean()) if far.any() else float("nan"),
        "n_sign": int(far.sum()),
        "mae_class_um": float(np.abs(DZ_CLASSES_UM[k_pred] - ti).mean()) if n else float("nan"),
        "p90_abs_error_um": float(np.percentile(np.abs(pi - ti), 90)) if n else float("nan"),
    }
    bands = {}
    for lo, hi in SIGN_BANDS_UM:
        m = (np.abs(ti) >= lo) & (np.abs(ti) < hi)
        hit = np.sign(pi[m]) == np.sign(ti[m])
        bands[f"{lo:g}-{hi:g}"] = {"n": int(m.sum()), "sign_accuracy": float(hit.mean()) if m.any() else None,
                                   "mae_um": float(np.abs(pi[m] - ti[m]).mean()) if m.any() else None}
    out["by_band"] = bands
    beyond = ~inside
    out["n_beyond"] = int(beyond.sum())
    out["sign_accuracy_beyond"] = (float((np.sign(p[beyond]) == np.sign(t[beyond])).mean())
                                   if beyond.any() else None)
    return out


def sign_by_group(dz_true: np.ndarray, dz_pred: np.ndarray, groups: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Sign accuracy per group (a structure type, say), over crops with ``SIGN_MIN_UM <= |dz| <= 10 µm``.

    The sign is what a single crop finds hardest, and it is not equally hard for every print: a solid block of
    phase shows which side of focus it is on where a thin wall looks alike either side. Per group: ``n``,
    ``sign_accuracy`` and the same above (``dz > 0``) and below focus (a net that answers one side for every
    crop of a group scores near 1 on one and near 0 on the other: a bias, not a cue).

    Raises
    ------
    ValueError
        Lengths that do not match.
    """
    from appliance.vision.focusnet import DZ_MAX_UM

    t = np.asarray(dz_true, np.float64).ravel()
    p = np.asarray(dz_pred, np.float64).ravel()
    g = np.asarray(list(groups), dtype=object)
    if not len(t) == len(p) == len(g):
        raise ValueError(f"dz_true ({len(t)}), dz_pred ({len(p)}) and groups ({len(g)}) must have the same length")
    use = (np.abs(t) >= SIGN_MIN_UM) & (np.abs(t) <= DZ_MAX_UM + 1e-9)
    hit = np.sign(p) == np.sign(t)

    def rate(m: np.ndarray) -> float | None:
        return float(hit[m].mean()) if m.any() else None

    out: dict[str, dict[str, Any]] = {}
    for name in sorted({str(x) for x in g[use]}):
        m = use & (g == name)
        out[name] = {"n": int(m.sum()), "sign_accuracy": rate(m), "sign_accuracy_above": rate(m & (t > 0)),
                     "sign_accuracy_below": rate(m & (t < 0))}
    return out


def evaluate(data_dir: Path, model: Path | None = None, num_threads: int = 2) -> dict[str, Any]:
    """Run a focus ``.tflite`` model on every crop of a ``tppscan dataset focus`` folder.

    Raises
    ------
    OSError
        Not a focus dataset, no crops or a bad label (``models.data.crops.check_rows``), or a model file that
        cannot be used.
    """
    from appliance.vision.focusnet import FocusNet
    from models.data.crops import defocus_labels, load_crops

    imgs, rows = load_crops(Path(data_dir), "focus")
    net = FocusNet(model, num_threads=num_threads, batch=64)
    pred = net.predict(imgs)
    dz = defocus_labels(rows)
    out = focus_metrics(dz, pred.defocus_um, pred.probs)
    if rows and all(r.get("type") for r in rows):
        out["sign_by_type"] = sign_by_group(dz, pred.defocus_um, [r["type"] for r in rows])
    out["model"] = str(net.model.path)
    return out


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def format_report(m: dict[str, Any]) -> str:
    """The metrics as text, with the sign accuracy by distance from focus."""
    lines = [f"n={m['n']} crops within ±10 µm: MAE {m['mae_um']:.3f} µm, 41-class accuracy {m['class_accuracy']:.3f}, "
             f"within one class {m['within_one_accuracy']:.3f}, sign (|dz| >= 1 µm) {m['sign_accuracy']:.3f}",
             "by |dz| band (µm): n, sign accuracy, MAE"]
    for band, v in m["by_band"].items():
        if v["n"]:
            lines.append(f"  {band:>7}: {v['n']:5d}  {v['sign_accuracy']:.3f}  {v['mae_um']:.3f}")
    if m.get("sign_by_type"):
        lines.append("sign by type (|dz| 1-10 µm): n, sign accuracy, above focus, below focus")
        for name, v in m["sign_by_type"].items():
            lines.append(f"  {name:>12}: {v['n']:5d}  {_fmt(v['sign_accuracy'])}  {_fmt(v['sign_accuracy_above'])}  "
                         f"{_fmt(v['sign_accuracy_below'])}")
    if m["n_beyond"]:
        lines.append(f"beyond ±10 µm: n={m['n_beyond']}, sign accuracy {m['sign_accuracy_beyond']:.3f}")
    return "\n".join(lines)

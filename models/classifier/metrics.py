"""Structure-classifier metrics: accuracy and the confusion matrix, on a dataset or on given labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def classifier_metrics(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class recall and the confusion matrix.

    Parameters
    ----------
    true, pred : sequence of str
        True and predicted class per crop (same length).
    labels : sequence of str
        Class order of the matrix.

    Returns
    -------
    dict
        ``accuracy``, ``n``, ``labels``, ``confusion`` (rows true, columns predicted, counts) and
        ``recall`` (per class; None for a class with no samples).

    Raises
    ------
    ValueError
        Lengths differ, or a label outside ``labels``.
    """
    if len(true) != len(pred):
        raise ValueError(f"true and pred must have the same length, got {len(true)} and {len(pred)}")
    idx = {c: k for k, c in enumerate(labels)}
    bad = sorted({c for c in list(true) + list(pred) if c not in idx})
    if bad:
        raise ValueError(f"labels {bad} are not among {list(labels)}")
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, pred, strict=True):
        cm[idx[t], idx[p]] += 1
    n = int(cm.sum())
    rows = cm.sum(axis=1)
    recall = {c: (float(cm[k, k] / rows[k]) if rows[k] else None) for k, c in enumerate(labels)}
    return {"accuracy": float(np.trace(cm) / n) if n else 0.0, "n": n, "labels": list(labels),
            "confusion": cm.tolist(), "recall": recall}


def evaluate(data_dir: Path, model: Path | None = None, num_threads: int = 2) -> dict[str, Any]:
    """Classify every crop of a ``tppscan dataset classifier`` folder with a ``.tflite`` model.

    Parameters
    ----------
    data_dir : Path
        The dataset.
    model : Path, optional
        The ``.tflite`` file (default: the shipped one; its ``labels.txt`` beside it).
    num_threads : int
        LiteRT threads.

    Raises
    ------
    OSError
        Not a classifier dataset, no crops or a class it does not know (``models.data.crops.check_rows``), or
        a model/labels file that cannot be used.
    """
    from appliance.vision.classifier import StructureClassifier
    from models.data.crops import load_crops

    imgs, rows = load_crops(Path(data_dir), "classifier")
    clf = StructureClassifier(model, num_threads=num_threads, batch=64)
    pred = clf.predict(imgs).labels
    out = classifier_metrics([r["class"] for r in rows], pred, clf.classes)
    out["model"] = str(clf.model.path)
    return out


def format_report(m: dict[str, Any]) -> str:
    """The metrics as text: accuracy and the confusion matrix with class names."""
    labels = m["labels"]
    w = max(len(c) for c in labels) + 1
    lines = [f"accuracy {m['accuracy']:.4f} over n={m['n']} crops", "confusion (rows true, columns predicted):",
             " " * w + "".join(f"{c[:8]:>9}" for c in labels)]
    for c, row in zip(labels, m["confusion"], strict=True):
        lines.append(f"{c:<{w}}" + "".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)

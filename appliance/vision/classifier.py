"""The structure classifier at run time: 64 x 64 grey crops -> structure type or ``debris``, through LiteRT.

The model (``models/classifier/classifier.tflite``, labels in ``labels.txt`` beside it) takes
``[N, 64, 64, 1]`` float32 grey scaled to [0, 1] and returns softmax probabilities over its labels; it
standardises each crop itself, so a dim or bright lamp does not matter. Crops come from
:func:`appliance.vision.crops.box_crop`, the same cut the training crops had.

>>> clf = StructureClassifier()                       # doctest: +SKIP
>>> result = clf.classify_boxes(frame, [(300, 200, 340, 260)])  # doctest: +SKIP
>>> result.labels[0], float(result.scores[0])         # doctest: +SKIP
('pentagon', 0.99)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.vision.crops import CROP_PX, box_crop
from appliance.vision.litert import LiteModel, ModelFileError, OutputSpec, read_labels

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "classifier"
DEFAULT_MODEL = MODEL_DIR / "classifier.tflite"
# Test-time flip averaging: the numbers of views StructureClassifier accepts, and the one it uses unless told.
VIEWS: tuple[int, ...] = (1, 2, 4)
DEFAULT_VIEWS = 1
# The labels the scan loop relies on: every structure type of the simulator, and debris.
REQUIRED_LABELS: frozenset[str] = frozenset({"woodpile", "microlens", "scaffold", "pentagon", "split_ring", "debris"})


@dataclass(frozen=True)
class Classification:
    """Per crop: the best label, its probability and the full distribution.

    Attributes
    ----------
    labels : list of str
        Best class per crop.
    scores : (N,) ndarray of float32
        Its probability.
    probs : (N, K) ndarray of float32
        Softmax over ``classes``.
    classes : tuple of str
        The model's labels, in output order.
    """

    labels: list[str]
    scores: np.ndarray
    probs: np.ndarray
    classes: tuple[str, ...]


def crops_to_batch(crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Crops as the models' input: ``[N, 64, 64, 1]`` float32 in [0, 1].

    Parameters
    ----------
    crops : (N, 64, 64) uint8, (N, 64, 64) / (N, 64, 64, 1) float in [0, 1], or a list of (64, 64) crops

    Raises
    ------
    ValueError
        Any other shape, or a float batch outside [0, 1].
    """
    x = np.stack([np.asarray(c) for c in crops]) if isinstance(crops, (list, tuple)) else np.asarray(crops)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (CROP_PX, CROP_PX):
        raise ValueError(f"crops must be N x {CROP_PX} x {CROP_PX} grey, got shape {x.shape}")
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / np.float32(255.0))[..., None]
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"crops must be uint8 or float in [0, 1], got dtype {x.dtype}")
    if x.size and (not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("float crops must be finite and in [0, 1]")
    return x.astype(np.float32)[..., None]


class StructureClassifier:
    """The structure classifier, loaded and checked once.

    Parameters
    ----------
    model_path : str or Path, optional
        The ``.tflite`` file (default: the shipped one).
    labels_path : str or Path, optional
        Its labels file (default: ``labels.txt`` beside the model).
    num_threads : int
        LiteRT threads, 1..16.
    batch : int
        Crops run at once, 1..1024.
    views : int
        Test-time flip averaging: the softmax is averaged over this many views of each crop, one of
        :data:`VIEWS` (1: the crop; 2: and its mirror image; 4: and its vertical flip and half-turn). Every
        label is invariant to these flips (the model trained with them); each view costs one more pass.

    Raises
    ------
    ModelFileError
        Missing or malformed model, or labels that do not match it (count, or a required class missing).
    ValueError
        ``views`` is not one of :data:`VIEWS`.
    """

    def __init__(self, model_path: str | Path | None = None, labels_path: str | Path | None = None,
                 num_threads: int = 1, batch: int = 16, views: int = DEFAULT_VIEWS) -> None:
        if views not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
        self.views = views
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        lpath = Path(labels_path) if labels_path is not None else path.with_name("labels.txt")
        labels = read_labels(lpath)
        self.model = LiteModel(path, (CROP_PX, CROP_PX, 1), [OutputSpec("probs", None)], num_threads, batch)
        k = self.model.output_size("probs")
        if k != len(labels):
            raise ModelFileError(f"{lpath}: {len(labels)} labels, but {path} gives {k} class probabilities per crop; "
                                 f"expected the labels file written with that model")
        missing = REQUIRED_LABELS - set(labels)
        if missing:
            raise ModelFileError(f"{lpath}: labels {labels} lack {sorted(missing)}; expected the five structure "
                                 f"types and debris")
        self.classes = tuple(labels)

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> Classification:
        """Classify crops (see :func:`crops_to_batch` for what is accepted)."""
        x = crops_to_batch(crops)
        probs = np.mean([self.model.run(np.ascontiguousarray(v))["probs"] for v in _flips(x, self.views)], axis=0)
        best = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
        return Classification([self.classes[i] for i in best], probs[np.arange(len(best)), best].astype(np.float32),
                               probs.astype(np.float32), self.classes)

    def classify_boxes(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> Classification:
        """Crop each detection box of a frame (:func:`box_crop`) and classify the crops in one batch."""
        crops = [box_crop(image, b) for b in boxes]
        if not crops:
            return self.predict(np.zeros((0, CROP_PX, CROP_PX), np.uint8))
        return self.predict(np.stack(crops))

    def classify_views(self, images: Sequence[np.ndarray], box: Sequence[float], flips: int = 4) -> dict[str, float]:
        """One distribution for one object seen in several frames (the same box in each), in one batch.

        Each frame's crop (:func:`box_crop`) is classified with its first ``flips`` flipped copies (as for
        ``views``: the crop, its mirror image, its vertical flip, its half-turn) and every view is pooled by
        :func:`pool_views`. Returns label -> probability; empty when ``images`` is.

        Raises
        ------
        ValueError
            ``flips`` is not one of :data:`VIEWS`.
        """
        if flips not in VIEWS:
            raise ValueError(f"flips must be one of {VIEWS}, got {flips!r}")
        if not len(images):
            return {}
        x = crops_to_batch(np.stack([box_crop(im, box) for im in images]))
        views = np.concatenate(_flips(x, flips))
        probs = self.model.run(np.ascontiguousarray(views))["probs"]
        return dict(zip(self.classes, (float(v) for v in pool_views(probs)), strict=True))


def _flips(x: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """A batch of crops and its first ``n`` - 1 flipped copies: mirror image, vertical flip, half-turn."""
    return (x, x[:, :, ::-1], x[:, ::-1, :], x[:, ::-1, ::-1])[:n]


def pool_views(probs: np.ndarray) -> np.ndarray:
    """Several views' softmax rows pooled into one: the renormalised geometric mean (mean log-probability).

    A label one view rules out (near 0) stays unlikely however sure another view is of it, where an
    arithmetic mean would let one confident view outvote the rest. Probabilities are floored at 1e-6 so a
    single view's 0 does not decide alone.

    Parameters
    ----------
    probs : (N, K) ndarray
        N >= 1 views' distributions over K labels.

    Returns
    -------
    (K,) ndarray of float64
        Sums to 1.

    Raises
    ------
    ValueError
        ``probs`` is not a non-empty 2-D array.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must be (N, K) with N >= 1, got shape {p.shape}")
    log = np.log(np.clip(p, 1e-6, 1.0)).mean(axis=0)
    e = np.exp(log - log.max())
    return e / e.sum()

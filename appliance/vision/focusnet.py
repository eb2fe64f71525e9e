"""The focus net at run time: grey crops -> signed defocus (µm), the 41-class distribution and a confidence.

The model (``models/focusnet/focusnet.tflite``) takes ``[N, 64, 64, 1]`` float32 grey in [0, 1], cut by
:func:`appliance.vision.crops.focus_crop` (a 48 µm patch at 0.75 µm per pixel), and has two outputs: the
signed defocus in µm (a regression, ``[N, 1]``) and softmax probabilities over the autofocus paper's
41 classes, -10..+10 µm in 0.5 µm steps (``[N, 41]``).

Sign convention: ``defocus_um = stage z - the object's focus z``. A positive value means the stage is too
high: move it down by ``defocus_um`` to focus.

``confidence`` is the class probability within ±1 µm of the regressed defocus (clipped to the class range):
near 1 when both heads agree and the distribution is sharp, low when the crop is ambiguous (empty glass, a
crop far outside ±10 µm, a structure the net has not seen).

>>> net = FocusNet()                                            # doctest: +SKIP
>>> p = net.predict(np.stack([focus_crop(frame, (320, 240), um_per_px=0.56)]))  # doctest: +SKIP
>>> float(p.defocus_um[0]), float(p.confidence[0])              # doctest: +SKIP
(2.4, 0.93)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.vision.classifier import crops_to_batch
from appliance.vision.crops import CROP_PX
from appliance.vision.litert import LiteModel, OutputSpec

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "focusnet"
DEFAULT_MODEL = MODEL_DIR / "focusnet.tflite"
# The autofocus paper's classes: -10..+10 µm in 0.5 µm steps.
DZ_STEP_UM = 0.5
DZ_MAX_UM = 10.0
DZ_CLASSES_UM: np.ndarray = np.round(np.arange(-DZ_MAX_UM, DZ_MAX_UM + DZ_STEP_UM / 2, DZ_STEP_UM), 3)
N_CLASSES = len(DZ_CLASSES_UM)  # 41
CONFIDENCE_BAND_UM = 1.0


@dataclass(frozen=True)
class FocusPrediction:
    """Per crop: defocus, class distribution and confidence.

    Attributes
    ----------
    defocus_um : (N,) ndarray of float32
        Signed defocus, µm (stage z - focus z), from the regression head.
    probs : (N, 41) ndarray of float32
        Probabilities of ``DZ_CLASSES_UM``.
    confidence : (N,) ndarray of float32
        Probability within ±1 µm of ``defocus_um``, in [0, 1].
    """

    defocus_um: np.ndarray
    probs: np.ndarray
    confidence: np.ndarray

    @property
    def class_um(self) -> np.ndarray:
        """The most probable class's defocus, µm, per crop."""
        return DZ_CLASSES_UM[self.probs.argmax(axis=1)].astype(np.float32) if len(self.probs) else np.zeros(0)


def dz_to_class(dz_um: np.ndarray | float) -> np.ndarray:
    """Index of the 41-class bin of each defocus (beyond ±10 µm: the end classes)."""
    k = np.rint((np.asarray(dz_um, dtype=np.float64) + DZ_MAX_UM) / DZ_STEP_UM)
    return np.clip(k, 0, N_CLASSES - 1).astype(np.int64)


def confidence(defocus_um: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Probability mass of the classes within ``CONFIDENCE_BAND_UM`` of each (clipped) regressed defocus."""
    d = np.clip(np.asarray(defocus_um, np.float64), -DZ_MAX_UM, DZ_MAX_UM)[:, None]
    near = np.abs(DZ_CLASSES_UM[None, :] - d) <= CONFIDENCE_BAND_UM + 1e-9
    return np.clip((probs * near).sum(axis=1), 0.0, 1.0).astype(np.float32)


class FocusNet:
    """The focus net, loaded and checked once.

    Parameters
    ----------
    model_path : str or Path, optional
        The ``.tflite`` file (default: the shipped one).
    num_threads : int
        LiteRT threads, 1..16.
    batch : int
        Crops run at once, 1..1024.

    Raises
    ------
    ModelFileError
        Missing or malformed model, or outputs other than ``[N, 1]`` and ``[N, 41]``.
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1, batch: int = 16) -> None:
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        self.model = LiteModel(path, (CROP_PX, CROP_PX, 1),
                               [OutputSpec("defocus_um", 1), OutputSpec("probs", N_CLASSES)], num_threads, batch)

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> FocusPrediction:
        """Defocus of each crop (uint8 or [0, 1] float; see :func:`appliance.vision.classifier.crops_to_batch`)."""
        out = self.model.run(crops_to_batch(crops))
        dz = out["defocus_um"][:, 0].astype(np.float32)
        probs = out["probs"].astype(np.float32)
        return FocusPrediction(dz, probs, confidence(dz, probs))

"""The detector on a Jetson: jetson-inference's ``detectNet`` (TensorRT), driven through its Python API.

Written against jetson-inference's documented API (``python/bindings/PyDetectNet.cpp``, ``docs/aux-image.md``)
and tested here against a fake that follows it (``tests/vision/fake_jetson``), since TensorRT cannot run on
this machine. What the real API insists on, and this adapter therefore does:

- the network is built from keyword arguments only (``model``, ``labels``, ``input_blob``, ``output_cvg``,
  ``output_bbox``, ``threshold``); never ``argv``, which would parse the host program's ``sys.argv``;
- construction failure raises a bare ``Exception("... detectNet failed to load network")``: it is turned into a
  :class:`~appliance.vision.detector.ModelError` naming the file;
- ``Detect`` wants an RGB(A) CUDA image; ``cudaFromNumpy`` copies a C-contiguous ``uint8`` (H, W, 3|4) array
  into one (a 2-D grey array becomes ``gray8``, which ``Detect`` rejects), so grey frames are repeated to RGB;
- ``Detect``'s default ``overlay="box,labels,conf"`` draws into the image: ``overlay="none"`` is passed;
- detections carry ``ClassID``, ``Confidence``, ``Left``, ``Top``, ``Right``, ``Bottom`` in input-image pixels,
  already thresholded, clustered, sorted by area and clamped by detectNet itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from appliance.vision.detector import (
    BOXES_NAME,
    INPUT_NAME,
    SCORES_NAME,
    Detection,
    ModelError,
    _onnx_input_hw,
    load_labels,
)


class JetsonRunner:
    """detectNet from ``jetson_inference`` with images from ``jetson_utils.cudaFromNumpy``."""

    name = "jetson"

    def __init__(self, model: Path, labels: Path, threshold: float) -> None:
        import jetson_inference
        import jetson_utils

        if not Path(model).is_file():
            raise ModelError(f"model file {model}: not found (expected a detectNet-style ONNX detector)")
        self.labels = load_labels(labels)
        self.input_hw = _onnx_input_hw(Path(model))
        self.n_classes = len(self.labels)
        self._utils = jetson_utils
        try:
            self.net = jetson_inference.detectNet(model=str(model), labels=str(labels), input_blob=INPUT_NAME,
                                                  output_cvg=SCORES_NAME, output_bbox=BOXES_NAME,
                                                  threshold=float(threshold))
        except Exception as exc:  # detectNet raises a plain Exception when TensorRT cannot build the engine
            raise ModelError(f"model file {model}: detectNet could not load it ({exc}); expected a "
                             f"detectNet-style ONNX detector with labels {labels}") from None

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Detections in a grey uint8 frame, in its pixels."""
        rgb = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
        img = self._utils.cudaFromNumpy(rgb)
        found: list[Any] = self.net.Detect(img, overlay="none")
        out = []
        for d in found:
            cid = int(d.ClassID)
            label = self.labels[cid] if 0 <= cid < len(self.labels) else str(cid)
            out.append(Detection(cid, label, float(d.Confidence),
                                 (float(d.Left), float(d.Top), float(d.Right), float(d.Bottom))))
        return out

"""An int8 variant of the detector: ONNX Runtime static quantization (QDQ, per-channel weights).

Calibrated on frames of a ``tppscan dataset detection`` folder (use the validation split, never the test split),
through the same preprocessing as the runtime. The decoding tail (sigmoid, peak extraction, box arithmetic) stays
float: only convolutions are quantized, so the output contract is unchanged. QuantizeLinear/DequantizeLinear pairs
are what TensorRT's ONNX parser reads as explicit int8.

``python -m models.detector.quantize MODEL.onnx CALIB_DIR OUT.onnx [--frames 64]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np


def calibration_inputs(data_dir: Path, input_hw: tuple[int, int], frames: int) -> list[np.ndarray]:
    """Preprocessed inputs of the first ``frames`` images of a detection dataset."""
    import cv2

    from appliance.vision.detector import preprocess
    from models.data.detection import load_coco

    out = []
    for im in load_coco(data_dir)["images"][:frames]:
        img = cv2.imread(str(Path(data_dir) / im["file_name"]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise OSError(f"{data_dir / im['file_name']}: missing or unreadable")
        out.append(preprocess(img, input_hw))
    return out


def quantize(model: Path, calib_dir: Path, out: Path, frames: int = 64) -> Path:
    """Write the int8 (QDQ) model; returns ``out``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from appliance.vision.detector import OrtRunner

    hw = OrtRunner(model).input_hw
    data = calibration_inputs(calib_dir, hw, frames)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(data)

        def get_next(self) -> dict[str, Any] | None:
            x = next(self.it, None)
            return None if x is None else {"input_0": x}

    quantize_static(str(model), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("calib", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--frames", type=int, default=64)
    a = p.parse_args(argv)
    quantize(a.model, a.calib, a.out, a.frames)
    print(f"wrote {a.out} ({a.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

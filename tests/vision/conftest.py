from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FAKE_JETSON = Path(__file__).parent / "fake_jetson"


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory) -> Path:
    """An untrained, narrow detector exported like the shipped one (fast; for plumbing tests)."""
    torch = pytest.importorskip("torch")
    from models.detector.export import export_onnx, write_labels
    from models.detector.net import DetectorNet

    torch.manual_seed(0)
    net = DetectorNet(width=4)
    # Spread the heat so an untrained net still produces detections above a low threshold.
    with torch.no_grad():
        net.heat.bias.fill_(-1.0)
    d = tmp_path_factory.mktemp("tiny_detector")
    export_onnx(net, d / "detector.onnx")
    write_labels(d / "labels.txt")
    return d / "detector.onnx"


@pytest.fixture(scope="session")
def sim_frame() -> np.ndarray:
    """A 640 x 480 frame of the virtual microscope with structures and debris in view."""
    from appliance.sim.microscope import VirtualMicroscope

    scope = VirtualMicroscope(seed=2)
    o = scope.slide.objects[0]
    with scope.stage, scope.camera:
        scope.stage.move_to_um(x=o.center_um[0], y=o.center_um[1], z=o.focus_z_um)
        return scope.camera.capture().image

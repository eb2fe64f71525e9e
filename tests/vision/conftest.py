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


def _lattice(frame: np.ndarray, x0: int, y0: int, side: int, cells: int, contrast: float) -> np.ndarray:
    """Thin walls (2 px) of a square lattice, ``contrast`` off the glass (a phase object in focus): texture,
    and no pixel 5 % darker than the glass."""
    import cv2

    walls = np.zeros(frame.shape, np.uint8)
    for k in range(cells + 1):
        p = k * side // cells
        cv2.line(walls, (x0 + p, y0), (x0 + p, y0 + side), 255, 2)
        cv2.line(walls, (x0, y0 + p), (x0 + side, y0 + p), 255, 2)
    return np.clip(np.rint(frame * (1 + contrast * (walls > 0))), 0, 255).astype(np.uint8)


@pytest.fixture
def draw_lattice():
    """``draw_lattice(frame, x0, y0, side, cells, contrast)``: a faint scaffold's walls drawn on ``frame``."""
    return _lattice


"""The shipped classifier on the 15 real frames of docs/img/seed-frames.png (a test, never training data).

The frames are a 5 x 3 grid of 256 x 192 tiles of one pentagon through focus. The pentagon's box below was
drawn by hand on the figure (it sits still in every tile); the classifier must name it ``pentagon`` in at
least 13 of the 15 tiles.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.vision.classifier import StructureClassifier

FRAMES = Path(__file__).resolve().parents[2] / "docs" / "img" / "seed-frames.png"
TILE_W, TILE_H = 256, 192
PENTAGON_BOX = (66, 72, 112, 118)  # xmin, ymin, xmax, ymax in each tile, by hand


def tiles() -> list[np.ndarray]:
    grid = cv2.imread(str(FRAMES), cv2.IMREAD_COLOR)
    assert grid is not None and grid.shape[:2] == (3 * TILE_H, 5 * TILE_W)
    return [grid[r * TILE_H:(r + 1) * TILE_H, c * TILE_W:(c + 1) * TILE_W] for r in range(3) for c in range(5)]


def test_shipped_classifier_names_the_real_pentagon():
    clf = StructureClassifier()
    result = [clf.classify_boxes(t, [PENTAGON_BOX]) for t in tiles()]
    labels = [r.labels[0] for r in result]
    assert sum(lb == "pentagon" for lb in labels) >= 13, labels

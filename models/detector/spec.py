"""The detector's fixed facts, importable without torch: classes, input size, output stride."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("BACKGROUND", "structure", "debris")
STRIDE = 4
# The seed's real frames are 256 x 192; 640 x 480 frames shrink 2.5x (the smallest labelled object, 10 µm,
# is still 3 px at 1.2 µm per frame pixel).
INPUT_W, INPUT_H = 256, 192

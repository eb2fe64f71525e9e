"""The detector's fixed facts, importable without torch: classes, input size, output stride."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("BACKGROUND", "structure", "debris")
STRIDE = 4
# 640 x 480 frames shrink 2x: the smallest labelled object (10 µm) is 4 px at 1.2 µm per frame pixel and a thin
# scratch keeps a pixel or two (256 x 192 lost 0.03 mAP@0.5 against this on the validation split, see the card).
INPUT_W, INPUT_H = 320, 240

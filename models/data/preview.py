"""A contact sheet of a detection dataset with its boxes, for the docs: ``python -m models.data.preview DIR OUT``.

Structures red, debris green, ignore regions blue; each tile is labelled with the frame's µm per pixel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from models.data.detection import load_coco


def contact_sheet(data_dir: Path, n: int = 8, cols: int = 4, tile_w: int = 320) -> np.ndarray:
    """``n`` frames spread evenly over a detection dataset (so over its slides), with their boxes, ``cols`` a row."""
    coco = load_coco(data_dir)
    tiles = []
    step = max(1, len(coco["images"]) // max(n, 1))
    for im in coco["images"][::step][:n]:
        img = cv2.imread(str(Path(data_dir) / im["file_name"]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise OSError(f"{data_dir / im['file_name']}: missing or unreadable")
        c = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        for a in coco["annotations"]:
            if a["image_id"] != im["id"]:
                continue
            x, y, w, h = a["bbox"]
            col = (255, 0, 0) if a["iscrowd"] else ((0, 0, 255) if a["category_id"] == 1 else (0, 170, 0))
            cv2.rectangle(c, (x, y), (x + w - 1, y + h - 1), col, 2 if not a["iscrowd"] else 1)
        s = tile_w / c.shape[1]
        c = cv2.resize(c, (tile_w, int(round(c.shape[0] * s))), interpolation=cv2.INTER_AREA)
        cv2.putText(c, f"{im['um_per_px']:.2f} um/px", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 220, 255), 1)
        tiles.append(c)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])


def main(argv: list[str] | None = None) -> int:
    """Command line: dataset folder, output PNG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=8)
    a = p.parse_args(argv)
    if not cv2.imwrite(str(a.out), contact_sheet(a.data, a.n)):
        print(f"cannot write {a.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

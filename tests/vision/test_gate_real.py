"""The candidate gate, with its defaults, finds the real pentagon of the seed authors' frames (issue 7).

The 15 tiles of ``docs/img/seed-frames.png`` are a TEST only: the gate's method and defaults were chosen on
the simulator. The pentagon's outline in each tile was drawn by hand (tests/vision/data). A tile passes
when one candidate covers >= 80 % of the outline's footprint without leaking into the glass (its area at most
1.5 x the footprint: the outline follows the soft edge's half-way line, the gate's blob its 5 % line, 3-4 px
further out at 1.4 µm/px, which makes it 10-30 % larger) and at most two other candidates are found. Checked
at the tiles' own size (1.4 µm/px) and enlarged to 640 x 480 (0.56 µm/px, the virtual microscope's default
scale).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import kernels as K
from appliance.vision.gate import GateParams, find_candidates, gate_frame

ROOT = Path(__file__).resolve().parents[2]
OUTLINE = json.loads((Path(__file__).parent / "data" / "seed_pentagon_outline.json").read_text())
#: the dark and texture evidence, as chosen; the faint evidence is checked on its own below
NO_FAINT = GateParams(faint_contrast=0)
TILE_W, TILE_H = 256, 192


def _tiles() -> list[np.ndarray]:
    img = cv2.imread(str(ROOT / "docs" / "img" / "seed-frames.png"), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (3 * TILE_H, 5 * TILE_W, 3)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # colour becomes grey once, at capture (docs/design.md §3)
    return [np.ascontiguousarray(grey[r * TILE_H:(r + 1) * TILE_H, c * TILE_W:(c + 1) * TILE_W])
            for r in range(3) for c in range(5)]


def _footprint(shape: tuple[int, int], poly: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(bool)


def score_tile(tile: np.ndarray, poly: np.ndarray, size: tuple[int, int] | None) -> tuple[float, float, int]:
    """(coverage of the footprint by the best candidate's pixels, their area / footprint, other candidates)."""
    um_per_px = OUTLINE["um_per_px"]
    if size is not None:
        f = size[0] / tile.shape[1]
        tile = cv2.resize(tile, size, interpolation=cv2.INTER_LINEAR)
        poly = (poly + 0.5) * f - 0.5  # pixel centres scale about the image's corner
        um_per_px /= f
    fp = _footprint(tile.shape, poly)
    mask = np.empty_like(tile)
    res, cands = gate_frame(tile, um_per_px, NO_FAINT, mask_out=mask)
    comps = K.connected_components(mask)
    label_of = {tuple(comps.stats[k].tolist()): k for k in range(1, comps.n_labels)}
    best, spill = 0.0, 0.0
    for c in cands:
        labels = [label_of[tuple(res.stats[r].tolist())] for r in c.rows]
        pixels = np.isin(comps.labels, labels)
        cover = float((pixels & fp).sum()) / float(fp.sum())
        if cover > best:
            best, spill = cover, float(pixels.sum()) / float(fp.sum())
    assert [c.box_px for c in find_candidates(tile, um_per_px, NO_FAINT)] == [c.box_px for c in cands]
    return best, spill, len(cands) - (best > 0)


@pytest.mark.parametrize("size", [None, (640, 480)], ids=["tile", "640x480"])
def test_gate_finds_the_real_pentagon(size: tuple[int, int] | None) -> None:
    tiles = _tiles()
    passed, report = 0, []
    for i, tile in enumerate(tiles):
        poly = np.array(OUTLINE["polygons"][str(i)], np.float64)
        cover, spill, others = score_tile(tile, poly, size)
        ok = cover >= 0.8 and spill <= 1.5 and others <= 2
        passed += ok
        report.append(f"tile {i}: cover {cover:.2f}, area/footprint {spill:.2f}, others {others}")
    assert passed >= 14, "\n".join(report)


def test_outline_is_the_dark_pentagon() -> None:
    """The hand-drawn outlines enclose the dark structure: the test data cannot be off target."""
    for i, tile in enumerate(_tiles()):
        fp = _footprint(tile.shape, np.array(OUTLINE["polygons"][str(i)], np.float64))
        bg = float(np.median(tile[~fp]))
        assert 1200 <= fp.sum() <= 1700
        assert np.median(tile[fp]) < 0.6 * bg
        ring = cv2.dilate(fp.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~fp
        assert np.median(tile[ring]) > 0.8 * bg  # outside the outline is glass again


def test_the_faint_evidence_adds_little_on_the_real_tiles() -> None:
    """The faint evidence (regions 2.5 % darker than the glass once smoothed) adds at most one candidate to a
    real tile, away from the print: the out-of-focus speck left of it (about 20 µm, 2-3 % darker than the glass;
    at 640 x 480 it is none), which is there to see."""
    for i, tile in enumerate(_tiles()):
        poly = np.array(OUTLINE["polygons"][str(i)], np.float64)
        for size in (None, (640, 480)):
            um_per_px, t = OUTLINE["um_per_px"], tile
            if size is not None:
                f = size[0] / tile.shape[1]
                t = cv2.resize(tile, size, interpolation=cv2.INTER_LINEAR)
                um_per_px, poly = um_per_px / f, (poly + 0.5) * f - 0.5
            fp = _footprint(t.shape, poly)
            before = {c.box_px for c in find_candidates(t, um_per_px, NO_FAINT)}
            extra = [c.box_px for c in find_candidates(t, um_per_px) if c.box_px not in before]
            assert len(extra) <= (1 if size is None else 0), (i, size, extra)
            for x, y, w, h in extra:
                assert not fp[y:y + h, x:x + w].any(), (i, extra)

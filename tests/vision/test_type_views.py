"""One object's type from several frames of it: the classifier's views pooled (appliance/vision/classifier.py)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.vision.classifier import StructureClassifier, pool_views
from appliance.vision.crops import box_crop


def test_pooling_is_the_mean_log_probability_renormalised():
    p = pool_views(np.array([[0.8, 0.2], [0.2, 0.8]]))
    np.testing.assert_allclose(p, [0.5, 0.5])
    # by hand: sqrt(0.9 * 0.3) against sqrt(0.1 * 0.7)
    a, b = np.sqrt(0.9 * 0.3), np.sqrt(0.1 * 0.7)
    np.testing.assert_allclose(pool_views([[0.9, 0.1], [0.3, 0.7]]), [a / (a + b), b / (a + b)])
    # one view that rules a label out outweighs one that is sure of it (an arithmetic mean would tie them)
    p = pool_views([[0.98, 0.01, 0.01], [1e-4, 0.5, 0.4999]])
    assert p.argmax() == 1
    np.testing.assert_allclose(pool_views([[0.3, 0.7]]), [0.3, 0.7])
    with pytest.raises(ValueError, match=r"probs must be \(N, K\) with N >= 1, got shape \(0, 3\)"):
        pool_views(np.zeros((0, 3)))


def test_the_views_of_several_frames_are_one_batch_pooled(sim_frame):
    clf = StructureClassifier()
    rng = np.random.default_rng(3)
    frames = [np.clip(sim_frame.astype(np.int16) + rng.integers(-20, 21, sim_frame.shape), 0, 255).astype(np.uint8)
              for _ in range(3)]
    box = (40, 30, 140, 120)
    crops = np.stack([box_crop(f, box) for f in frames])
    flips = (crops, crops[:, :, ::-1], crops[:, ::-1, :], crops[:, ::-1, ::-1])
    for n in (1, 4):
        rows = np.concatenate([clf.predict(np.ascontiguousarray(v)).probs for v in flips[:n]])
        got = clf.classify_views(frames, box, flips=n)
        assert list(got) == list(clf.classes)
        np.testing.assert_allclose(list(got.values()), pool_views(rows), atol=1e-5)
    # one frame, no flips: the frame's own distribution
    one = clf.classify_views(frames[:1], box, flips=1)
    np.testing.assert_allclose(list(one.values()), clf.classify_boxes(frames[0], [box]).probs[0], atol=1e-5)
    assert clf.classify_views([], box) == {}
    with pytest.raises(ValueError, match=r"flips must be one of \(1, 2, 4\), got 3"):
        clf.classify_views(frames, box, flips=3)

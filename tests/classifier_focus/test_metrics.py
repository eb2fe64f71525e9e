import numpy as np
import pytest

from models.classifier.metrics import classifier_metrics, format_report
from models.focusnet.metrics import focus_metrics, sign_by_group
from models.focusnet.metrics import format_report as focus_report


def test_classifier_metrics_by_hand():
    m = classifier_metrics(["a", "a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and m["n"] == 4
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert m["recall"] == {"a": 0.5, "b": 1.0, "c": 1.0}
    assert "accuracy 0.7500 over n=4" in format_report(m)
    with pytest.raises(ValueError, match=r"\['z'\]"):
        classifier_metrics(["a"], ["z"], ["a", "b"])
    with pytest.raises(ValueError, match="same length"):
        classifier_metrics(["a"], [], ["a"])


def test_focus_metrics_by_hand():
    true = np.array([-3.0, 0.2, 2.0, 5.0, 12.0])
    pred = np.array([-2.5, -0.1, -1.0, 5.2, 11.0])
    probs = np.zeros((5, 41))
    for i, k in enumerate([14, 20, 28, 30, 40]):  # -3.0, 0.0, +4.0, +5.0, +10.0 µm
        probs[i, k] = 1.0
    m = focus_metrics(true, pred, probs)
    assert m["n"] == 4 and m["n_beyond"] == 1 and m["sign_accuracy_beyond"] == 1.0
    assert m["mae_um"] == pytest.approx((0.5 + 0.3 + 3.0 + 0.2) / 4)
    assert m["class_accuracy"] == pytest.approx(3 / 4)        # 0.2 µm lies in class 0.0: right
    assert m["within_one_accuracy"] == pytest.approx(3 / 4)   # +4.0 for +2.0 is four classes off
    assert m["sign_accuracy"] == pytest.approx(2 / 3)         # -3, +2, +5 count; 0.2 is too close to focus
    assert m["by_band"]["1-2"]["n"] == 0 and m["by_band"]["2-3"]["sign_accuracy"] == 0.0
    with pytest.raises(ValueError, match="do not match"):
        focus_metrics(true, pred, probs[:3])


def test_sign_by_type_splits_above_and_below_focus():
    true = np.array([2.0, -2.0, 3.0, -3.0, 0.5, 11.0, 4.0])
    pred = np.array([1.0, 1.0, 2.0, -2.0, -1.0, 9.0, -4.0])
    groups = ["wall", "wall", "block", "block", "block", "block", "wall"]
    m = sign_by_group(true, pred, groups)
    # 0.5 µm is too close to focus and 11 µm outside the classes: neither counts.
    assert m["block"] == {"n": 2, "sign_accuracy": 1.0, "sign_accuracy_above": 1.0, "sign_accuracy_below": 1.0}
    assert m["wall"]["n"] == 3 and m["wall"]["sign_accuracy"] == pytest.approx(1 / 3)
    assert m["wall"]["sign_accuracy_above"] == 0.5 and m["wall"]["sign_accuracy_below"] == 0.0
    with pytest.raises(ValueError, match="same length"):
        sign_by_group(true, pred, groups[:2])
    probs = np.zeros((7, 41))
    probs[:, 20] = 1.0
    report = focus_report({**focus_metrics(true, pred, probs), "sign_by_type": m})
    assert "wall:     3  0.333  0.500  0.000" in report

"""Camera faults in a scan: timeouts, black and saturated frames, a camera that disappears.

A :class:`~tests.faults.faulty_camera.FaultyCamera` wraps the virtual microscope's camera and fails chosen
captures as the real drivers fail. The runner retries each failed capture (``faults.capture_retries``); a
field whose capture still fails is recorded in the ``field_error`` table, and the scan continues or stops as
the plan's ``faults`` section says. A rerun into the same folder retries the failed fields.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from appliance.results.store import ResultStore
from appliance.scan.capture import CheckedCamera, frame_fault
from appliance.scan.plan import FaultsPlan, FocusPlan, ImagingPlan, ScanPlan
from appliance.scan.runner import FinishReason
from appliance.scan.session import run_scan, scan_area, sim_microscope
from appliance.scan.testing import PlaneFocusMap, SimTruthFocuser, SimTruthVision
from tests.faults.conftest import scale
from tests.faults.faulty_camera import FaultyCamera
from tests.faults.scans import check_scan

SEED = 7
SLIDE = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 2, "debris_per_mm2": 3.0}
# without the flat field and the exposure step: the fault scripts count the loop's captures from the first, and
# the clean scan's records are compared with those of a scan whose flat field a fault stopped
PLAN = ScanPlan(name="camera-faults", focus=FocusPlan(stack_range_um=2.0, stack_step_um=1.0),
                faults=FaultsPlan(capture_retries=2, retry_wait_s=0.0),
                imaging=ImagingPlan(flat_field=False, auto_exposure=False))


def _scan(tmp, plan=PLAN, script=None, gone_from=None, calibration=None):
    """Scan the small slide through a FaultyCamera; returns (outcome, camera)."""
    scope = sim_microscope(SEED, {"slide": SLIDE})
    p = scope.slide.params
    with scope.stage, scope.camera:
        cam = FaultyCamera(scope.camera, script, gone_from)
        out = run_scan(scope.stage, cam, SimTruthVision(scope), SimTruthFocuser(scope), PlaneFocusMap(), plan,
                       tmp / "scan", tmp / "tppscan.db", scan_area(plan, (p.width_um, p.height_um)),
                       calibration=calibration, device_clock=scope.clock.now_s, truth=scope.slide.truth())
    return out, cam


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The scan with a working camera: its outcome, capture count, calibration and structures."""
    tmp = tmp_path_factory.mktemp("clean")
    out, cam = _scan(tmp)
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    with ResultStore(out.db_path) as st:
        from appliance.scan.calibration import Calibration

        cal = Calibration.from_mapping(st.scan(out.scan_id).config["calibration"])
        structures = sorted((o.cls, round(o.x_um), round(o.y_um)) for o in st.objects(out.scan_id, "structure"))
    assert structures, "no structure on the slide: the test would prove nothing"
    return out, cam.calls, cal, structures


def _structures(out):
    with ResultStore(out.db_path) as st:
        return sorted((o.cls, round(o.x_um), round(o.y_um)) for o in st.objects(out.scan_id, "structure"))


def test_frame_checks_tell_black_and_saturated_from_a_slide(clean):
    out, _, _, _ = clean
    scope = sim_microscope(SEED, {"slide": SLIDE})
    with scope.stage, scope.camera:
        good = scope.camera.capture()
        assert frame_fault(good) is None
        cam = FaultyCamera(scope.camera, {0: "black", 1: "saturated"})
        assert "black frame" in (frame_fault(cam.capture()) or "")
        assert "saturated frame" in (frame_fault(cam.capture()) or "")
        # three bad captures in a row with two retries: one error naming all three attempts
        checked = CheckedCamera(FaultyCamera(scope.camera, {0: "timeout", 1: "black", 2: "saturated"}), 2, 0.0)
        with pytest.raises(Exception, match="failed 3 times.*no frame within.*black frame.*saturated frame"):
            checked.capture()


def test_transient_faults_are_retried_and_change_nothing(tmp_path, clean):
    _, n_captures, cal, structures = clean
    rng = random.Random(120 + scale())
    # one capture in four fails, never three in a row (two retries cover it): timeouts, black, saturated
    script, k = {}, 0
    while k < n_captures:
        if rng.random() < 0.25:
            script[k] = rng.choice(("timeout", "black", "saturated"))
            k += 2  # the retry after a fault works
        else:
            k += 1
    out, cam = _scan(tmp_path, script=script, calibration=cal)
    print(f"\ntransient: {len(cam.injected)} faults in {cam.calls} captures "
          f"({', '.join(f'{cam.injected.count(f)} {f}' for f in sorted(set(cam.injected)))})")
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert len(cam.injected) >= 5 and set(cam.injected) == {"timeout", "black", "saturated"}
    assert out.status.captures_retried == len(cam.injected)
    assert out.summary["field_errors"] == [] and out.summary["fields_done"] == out.summary["fields_planned"]
    assert _structures(out) == structures
    problems, _ = check_scan(out.out_dir, out.db_path)
    assert not problems


def test_a_camera_gone_for_a_field_records_the_error_continues_and_a_rerun_fills_it(tmp_path, clean):
    _, _, cal, structures = clean
    # captures 3..8 fail: the third field's capture and its two retries, and the next field's too
    out, cam = _scan(tmp_path, script=dict.fromkeys(range(3, 9), "gone"), calibration=cal)
    assert out.status.reason is FinishReason.FAILED
    assert "2 field(s) failed" in out.status.error and "run again" in out.status.error
    s = out.summary
    assert s["fields_done"] == s["fields_planned"] - 2
    assert len({e["cell"] for e in s["field_errors"]}) == 2
    assert all("cannot open /dev/video0" in e["error"] and "failed 3 times" in e["error"] for e in s["field_errors"])
    problems, scans = check_scan(out.out_dir, out.db_path)
    assert not problems and scans[0].status == "failed"
    # the camera is back: the same command resumes and images only the two failed fields
    out2, cam2 = _scan(tmp_path, calibration=cal)
    assert out2.scan_id == out.scan_id and out2.status.reason is FinishReason.COMPLETED
    assert out2.summary["fields_done"] == out2.summary["fields_planned"] and out2.summary["field_errors"] == []
    assert _structures(out2) == structures
    problems, scans = check_scan(out2.out_dir, out2.db_path)
    assert not problems and len(scans[0].field_errors) == 2  # the history stays


def test_on_field_error_stop_ends_the_scan_at_the_failed_field(tmp_path, clean):
    _, _, cal, _ = clean
    plan = replace(PLAN, faults=replace(PLAN.faults, on_field_error="stop"))
    out, _ = _scan(tmp_path, plan=plan, script=dict.fromkeys(range(4, 7), "timeout"), calibration=cal)
    assert out.status.reason is FinishReason.FAILED
    assert "failed (faults.on_field_error: stop)" in out.status.error and "no frame within" in out.status.error
    assert out.summary["fields_done"] < out.summary["fields_planned"]
    assert len(out.summary["field_errors"]) == 1
    problems, _ = check_scan(out.out_dir, out.db_path)
    assert not problems


def test_a_camera_gone_for_good_stops_after_max_failed_in_a_row(tmp_path, clean):
    _, _, cal, _ = clean
    out, cam = _scan(tmp_path, gone_from=5, calibration=cal)
    assert out.status.reason is FinishReason.FAILED
    assert "3 fields in a row failed" in out.status.error
    assert len(out.summary["field_errors"]) == 3
    assert cam.calls <= 5 + 3 * 3  # three fields of three attempts, not the whole slide
    problems, _ = check_scan(out.out_dir, out.db_path)
    assert not problems


@pytest.mark.parametrize("faults, words", [
    ({"on_field_error": "ignore"}, ["faults.on_field_error", "continue, stop", "'ignore'"]),
    ({"capture_retries": -1}, ["faults.capture_retries", "[0, 10]", "-1"]),
    ({"max_failed_in_a_row": 0}, ["faults.max_failed_in_a_row", "0"]),
    ({"min_free_mb": "lots"}, ["faults.min_free_mb", "'lots'"]),
    ({"retry_wait_s": float("nan")}, ["faults.retry_wait_s", "nan"]),
    ({"retries": 3}, ["faults.retries", "unknown key", "capture_retries"]),
])
def test_bad_faults_settings_name_the_key_and_the_range(faults, words):
    with pytest.raises(ValueError) as err:
        ScanPlan.from_mapping({"faults": faults})
    for w in words:
        assert w in str(err.value)


def test_a_camera_failing_while_the_flat_field_is_measured_leaves_the_frames_uncorrected(tmp_path, clean):
    # the flat field's first frame and both its retries fail: before, CaptureFailed ended the scan before its
    # first field; now the scan runs uncorrected, says so, and finds what the clean scan found
    import json

    plan = replace(PLAN, imaging=replace(PLAN.imaging, flat_field=True))
    out, cam = _scan(tmp_path, plan=plan, script=dict.fromkeys(range(3), "timeout"))
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert cam.injected == ["timeout"] * 3
    decided = json.loads((out.out_dir / "scan.json").read_text())["flat_field"]
    assert decided["applied"] is False and decided["note"].startswith("not measured: capture failed 3 times")
    assert _structures(out) == clean[3]

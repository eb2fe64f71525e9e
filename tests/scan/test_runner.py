import json
import threading
from dataclasses import replace

from appliance.results.store import ResultStore
from appliance.scan.events import FieldDone, ScanFinished
from appliance.scan.runner import FieldStep, FinishReason, ScanState
from appliance.scan.testing import SimTruthFocuser

from .conftest import scan_small, small_plan

# the control tests (failure, cancel, pause, service) need only a few fields and one structure
TINY = {"width_um": 1000.0, "height_um": 1000.0, "n_structures": 1}

SUMMARY_KEYS = ("recall", "type_accuracy", "debris_as_structure", "position_error_um_median", "duplicates",
                "structures_truth", "structures_found")


def test_small_slide_scan_meets_the_bars(small_scan):
    out, scope = small_scan
    s = json.loads((out.out_dir / "summary.json").read_text())
    for k in SUMMARY_KEYS:
        assert k in s
    assert s["status"] == "finished" and s["fields_done"] == s["fields_planned"]
    assert s["structures_truth"] == 4
    assert s["recall"] >= 0.99
    assert s["type_accuracy"] >= 0.98
    assert s["debris_as_structure"] <= 0.01
    assert s["position_error_um_median"] <= 5.0
    assert s["duplicates"] == 0
    assert s["structures_found"] == s["structures_truth"]


def test_every_structure_has_its_files(small_scan):
    out, _ = small_scan
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    assert objs
    for o in objs:
        for rel in (o.crop_path, o.stack_path, o.height_map_path, o.plot_path, o.frame_path):
            assert rel and (out.out_dir / rel).is_file()


def test_a_structure_is_recorded_at_its_stacks_focus_and_the_autofocus_is_kept(small_scan):
    out, _ = small_scan
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    for o in objs:
        e = o.extra or {}
        read = e["height_focus_z_um"]  # the reconstruction's reading of the stack, where it used one
        # the ground-truth focuser double reads no stack (no ``read_stack``): a pair of lobes, else the autofocus's
        assert o.z_um == (read if read is not None and o.cls != "microlens" else e["autofocus_z_um"])
        assert abs(e["autofocus_z_um"] - e["true_position_um"][2]) < 1.0  # where the stage stood, focused
    s = out.summary
    assert s["focus_within_1um"] is not None and s["autofocus_within_1um"] is not None
    assert 0.0 <= s["focus_error_um_median"] <= s["focus_error_um_p95"]


class _LearnedFocuser(SimTruthFocuser):
    """The truth's focus, said to be the learned reader's for a structure, read 0.25 µm above where the stage stood
    (as a servo's whole degree leaves it); its stack readings 1.5 µm off."""

    def __init__(self, scope):
        super().__init__(scope)
        self.stack_reads = 0

    def focus(self, stage, camera, z_guess_um, range_um, roi_px=None, cls=None):
        out = super().focus(stage, camera, z_guess_um, range_um, roi_px, cls)
        return replace(out, learned=cls is not None, reading_um=out.z_um + 0.25)

    def read_stack(self, planes, z_um, cls, near_um):
        self.stack_reads += 1
        return near_um + 1.5


def test_a_focus_the_learned_reader_read_is_recorded_as_it_is_not_read_again_from_the_stack(tmp_path):
    focusers = []

    def make(scope):
        focusers.append(_LearnedFocuser(scope))
        return focusers[0]

    out, _ = scan_small(tmp_path, focuser_factory=make)
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    with ResultStore(out.db_path) as st:
        objs = st.objects(out.scan_id, "structure")
    assert len(objs) == 4
    assert all(o.z_um == o.extra["autofocus_z_um"] + 0.25 for o in objs)  # the reading, not the degree
    assert focusers[0].stack_reads == 0


def test_overlapping_fields_record_each_structure_once(tmp_path):
    # 45 % overlap: every structure is seen from two to four fields
    out, _ = scan_small(tmp_path, seed=22, plan=small_plan(overlap=45, mode="spiral"))
    assert out.status.reason is FinishReason.COMPLETED, out.status.error
    assert out.summary["duplicates"] == 0
    assert out.summary["recall"] == 1.0
    assert out.summary["structures_found"] == out.summary["structures_truth"]


class _FailingVision:
    def __init__(self, inner, fail_at):
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def analyse(self, frame):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("detector crashed")
        return self.inner.analyse(frame)


def test_a_failing_step_ends_the_scan_cleanly(tmp_path):
    from appliance.scan.testing import SimTruthVision

    stops, done = [], []

    def hook(runner):
        orig = runner.stage.stop
        runner.stage.stop = lambda: (stops.append(1), orig())
        runner._emit = lambda e: done.append(e) if isinstance(e, FieldDone) else None

    out, _ = scan_small(tmp_path, vision_factory=lambda scope: _FailingVision(SimTruthVision(scope), fail_at=6),
                        runner_hook=hook, slide=TINY)
    assert out.status.reason is FinishReason.FAILED and out.status.state is ScanState.FINISHED
    assert "detector crashed" in out.status.error
    assert stops == [1]  # the stage was stopped in finally
    with ResultStore(out.db_path) as st:
        scan = st.scan(out.scan_id)
        assert scan.status == "failed" and "detector crashed" in scan.finish_reason
        # the fields done before the failure stay committed; the one in flight is not
        assert len(st.fields(out.scan_id)) == len(done) >= 1
        assert len(done) < out.summary["fields_planned"]
    assert (out.out_dir / "report.html").is_file()


def test_cancel_acts_between_steps_and_resume_finishes_the_scan(tmp_path):
    seen = []

    def hook(runner):
        def on_event(e):
            seen.append(e)
            if isinstance(e, FieldDone) and e.status.fields_done == 3:
                runner.cancel()
        runner._emit = on_event

    out, _ = scan_small(tmp_path, seed=23, runner_hook=hook, slide=TINY)
    assert out.status.reason is FinishReason.CANCELLED
    assert out.summary["fields_done"] == 3
    assert isinstance(seen[-1], ScanFinished)
    first_objects = out.summary["structures_recorded"] + out.summary["debris_recorded"]
    # same folder again: the unfinished scan resumes from its committed fields
    out2, _ = scan_small(tmp_path, seed=23, slide=TINY)
    assert out2.scan_id == out.scan_id
    s = out2.summary
    assert s["status"] == "finished" and s["fields_done"] == s["fields_planned"]
    assert s["duplicates"] == 0 and s["recall"] == 1.0
    with ResultStore(out2.db_path) as st:
        cells = [f.cell for f in st.fields(out2.scan_id)]
    assert len(cells) == len(set(cells))
    assert s["structures_recorded"] + s["debris_recorded"] >= first_objects


def test_pause_holds_between_steps_until_resumed(tmp_path):
    states, runners = [], []

    def hook(runner):
        runners.append(runner)

        def on_event(e):
            if isinstance(e, FieldDone) and e.status.fields_done == 1:
                runner.pause()
                threading.Timer(1.0, lambda: (states.append(runner.status()), runner.resume())).start()
        runner._emit = on_event

    out, _ = scan_small(tmp_path, seed=24, runner_hook=hook, slide=TINY)
    assert out.status.reason is FinishReason.COMPLETED
    assert states and states[0].state is ScanState.PAUSED and states[0].fields_done == 1
    assert states[0].step in (FieldStep.MOVE, None) or isinstance(states[0].step, FieldStep)
    # the ETA's pace leaves the pause out: the paused field's time is its wall time less the second it waited
    with ResultStore(out.db_path) as st:
        paused = st.fields(out.scan_id)[1]
    assert paused.wall_time_s > 1.0 and runners[0]._field_times[0][0] < paused.wall_time_s - 0.5


def test_service_control_pauses_and_stops_the_runner(tmp_path):
    from appliance.scan.session import service_hooks

    class Control:  # the service's ScanControl, as appliance/service/daemon.py defines it
        def __init__(self):
            self.reports, self.calls = [], 0

        def report(self, **kw):
            self.reports.append(kw)

        def checkpoint(self):
            self.calls += 1
            return self.calls >= 2  # stop after the second field

    control = Control()
    hook, on_event = service_hooks(control)
    out, _ = scan_small(tmp_path, seed=25, runner_hook=hook, on_event=on_event, slide=TINY)
    assert out.status.reason is FinishReason.CANCELLED
    assert out.summary["fields_done"] == 2
    assert control.reports[-1]["fields_done"] == 2 and control.reports[-1]["fields_total"] > 2


def test_ctrl_c_stops_the_stage_and_leaves_a_resumable_scan(tmp_path):
    stops = []

    def hook(runner):
        orig = runner.stage.stop
        runner.stage.stop = lambda: (stops.append(1), orig())

        def on_event(e):
            if isinstance(e, FieldDone) and e.status.fields_done == 2:
                raise KeyboardInterrupt

        runner._emit = on_event

    out, _ = scan_small(tmp_path, seed=26, runner_hook=hook, slide=TINY)
    assert out.status.reason is FinishReason.CANCELLED and out.status.error == "interrupted"
    assert stops == [1] and out.summary["fields_done"] == 2
    out2, _ = scan_small(tmp_path, seed=26, slide=TINY)
    assert out2.scan_id == out.scan_id and out2.summary["status"] == "finished"


class _ObjectsOnly:
    """Counts as candidates only the objects found (so the gate's reaction to sensor noise cannot grow the
    spiral: this test is about the order, not the gate)."""

    def __init__(self, inner):
        self.inner = inner

    def analyse(self, frame):
        from appliance.scan.protocols import VisionResult

        r = self.inner.analyse(frame)
        return VisionResult(len(r.detections), r.detections, r.timings_s)


def test_adaptive_spiral_scans_only_around_what_it_finds(tmp_path):
    from appliance.scan.testing import SimTruthVision

    out, _ = scan_small(tmp_path, seed=27, plan=small_plan(mode="adaptive_spiral"),
                        vision_factory=lambda scope: _ObjectsOnly(SimTruthVision(scope)),
                        slide={"width_um": 2500.0, "height_um": 2500.0, "n_structures": 1, "debris_per_mm2": 0.0})
    s = out.summary
    assert out.status.reason is FinishReason.COMPLETED
    assert 9 <= s["fields_done"] < s["fields_planned"]  # grew from the centre block, stopped where glass was bare

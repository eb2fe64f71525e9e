"""A scan whose fields were all done but whose outputs were cut off (a kill while its report was written).

The runner marks the scan ``finished`` before the summary, exports and report are written, and the summary's row
is written last. A scan stopped between the two was not resumed by the service (its rule was "not finished"), so
the next START began a new scan and the first one's report was never written, though its folder was kept.
"""

from __future__ import annotations

import json
from pathlib import Path

from appliance.cli import main
from appliance.results.store import ResultStore
from appliance.scan.session import OUTPUTS_LATER
from tests.faults.scans import PLAN_YAML, scan_argv


def _cut_while_writing_outputs(db: Path, out: Path) -> int:
    """Leave the scan as a kill between the runner's end and the summary's row leaves it."""
    with ResultStore(db) as store:
        (rec,) = store.scans()
        store.db.execute("UPDATE scan SET summary_json=NULL WHERE id=?", (rec.id,))
    for name in ("summary.json", "report.html"):
        (out / name).unlink()
    return rec.id


def test_a_scan_cut_off_while_writing_its_report_gets_it_without_moving(tmp_path: Path) -> None:
    plan, out = tmp_path / "plan.yaml", tmp_path / "scan"
    plan.write_text(PLAN_YAML)
    assert main(scan_argv(out, plan)) == 0
    db = tmp_path / "tppscan.db"  # beside the scan folder
    with ResultStore(db) as store:
        fields = len(store.fields(store.scans()[0].id))
    sid = _cut_while_writing_outputs(db, out)
    with ResultStore(db, read_only=True) as store:
        rec = store.scan(sid)
    assert rec.outputs_missing and rec.resumable  # the service's rule now resumes it
    # another slide under the stage now (seed 6): a resume's look for the first print would stop the scan, and its
    # report would never be written; finishing it moves nothing
    assert main(scan_argv(out, plan, seed=6)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "report.html").is_file() and summary["fields_done"] == fields
    assert OUTPUTS_LATER in summary["warnings"] and "resume_check" not in summary
    with ResultStore(db, read_only=True) as store:
        (rec,) = store.scans()
        assert rec.status == "finished" and rec.summary is not None and not rec.resumable

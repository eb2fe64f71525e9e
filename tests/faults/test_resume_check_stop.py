"""A stop or pause during a resumed scan's look for its first print (the resume check) is heard before each move.

The check looks through dozens of focus offsets about the print (minutes on a slow drive) and asked the service's
control nothing, unlike the preparation's other steps: ``stop`` and SIGTERM waited for its end.
"""

from __future__ import annotations

from typing import Any

import pytest

from appliance.results.store import ResultStore
from appliance.scan.events import ObjectRecorded
from appliance.scan.session import RESUME_CHECK_STEP, PreparationStopped
from appliance.scan.testing import scan_small_slide


def test_a_stop_in_the_resume_check_is_heard_between_its_moves(tmp_path: Any) -> None:
    runners: list[Any] = []

    def cancel_at_first_print(event: object) -> None:  # a stop once a print is recorded: the check has one to seek
        if isinstance(event, ObjectRecorded) and event.obj.kind == "structure":
            runners[0].cancel()

    out, _ = scan_small_slide(tmp_path, runner_hook=runners.append, on_event=cancel_at_first_print)
    assert out.summary["status"] == "cancelled" and out.summary["structures_recorded"] >= 1
    asked: list[str | None] = []

    def checkpoint(step: str | None) -> bool:  # stop after the check's third move
        asked.append(step)
        return RESUME_CHECK_STEP in asked and asked[asked.index(RESUME_CHECK_STEP):].count(None) >= 3

    with pytest.raises(PreparationStopped, match="stays resumable"):
        scan_small_slide(tmp_path, checkpoint=checkpoint)
    assert asked[asked.index(RESUME_CHECK_STEP):] == [RESUME_CHECK_STEP, None, None, None]  # no move after the stop
    with ResultStore(tmp_path / "tppscan.db") as st:
        (rec,) = st.scans()
    assert rec.resumable and rec.status == "running"  # interrupted, as a stop between fields leaves it

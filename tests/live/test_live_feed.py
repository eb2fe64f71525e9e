"""The hand-over between the scan and the live view: references, versions, the map in pieces."""

from __future__ import annotations

import numpy as np

from appliance.scan.protocols import Detection
from appliance.service.live_feed import LiveFeed


def test_frame_is_kept_by_reference_not_copied() -> None:
    feed = LiveFeed()
    img = np.zeros((48, 64), np.uint8)
    dets = (Detection((1, 2, 10, 12), "structure", "pentagon", 0.9),)
    feed.frame(img, dets)
    ref = feed.latest_frame()
    assert ref is not None and ref.image is img and ref.detections is dets
    assert ref.version == 1 and feed.snapshot()["frame_version"] == 1
    feed.frame(img.copy())
    assert feed.latest_frame().version == 2  # type: ignore[union-attr]


def test_status_merges_so_progress_and_area_live_side_by_side() -> None:
    feed = LiveFeed()
    feed.status(area_um=[0, 0, 10, 10])
    feed.status(state="scanning", fields_done=3)
    feed.status(state="paused")
    assert feed.snapshot()["status"] == {"state": "paused", "area_um": [0, 0, 10, 10], "fields_done": 3}


def test_snapshot_sends_only_the_new_map_entries_and_a_new_epoch_per_scan() -> None:
    feed = LiveFeed(map_points=4)
    for i in range(3):
        feed.field(i, 0, 1, 1, 90.0)
    feed.obj(0.5, 0.5, "structure", "pentagon")
    m = feed.snapshot()["map"]
    assert (m["fields_from"], len(m["fields"]), m["objects_from"], len(m["objects"])) == (0, 3, 0, 1)
    m = feed.snapshot(3, 1)["map"]
    assert (m["fields_from"], m["fields"], m["objects_from"], m["objects"]) == (3, [], 1, [])
    for i in range(3, 6):
        feed.field(i, 0, 1, 1, None)
    m = feed.snapshot(3, 1)["map"]
    assert m["fields_from"] == 3 and [f["x"] for f in m["fields"]] == [3, 4, 5]
    m = feed.snapshot(0, 0)["map"]  # only the newest map_points are held: the older are skipped, not invented
    assert m["fields_from"] == 2 and [f["x"] for f in m["fields"]] == [2, 3, 4, 5]
    epoch = m["epoch"]
    feed.reset_map()
    m = feed.snapshot(6, 1)["map"]
    assert m["epoch"] == epoch + 1 and m["fields"] == [] and m["fields_from"] == 0


def test_every_change_bumps_the_version() -> None:
    feed = LiveFeed()
    seen = [feed.version]
    for call in (lambda: feed.status(state="idle"), lambda: feed.field(0, 0, 1, 1, 1.0),
                 lambda: feed.obj(0, 0, "debris", None), lambda: feed.log_line("x"), feed.reset_map,
                 lambda: feed.frame(np.zeros((2, 2), np.uint8))):
        call()
        seen.append(feed.version)
    assert seen == sorted(set(seen))

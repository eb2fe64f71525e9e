"""The carriage journal: what a run leaves for a resume on a board without switches, and what a bad one does."""

from __future__ import annotations

import json
import logging

from appliance.hardware.stage.offset import OffsetStage
from appliance.scan.carriage import FILE_NAME, CarriageJournal, carry_over_from, read_journal
from appliance.sim.clock import VirtualClock
from appliance.sim.stage import SimStage, SimStageParams


def test_every_move_in_x_or_y_leaves_where_the_carriage_is_bound_and_a_resume_reads_it(tmp_path) -> None:
    with SimStage(VirtualClock(), SimStageParams(backlash_um=(0.0, 0.0, 0.0))) as inner:
        stage = OffsetStage(inner, (5.0, 0.0, 0.0))
        stage.journal = CarriageJournal(tmp_path / FILE_NAME)
        stage.move_to_um(100.0, 50.0)
        stage.focus_to_um(80.0)  # z alone: not written
        stage.move_to_um(x=300.0)
    entry = read_journal(tmp_path)
    assert entry == {"from_um": [105.0, 50.0, 80.0], "to_um": [305.0, None, None], "offset_um": [5.0, 0.0, 0.0]}
    assert not (tmp_path / (FILE_NAME + ".part")).exists()


def test_a_journal_that_cannot_be_read_or_written_is_said_and_changes_nothing(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / FILE_NAME).write_text("{not json")
    assert read_journal(tmp_path) is None and "cannot be read" in caplog.text
    (tmp_path / FILE_NAME).write_text(json.dumps([1, 2]))
    assert read_journal(tmp_path) is None and "holds no entry" in caplog.text
    assert read_journal(tmp_path / "nowhere") is None
    journal = CarriageJournal(tmp_path / "missing-folder" / FILE_NAME)
    journal({"from_um": None})
    journal({"from_um": None})   # said once
    assert caplog.text.count("was not written") == 1
    with SimStage(VirtualClock(), SimStageParams(no_switches=True)) as inner:
        stage = OffsetStage(inner, (0.0, 0.0, 0.0))
        assert not carry_over_from(stage, {"from_um": "here", "to_um": None, "offset_um": [0, 0, 0]})
        assert "not carried over" in caplog.text and stage.offset_um == (0.0, 0.0, 0.0)
        assert not carry_over_from(stage, None)
    with SimStage(VirtualClock(), SimStageParams()) as inner:  # a drive with switches keeps its own count
        stage = OffsetStage(inner, (0.0, 0.0, 0.0))
        assert not carry_over_from(stage, {"from_um": [500, 0, 90], "to_um": None, "offset_um": [0, 0, 0]})

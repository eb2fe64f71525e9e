"""Where a scan's carriage stood, kept in its folder, so a run that resumes on a board without switches finds it.

A board without homing switches (stock GRBL's ``$22=0``) counts from zero wherever it powered up, and an Arduino
restarts whenever its port opens: a scan resumed after the host crashed meets a board whose count starts again
where the carriage stood. Nothing on the board says where that was; the scan's folder does. On such a drive
(:attr:`~appliance.hardware.stage.base.Stage.counts_from_power_up`), before every move in x or y the scan's
:class:`~appliance.hardware.stage.offset.OffsetStage` hands its :meth:`journal_entry` (from where the last move
ended, to the move's target, and the scan's origin) to a :class:`CarriageJournal`, which replaces ``carriage.json``
with it. A resumed run reads it before it moves (:func:`read_journal`) and carries the scan's
coordinates over from there (:func:`carry_over_from`); the realignment that follows looks for the first print along
the move that was under way.

The file is replaced atomically (a reader sees the old entry or the new one) but not synced to disk: it is written
a few times a field, and a crash of the host (the case it is for) leaves the kernel's copy in place. After a power
cut it may be a move or two behind, within what the realignment searches.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.hardware.stage.base import StageError
from appliance.hardware.stage.offset import OffsetStage

_log = logging.getLogger(__name__)

#: The journal's name in the scan folder.
FILE_NAME = "carriage.json"


class CarriageJournal:
    """Writes each entry to ``path`` (through ``path.part`` and a rename); a failed write is logged once, not raised.

    The journal helps a resume; a disk that refuses it must not stop the scan that is running.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._failed = False

    def __call__(self, entry: Mapping[str, Any]) -> None:
        """Replace the journal's entry with ``entry``."""
        tmp = self.path.with_name(self.path.name + ".part")
        try:
            tmp.write_text(json.dumps(entry))
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failed:
                _log.warning("the carriage journal %s was not written (%s): a resume on a board without homing "
                             "will not know where its carriage stood", self.path, exc)
            self._failed = True


def read_journal(root: Path) -> dict[str, Any] | None:
    """The last entry in ``root``'s journal; None where there is none, or it cannot be read (said in the log)."""
    path = Path(root) / FILE_NAME
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _log.warning("the carriage journal %s cannot be read (%s): ignored", path, exc)
        return None
    if not isinstance(entry, dict):
        _log.warning("the carriage journal %s holds no entry (%r): ignored", path, entry)
        return None
    return entry


def carry_over_from(stage: OffsetStage, entry: Mapping[str, Any] | None) -> bool:
    """On a drive that counts from its power-up (:attr:`Stage.counts_from_power_up`), take up ``entry``'s place.

    Returns whether the coordinates were carried over (the caller then realigns with ``restarted``). A drive that
    homes, or no entry, changes nothing; an entry that is not one, or a stage that does not answer, is logged and
    changes nothing either: the resume goes on as before (its realignment then searches around the first print).
    """
    if entry is None or not stage.counts_from_power_up:
        return False
    try:
        stage.resume_from(entry)
        saved = stage.offset_um
        now = stage.carry_over()
    except (ValueError, StageError) as exc:
        _log.warning("the scan's coordinates were not carried over from where its carriage stood: %s", exc)
        return False
    moved = [round(a - b, 1) for a, b in zip(stage.offset_um, saved, strict=True)]
    _log.warning("the stage counts from where its board powered up (no homing): the scan goes on from where its "
                 "carriage stood, (%.1f, %.1f) um, its origin moved by %s um (0: the board kept its count)",
                 now.x_um, now.y_um, moved)
    return True

"""A micro-lens or a bubble, by the sign of its phase: two frames either side of its focus (docs/scan.md, step 6)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import StageLimitError
from appliance.scan.field_focus import FieldWork
from appliance.scan.protocols import Detection
from appliance.scan.runner_core import RunnerCore
from appliance.scan.verdicts import PHASE_SIGN, as_debris
from appliance.vision.decision import MICROLENS
from appliance.vision.phasesign import CONVERGING, DIVERGING, phase_sign, reading_plane

# the runner's own log lines: the service's log names the logger, and it is the runner's as before the split
_log = logging.getLogger("appliance.scan.runner")


class PhaseReading(RunnerCore):
    """Reads the sign of an object's phase at its focus (:meth:`_phase_verdict`)."""

    def _phase_verdict(self, w: FieldWork, det: Detection, frame: Frame,
                       focus_z_um: float) -> tuple[Detection, float | None]:
        """A micro-lens or a bubble, by the sign of its phase: two frames either side of its focus.

        ``det`` is the object's view in ``frame`` at ``focus_z_um`` (the stage stands there). A converging
        object (a polymer cap) is a micro-lens, a diverging one (air in resin) debris, both as sure verdicts;
        where the sign is unclear (an absorbing dust clump, dark on both sides; a collapsed or a very flat lens)
        ``det`` stands, so a micro-lens the models were sure of is only ever dropped for diverging. The planes
        lie ``PHASE_SIGN.step_um`` either side of where the object can have its mid-plane
        (:func:`~appliance.vision.phasesign.reading_plane`: its focus, held between the glass under it and a
        quarter of its width above, where the glass is known), both approached from below as every focus move
        is; for a deep focus a second pair ``PHASE_SIGN.far_step_um`` out may call it diverging too (there dust
        converges as much as a flat lens, so the far pair never calls a lens). A pair beyond the focus travel is
        not read; with none read ``det`` stays as it is. The stage ends at ``focus_z_um``. Returns the verdict
        and the sign that decided (None: not read), which the object's record keeps.
        """
        dof = self.field_focus.depth_of_field_um()
        x, y = self._stage_xy(det, frame)
        x0, y0, x1, y1 = self._box_um(det, frame)
        centre = reading_plane(focus_z_um, self.field_focus.glass_under(w, x, y), max(x1 - x0, y1 - y0, 1e-3))
        sign = self._sign_at(det, centre, PHASE_SIGN.step_um(dof), focus_z_um)
        far_um = PHASE_SIGN.far_step_um(dof)
        far = None if far_um is None else self._sign_at(det, centre, far_um, focus_z_um)
        if far is not None and PHASE_SIGN.call(far) == DIVERGING:
            return as_debris(det), far
        if sign is None:  # the far pair alone never calls a lens
            return det, far
        call = PHASE_SIGN.call(sign)
        _log.debug("phase sign %.3f (%s) of %s at %s, read about %.2f um (focus %.2f)", sign, call, det.cls,
                   det.box_px, centre, focus_z_um)
        if call == CONVERGING:
            return replace(det, kind="structure", cls=MICROLENS,
                           confidence=float(det.scores.get(MICROLENS, det.confidence)), recheck=False), sign
        if call == DIVERGING:
            return as_debris(det), sign
        return det, sign

    def _sign_at(self, det: Detection, centre_z_um: float, step_um: float, focus_z_um: float) -> float | None:
        """:func:`phase_sign` of ``det`` from frames ``step_um`` below and above ``centre_z_um``.

        None where either plane lies beyond the focus travel; the stage ends at ``focus_z_um`` either way.
        """
        try:
            self.stage.focus_to_um(centre_z_um - step_um)
            below = self.camera.capture().image
            self.stage.focus_to_um(centre_z_um + step_um)
            above = self.camera.capture().image
        except StageLimitError:
            return None
        finally:
            self.stage.focus_to_um(focus_z_um)
        return phase_sign(above, below, det.box_px)

    def _read_phase(self, w: FieldWork, det: Detection, frame: Frame, focus_z_um: float,
                    extra: dict[str, Any]) -> float | None:
        """The phase's sign of an object not read yet (:meth:`_phase_verdict`); ``extra`` gets it where read."""
        t = time.perf_counter()
        _, sign = self._phase_verdict(w, det, frame, focus_z_um)
        w.timings["focus_structure"] = w.timings.get("focus_structure", 0.0) + time.perf_counter() - t
        if sign is not None:
            extra["phase_sign"] = round(sign, 3)
        return sign

    def _diverges(self, w: FieldWork, det: Detection, frame: Frame, focus_z_um: float,
                  extra: dict[str, Any]) -> bool:
        """Whether a micro-lens about to be recorded unread diverges light (a bubble); ``extra`` gets the sign."""
        sign = self._read_phase(w, det, frame, focus_z_um, extra)
        return sign is not None and PHASE_SIGN.call(sign) == DIVERGING

"""A camera whose frames carry their stage position in a wrapped stage's coordinates.

The camera stamps each frame with the position of the stage as it is wired (the virtual camera reads the
virtual stage, a real camera its ``position_source``), while the scan moves and reads a
:class:`~appliance.hardware.stage.base.StageWrapper` over that stage: a focus drive mirrored, a slide's origin
moved. The scan compares the two, so a frame's position must be mapped the way the wrapper maps its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from appliance.hardware.camera.base import Camera, CameraWrapper, Frame
from appliance.hardware.stage.base import StageWrapper


class StampedCamera(CameraWrapper):
    """``inner``'s frames with their position mapped by ``stage.from_inner``; everything else is ``inner``'s."""

    def __init__(self, inner: Camera, stage: StageWrapper) -> None:
        super().__init__(inner)
        self.stage = stage

    def capture(self) -> Frame:
        """The inner camera's frame, its position in ``stage``'s coordinates."""
        f = self.inner.capture()
        return dataclasses.replace(f, position=self.stage.from_inner(f.position))

    def __getattr__(self, name: str) -> Any:
        # the virtual camera's um_per_px, optics and the like
        if name in ("inner", "stage"):
            raise AttributeError(name)
        return getattr(self.inner, name)

"""Cameras: one interface (:class:`Camera`), real implementations here, the simulated one in ``appliance.sim``."""

from appliance.hardware.camera.base import Camera, CameraError, Frame

__all__ = ["Camera", "CameraError", "Frame"]

"""What the scan runner needs of vision and focus, as small Protocols (the implementations live elsewhere).

The runner talks to the ``Stage`` and ``Camera`` interfaces and to these: a :class:`Vision` that turns a frame
into candidates and detections (the classical gate, then the detector and classifier: ``appliance/vision``),
a :class:`Focuser` that brings a region into focus (``appliance/focus``), and a :class:`FocusMapLike` that
predicts a field's z from the points focused so far. Tests plug in doubles that follow the same Protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import Stage

Box = tuple[int, int, int, int]  # xmin, ymin, xmax, ymax in pixels, exclusive max


def box_touches_edge(box_px: Box, size_px: tuple[int, int], margin: int = 2) -> bool:
    """Whether ``box_px`` reaches within ``margin`` pixels of a ``size_px`` frame's border (the object may be cut)."""
    x0, y0, x1, y1 = box_px
    return x0 <= margin or y0 <= margin or x1 >= size_px[0] - margin or y1 >= size_px[1] - margin


@dataclass(frozen=True)
class Detection:
    """One object found in a frame.

    Attributes
    ----------
    box_px : (int, int, int, int)
        ``xmin, ymin, xmax, ymax`` (exclusive max), pixels.
    kind : str
        ``"structure"`` or ``"debris"``.
    cls : str
        The structure type, or ``"debris"``.
    confidence : float
        Confidence of ``cls``, 0..1.
    scores : mapping of str to float
        Every class's score (the classifier's softmax), for the record.
    recheck : bool
        The vision is unsure of ``kind`` (its detector and classifier disagree): the runner centres the object
        and looks again before recording it, whatever ``kind`` says.
    """

    box_px: Box
    kind: str
    cls: str
    confidence: float
    scores: Mapping[str, float] = field(default_factory=dict)
    recheck: bool = False

    def touches_edge(self, size_px: tuple[int, int], margin: int = 2) -> bool:
        """Whether the box reaches within ``margin`` pixels of the frame's border (the object may be cut)."""
        return box_touches_edge(self.box_px, size_px, margin)


@dataclass(frozen=True)
class VisionResult:
    """What :meth:`Vision.analyse` found: the gate's candidate count and the detections (empty if gated out).

    ``timings_s`` holds wall seconds per stage (``gate``, ``detect``, ``classify``) for the report.
    ``candidate_boxes`` are the gate's candidates found by their dark pixels (``xmin, ymin, xmax, ymax``,
    exclusive max), where the vision reports them (empty where it does not): something the gate sees where
    neither model boxed anything, e.g. a print too large in the frame for the detector.
    """

    n_candidates: int
    detections: Sequence[Detection]
    timings_s: Mapping[str, float] = field(default_factory=dict)
    candidate_boxes: Sequence[Box] = ()


class Vision(Protocol):
    """Frame -> candidates -> detections with class and type."""

    def analyse(self, frame: Frame) -> VisionResult:
        """Gate the frame; when it has candidates, detect and classify them."""
        ...


class TypeReader(Protocol):
    """A :class:`Vision` that can also name one object's type from several frames of it (optional).

    The runner asks it whether a structure is one from the planes of its focus stack nearest focus, and which
    type from its plane at focus (``ScanRunner._type_from_views``); a vision without ``read_type`` leaves the
    type its sharp frame's.
    """

    def read_type(self, images: Sequence[np.ndarray], box: Box) -> Mapping[str, float]:
        """Label -> probability for the object in ``box`` of each grey frame, the frames' views pooled."""
        ...


class ImageReader(Protocol):
    """A :class:`Vision` that can also read an image no camera took (optional): one pasted from views.

    The runner shows it a region of the slide pasted from several views at the camera's scale
    (``appliance.scan.whole_look.WholeLook``: a print larger than the field whose every piece is dust to the models); a
    vision that reads only the camera's frames (the ground-truth double, which knows a frame by where it was
    taken) is never asked, and such prints stay as its frames call them.
    """

    def analyse_image(self, image: np.ndarray) -> VisionResult:
        """:meth:`Vision.analyse` for a grey image at the camera's scale, of any size."""
        ...


@dataclass(frozen=True)
class FocusOutcome:
    """Result of one autofocus: the z reached, frames spent, and whether the search trusted its peak.

    ``glass``: the z is the glass's own, read from the specks resting on it (a field's search), not an object's
    mid-plane. ``learned``: a structure's z was read from its search's frames by the learned reader
    (:mod:`appliance.focus.reader`), closer to its mid-plane than its stack's own readings are. ``reading_um``:
    where the frames read the focus when the stage could not stop there (a servo's whole degrees); NaN: at
    ``z_um``.
    """

    z_um: float
    frames: int
    ok: bool
    glass: bool = False
    learned: bool = False
    reading_um: float = math.nan

    @property
    def read_um(self) -> float:
        """The focus the frames read: ``reading_um`` where there is one, else the z reached."""
        return self.z_um if math.isnan(self.reading_um) else self.reading_um


class Focuser(Protocol):
    """Brings a region of the frame into focus and leaves the stage there."""

    def focus(self, stage: Stage, camera: Camera, z_guess_um: float, range_um: float,
              roi_px: Box | None = None, cls: str | None = None) -> FocusOutcome:
        """Search ``z_guess_um`` ± ``range_um`` for the sharpest ``roi_px`` (whole frame if None).

        ``cls`` is the structure's type when ``roi_px`` is a structure's box (its reference height above
        the glass then predicts its focus); None for a field.
        """
        ...


class FocusMapLike(Protocol):
    """A surface fitted to focused points as the scan goes."""

    def add(self, x_um: float, y_um: float, z_um: float) -> None:
        """Add a focused point."""
        ...

    def predict(self, x_um: float, y_um: float) -> tuple[float, float] | None:
        """Predicted z and its uncertainty (µm) at ``(x, y)``, or None before the map can say."""
        ...

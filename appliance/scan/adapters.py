"""The product vision and focus behind the runner's Protocols (``appliance/vision``, ``appliance/focus``).

- :class:`PipelineVision` wraps ``appliance.vision.pipeline.Pipeline`` (gate -> detector -> classifier, the
  detector skipped when the gate finds nothing); each box's verdict, structure (of a type) or debris, weighs
  the detector's call against the classifier's distribution (``appliance.vision.decision``).
- :class:`AutofocusFocuser` calls ``appliance.focus.autofocus`` on a detection's box, or for a field's own
  focus on the specks resting on the glass (the largest dark object in view when there are none), within the
  stage's focus travel; a structure of a type with a reference height above the glass (the print job's) is
  focused from the map of the glass.
- :class:`FocusMapAdapter` holds the scan's focus maps (``appliance.focus.FocusMap``: the glass as measured,
  the glass for focusing, the structure foci, every field's focus); its ``predict`` answers None while no map
  of the glass or of the fields has five points (``CHECKED_POINTS``).

The imports happen at construction, so a build without those packages fails with one clear message.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import Stage
from appliance.results.focuscurve import TUNED_DEPTH_OF_FIELD_UM, depth_of_field_scale
from appliance.scan.protocols import Box, Detection, FocusOutcome, VisionResult
from appliance.vision.decision import judge

_log = logging.getLogger(__name__)

# The depth of field the focus search's steps and ranges were tuned on (10x / NA 0.25 at 0.56 µm per pixel),
# and the snap that keeps that objective's search exactly as tuned: one definition, shared with the height
# maps' focus-curve reading.
#: The classical search's coarse step there, µm; it follows the depth of field, down to ``MIN_COARSE_UM``
#: (a servo focus moves in whole degrees, 1 µm on the default stage).
TUNED_COARSE_UM = 4.0
MIN_COARSE_UM = 1.0
#: A search walks at most this many coarse steps across its range: a wider range (a slide-finding search's
#: ±60 µm) is walked in longer steps. At 40x / NA 0.65 (1 µm steps) the search's 40 frames reached 40 µm from
#: its start, and a slide whose glass lay 42 µm above the stage, or 34 µm below it (a flat curve is walked
#: upwards first), was found nowhere: the scan stopped uncalibrated (held-out seeds 3551, 3553). At 10x the
#: tuned 4 µm step already crosses ±60 µm in 30.
RANGE_COARSE_STEPS = 30
#: The plan's default search half-range (15 µm) per tuned depth of field: a deeper focus is searched at
#: least this many depths of field either side.
MIN_RANGE_PER_DOF = 15.0 / TUNED_DEPTH_OF_FIELD_UM
#: A failed search's curve must rise this many times over its lowest frame before a range end it is still
#: high at is searched past (the classical search's faint-lobe ratio): flat noise never moves the range.
CUT_RISE = 1.25


def _box(b: tuple[float, float, float, float], size: tuple[int, int]) -> Box:
    w, h = size
    x0, y0 = max(0, int(math.floor(b[0]))), max(0, int(math.floor(b[1])))
    x1, y1 = min(w, int(math.ceil(b[2]))), min(h, int(math.ceil(b[3])))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def _loaded(key: str, load: Callable[[], Any]) -> Any:
    """``load()``; its error (an ``OSError`` naming the file) as a ``ModelFileError`` that names the key too."""
    from appliance.vision.litert import ModelFileError

    try:
        return load()
    except OSError as exc:
        raise ModelFileError(f"{key}: {exc}") from None


def configured_models(models: Any) -> tuple[Any, Any]:
    """The detector and classifier a config's ``models`` section names (the shipped ones where unset), loaded.

    The service, ``tppscan scan --config`` and ``tppscan config check`` load them through this one function, so
    a scan run by hand uses the models the appliance would, and a file the check passes is one the scan loads
    (a missing, truncated or wrong-shaped file, or labels that do not match: an ``OSError`` naming the key and
    the file).
    """
    from appliance.vision.classifier import StructureClassifier
    from appliance.vision.detector import DEFAULT_THRESHOLD, Detector

    detector = _loaded("models.detector", lambda: Detector(
        Path(models.detector) if models.detector else None, None, backend=models.detector_backend,
        threshold=models.detector_threshold or DEFAULT_THRESHOLD, threads=models.threads))
    return detector, _loaded("models.classifier",
                             lambda: StructureClassifier(models.classifier, num_threads=models.threads))


def shipped_models() -> tuple[Any, Any]:
    """The shipped detector and classifier, loaded as :func:`scan_pipeline` loads them when given none."""
    from appliance.vision.classifier import StructureClassifier
    from appliance.vision.detector import Detector

    return Detector(None, None), StructureClassifier()


def configured_focus_net(models: Any | None) -> Any:
    """The focus net ``models.focusnet`` names (the shipped one where unset, or with no ``models``), loaded.

    Raises
    ------
    OSError
        The focus net is not in this build, or its file is missing or not a focus net (naming the key and file).
    """
    try:
        from appliance.vision.focusnet import FocusNet  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise OSError("the focus net (appliance/vision/focusnet.py) is not in this build") from None
    path = getattr(models, "focusnet", None)
    return _loaded("models.focusnet", lambda: FocusNet(Path(path) if path else None, num_threads=1))


def scan_pipeline(um_per_px: float, detector: Any | None = None, classifier: Any | None = None) -> Any:
    """The ``appliance.vision`` pipeline as a scan runs it, from loaded models or the shipped ones.

    A scan knows its pixel size from the calibration (the detector reads coarse frames in finer tiles), skips
    the models on frames the gate finds empty, and types the dark candidates the detector left out. The CLI's
    scans and the service's use this one recipe.
    """
    try:
        from appliance.vision.classifier import StructureClassifier
        from appliance.vision.detector import Detector
        from appliance.vision.pipeline import Pipeline
    except ImportError as exc:
        raise ValueError(f"the vision pipeline (appliance/vision) is not installed in this build ({exc})") from None
    return Pipeline(Detector(None, None) if detector is None else detector,
                    StructureClassifier() if classifier is None else classifier, um_per_px=um_per_px,
                    skip_empty=True, type_uncovered=True, scale_known=True)


def focus_estimator(strategy: str, um_per_px: float, net: Any | None = None, models: Any | None = None) -> Any | None:
    """The focus net for a strategy that reads one frame's defocus (``neural``), or None for the others.

    ``net``: a focus net loaded before (``FocusNetEstimator.net``); else the one ``models.focusnet`` names (a
    config's ``models`` section: :func:`configured_focus_net`), the shipped one without it.

    Raises
    ------
    ValueError
        The focus net cannot be loaded (its model file missing or broken), naming the strategies that need none.
    """
    if strategy != "neural":
        return None
    from appliance.focus.netadapter import FocusNetEstimator

    try:
        return FocusNetEstimator(um_per_px, configured_focus_net(models) if net is None else net)
    except OSError as exc:
        raise ValueError(f"focus.strategy neural: {exc}; use classical, sweep or map") from None


class PipelineVision:
    """``appliance.vision`` as the runner's :class:`~appliance.scan.protocols.Vision`.

    Parameters
    ----------
    um_per_px : float
        Pixel size at the sample (from the calibration), for the gate's size limits.
    pipeline : object, optional
        A loaded ``Pipeline``; by default the shipped detector and classifier are loaded.
    rule : DecisionRule, optional
        How the detector's and the classifier's evidence are weighed (``appliance.vision.decision``).
    """

    name = "appliance.vision"

    def __init__(self, um_per_px: float, pipeline: Any | None = None, rule: Any | None = None) -> None:
        self.pipeline = scan_pipeline(um_per_px) if pipeline is None else pipeline
        self.rule = rule
        self.um_per_px = float(um_per_px)

    def analyse(self, frame: Frame) -> VisionResult:
        """Gate, detect, classify one frame."""
        return self.analyse_image(frame.image)

    def analyse_image(self, image: np.ndarray) -> VisionResult:
        """Gate, detect, classify a grey image at the camera's scale: a frame, or views pasted into one."""
        t = time.perf_counter()
        r = self.pipeline.run(image)
        dt = time.perf_counter() - t
        size = (image.shape[1], image.shape[0])
        dets = []
        for _, e, v in judge([o.evidence for o in r.objects], self.um_per_px, self.rule):
            if not e.detector and v.kind != "structure":  # a candidate the detector left out, and no print
                continue
            if v.kind == "structure" and not v.cls:  # no classifier: a structure of unknown type is not recorded
                v = replace(v, kind="debris", cls="debris")
            scores = {**{c: round(float(p), 6) for c, p in e.probs.items()},
                      **{f"detector_{c}": float(s) for c, s in e.detector.items()}}
            dets.append(Detection(_box(e.box, size), v.kind, v.cls, v.confidence, scores, recheck=not v.agree))
        dark = tuple((x, y, x + bw, y + bh) for x, y, bw, bh in r.dark_boxes)
        return VisionResult(r.gate_candidates, tuple(dets), {"vision": dt}, dark)

    def read_type(self, images: Sequence[Any], box: Box) -> Mapping[str, float]:
        """The classifier's distribution for one object from several frames of it (one batch, views pooled).

        ``images`` are grey frames in which the object lies in ``box`` (the focus stack's planes: the stage
        does not move in x, y between them). Empty when the pipeline has no classifier.
        """
        clf = getattr(self.pipeline, "classifier", None)
        if clf is None or not len(images):
            return {}
        return dict(clf.classify_views(images, box))


#: How far a stack's symmetry reading may lie from the autofocus's z and still be the structure's focus, µm at
#: 10x / NA 0.25 (:meth:`AutofocusFocuser.read_stack`; chosen on development slides 100-111: 2 µm kept every
#: gain and cut the reading's gross errors, 3-4 µm kept a few of them).
STACK_READ_REACH_UM = 2.0


class AutofocusFocuser:
    """``appliance.focus.autofocus`` as the runner's :class:`~appliance.scan.protocols.Focuser`.

    A field's own focus (no box, no type) is the glass's: the ``specks`` score mode reads the focus curve of
    the small specks resting on it, clear of fibres, bubbles and prints, whose mid-planes stand up to 10 µm
    above it (docs/autofocus.md, "A field's focus: the glass under specks"). With no speck whose curve peaks
    in range, the field is focused on the largest dark object as before, and the map is told
    (:meth:`FocusMapAdapter.not_glass`) that this focus is not the glass.

    A structure whose type has a reference height (``reference_heights``: the plan's print job, or the
    virtual microscope's catalogue) is focused from the map of the glass: its search starts at the glass
    there plus that height, the ``map`` strategy predicts from it, and a focus found with a height the print
    job states (known to better than ``GLASS_PRIOR_SIGMA_UM``) adds a point of the glass to the map it
    focuses with. A structure of a type without one is focused with the map of structure foci, the previous
    behaviour, and the log says so once per type.

    Parameters
    ----------
    strategy : str
        ``sweep``, ``classical``, ``neural`` or ``map`` (see docs/autofocus.md).
    z_travel_um : (float, float)
        The stage's focus travel; searches never leave it.
    focus_map : FocusMapAdapter, optional
        The scan's maps; needed by the ``map`` strategy and by the reference heights.
    estimator : object, optional
        The focus net (a ``DefocusEstimator``) for ``neural`` and ``map``.
    now_s : callable, optional
        The device clock (the simulator's virtual clock).
    reference_heights : mapping of str to ReferenceHeight, optional
        Each structure type's focus reference height above the glass
        (``appliance.focus.reference.reference_heights``); None or empty: every structure is focused with
        the map of structure foci.
    reading_bias : bool
        Take the classical reading's per-type bias off a structure's focus (``appliance.focus.typebias``).
        That bias was measured on the virtual microscope's default optics, so only a virtual device turns it
        on; a real microscope's bias is its own and is not known here (default False).
    depth_of_field_um : float, optional
        The objective's depth of field at the camera's pixel size (``OpticsParams.depth_of_field_um``), µm.
        The classical search's coarse step follows it (4 µm at the 11 µm of 10x / NA 0.25, at least
        ``MIN_COARSE_UM``), and a search range narrower than ``MIN_RANGE_PER_DOF`` depths of field is widened
        to that, and the widths the curve is read over are stretched in proportion: a 5x / NA 0.1 objective's
        focus curve is 66 µm deep, and the plan's ±15 µm could not bracket a single one (11 of 13 structure
        foci failed, seed 82). None: the tuned values (10x / NA 0.25).
    um_per_px : float, optional
        The camera's scale (the calibration's): a structure's box is then given to the autofocus as its width
        across in µm, which with its reference height sets a micro-lens's reading bias
        (``appliance.focus.typebias.SHAPE_BIAS``), at the tuned objective only (the fit's: a flat lens's -4 µm
        at 10x would be a different figure at 20x). None, or another objective: the type's constant bias.
        Whatever the objective, it also scales the sizes of the glass's specks a field's focus reads
        (:func:`appliance.focus.scores.speck_scale`: finer pixels than 0.56 µm see the same dust larger).
    reader : ReadingCorrector, optional
        The learned reading (:mod:`appliance.focus.reader`): a structure's classical reading is moved by what
        it reads from the search's frames, instead of by the type's bias. Trained on the virtual microscope,
        so only a virtual device whose optics it fits is given one
        (:func:`appliance.focus.reader.shipped_reader_for`).
    map_trust : float, optional
        The ``map`` strategy's odds for one frame (the plan's ``focus.map_trust``; None: the autofocus's default).
    """

    def __init__(self, strategy: str, z_travel_um: tuple[float, float], focus_map: FocusMapAdapter | None = None,
                 estimator: Any | None = None, now_s: Callable[[], float] | None = None,
                 reference_heights: Mapping[str, Any] | None = None, reading_bias: bool = False,
                 depth_of_field_um: float | None = None, um_per_px: float | None = None,
                 reader: Any | None = None, map_trust: float | None = None) -> None:
        try:
            from appliance.focus import autofocus
            from appliance.focus.autofocus import MAP_TRUST_P
            from appliance.focus.focusmap import GLASS_PRIOR_SIGMA_UM
            from appliance.focus.scores import speck_scale
            from appliance.focus.search import UNTRUSTED
        except ImportError as exc:
            raise ValueError(f"autofocus (appliance/focus) is not installed in this build ({exc})") from None
        self._autofocus = autofocus
        self._untrusted = UNTRUSTED
        self._sure_ref_um = GLASS_PRIOR_SIGMA_UM
        self.strategy = strategy
        self.z_travel_um = (float(z_travel_um[0]), float(z_travel_um[1]))
        self.focus_map = focus_map
        self.estimator = estimator
        self.now_s = now_s
        self.reference_heights = dict(reference_heights or {})
        self.reading_bias = bool(reading_bias)
        self.reader = reader
        self.map_trust = MAP_TRUST_P if map_trust is None else float(map_trust)
        self._warned: set[str] = set()
        dof = TUNED_DEPTH_OF_FIELD_UM if depth_of_field_um is None else depth_of_field_um
        if isinstance(dof, bool) or not isinstance(dof, (int, float)) or not 0.05 <= dof <= 5000:
            raise ValueError(f"depth_of_field_um must be a number in [0.05, 5000], got {depth_of_field_um!r}")
        scale = depth_of_field_scale(float(dof))
        self.depth_of_field_um = float(dof)
        tuned = scale == 1.0  # the default optics: exactly the tuned search
        self.coarse_um = TUNED_COARSE_UM if tuned else max(MIN_COARSE_UM, TUNED_COARSE_UM * scale)
        self.min_range_um = 0.0 if tuned else MIN_RANGE_PER_DOF * float(dof)
        self.width_scale = 1.0 if tuned else max(1.0, scale)
        if um_per_px is not None and (isinstance(um_per_px, bool) or not isinstance(um_per_px, (int, float))
                                      or not 0 < um_per_px < 1000 or not math.isfinite(um_per_px)):
            raise ValueError(f"um_per_px must be a number in (0, 1000), got {um_per_px!r}")
        self.um_per_px = None if um_per_px is None or not tuned else float(um_per_px)
        self.speck_scale = speck_scale(um_per_px)  # the glass's specks are measured in µm, not pixels

    def focus(self, stage: Stage, camera: Camera, z_guess_um: float, range_um: float,
              roi_px: Box | None = None, cls: str | None = None) -> FocusOutcome:
        """Search ``z_guess_um`` ± ``range_um`` (within the travel) on ``roi_px``; ``cls``: a structure's type.

        With ``cls`` and its reference height, the search is centred on the map of the glass's prediction
        for the structure instead (when the map has a point).
        """
        p = stage.position_um()
        range_um = max(range_um, self.min_range_um)
        ref = self._reference(cls)
        fmap = None if self.focus_map is None else self.focus_map.for_target(cls is not None and ref is None)
        if fmap is not None and len(fmap) == 0:
            fmap = None
        if ref is not None and fmap is not None:
            z_guess_um = fmap.predict(p.x_um, p.y_um, offset_um=ref.height_um)[0]
        z_guess_um = min(max(z_guess_um, self.z_travel_um[0]), self.z_travel_um[1])  # a prediction past the end
        lo = max(self.z_travel_um[0], z_guess_um - range_um)
        hi = min(self.z_travel_um[1], z_guess_um + range_um)
        roi = None if roi_px is None else (roi_px[0], roi_px[1], roi_px[2] - roi_px[0], roi_px[3] - roi_px[1])
        strategy = self.strategy if (self.strategy != "map" or fmap is not None) else "classical"

        field = roi is None and cls is None  # a field's own focus: a point of the map, so its curve is checked
        width = None if roi is None or cls is None or self.um_per_px is None else max(roi[2], roi[3]) * self.um_per_px

        def search(a: float, b: float, start: float, mode: str = "roi") -> Any:
            return self._autofocus(stage, camera, strategy, z_range_um=(a, b), roi=roi, mode=mode, check_lobe=field,
                                   start_um=start, estimator=self.estimator, focus_map=fmap,
                                   xy_um=(p.x_um, p.y_um), now_s=self.now_s,
                                   coarse_um=max(self.coarse_um, (b - a) / RANGE_COARSE_STEPS),
                                   width_scale=self.width_scale,
                                   ref_height_um=None if ref is None else ref.height_um,
                                   ref_sigma_um=0.0 if ref is None else ref.sigma_um,
                                   target_type=cls if self.reading_bias else None,
                                   target_width_um=width, speck_scale=self.speck_scale,
                                   reader=None if field else self.reader, map_trust=self.map_trust)

        glass = field  # a field's own focus: the glass, read from its specks
        r = search(lo, hi, z_guess_um, "specks" if glass else "roi")
        frames = int(r.frames)
        if glass and not r.ok:
            # No speck on the glass with a focus curve in view: focus on the largest object, as a field did
            # before; its focus is its own mid-plane (a fibre or a bubble: up to 10 µm above the glass), so it
            # is not a point of the glass
            # is not a point of the glass. When the specks were there but their curve was noise, only within the
            # plan's usual reach (MIN_RANGE_PER_DOF depths of field, ±15 µm at 10x): over a slide-finding search's
            # ±60 µm such a camera shows a broad hump of an object somewhere (the cheap colour camera: +21 µm over
            # its glass, 1.35 times its floor, seed 443), and every later field was viewed there. With no speck
            # (far out of focus only the camera's own dust shows) the objects are what finds the slide.
            glass = False
            reach = max(MIN_RANGE_PER_DOF * self.depth_of_field_um, self.min_range_um)
            if str(r.reason).startswith(self._untrusted):
                lo, hi = max(lo, z_guess_um - reach), min(hi, z_guess_um + reach)
            r = search(lo, hi, z_guess_um)
            frames += int(r.frames)
        if roi is None and cls is None and r.ok and not glass and self.focus_map is not None:
            self.focus_map.not_glass(p.x_um, p.y_um, float(r.z_um))
        shifted = None if r.ok or roi is None else _shifted_range(r.trace, lo, hi, range_um, self.z_travel_um)
        if shifted is not None:
            # An object's curve still high at an end of the range: a thin wall's upper lobe cut there (a
            # 17 µm tall split ring 8.6 µm above its field's z, lobes at -7 and +4 µm around its focus). One
            # more search, half a range further that way, brackets it; a flat curve of noise is not shifted.
            r = search(shifted[0], shifted[1], shifted[2])
            frames += int(r.frames)
        if cls is not None and r.ok and r.measured:
            # the maps take the search's own reading (`point_um`), not a z the map strategy combined with them
            self.structure_focused(p.x_um, p.y_um, float(r.point_um), cls, evidence=_one_lobe(r.trace))
        return FocusOutcome(float(r.z_um), frames, bool(r.ok), glass=bool(glass and r.ok),
                            learned=bool(r.ok and r.learned),
                            reading_um=float(r.point_um) if r.ok and r.measured else math.nan)

    def read_stack(self, planes: np.ndarray, z_um: Sequence[float], cls: str, near_um: float) -> float | None:
        """A structure's focus read from its own focus stack, as the search reads its frames, near ``near_um``.

        The centre of symmetry of the stack's fine curve (:func:`appliance.focus.stack.symmetry_focus`) less the
        type's reading bias where this focuser takes it off (``reading_bias``: a virtual device; the type's
        constant, since a scan knows a print's height only roughly). None when the stack is too short for it, or
        when it lies more than ``STACK_READ_REACH_UM`` (stretched with the objective's depth of field) from
        ``near_um``, the autofocus's z: it refines a focus, a lobe's pair is the stack's other reading, and
        further out it was more often wrong than right (development slides: p95 3.0 -> 2.3 µm, docs/scan.md,
        "Structure focus in a scan"). The runner records it where the stack shows no pair of lobes.
        """
        from appliance.focus.stack import symmetry_focus
        from appliance.focus.typebias import reading_bias_um

        c = symmetry_focus(planes, z_um, self.width_scale)
        if c is None:
            return None
        z = c - (reading_bias_um(cls) if self.reading_bias else 0.0)
        return z if abs(z - near_um) <= STACK_READ_REACH_UM * self.width_scale else None

    def structure_focused(self, x_um: float, y_um: float, z_um: float, cls: str, evidence: bool = False) -> None:
        """Tell the maps a structure of type ``cls`` was focused at ``z_um`` (also a resumed scan's structures).

        ``evidence``: its focus less its type's reference height, however loose, is also evidence of the glass
        (:meth:`FocusMapAdapter.guess`): only a focus whose curve is one lobe, the test a field's reading
        passes. A structure's search is not held to it (its focus stands either way), but on the cheap colour
        camera its other readings lay 5-30 µm off and followed the z its search started from.
        """
        if self.focus_map is None:
            return
        ref = self.reference_heights.get(cls)
        sure = ref is not None and ref.sigma_um <= self._sure_ref_um
        self.focus_map.add_structure(x_um, y_um, z_um, ref.height_um if sure and ref else None,
                                     loose=None if ref is None or not evidence else (ref.height_um, ref.sigma_um))

    def _reference(self, cls: str | None) -> Any | None:
        """The type's reference height, or None (and a log line the first time a type has none)."""
        if cls is None:
            return None
        ref = self.reference_heights.get(cls)
        if ref is None and cls not in self._warned:
            self._warned.add(cls)
            known = ", ".join(sorted(self.reference_heights)) or "none"
            _log.warning("focus: no reference height for structure type %r (known: %s; plan key "
                         "focus.reference_height_um): its structures are focused with the map of structure foci",
                         cls, known)
        return ref


#: The runner's map places fields once it has this many points: a plane's three and two that check them.
CHECKED_POINTS = 5
#: A field's glass reading is not taken (no point of the map, not the next fields' guess) when the structures'
#: foci less their reference heights put the glass further than this many sigma from it (their sigma and one
#: reading's together: :meth:`FocusMapAdapter.contradicted`). A wrong reading passes its curve's own tests now
#: and then (the cheap colour camera's, 14-17 µm up, seed 443 in session 8); the structures around it, each
#: loose (the catalogue's ±3.5 µm), outvote it.
STRUCTURES_VETO_K = 3.0


class FocusMapAdapter:
    """``appliance.focus.FocusMap`` as the runner's :class:`~appliance.scan.protocols.FocusMapLike`.

    Three maps, each of one surface:

    - ``inner``, the glass as measured: the fields the runner focuses on dust and glass. The runner's
      :meth:`predict` reads it (each field's z, and the glass under a structure for its height map, which
      must not depend on a height assumed from the print job).
    - ``focusing``, the glass for focusing structures: ``inner``'s points plus each structure's focus minus
      a reference height the print job states.
    - ``foci``, the structures' foci themselves, for a type without a reference height.
    - ``fields``, every field's focus, the glass's and an object's alike: :meth:`predict` reads it while the
      glass has fewer than ``CHECKED_POINTS`` points (a slide with few specks), as the scan read every field's
      focus before.
    """

    def __init__(self) -> None:
        try:
            from appliance.focus import FocusMap
            from appliance.focus.focusmap import GLASS_PRIOR_SIGMA_UM, PRIOR_SIGMA_UM
        except ImportError as exc:
            raise ValueError(f"the focus map (appliance/focus) is not installed in this build ({exc})") from None
        self.inner = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
        self.focusing = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
        self.foci = FocusMap()
        #: Every field's focus, on the glass's specks or not: the map a scan reads until the glass has 3 points.
        #: Its points include objects' mid-planes (a fibre's, a bubble's: 1-10 µm above the glass), so it assumes
        #: their spread, not one glass reading's: four such points of the cheap colour camera, fitted as sure as
        #: the glass, tilted it 18 µm/mm off and walked a row's fields 55 µm above their glass (seed 441).
        self.fields = FocusMap(prior_sigma_um=PRIOR_SIGMA_UM)
        #: The structures' foci less their reference heights, however loosely known (the catalogue's ±3.5 µm),
        #: each weighed by that uncertainty: what a field's glass reading is checked against
        #: (:meth:`contradicted`), and with the readings they do not contradict, the glass as everything says
        #: it (:meth:`guess`).
        self.structures = FocusMap(prior_sigma_um=GLASS_PRIOR_SIGMA_UM)
        self._loose: list[tuple[float, float, float, float, float]] = []  # x, y, focus, height, its sigma
        self._glass: list[tuple[float, float, float]] = []
        self._evidence: tuple[tuple[int, int], Any] | None = None  # (points it holds, the map)
        self._FocusMap = FocusMap
        self._glass_prior = GLASS_PRIOR_SIGMA_UM
        self._objects: set[tuple[float, float, float]] = set()

    def not_glass(self, x_um: float, y_um: float, z_um: float) -> None:
        """Say that the field focus found at (x, y), z is an object's (no speck on the glass was in view)."""
        self._objects.add((float(x_um), float(y_um), float(z_um)))

    def add(self, x_um: float, y_um: float, z_um: float) -> None:
        """Add a field's focus: a point of the glass, unless :meth:`not_glass` said it is an object's."""
        self.fields.add(x_um, y_um, z_um)
        if (float(x_um), float(y_um), float(z_um)) in self._objects:
            return
        self.inner.add(x_um, y_um, z_um)
        self.focusing.add(x_um, y_um, z_um)
        self._glass.append((float(x_um), float(y_um), float(z_um)))

    def add_structure(self, x_um: float, y_um: float, z_um: float, ref_height_um: float | None,
                      loose: tuple[float, float] | None = None) -> None:
        """Add a structure's focus: to the map of foci, and with a sure reference height to the glass's.

        ``loose``: the type's reference height and its sigma however sure (the catalogue's ±3.5 µm): the
        focus less that height is evidence of the glass (:meth:`guess`, :meth:`contradicted`) with that sigma.
        """
        self.foci.add(x_um, y_um, z_um)
        if ref_height_um is not None:
            self.focusing.add(x_um, y_um, z_um, offset_um=ref_height_um)
        if loose is not None:
            self.structures.add(x_um, y_um, z_um, offset_um=loose[0], extra_sigma_um=loose[1])
            self._loose.append((float(x_um), float(y_um), float(z_um), float(loose[0]), float(loose[1])))

    def contradicted(self, x_um: float, y_um: float, z_um: float) -> bool:
        """Whether the structures put the glass at (x, y) further than ``STRUCTURES_VETO_K`` sigma from ``z_um``.

        Their sigma and one reading's together; False while they cannot say (:meth:`structures_say`).
        """
        said = self.structures_say(x_um, y_um)
        return said is not None and abs(float(z_um) - said[0]) > STRUCTURES_VETO_K * said[1]

    def guess(self, x_um: float, y_um: float) -> tuple[float, float] | None:
        """The glass's z and sigma from the structures' points and the glass readings they do not contradict.

        None until a structure has been focused and ``CHECKED_POINTS`` points are in (a plane through three fits
        them exactly, whatever their errors): without one this is the measured glass, which :meth:`predict`
        answers for. A reading taken before the structures could say (fewer than three)
        is checked again as they come, so one wrong reading early in a scan does not stay in.
        """
        if not self._loose or len(self._loose) + len(self._glass) < CHECKED_POINTS:
            return None
        key = (len(self._glass), len(self._loose))
        if self._evidence is None or self._evidence[0] != key:
            m = self._FocusMap(prior_sigma_um=self._glass_prior)
            for x, y, z, h, sd in self._loose:
                m.add(x, y, z, offset_um=h, extra_sigma_um=sd)
            for x, y, z in self._glass:
                if not self.contradicted(x, y, z):
                    m.add(x, y, z)
            self._evidence = (key, m)
        z, sigma = self._evidence[1].predict(x_um, y_um)
        return float(z), float(sigma)

    def structures_say(self, x_um: float, y_um: float) -> tuple[float, float] | None:
        """The glass's z and sigma from the structures' foci less their reference heights alone, or None.

        None below ``CHECKED_POINTS`` structures: one or two fit a constant, as sure a millimetre away as beside
        them, and three a plane that fits them exactly whatever their errors; with two more the residuals show
        how far they scatter (on the cheap colour camera 5-30 µm, not the catalogue's 3.5).
        """
        if len(self.structures) < CHECKED_POINTS:
            return None
        z, sigma = self.structures.predict(x_um, y_um)
        return float(z), float(sigma)

    def for_target(self, foci: bool) -> Any:
        """The map a target is focused with: the foci's (``foci``), else the glass's (a field, or a known type)."""
        return self.foci if foci else self.focusing

    def reads_glass(self) -> bool:
        """Whether :meth:`predict` answers from the glass's readings (else from the fields' foci in their stead)."""
        return len(self.inner) >= CHECKED_POINTS

    def predict(self, x_um: float, y_um: float) -> tuple[float, float] | None:
        """The glass's z and sigma, or None while no map has ``CHECKED_POINTS`` points.

        A plane through three points fits them exactly, whatever their errors, and a fourth leaves one residual:
        the map's scatter is then its prior's (1 µm), not the readings'. Three readings of the cheap colour
        camera 8-13 µm below the glass made such a plane, sure of a 15 µm/mm tilt that was not there (seed 441).
        With two more the residuals show how far the readings scatter. Until the glass has that many points, the
        fields' foci stand in for it (objects' mid-planes among them, as every field's focus was before the
        glass was read from its specks).
        """
        m = self.inner if len(self.inner) >= CHECKED_POINTS else self.fields
        if len(m) < CHECKED_POINTS:
            return None
        z, sigma = m.predict(x_um, y_um)
        return float(z), float(sigma)


def _one_lobe(trace: Sequence[tuple[float, float]]) -> bool:
    """Whether a search's walking curve (its frames' z and score) is one lobe (``search.untrusted``'s test)."""
    from appliance.focus.curve import second_lobes
    from appliance.focus.search import LOBE_RISE

    best: dict[float, float] = {}
    for z, v in trace:
        best[z] = max(v, best.get(z, -math.inf))
    return len(best) >= 3 and second_lobes(np.array([best[z] for z in sorted(best)]), LOBE_RISE) == 0


def _shifted_range(trace: Sequence[tuple[float, float]], lo: float, hi: float, range_um: float,
                   travel: tuple[float, float]) -> tuple[float, float, float] | None:
    """The range half a range further towards the end where a failed search's curve was still high, or None.

    Only a curve that rose by ``CUT_RISE`` over its own lowest frame counts (noise on empty glass is flat), and
    only where the travel leaves room to move.
    """
    from appliance.focus.search import MIN_CUT_DROP

    if len(trace) < 3:
        return None
    pts = sorted(trace)
    vs = [v for _, v in pts]
    vmax, vmin = max(vs), min(vs)
    if not vmax > CUT_RISE * max(vmin, 1e-9):
        return None
    high = (1.0 - MIN_CUT_DROP) * vmax
    shift = 0.0
    if pts[-1][0] >= hi - 0.5 and pts[-1][1] >= high and hi < travel[1]:
        shift = 0.5 * range_um
    elif pts[0][0] <= lo + 0.5 and pts[0][1] >= high and lo > travel[0]:
        shift = -0.5 * range_um
    if shift == 0.0:
        return None
    a, b = max(travel[0], lo + shift), min(travel[1], hi + shift)
    return (a, b, min(max(pts[-1][0] if shift > 0 else pts[0][0], a), b))

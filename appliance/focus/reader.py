"""The learned reading: a small network reads a structure's focus from the frames its classical search took.

The classical search reads a focus curve's centre of symmetry, which misses a print's mid-plane by the
absorption-phase cross term (docs/autofocus.md, "What true focus is"): an amount set by the print, that
no intensity-only curve removes and a per-type table (``appliance.focus.typebias``) removes only where the
prints of a type are alike. The frames the search already holds say more than one curve does: how the
print darkens, where its bright halo is, how each band of spatial frequencies rises and falls. The reader
summarises every frame in a dozen numbers (:func:`frame_features`), lays each of them out as a curve on a
fixed grid of offsets from the search's reading (:func:`reading_features`) and a small network (one ONNX
file, ``models/focusreader/reader.onnx``, trained on the virtual microscope by ``tppscan train reader``)
says how far the true focus lies from the reading. It takes no frame of its own: the stage makes one more
move from below.

It is a calibration of the optics it was trained at (the file says which: µm per pixel and depth of field),
like the type table: :meth:`FocusReader.fits` keeps it off other objectives, and a scan on a real device
does not use it (its prints and optics are not the simulator's).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import ndimage as ndi

from appliance.focus.neural import crop
from appliance.focus.scores import TARGET_MARGIN_PX, Rect, grow_rect

#: Laplacian-of-Gaussian widths (px) whose band energies describe a frame: fine detail (a wall's inversion)
#: to the print's whole body.
BAND_SIGMAS_PX: tuple[float, ...] = (0.7, 1.0, 1.4, 2.0, 2.8, 4.0)
#: Offsets from the search's reading (µm) at which each feature's curve is read; the walk samples every 4 µm
#: out to about ±10 µm around its lobe.
GRID_UM = np.arange(-12.0, 12.0 + 1e-9, 1.0)
#: Per frame: darkening, contrast, bright halo, dark mass, then six band energies and the Laplacian's and
#: biharmonic's (the search's own two measures).
N_FRAME_FEATURES = 4 + len(BAND_SIGMAS_PX) + 2
#: The first features that are levels (kept as they are); the rest are log energies, also kept less their
#: curve's maximum so the network sees each curve's shape apart from the print's overall contrast.
N_LEVEL_FEATURES = 4
#: The length of :func:`reading_features`' vector.
N_FEATURES = len(GRID_UM) * (N_LEVEL_FEATURES + 2 * (N_FRAME_FEATURES - N_LEVEL_FEATURES) + 1)
#: The features' layout; a model file names the version it was trained on and is refused for another.
FEATURE_VERSION = 1
#: The border (px) of the target's rectangle that gives the glass's level: the search's roi is a detection's
#: box grown by 24 px, so its rim is glass.
BORDER_PX = 6
#: The smallest target rectangle a frame's features are read from (px a side): the rim and a few pixels inside.
MIN_CROP_PX = 2 * BORDER_PX + 4
#: A reading needs this many distinct frames, spanning at least ``MIN_SPAN_UM``.
MIN_FRAMES = 4
MIN_SPAN_UM = 8.0
#: The reader's answer is trusted up to this far from the reading (µm); it was trained on readings within 8 µm.
MAX_CORRECTION_UM = 8.0


def frame_features(crop: np.ndarray) -> np.ndarray:
    """A dozen numbers for one frame of the target (its rectangle, grey levels): see :data:`N_FRAME_FEATURES`."""
    c = np.asarray(crop, dtype=np.float64)
    if c.ndim != 2 or min(c.shape) < MIN_CROP_PX:
        raise ValueError(f"a target crop must be 2-D and at least {MIN_CROP_PX} px a side, got {c.shape}")
    b = BORDER_PX
    rim = np.concatenate([c[:b].ravel(), c[-b:].ravel(), c[:, :b].ravel(), c[:, -b:].ravel()])
    c = c / max(float(np.median(rim)), 1.0)
    inner = c[2 * b:-2 * b, 2 * b:-2 * b] if min(c.shape) > 40 else c
    f = [float(np.mean(inner)) - 1.0, float(np.std(inner)), float(np.mean(np.maximum(inner - 1.0, 0.0))),
         float(np.mean(np.maximum(1.0 - inner, 0.0)))]
    for s in BAND_SIGMAS_PX:  # scale-normalised band energy (sigma^4 keeps the bands comparable)
        f.append(math.log(float(np.var(ndi.gaussian_laplace(c, s)[4:-4, 4:-4])) * s ** 4 + 1e-12))
    lap = ndi.laplace(c)
    f.append(math.log(float(np.var(lap[4:-4, 4:-4])) + 1e-12))
    f.append(math.log(float(np.var(ndi.laplace(lap)[4:-4, 4:-4])) + 1e-12))
    return np.array(f, dtype=np.float64)


def reading_features(z_um: Sequence[float], crops: Sequence[np.ndarray], reading_um: float) -> np.ndarray | None:
    """The network's input for one search: each frame feature's curve on :data:`GRID_UM` about the reading.

    None when the frames are too few or span too little (:data:`MIN_FRAMES`, :data:`MIN_SPAN_UM`) to describe
    the curve; see :func:`search_frames` and :func:`grid_vector`.
    """
    frames = search_frames(z_um, crops)
    return None if frames is None else grid_vector(*frames, reading_um)


def search_frames(z_um: Sequence[float], crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """The search's distinct z (sorted; a z seen twice keeps its first frame) and each one's frame features.

    None when they are fewer than :data:`MIN_FRAMES` or span less than :data:`MIN_SPAN_UM`.
    """
    z = np.asarray(z_um, dtype=np.float64)
    if len(z) != len(crops):
        raise ValueError(f"{len(z)} z values for {len(crops)} crops")
    zs, first = np.unique(z, return_index=True)
    if len(zs) < MIN_FRAMES or zs[-1] - zs[0] < MIN_SPAN_UM:
        return None
    return zs, np.array([frame_features(crops[i]) for i in first])


def grid_vector(zs: np.ndarray, feats: np.ndarray, reading_um: float) -> np.ndarray:
    """Each feature's curve over the frames at ``zs`` read on :data:`GRID_UM` about ``reading_um``.

    Linear between frames and held level past the ends; a last block marks which grid points lie inside the
    sampled span. Any reading can be given: training reads the same frames about shifted readings.
    """
    rel = np.asarray(zs, dtype=np.float64) - float(reading_um)
    blocks = []
    for k in range(N_FRAME_FEATURES):
        v = np.interp(GRID_UM, rel, feats[:, k])
        blocks.append(v)
        if k >= N_LEVEL_FEATURES:
            blocks.append(v - v.max())
    blocks.append(((GRID_UM >= rel[0]) & (GRID_UM <= rel[-1])).astype(np.float64))
    return np.concatenate(blocks)


def crops_of(images: Sequence[np.ndarray], rect: Rect) -> list[np.ndarray]:
    """The target's rectangle ``(x, y, w, h)`` cut from each frame."""
    return [crop(im, rect) for im in images]


class ReadingCorrector(Protocol):
    """What the autofocus asks of a reader (:class:`FocusReader`; a training set's recorder is one too)."""

    def fits(self, um_per_px: float, dof_um: float) -> bool:
        """Whether it was made for these optics."""
        ...

    def correction_um(self, z_um: Sequence[float], images: Sequence[np.ndarray], rect: Rect | None,
                      reading_um: float) -> float | None:
        """True focus minus ``reading_um`` (µm), or None when it cannot say."""
        ...


class FocusReader:
    """The learned reading, served by ONNX Runtime from one file.

    The file's metadata (``tppscan_reader``, JSON) says the feature version, and the µm per pixel and depth of
    field of the optics the frames were rendered at. A missing, truncated or wrong-shaped file, or one for
    another feature version, is an ``OSError`` naming the file and what was expected, at load.
    """

    INPUT = "features"
    OUTPUT = "correction_um"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency of the project
            raise OSError(f"{self.path}: the focus reader needs onnxruntime ({exc})") from exc
        if not self.path.is_file():
            raise OSError(f"{self.path}: no focus reader model there (train one: tppscan train reader)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise OSError(f"{self.path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
        self.meta = self._check()

    def _check(self) -> dict[str, float]:
        ins, outs = self._sess.get_inputs(), self._sess.get_outputs()
        if [i.name for i in ins] != [self.INPUT] or ins[0].shape[-1] != N_FEATURES or self.OUTPUT not in [
                o.name for o in outs]:
            got = [(i.name, i.shape) for i in ins], [o.name for o in outs]
            raise OSError(f"{self.path}: a focus reader takes {self.INPUT!r} [N, {N_FEATURES}] and gives "
                          f"{self.OUTPUT!r}; this file has inputs/outputs {got}")
        raw = self._sess.get_modelmeta().custom_metadata_map.get("tppscan_reader")
        try:
            meta = json.loads(raw or "")
            version, um, dof = int(meta["feature_version"]), float(meta["um_per_px"]), float(meta["dof_um"])
        except (ValueError, KeyError, TypeError):
            raise OSError(f"{self.path}: no tppscan_reader metadata (feature_version, um_per_px, dof_um) in the "
                          "file; write it with tppscan train reader") from None
        if version != FEATURE_VERSION:
            raise OSError(f"{self.path}: trained on feature version {version}, this tppscan reads version "
                          f"{FEATURE_VERSION}; retrain it with tppscan train reader")
        return {"um_per_px": um, "dof_um": dof}

    def fits(self, um_per_px: float, dof_um: float, tol: float = 0.05) -> bool:
        """Whether a camera's scale and an objective's depth of field are the ones trained at (within ``tol``)."""
        return (abs(um_per_px / self.meta["um_per_px"] - 1.0) <= tol
                and abs(dof_um / self.meta["dof_um"] - 1.0) <= tol)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Corrections (µm, true focus minus reading) for a batch of feature vectors [N, N_FEATURES]."""
        x = np.asarray(features, dtype=np.float32).reshape(-1, N_FEATURES)
        return np.asarray(self._sess.run([self.OUTPUT], {self.INPUT: x})[0], dtype=np.float64).reshape(-1)

    def correction_um(self, z_um: Sequence[float], images: Sequence[np.ndarray], rect: Rect | None,
                      reading_um: float) -> float | None:
        """How far the true focus lies from ``reading_um`` by the search's frames, or None when they cannot say."""
        if rect is None or min(rect[2], rect[3]) < MIN_CROP_PX:  # no rim of glass to measure the print against
            return None
        v = reading_features(z_um, crops_of(images, rect), reading_um)
        if v is None:
            return None
        c = float(self.predict(v[None])[0])
        return c if math.isfinite(c) and abs(c) <= MAX_CORRECTION_UM else None


#: The shipped reader, beside the other models.
SHIPPED_READER = Path(__file__).resolve().parents[2] / "models" / "focusreader" / "reader.onnx"


def shipped_reader_for(um_per_px: float, dof_um: float, path: Path = SHIPPED_READER) -> tuple[FocusReader | None, str]:
    """The shipped reader when it loads and fits these optics, else None; and a line saying which and why."""
    try:
        reader = FocusReader(path)
    except OSError as exc:
        return None, f"no learned focus reading: {exc}; the type's reading bias is used"
    if not reader.fits(um_per_px, dof_um):
        return None, (f"no learned focus reading: {path.name} was trained at {reader.meta['um_per_px']:.3g} um/px "
                      f"and a depth of field of {reader.meta['dof_um']:.3g} um, these optics are {um_per_px:.3g} "
                      f"um/px and {dof_um:.3g} um; the type's reading bias is used")
    return reader, f"structures' foci read by the learned focus reading ({path.name})"


class OnDetectionBoxes:
    """A reader for callers whose roi is a detection's own box: it reads that box grown by ``margin_px``.

    The reader measures a print against the rim of its rectangle (:data:`BORDER_PX`), which must be glass: it was
    trained on the bench's searches, whose roi is the detection's box grown by ``TARGET_MARGIN_PX``. A scan
    focuses on the detector's box as it is, whose rim cuts through the print's edge; read there, development
    slides 500 and 502 had 36 of 40 prints within 1 µm, read on the grown box 40 of 40 (docs/autofocus.md,
    "The reader in a scan").
    """

    def __init__(self, reader: ReadingCorrector, margin_px: int = TARGET_MARGIN_PX) -> None:
        self.reader = reader
        self.margin_px = int(margin_px)

    def fits(self, um_per_px: float, dof_um: float) -> bool:
        """As the wrapped reader."""
        return self.reader.fits(um_per_px, dof_um)

    def correction_um(self, z_um: Sequence[float], images: Sequence[np.ndarray], rect: Rect | None,
                      reading_um: float) -> float | None:
        """The wrapped reader's correction, read on ``rect`` grown by ``margin_px`` (clipped to the frame)."""
        if rect is None or not len(images):
            return None
        h, w = np.asarray(images[0]).shape[:2]
        return self.reader.correction_um(z_um, images, grow_rect(rect, self.margin_px, (h, w)), reading_um)


def device_reader(scope: Any | None, um_per_px: float, dof_um: float) -> OnDetectionBoxes | None:
    """The reader a scan's focuser gets: the shipped one on a virtual microscope it was trained for, else None.

    ``scope`` is the virtual microscope the scan images (None: a real device). Trained on the virtual
    microscope, it is never given to a real device (its prints and optics are its own), nor to a virtual one
    whose optics it does not fit or whose camera's capture chain is not the default one it learned from (the raw
    mono camera, development slide 500: the autofocus 13 of 20 prints within 1 µm with it or without, recorded 13
    against 17 read from the stacks). The scan focuses on its detections' own boxes, so the reader reads them grown
    (:class:`OnDetectionBoxes`). Which reading is used, and why, goes to the scan's debug log.
    """
    if scope is None:
        return None
    log = logging.getLogger("tppscan.scan")
    if not default_chain(scope):
        log.debug("no learned focus reading: the virtual camera's capture chain is not the default one the reader "
                  "learned from; the type's reading bias is used")
        return None
    reader, line = shipped_reader_for(um_per_px, dof_um)
    log.debug(line)
    return None if reader is None else OnDetectionBoxes(reader)


def default_chain(scope: Any) -> bool:
    """Whether a virtual microscope's camera has the default capture chain, the one the reader learned from."""
    from appliance.sim.capture import CameraChainParams

    return bool(scope.camera.chain_params == CameraChainParams())

"""Looking at a print larger than the field of view: the views that find its footprint, and its view at the centre.

The geometry (footprints, sides, which boxes are one print) is :mod:`appliance.scan.stitch`; this module moves
the stage and looks: :meth:`Stitcher.stitch` goes view by view past every side a view cut the print on, joins
what it sees into a :class:`~appliance.scan.stitch.Footprint`, and returns the print's view at the footprint's
centre, where the runner focuses, stacks and records it once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from appliance.hardware.camera.base import Camera, Frame
from appliance.hardware.stage.base import StageLimitError
from appliance.scan.boxes import on_slide_box_um
from appliance.scan.calibration import Calibration
from appliance.scan.mosaic import covered_fov_um, paste, view_positions
from appliance.scan.protocols import Detection, VisionResult
from appliance.scan.slide_or_optics import SlideOrOptics
from appliance.scan.stitch import Footprint, area, cut_sides, join_pieces, same_print, stitch_tolerance_um
from appliance.vision.crops import BOX_MARGIN


class Stitcher:
    """Finds the footprint of a print larger than the field by looking past its cut sides.

    Parameters
    ----------
    camera : Camera
        The scan's (checked) camera.
    calibration : Calibration
        Pixel -> stage map.
    approach : callable
        ``approach(x_um, y_um)``: the runner's move to a stage position, backlash taken up as for every view.
    analyse : callable
        ``analyse(frame) -> VisionResult``: the runner's analysis of a new view.
    analysis_of : callable
        ``analysis_of(frame) -> VisionResult``: a frame's analysis, the runner's earlier one where it has it.
    optics : SlideOrOptics
        The blemishes of the optics proved so far: never pieces of a print.
    """

    def __init__(self, camera: Camera, calibration: Calibration, approach: Callable[[float, float], None],
                 analyse: Callable[[Frame], VisionResult], analysis_of: Callable[[Frame], VisionResult],
                 optics: SlideOrOptics) -> None:
        self.camera, self.cal = camera, calibration
        self._approach, self._analyse, self._analysis_of = approach, analyse, analysis_of
        self._optics = optics

    def _on_slide_box(self, det: Detection, frame: Frame) -> tuple[float, float, float, float]:
        return on_slide_box_um(self.cal, det, frame)

    def pieces_with(self, det: Detection, frame: Frame, any_verdict: bool = False) -> list[Detection]:
        """The pieces of ``det``'s print as the detector drew them in ``frame``: boxes overlapping it, in a chain.

        Boxes join within the stitching tolerance, each overlapping ``det`` or one joined before it.

        Only structures and disputed boxes join: a piece of debris both models are sure of (dust, a fibre
        crossing the view) never makes a print larger, nor does a proved blemish of the optics (an uneven
        lamp's dark band beside a 34 µm ring made it a print larger than the field, seed 858). With
        ``any_verdict`` sure debris joins too: what the frame shows of something whose verdict is not made yet.
        """
        dets = self._analysis_of(frame).detections
        g = stitch_tolerance_um(self.cal) / self.cal.um_per_px
        pieces, box = [det], det.box_px
        grown = True
        while grown:
            grown = False
            for d in dets:
                sure_debris = d.kind != "structure" and not d.recheck
                if d in pieces or (sure_debris and not any_verdict) or self._optics.known(d):
                    continue
                b = d.box_px
                if b[0] < box[2] + g and box[0] < b[2] + g and b[1] < box[3] + g and box[1] < b[3] + g:
                    pieces.append(d)
                    box = (min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3]))
                    grown = True
        return pieces

    def stitch(self, field_det: Detection, field_frame: Frame, pieces: list[Detection],
                frame: Frame) -> tuple[Detection, Frame, Footprint]:
        """Join the partial views of a print into its footprint; return its view at the footprint's centre.

        Starts from the centred view's pieces of the print (and the field's view, when it is the same print),
        looks past every side a view cut it on (:meth:`Footprint.next_view`), then moves to the footprint's
        centre and finds the print there: its pieces joined (:func:`~appliance.scan.stitch.join_pieces`), or,
        if none is found, the centred view's verdict over the part of the footprint in view.
        """
        size = self.camera.size_px
        tol = stitch_tolerance_um(self.cal)
        det = join_pieces(pieces)
        fp = Footprint.start(self._on_slide_box(det, frame), cut_sides(det.box_px, size), tol)
        for d in pieces:
            fp.vote(d, area(self._on_slide_box(d, frame)))
        # the field's view joins as its pieces together: one piece's end inside the frame is not the print's
        field_pieces = self.pieces_with(field_det, field_frame)
        field_view = join_pieces(field_pieces)
        seen = self._on_slide_box(field_view, field_frame)
        if same_print(seen, fp.box_um, self.view_um(field_frame), tol):
            fp.add(seen, cut_sides(field_view.box_px, size))
            for d in field_pieces:
                fp.vote(d, area(self._on_slide_box(d, field_frame)))
        while (step := fp.next_view()) is not None:
            (x, y), sides = step
            before = fp.box_um
            try:
                self._approach(x, y)
            except StageLimitError:  # past the end of the travel (a print at the slide's edge): that side
                fp.views += 1        # closes, as a view that found nothing more there (the scan failed, seed 496)
                fp.looked_past(sides, before)
                continue
            view = self.camera.capture()
            piece = self._piece(view, fp)
            if piece is None:
                fp.views += 1
            else:
                fp.add(self._on_slide_box(piece, view), cut_sides(piece.box_px, size))
            fp.looked_past(sides, before)
        piece, view = self.view_at_centre(fp, det, frame)
        return piece, view, fp

    def view_at_centre(self, fp: Footprint, det: Detection, frame: Frame) -> tuple[Detection, Frame]:
        """The print of footprint ``fp`` seen from the footprint's centre, and that view.

        Its pieces there joined, or, if none is found, ``det``'s verdict over the part of the footprint in view.
        A centre past the end of the travel is looked at from ``frame``'s place.
        """
        try:
            self._approach(*fp.centre_um)
        except StageLimitError:  # its centre past the end of the travel: judged from the centred view's place
            self._approach(frame.position.x_um, frame.position.y_um)
        view = self.camera.capture()
        piece = self._piece(view, fp)
        if piece is None:
            piece = replace(det, box_px=self._px_box(fp.box_um, view))
        return piece, view

    def mosaic(self, box_um: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[float, ...], int] | None:
        """The print in slide box ``box_um`` as one image pasted from views at the current focus (module mosaic).

        The image is the square the classifier crops around the box (its ``BOX_MARGIN`` of glass on each side);
        returns it, the box's pixels in it and the views taken, or None when it cannot be looked at whole (more
        than ``mosaic.MAX_VIEWS`` views, or past the end of the travel).
        """
        cx, cy = (box_um[0] + box_um[2]) / 2, (box_um[1] + box_um[3]) / 2
        half = max(box_um[2] - box_um[0], box_um[3] - box_um[1]) * (1.0 + 2.0 * BOX_MARGIN) / 2
        square = (cx - half, cy - half, cx + half, cy + half)
        pasted = self.paste_views(square)
        if pasted is None:
            return None
        s = self.cal.um_per_px
        box = tuple((v - square[k % 2]) / s for k, v in enumerate(box_um))
        return pasted[0], box, pasted[1]

    def paste_views(self, region_um: tuple[float, float, float, float]) -> tuple[np.ndarray, int] | None:
        """Slide box ``region_um`` as one image pasted from views at the current focus, and the views taken.

        Mosaic pixel ``(j, i)`` shows slide point ``region_um[:2] + (j, i)`` times the calibration's µm per pixel
        (:func:`~appliance.scan.mosaic.paste`). None when it cannot be looked at whole: more than
        ``mosaic.MAX_VIEWS`` views, or a view past the end of the travel.
        """
        try:
            positions = view_positions(region_um, covered_fov_um(self.cal))
        except ValueError:
            return None
        frames = []
        for x, y in positions:
            try:
                self._approach(x, y)
            except StageLimitError:
                return None
            frames.append(self.camera.capture())
        return paste(frames, self.cal, region_um), len(frames)

    def _piece(self, view: Frame, fp: Footprint) -> Detection | None:
        """The print of footprint ``fp`` in ``view``: its pieces there joined (each votes), None if none is found."""
        shown = self.view_um(view)
        pieces = []
        for d in self._analyse(view).detections:
            b = self._on_slide_box(d, view)
            if same_print(b, fp.box_um, shown, fp.tol_um):
                pieces.append(d)
                fp.vote(d, area(b))
        return join_pieces(pieces) if pieces else None

    def view_um(self, frame: Frame) -> tuple[float, float, float, float]:
        """The slide box a frame shows, µm."""
        w, h = self.camera.size_px
        return self._on_slide_box(Detection((0, 0, w, h), "debris", "debris", 0.0), frame)

    def _px_box(self, box_um: tuple[float, float, float, float], frame: Frame) -> tuple[int, int, int, int]:
        """A slide box as pixels of ``frame``, clipped to the frame."""
        w, h = self.camera.size_px
        xy = (frame.position.x_um, frame.position.y_um)
        us, vs = zip(*(self.cal.stage_to_pixel(x, y, xy) for x in box_um[0::2] for y in box_um[1::2]), strict=True)
        x0, y0 = max(0, int(math.floor(min(us) + 0.5))), max(0, int(math.floor(min(vs) + 0.5)))
        return (x0, y0, max(x0 + 1, min(w, int(math.ceil(max(us) + 0.5)))),
                max(y0 + 1, min(h, int(math.ceil(max(vs) + 0.5)))))

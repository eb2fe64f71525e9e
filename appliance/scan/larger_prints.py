"""Prints larger than the field: looked at whole or stitched from views, and recorded once by their footprint.

A print whose centred view still reaches the frame's edge is stitched from views
(:class:`~appliance.scan.stitcher.Stitcher`); a piece the models call dust, or a structure that may be part of a print
larger than the field, is looked at whole (:class:`~appliance.scan.whole_look.WholeLook`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

from appliance.hardware.camera.base import Frame
from appliance.hardware.stage.base import StageLimitError
from appliance.results.store import ObjectRecord
from appliance.scan.field_focus import FieldWork
from appliance.scan.protocols import Detection
from appliance.scan.runner_core import Known
from appliance.scan.stitch import Footprint, area, grow, intersect, join_pieces, stitch_tolerance_um
from appliance.scan.structure_verdict import StructureVerdict
from appliance.scan.verdicts import as_debris, as_structure, type_scores
from appliance.vision.typeshape import not_a_footprint

#: The type a print larger than the field is recorded with comes from one image pasted from its views
#: (:meth:`ScanRunner._mosaic_type`) when that names it this surely; below, the vote of its pieces stands.
MOSAIC_MIN_TYPE = 0.5


class LargerPrints(StructureVerdict):
    """Looks at whole, stitches and records the prints larger than the field."""

    def _debris_unless_whole(self, w: FieldWork, det: Detection, frame: Frame) -> None:
        """Record sure debris ``det``, unless a whole look finds it a piece of a print larger than the field."""
        whole = self._whole_look(det, frame)
        if whole is None:
            self._record_debris(w, det, frame)
        else:
            self._record_looked(w, det, frame, *whole)

    def _whole_look(self, det: Detection, frame: Frame) -> tuple[Detection, Footprint] | None:
        """The print larger than the field ``det`` is a piece of (:meth:`WholeLook.find`), or None."""
        tol = stitch_tolerance_um(self.cal)
        return self.whole_look.find(det, frame, lambda x, y: any(
            k.kind == "structure" and k.contains(x, y, tol) for k in self._known))

    def _record_looked(self, w: FieldWork, det: Detection, frame: Frame, whole: Detection, fp: Footprint) -> None:
        """Focus, stack and record the print larger than the field a whole look found (:meth:`_whole_look`) once.

        It is recorded at its footprint's centre as a stitched print is (:meth:`_whole_or_stitched`), the whole
        look's verdict standing against the views of its pieces there, which were what called it debris.
        """
        x, y = fp.centre_um
        if self._duplicate("structure", x, y) or self._outside_area(x, y, fp.box_um):
            return
        at_centre, view = self.stitcher.view_at_centre(fp, det, frame)
        if at_centre.kind != "structure":
            at_centre = replace(at_centre, kind="structure", cls=whole.cls, confidence=whole.confidence)
        n = len(w.objects)
        self._structure(w, at_centre, view, stitched=True, looked=True)
        if len(w.objects) > n:
            self._record_footprint(w, fp, type_scores(whole.scores))

    def _looked_whole_instead(self, w: FieldWork, det: Detection, frame: Frame) -> bool:
        """Record the print larger than the field that ``det``, refused by its shape, is a piece of, if one is found.

        Where a print may be larger than the field, a sharp frame can box a part of it clear of the frame's
        edges: at 60x on 1280 x 720 (a 120 x 67 µm field) a 96 µm pentagon's sharp frame boxed 77 x 47 µm of it,
        the box's aspect (0.62) made it dirt, and its later views were skipped as that dirt's (held-out seed
        3845). Only a structure there that holds ``det`` and is shaped like its type counts
        (:meth:`WholeLook.find`); otherwise the stage is back where ``frame`` was taken and the shape's verdict
        stands. ``det``'s own entry among the known objects is set aside for the look, which skips pieces of
        prints already recorded.
        """
        if not self.whole_look.active:
            return False
        mine = self._known.pop()
        whole = self._whole_look(det, frame)
        if whole is None:
            self._known.append(mine)
            return False
        self._record_looked(w, det, frame, *whole)
        return True

    def _whole_or_stitched(self, w: FieldWork, field_det: Detection, field_frame: Frame, det: Detection,
                           frame: Frame, lens: bool = False) -> None:
        """Focus, stack and record an object centred in ``frame``; one its centred view still shows cut is stitched.

        A print whose pieces in the centred view (:meth:`_pieces_with`: at 40x the detector drew an 82 µm
        woodpile as strips 20-40 µm wide) still reach the frame's edge is larger than the field, or lay beyond
        the centring's reach. Its partial views are joined into one footprint (:meth:`_stitched`); it is focused
        and stacked at the footprint's centre and recorded once there, with the footprint as its box and the
        views' voted type, also where that centre's view shows it whole: that was one piece of it, a 42 µm box
        inside a 93 µm micro-lens at 40x, a woodpile at 0.41 to the sharp frame where the views had said
        micro-lens at 0.80-0.95. A cut view is never a sure debris verdict, so a structure the centring saw
        stays one at the centre.
        """
        pieces = self.stitcher.pieces_with(det, frame)
        if not join_pieces(pieces).touches_edge(self.camera.size_px):
            # whole in view, but a piece of a print larger than the field may be too: at 40x an 81 µm pentagon
            # was two whole boxes, recorded as two pentagons (seed 1605), a 101 µm scaffold two scaffolds (1609)
            whole = self._whole_look(det, frame) if det.kind == "structure" else None
            if whole is None:
                self._structure(w, det, frame, lens)
            else:
                self._record_looked(w, det, frame, *whole)
            return
        # cut in its centred view: looked at whole first. Stitching follows a print view by view and closes a
        # side where a view does not box more of it, so its footprints fell short (40x, fourteen slides: 30 of
        # 45 stitched prints larger than the field 5-40 µm off their centre), where a look's box was within
        # 3 µm for 18 of 22
        whole = self._whole_look(det, frame)
        if whole is not None:
            self._record_looked(w, det, frame, *whole)
            return
        self._stitched(w, field_det, field_frame, det, frame, pieces, lens)

    def _stitched(self, w: FieldWork, field_det: Detection, field_frame: Frame, det: Detection, frame: Frame,
                  pieces: list[Detection], lens: bool) -> None:
        """:meth:`_whole_or_stitched` for a print its centred view shows cut: stitched from views, recorded once.

        Its footprint is recorded as debris where no type is that narrow, or looked at whole around it where it can
        be; else the print is focused, stacked and recorded at the footprint's centre.
        """
        t = time.perf_counter()
        at_centre, view, fp = self.stitcher.stitch(field_det, field_frame, pieces, frame)
        w.timings["stitch"] = w.timings.get("stitch", 0.0) + time.perf_counter() - t
        x, y = fp.centre_um
        if self._duplicate("structure", x, y) or self._outside_area(x, y, fp.box_um):
            return
        why = not_a_footprint(fp.box_um)
        if why is not None:  # a long scratch or fibre the views named a print: no type is that narrow
            seen = self._duplicate("debris", *self._stage_xy(det, frame))
            self._known.append(Known("debris", fp.box_um))  # its every piece is known now, not only this view's
            if not seen:
                self._record_debris(w, as_debris(det), frame, {"not_its_shape": why})
            return
        # a piece spanning the field (cut on opposite sides) had a look region too large to paste (more than
        # mosaic.MAX_VIEWS views); around the footprint stitching found, one can be: a 101 µm micro-lens stitched
        # as a 73 x 68 µm "woodpile" 24 µm off its centre (40x, seed 1553)
        whole = self.whole_look.around(fp.box_um, (view.position.x_um, view.position.y_um))
        if whole is not None:
            self._record_looked(w, at_centre, view, *whole)
            return
        cut = at_centre.touches_edge(self.camera.size_px)
        if cut and at_centre.kind != "structure" and det.kind == "structure":
            at_centre = as_structure(at_centre, det)
        n = len(w.objects)
        self._structure(w, at_centre, view, lens, stitched=True)
        if len(w.objects) > n:
            self._record_footprint(w, fp)

    def _record_footprint(self, w: FieldWork, fp: Footprint, looked: Mapping[str, float] | None = None) -> None:
        """Put the footprint's centre, box and voted type on the object just recorded (and on the duplicate check).

        A structure's type is the vote of every view's pieces (:meth:`Footprint.vote`), its sharp frame's
        verdict among them, weighted by the area each shows; debris keeps its sharp frame's verdict. The type
        from a pasted image (:meth:`_mosaic_type`, at the print's focus) overrules the vote, and where it names
        none surely, the types a whole look read (``looked``, :meth:`_whole_look`) do.
        """
        o = w.objects[-1]
        b = fp.box_um
        extra = {**(o.extra or {}), "footprint_um": [round(v, 2) for v in b], "footprint_views": fp.views,
                 "view_xy_um": [o.x_um, o.y_um], "view_type": o.cls}
        cls, conf = o.cls, o.confidence
        if o.kind == "structure":
            if o.box is not None:
                px = self.cal.um_per_px ** 2
                fp.vote(Detection(o.box, o.kind, o.cls, o.confidence, o.scores or {}),
                        (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) * px)
            voted = fp.type()
            if voted is not None:
                cls, conf = voted
                extra["footprint_type_votes"] = {c: round(v, 1) for c, v in fp.votes.items()}
            whole = self._mosaic_type(o, fp)
            pasted: list[Mapping[str, float]] = []
            if whole is not None:
                types, extra["mosaic_views"] = whole
                extra["mosaic_type"] = types
                pasted.append(types)
            if looked:
                extra["whole_look_type"] = {c: round(p, 4) for c, p in looked.items()}
                pasted.append(looked)
            for read in filter(None, pasted):
                best = max(read, key=lambda c: read[c])
                if read[best] >= MOSAIC_MIN_TYPE:
                    cls, conf = best, read[best]
                    break
        w.objects[-1] = replace(o, cls=cls, confidence=conf, x_um=fp.centre_um[0], y_um=fp.centre_um[1],
                                width_um=fp.size_um[0], height_um=fp.size_um[1], extra=extra)
        self._known[-1] = Known(o.kind, b)

    def _mosaic_type(self, o: ObjectRecord, fp: Footprint) -> tuple[dict[str, float], int] | None:
        """The structure types of a print larger than the field read from one image of it, and the views taken.

        The image is pasted from views at the print's focus (:meth:`Stitcher.mosaic`); None for a print that
        fits the field (its centred view showed it whole), without a focus, or that cannot be looked at whole.
        Pieces of a print are not its type: at 20x with a 320 x 240 sensor a 119 µm micro-lens was named a
        pentagon and a woodpile from its pieces, a 105 µm pentagon a woodpile (seed 1501); pasted whole they
        read micro-lens 0.94 and pentagon 0.97.
        """
        read = getattr(self.vision, "read_type", None)
        fov = self.cal.fov_um
        if read is None or o.z_um is None or (fp.size_um[0] <= fov[0] and fp.size_um[1] <= fov[1]):
            return None
        try:
            self.stage.focus_to_um(o.z_um)
        except StageLimitError:
            return None
        pasted = self.stitcher.mosaic(fp.box_um)
        if pasted is None:
            return None
        image, box, views = pasted
        types = type_scores(read([image], box))
        return ({c: round(p, 4) for c, p in types.items()}, views) if types else None

    def _part_of_known_print(self, det: Detection, frame: Frame) -> bool:
        """Whether a cut view lies mostly (half its box or more) on a structure already recorded.

        A print larger than the field is recorded with its whole footprint; a later field that sees another
        part of it cut by its edge sees that footprint again, wherever the part's own centre lies.
        """
        if not det.touches_edge(self.camera.size_px):
            return False
        b = self._box_um(det, frame)
        tol = stitch_tolerance_um(self.cal)
        return any(k.kind == "structure" and area(intersect(b, grow(k.box_um, tol))) >= 0.5 * area(b)
                   for k in self._known)

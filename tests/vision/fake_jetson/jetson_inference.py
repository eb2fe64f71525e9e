"""A fake ``jetson_inference`` for tests: ``detectNet`` over an ONNX detector, as jetson-inference runs one.

TensorRT is not available here, so ONNX Runtime stands in for the engine; everything around it follows
jetson-inference (``python/bindings/PyDetectNet.cpp``, ``c/detectNet.cpp``, ``c/detectNet.h``):

- constructor ``detectNet(network="", argv=None, threshold=0.5, model=None, labels=None, colors=None,
  input_blob="input_0", output_cvg="scores", output_bbox="boxes")`` (positional or keyword); a non-empty
  ``argv`` list is parsed as a command line instead (recorded in ``argv_used``, and the model keywords are then
  ignored, as in the real binding); any load failure raises a plain ``Exception`` whose text ends in
  "detectNet failed to load network" (missing file, unreadable ONNX, blob names not in the graph);
- ``Detect(image, width=0, height=0, overlay="box,labels,conf", format="rgb8")``: ``image`` must be an RGB(A)
  cudaImage (``gray8`` raises); preprocessing samples the *nearest* input pixel when resizing
  (``gpuTensorNormMean``: ``dx = int(x * scale)``), then ``(x/255 - 0.5)/0.5``; post-processing is
  ``postProcessSSD_ONNX`` (per box the best class >= threshold, class 0 skipped), ``clusterDetections``
  (same class and intersection / larger area > 0.75: boxes united, max confidence), sort by area, clamp to
  ``[0, width-1]`` / ``[0, height-1]``; the overlay (unless "none") draws box outlines into the image in place;
- ``Detection`` objects with ``ClassID``, ``Confidence``, ``Left``, ``Top``, ``Right``, ``Bottom``, ``Width``,
  ``Height``, ``Area``, ``Center``, ``TrackID`` (-1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DETECTNET_DEFAULT_CLUSTERING_THRESHOLD = 0.75
instances: list[detectNet] = []


class Detection:
    def __init__(self, class_id, confidence, left, top, right, bottom):
        self.ClassID = int(class_id)
        self.Confidence = float(confidence)
        self.Left, self.Top, self.Right, self.Bottom = float(left), float(top), float(right), float(bottom)
        self.TrackID = -1

    @property
    def Width(self):  # noqa: N802
        return self.Right - self.Left

    @property
    def Height(self):  # noqa: N802
        return self.Bottom - self.Top

    @property
    def Area(self):  # noqa: N802
        return self.Width * self.Height

    @property
    def Center(self):  # noqa: N802
        return ((self.Left + self.Right) / 2, (self.Top + self.Bottom) / 2)


class detectNet:  # noqa: N801 - the real class's name
    def __init__(self, network="", argv=None, threshold=0.5, model=None, labels=None, colors=None,
                 input_blob="input_0", output_cvg="scores", output_bbox="boxes"):
        import onnxruntime as ort

        self.argv_used = bool(argv)
        if self.argv_used:  # the real binding builds from the command line then, ignoring model=...
            raise Exception("jetson.inference -- detectNet failed to load network (argv given: --model missing)")
        path = model if model is not None else network
        try:
            self._sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception:
            raise Exception("jetson.inference -- detectNet failed to load network") from None
        ins = [i.name for i in self._sess.get_inputs()]
        outs = [o.name for o in self._sess.get_outputs()]
        if input_blob not in ins or output_cvg not in outs or output_bbox not in outs:
            raise Exception("jetson.inference -- detectNet failed to load network")
        self._blobs = (input_blob, output_cvg, output_bbox)
        shape = self._sess.get_inputs()[ins.index(input_blob)].shape
        self._in_h, self._in_w = int(shape[2]), int(shape[3])
        self.threshold = float(threshold)
        self.labels = [ln.strip() for ln in Path(labels).read_text().splitlines() if ln.strip()] if labels else []
        self.calls = []
        instances.append(self)

    def GetThreshold(self):  # noqa: N802
        return self.threshold

    def Detect(self, image, width=0, height=0, overlay="box,labels,conf", format="rgb8"):  # noqa: N802, A002
        fmt = getattr(image, "format", None)
        if fmt not in ("rgb8", "rgba8", "rgb32f", "rgba32f"):
            raise Exception("jetson.inference -- detectNet.Detect() encountered an error classifying the image")
        arr = np.asarray(image)
        self.calls.append({"overlay": overlay, "shape": arr.shape})
        h, w = arr.shape[:2]
        ys = (np.arange(self._in_h) * (h / self._in_h)).astype(int)
        xs = (np.arange(self._in_w) * (w / self._in_w)).astype(int)
        px = arr[ys][:, xs, :3].astype(np.float32) / 255.0
        blob = ((px - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)
        conf, bbox = self._sess.run([self._blobs[1], self._blobs[2]], {self._blobs[0]: np.ascontiguousarray(blob)})
        dets = []
        for n in range(conf.shape[1]):
            best, score = 0, -1000.0
            for m in range(1, conf.shape[2]):
                s = float(conf[0, n, m])
                if s < self.threshold:
                    continue
                if s > score:
                    best, score = m, s
            if best <= 0:
                continue
            c = bbox[0, n]
            d = Detection(best, score, c[0] * w, c[1] * h, c[2] * w, c[3] * h)
            if self._cluster(dets, d):
                dets.append(d)
        dets.sort(key=lambda d: -d.Area)
        for d in dets:
            d.Top, d.Left = max(d.Top, 0.0), max(d.Left, 0.0)
            d.Right = w - 1.0 if d.Right >= w else d.Right
            d.Bottom = h - 1.0 if d.Bottom >= h else d.Bottom
        if "none" not in overlay.split(","):
            for d in dets:  # an outline drawn into the caller's image, as the real overlay does
                arr[int(d.Top), int(d.Left):int(d.Right) + 1] = 255
        return dets

    @staticmethod
    def _cluster(dets, d):
        for m in dets:
            iw = min(m.Right, d.Right) - max(m.Left, d.Left)
            ih = min(m.Bottom, d.Bottom) - max(m.Top, d.Top)
            inter = iw * ih if iw > 0 and ih > 0 else 0.0
            larger = max(m.Area, d.Area)
            if larger > 0 and inter / larger > DETECTNET_DEFAULT_CLUSTERING_THRESHOLD and m.ClassID == d.ClassID:
                m.Left, m.Top = min(m.Left, d.Left), min(m.Top, d.Top)
                m.Right, m.Bottom = max(m.Right, d.Right), max(m.Bottom, d.Bottom)
                m.Confidence = max(m.Confidence, d.Confidence)
                return False
        return True

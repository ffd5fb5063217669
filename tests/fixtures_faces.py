"""Shared helpers for the face / region tests: synthetic landmarks, frames and detections."""

from __future__ import annotations

import functools

import cv2
import numpy as np
from skimage import data

from forensight.regions import mean_face

FRAME_W, FRAME_H = 1280, 720


@functools.lru_cache(maxsize=1)
def astronaut() -> np.ndarray:
    """``skimage.data.astronaut()``: uint8 (512, 512, 3) RGB with one frontal face."""
    img = data.astronaut()
    img.setflags(write=False)
    return img


def similarity_matrix(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    """(2, 3) similarity: rotate by ``angle_deg`` and scale about the origin, then translate."""
    a = np.deg2rad(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]], np.float64)


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (..., 2) points."""
    return pts @ m[:, :2].T + m[:, 2]


def face_matrix(
    scale: float = 2.0, angle_deg: float = 0.0, cx: float = 640.0, cy: float = 360.0
) -> np.ndarray:
    """Similarity placing the 256x256 mean-face frame so its centre (128, 128) lands at (cx, cy)."""
    m = similarity_matrix(scale, angle_deg, 0.0, 0.0)
    centre = apply(m, np.array([128.0, 128.0]))
    m[:, 2] = [cx - centre[0], cy - centre[1]]
    return m


def mean_face_in_frame(
    scale: float = 2.0, angle_deg: float = 0.0, cx: float = 640.0, cy: float = 360.0
) -> np.ndarray:
    """Mean-face landmarks (68, 2) float64 moved into a 1280x720 frame by :func:`face_matrix`."""
    return apply(face_matrix(scale, angle_deg, cx, cy), mean_face())


def box_of(landmarks: np.ndarray) -> np.ndarray:
    """A detector-like box (x0, y0, x1, y1) around the landmarks."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] + 1, hi[1] + 1], np.float32)


@functools.lru_cache(maxsize=1)
def canonical_face_image() -> np.ndarray:
    """A textured uint8 (256, 256, 3) RGB image living in the mean-face frame.

    The astronaut image is resized to 256x256 and slightly blurred so resampling is smooth.
    """
    img = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    img.setflags(write=False)
    return img


def synthetic_frame(m: np.ndarray, w: int = FRAME_W, h: int = FRAME_H) -> np.ndarray:
    """The canonical face image warped into a (h, w) frame by the (2, 3) similarity ``m``."""
    return cv2.warpAffine(
        np.ascontiguousarray(canonical_face_image()),
        m,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def det(
    boxes: list[list[float]], scores: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of detections with landmarks filling each box (mean face scaled into it)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    s = np.asarray(scores if scores is not None else [1.0] * len(b), np.float32)
    mf = mean_face()
    lo, hi = mf.min(axis=0), mf.max(axis=0)
    lms = np.zeros((len(b), 68, 2), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(b):
        lms[i] = (mf - lo) / (hi - lo) * [x1 - x0, y1 - y0] + [x0, y0]
    return b, s, lms


def no_det() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame without detections."""
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 68, 2), np.float32)

"""Is a face track a person's face? The rule that decides which tracks become people.

A detector also fires on things that are not faces (the benchmark video's flag: a white star on
blue gets libfd confidence 0.54-0.71 in every frame), and the 68-point shape predictor always
returns a face-shaped set of points, whatever it is given. A track that is not a face must never
be scored as a person (``detect``'s verdict is the most suspicious person's) or chosen as a
dataset video's subject. :func:`check_track` accepts a track only if all of these hold:

1. **size**: the median box side over the observed frames is at least ``min_side`` native pixels
   (below that the crops are upscaled noise and the landmarks meaningless);
2. **confidence**: the mean detector score over the observed frames is at least
   ``min_confidence`` (when given: scores are on the detector's own scale, see
   :data:`MIN_CONFIDENCE`);
3. **landmark geometry**: the medians over the observed frames of four scale-free ratios of the
   68 points lie in the ranges of :class:`FaceCheck` (inter-ocular distance / box side, mouth
   width / inter-ocular distance, eyes-to-mouth distance / inter-ocular distance with the mouth
   below the eyes, jaw width / box side); this rejects garbage fits (collapsed, flipped or
   box-sized points), NOT a face-like object: the predictor makes a plausible face of the star
   (measured: every ratio of the flag's track lies inside the range of real faces);
4. **skin colour**: in the frames where the face region has colour at all, the median fraction
   of its pixels (inside the hull of the landmarks) whose chroma is skin-like is at least
   ``min_skin``. Skin-like = chroma direction in the YCrCb plane within ``skin_hue`` degrees
   (red above blue: Cr > 128 > Cb) and relative chroma ``|(Cr, Cb) - 128| / Y`` at least
   ``min_chroma``. Both are ratios, so darkening a face (a darker skin tone, dim light) changes
   neither; only the hue direction and the presence of colour matter. Measured
   (``benchmarks/face_recall.py`` faces, 139 real detections with blur and JPEG): every real face
   >= 0.72, the flag's star <= 0.1. A grayscale video (no colour in the frame) is not judged by
   colour: the check says so
   in its measures and the other checks decide. (A colourless region in a colour frame is judged:
   it is not skin.)

Everything is computed from what detection already produced: per detection the landmarks and
:func:`skin_fraction` (cheap: one YCrCb conversion of the face's bounding rectangle, read on a grid of
at most :data:`SKIN_GRID` pixels per side), so the
check needs no second pass over the frames. The rule is applied where tracks become people
(``preprocess._tracks``), so ``detect``, ``evaluate`` and a dataset's subject choice share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from forensight.records import FaceTrack

__all__ = ["MIN_CONFIDENCE", "FaceCheck", "FaceVerdict", "check_track", "is_colour_frame", "landmark_ratios",
           "skin_fraction"]

#: Minimum mean detector score of a track, per detector whose scores are probabilities (0-1).
#: Set to each detector's own detection threshold: measured on ``benchmarks/face_recall.py``, real
#: faces of 24-40 px get libfd scores of 0.5-0.65 while the flag's false face averages 0.72, so a
#: higher bound would lose real small faces and still not remove the false one (the skin-colour
#: check does). Detectors with margin scores (dlib HOG, Haar) are not bounded here.
MIN_CONFIDENCE: dict[str, float] = {"libfd": 0.5, "res10": 0.5, "mediapipe_short": 0.5, "mediapipe_full": 0.5}


@dataclass(frozen=True)
class FaceCheck:
    """Bounds of :func:`check_track` (defaults measured, see the module docstring).

    Attributes:
        min_side: smallest median box side, native pixels.
        min_confidence: smallest mean detector score; None = not checked.
        iod_box: (low, high) of outer-eye-centre distance / box side (real faces 0.35-0.51).
        mouth_iod: (low, high) of mouth width / inter-ocular distance (real 0.64-1.37).
        eyes_mouth_iod: (low, high) of the mouth centre's distance below the eye line /
            inter-ocular distance (real 0.88-1.31; negative = mouth above the eyes).
        jaw_box: (low, high) of jaw width (points 0-16) / box side (real 0.83-1.11).
        min_skin: smallest median skin-coloured fraction of the face region (real >= 0.72).
        skin_hue: (low, high) degrees of ``atan2(Cr - 128, 128 - Cb)``: skin lies near 45 (real
            faces: 1st-99th percentile of pixels 32-68); yellow (an emoji) is at 17.
        min_chroma: relative chroma ``|(Cr, Cb) - 128| / max(Y, 16)`` of a coloured pixel.
        min_colour_frames: fraction of the observed frames that must be judged by colour
            (:func:`skin_fraction` not NaN) for the colour check to apply.
        min_colour_pixels: fraction of coloured pixels that makes a frame a colour frame
            (:func:`is_colour_frame`).
    """

    min_side: float = 20.0
    min_confidence: float | None = None
    iod_box: tuple[float, float] = (0.22, 0.75)
    mouth_iod: tuple[float, float] = (0.4, 1.8)
    eyes_mouth_iod: tuple[float, float] = (0.5, 2.0)
    jaw_box: tuple[float, float] = (0.55, 1.5)
    min_skin: float = 0.4
    skin_hue: tuple[float, float] = (25.0, 80.0)
    min_chroma: float = 0.05
    min_colour_frames: float = 0.5
    min_colour_pixels: float = 0.03

    def for_detector(self, detector: str) -> FaceCheck:
        """This check with ``min_confidence`` from :data:`MIN_CONFIDENCE` for ``detector`` (if unset)."""
        if self.min_confidence is not None:
            return self
        from dataclasses import replace

        return replace(self, min_confidence=MIN_CONFIDENCE.get(detector))


@dataclass
class FaceVerdict:
    """Outcome of :func:`check_track`: ``ok``; ``reason`` (empty when ok) names every failed
    check with its measure and bound; ``measures`` holds each measured value (JSON-safe floats)."""

    ok: bool
    reason: str = ""
    measures: dict[str, float | None] = field(default_factory=dict)


#: The colour measure reads the face region on a grid of at most this many pixels per side (every
#: k-th pixel): a fraction of pixels needs no more, and a 200-px face costs 0.29 ms instead of 2.1 ms
#: (measured 2026-12-07, one thread).
SKIN_GRID = 64


def _region(rgb: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """YCrCb float32 pixels (N, 3) inside the convex hull of ``lm`` (on a grid of every k-th pixel,
    k chosen so the region's longer side has at most :data:`SKIN_GRID` samples), or None if empty."""
    h, w = rgb.shape[:2]
    if not np.isfinite(lm).all():
        return None
    pts = np.round(np.asarray(lm, np.float64)).astype(np.int32)
    x0, y0 = np.clip(pts.min(axis=0), 0, [w, h])
    x1, y1 = np.clip(pts.max(axis=0) + 1, 0, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    k = max(1, -(-int(max(x1 - x0, y1 - y0)) // SKIN_GRID))
    sub = np.ascontiguousarray(rgb[y0:y1:k, x0:x1:k])
    mask = np.zeros(sub.shape[:2], np.uint8)
    hull = np.round((np.asarray(lm, np.float64) - [x0, y0]) / k).astype(np.int32)
    cv2.fillConvexPoly(mask, cv2.convexHull(hull), 1)
    inside = mask.astype(bool)
    if not inside.any():
        return None
    ycc = cv2.cvtColor(sub, cv2.COLOR_RGB2YCrCb)[inside].astype(np.float32)
    return ycc, inside


def skin_fraction(rgb: np.ndarray, landmarks: np.ndarray, check: FaceCheck | None = None) -> float:
    """Skin-coloured fraction of the face region of one detection, or NaN where it has no colour.

    Args:
        rgb: uint8 ``(H, W, 3)`` frame (native resolution).
        landmarks: ``(68, 2)`` points of the detection, pixels of ``rgb``.
        check: bounds (``skin_hue``, ``min_chroma``); default :class:`FaceCheck`.

    Returns:
        Fraction in [0, 1] of the pixels inside the landmarks' convex hull that are skin-like
        (module docstring). A colourless region (fewer than half its pixels coloured) counts as
        not skin in a colour frame (a white star on a blue flag) and gives NaN, "cannot judge",
        in a grayscale frame (:func:`is_colour_frame`); NaN too when the hull is empty (points
        off the frame).
    """
    c = check or FaceCheck()
    reg = _region(rgb, landmarks)
    if reg is None:
        return float("nan")
    coloured, hue = _chroma(reg[0], c)
    if coloured.mean() < 0.5 and not is_colour_frame(rgb, c):
        return float("nan")
    return float((coloured & (hue >= c.skin_hue[0]) & (hue <= c.skin_hue[1])).mean())


def _chroma(ycc: np.ndarray, c: FaceCheck) -> tuple[np.ndarray, np.ndarray]:
    """(coloured mask, hue degrees) of YCrCb pixels ``(N, 3)``."""
    dcr, dcb = ycc[:, 1] - 128.0, ycc[:, 2] - 128.0
    coloured = np.hypot(dcr, dcb) / np.maximum(ycc[:, 0], 16.0) >= c.min_chroma
    return coloured, np.degrees(np.arctan2(dcr, -dcb))


def is_colour_frame(rgb: np.ndarray, check: FaceCheck | None = None) -> bool:
    """Whether a frame has colour: at least ``check.min_colour_pixels`` of a grid of every 8th
    pixel is coloured (relative chroma >= ``min_chroma``). False for grayscale footage."""
    c = check or FaceCheck()
    grid = np.ascontiguousarray(rgb[::8, ::8])
    ycc = cv2.cvtColor(grid, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float32)
    return bool(_chroma(ycc, c)[0].mean() >= c.min_colour_pixels)


def landmark_ratios(landmarks: np.ndarray, box: np.ndarray) -> dict[str, float]:
    """Scale-free geometry of one 68-point fit (iBUG order) in its box ``(x0, y0, x1, y1)``.

    Returns ``iod_box`` (eye-centre distance / box side), ``mouth_iod`` (mouth corner distance /
    eye-centre distance), ``eyes_mouth_iod`` (signed distance of the outer-lip centre below the
    eye line / eye-centre distance) and ``jaw_box`` (points 0-16 distance / box side); the box side
    is ``sqrt(area)``."""
    lm = np.asarray(landmarks, np.float64)
    b = np.asarray(box, np.float64)
    side = float(np.sqrt(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)))
    right, left = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    axis = left - right
    iod = float(np.linalg.norm(axis))
    if iod <= 1e-6 or side <= 1e-6:
        return {"iod_box": 0.0, "mouth_iod": 0.0, "eyes_mouth_iod": 0.0, "jaw_box": 0.0}
    down = np.array([-axis[1], axis[0]]) / iod  # perpendicular to the eye line, pointing to the chin
    mouth = lm[48:60].mean(axis=0)
    return {"iod_box": iod / side,
            "mouth_iod": float(np.linalg.norm(lm[54] - lm[48])) / iod,
            "eyes_mouth_iod": float(np.dot(mouth - (right + left) / 2, down)) / iod,
            "jaw_box": float(np.linalg.norm(lm[16] - lm[0])) / side}


def check_track(track: FaceTrack, check: FaceCheck | None = None, skin: np.ndarray | None = None) -> FaceVerdict:
    """Whether ``track`` is a face (module docstring); ``skin`` overrides ``track.skin``.

    Uses only the observed frames: boxes, raw landmarks (``track.raw_landmarks``, else
    ``landmarks``), ``scores`` and the per-frame skin fractions (``track.skin``: float32
    ``(T,)``, NaN where the region had no colour or the frame was not observed; None = colour not
    measured, the check is skipped and ``measures["skin"]`` is None).
    """
    c = check or FaceCheck()
    obs = np.asarray(track.observed, bool)
    if not obs.any():
        return FaceVerdict(False, "not a face: never observed", {})
    boxes = np.asarray(track.boxes, np.float64)[obs]
    lms = np.asarray(track.raw_landmarks if track.raw_landmarks is not None else track.landmarks, np.float64)[obs]
    sides = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    m: dict[str, float | None] = {"side_px": round(float(np.median(sides)), 1)}
    fails: list[str] = []
    if m["side_px"] < c.min_side:
        fails.append(f"face {m['side_px']:.0f} px < {c.min_side:.0f} px")
    scores = np.asarray(track.scores, np.float64)
    if scores.shape == obs.shape:
        m["confidence"] = round(float(scores[obs].mean()), 4)
        if c.min_confidence is not None and m["confidence"] < c.min_confidence:
            fails.append(f"detector confidence {m['confidence']:.2f} < {c.min_confidence:.2f}")
    ratios = [landmark_ratios(lm, b) for lm, b in zip(lms, boxes)]
    for key, (lo, hi) in (("iod_box", c.iod_box), ("mouth_iod", c.mouth_iod),
                          ("eyes_mouth_iod", c.eyes_mouth_iod), ("jaw_box", c.jaw_box)):
        v = round(float(np.median([r[key] for r in ratios])), 4)
        m[key] = v
        if not lo <= v <= hi:
            fails.append(f"landmarks implausible ({key} {v:.2f} outside {lo:g}-{hi:g})")
    sk = track.skin if skin is None else skin
    m["skin"] = None
    if sk is not None:
        vals = np.asarray(sk, np.float64).reshape(-1)
        vals = vals[obs] if vals.shape == obs.shape else vals
        coloured = vals[np.isfinite(vals)]
        m["colour_frames"] = round(float(coloured.size / max(1, vals.size)), 4)
        if coloured.size and coloured.size >= c.min_colour_frames * vals.size:
            m["skin"] = round(float(np.median(coloured)), 4)
            if m["skin"] < c.min_skin:
                fails.append(f"not skin-coloured ({100 * m['skin']:.0f}% skin-like pixels < {100 * c.min_skin:.0f}%)")
    if fails:
        return FaceVerdict(False, "not a face: " + "; ".join(fails), m)
    return FaceVerdict(True, "", m)

"""Face detection over a sequence of frames, cheaper than detecting every whole frame.

``SequenceFaceDetector`` runs a full-frame detection on the first frame, on every
``full_every``-th frame (so people who enter are seen) and whenever the cheap path loses a face
that looked like a face (a person lost is looked for over the whole frame). What looks like a face
is told by the caller (:meth:`SequenceFaceDetector.set_face_like`, e.g. from the skin colour
preprocessing measures anyway); by default every face does. So a flickering false detection (the
benchmark video's flag, found and lost by the region pass on alternate frames) waits for the next
scheduled full pass instead of forcing one on every other frame. In between
it searches only a region of interest around each face of the previous frame, each scaled so its
face is about ``face_px`` pixels (one region per face: a small second person is not shrunk by the
first one's scale). Boxes are always in native pixels.

The full-frame pass runs on the frame downscaled so its longer side is at most ``max_side``
(never enlarged); when a small frame (longer side < ``max_side``) gives nothing, it is retried
enlarged up to ``max_upscale``. What that finds depends on the detector's smallest face: dlib HOG
needs ~80 px at the detection resolution (a 240-px face in 1920x1080), the default libfd CNN ~20 px
(40 px in 1280x720 and 1920x1080 at recall 0.95 over faces of 40-400 px, ``benchmarks/face_recall.py``;
a 150-px face in a 1080x1920 phone video, two 45-px faces in 640x240).

Region-of-interest passes scale each previous face to ``face_px`` pixels; detectors that
declare their smallest reliable face ``min_face`` (pixels at their input; ``faces.libfd``) get it
at ``min(face_px, 3 * min_face)`` pixels instead: enough for faces rolled by 30 deg, and cheaper.

Nothing is invented: frames where no face is found return no box (the tracker interpolates and
marks them unobserved).

**Following by landmarks** (``PreprocessConfig.detect_follow``, the LipForensics preset's every-frame
path): between detections, a face of the previous frame needs no detector at all. Its box in the
next frame is placed from its own previous landmarks (:func:`boxes_from_landmarks`, with the offsets
between the detector's box and the landmarks' extent measured at its last detection,
:func:`box_offsets`), and the shape predictor fits the new landmarks in it. Detection still runs on
every ``detect_follow``-th sample and on every scheduled full pass (:meth:`SequenceFaceDetector.full_due`);
each followed face must be CONFIRMED there by a detected box overlapping where it was followed to,
otherwise its followed frames are dropped (:func:`confirm_followed`), so a face that left the
picture is never carried on by landmark fits on the background.
"""

from __future__ import annotations

import cv2
import numpy as np

from forensight.faces.detectors import FaceDetector, box_iou, detect_downscaled


class SequenceFaceDetector:
    """Stateful detector for consecutive (sampled) frames of ONE video.

    Args:
        detector: any ``FaceDetector``.
        max_side: longer side (pixels) of full-frame detection.
        face_px: target face size of the region-of-interest pass; 0 = always full frame.
        full_every: full-frame detection every this many frames (>= 1).
        roi_margin: the region of interest extends each face box by this fraction of its size.
        max_upscale: when a full pass finds nothing in a small frame (longer side < ``max_side``),
            it is retried enlarged up to this factor, so faces below the detector's minimum size
            (dlib HOG: 80 px) are found; region-of-interest passes enlarge small faces likewise.
    """

    def __init__(self, detector: FaceDetector, max_side: int = 640, face_px: int = 120, full_every: int = 8,
                 roi_margin: float = 0.6, max_upscale: float = 2.0) -> None:
        if full_every < 1:
            raise ValueError("full_every must be >= 1")
        self.detector = detector
        self.max_side = int(max_side)
        self.face_px = int(face_px)
        self.full_every = int(full_every)
        self.roi_margin = float(roi_margin)
        self.max_upscale = max(1.0, float(max_upscale))
        m = getattr(detector, "min_face", None)
        self.min_face: float | None = None if m is None else float(m)
        self._prev: np.ndarray = np.zeros((0, 4), np.float32)
        self._face_like: np.ndarray | None = None  # per previous face (None = all): may force a full pass
        self._n = 0
        self.full_calls = 0
        self.roi_calls = 0

    def _full(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.full_calls += 1
        boxes, scores = detect_downscaled(self.detector, rgb, self.max_side)
        up = min(self.max_upscale, self.max_side / float(max(rgb.shape[:2])))
        if len(boxes) or up <= 1.0:
            return boxes, scores
        # nothing at native scale in a small frame: retry enlarged (faces under the detector's
        # minimum size); only then, so normal videos get no extra false positives
        big = cv2.resize(rgb, (round(rgb.shape[1] * up), round(rgb.shape[0] * up)), interpolation=cv2.INTER_LINEAR)
        boxes, scores = self.detector.detect(big)
        sx, sy = rgb.shape[1] / big.shape[1], rgb.shape[0] / big.shape[0]
        return (boxes.astype(np.float32) * np.array([sx, sy, sx, sy], np.float32)).reshape(-1, 4), scores

    def _roi(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One region of interest per face of the previous frame, each scaled for that face.

        A shared box around all faces would scale every face by the largest one's factor, so a
        small second person (or a face far from the first) would shrink below the detector's
        minimum and be "lost" on every frame, forcing a full pass each time. Each region keeps the
        one box that overlaps its previous face most (none if no box overlaps it: the face is lost);
        two regions that found the same face are merged (the higher score wins at IoU >= 0.5).
        """
        self.roi_calls += 1
        h, w = rgb.shape[:2]
        face_px = self.face_px if self.min_face is None else min(self.face_px, 3.0 * self.min_face)
        found_b, found_s = [], []
        for b in self._prev:
            size = float(max(b[2] - b[0], b[3] - b[1]))
            x0 = int(max(0, np.floor(b[0] - self.roi_margin * size)))
            y0 = int(max(0, np.floor(b[1] - self.roi_margin * size)))
            x1 = int(min(w, np.ceil(b[2] + self.roi_margin * size)))
            y1 = int(min(h, np.ceil(b[3] + self.roi_margin * size)))
            if x1 - x0 < 16 or y1 - y0 < 16 or size <= 0:
                continue
            scale = min(self.max_upscale, face_px / size, self.max_side / float(max(x1 - x0, y1 - y0)))
            roi = rgb[y0:y1, x0:x1]
            if scale != 1.0:
                roi = cv2.resize(roi, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                                 interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            boxes, scores = self.detector.detect(np.ascontiguousarray(roi))
            if len(boxes):
                sx, sy = (x1 - x0) / roi.shape[1], (y1 - y0) / roi.shape[0]
                boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
                boxes += np.array([x0, y0, x0, y0], np.float32)
                # this region follows ONE face: keep the box that overlaps it most (others here are
                # neighbours cut by the region's edge; the full passes find new people)
                overlap = box_iou(boxes, b[None])[:, 0]
                j = int(overlap.argmax())
                if overlap[j] > 0:
                    found_b.append(boxes[j:j + 1])
                    found_s.append(np.asarray(scores, np.float32).reshape(-1)[j:j + 1])
        if not found_b:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return _merge(np.concatenate(found_b), np.concatenate(found_s))

    def full_due(self) -> bool:
        """True when the next :meth:`detect` call is a scheduled full-frame pass (or nothing is tracked)."""
        return self.face_px <= 0 or len(self._prev) == 0 or self._n % self.full_every == 0

    def skip(self, boxes: np.ndarray) -> None:
        """Advance one frame WITHOUT detecting: the faces were found another way (followed by their
        landmarks); ``boxes`` (N, 4) native pixels become the previous faces of the next frame.
        The full-pass schedule counts this frame like a detected one."""
        self._n += 1
        self._prev = np.asarray(boxes, np.float32).reshape(-1, 4)
        self._face_like = None

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes float32 (N, 4) native pixels and scores (N,) for the next frame of the video."""
        use_roi = self.face_px > 0 and len(self._prev) > 0 and self._n % self.full_every != 0
        boxes, scores = self._roi(rgb) if use_roi else self._full(rgb)
        if use_roi and len(boxes) < len(self._prev):
            lost = (box_iou(self._prev, boxes).max(axis=1) <= 0) if len(boxes) else np.ones(len(self._prev), bool)
            if self._face_like is not None:
                lost &= self._face_like
            if lost.any():
                # a face was lost: look over the whole frame, so a person the cheap pass dropped is
                # not missing until the next scheduled full pass (every person is scored)
                full = self._full(rgb)
                if len(full[0]) >= len(boxes):
                    boxes, scores = full
        self._n += 1
        self._prev = boxes
        self._face_like = None
        return boxes, scores

    def set_face_like(self, face_like: np.ndarray) -> None:
        """Which faces of the frame just processed look like faces (bool, one per box it returned,
        or per box given to :meth:`skip`): only losing one of those forces a full pass."""
        face_like = np.asarray(face_like, bool).reshape(-1)
        if len(face_like) != len(self._prev):
            raise ValueError(f"set_face_like got {len(face_like)} values for {len(self._prev)} faces")
        self._face_like = face_like


def _merge(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Greedy non-maximum suppression: of boxes overlapping at IoU >= ``iou``, keep the best-scored."""
    order = np.argsort(-scores, kind="stable")
    overlap = box_iou(boxes, boxes)
    keep: list[int] = []
    for i in order:
        if all(overlap[i, k] < iou for k in keep):
            keep.append(int(i))
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32)


def landmark_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Tight boxes ``(N, 4)`` float64 ``(x0, y0, x1, y1)`` of landmarks ``(N, 68, 2)``."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    return np.concatenate([lm.min(axis=1), lm.max(axis=1)], axis=1)


def box_offsets(boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Where each detector box lies relative to its face's landmarks: ``(boxes - landmark_boxes)``
    divided by the landmark box's longer side, float64 ``(N, 4)`` (scale-free, so a face that moves
    or grows keeps it)."""
    lb = landmark_boxes(landmarks)
    side = np.maximum(lb[:, 2:] - lb[:, :2], 1e-6).max(axis=1, keepdims=True)
    return (np.asarray(boxes, np.float64).reshape(-1, 4) - lb) / side


def boxes_from_landmarks(landmarks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The inverse of :func:`box_offsets`: boxes float32 ``(N, 4)`` in the detector's convention
    placed from landmarks ``(N, 68, 2)``."""
    lb = landmark_boxes(landmarks)
    side = np.maximum(lb[:, 2:] - lb[:, :2], 1e-6).max(axis=1, keepdims=True)
    return (lb + np.asarray(offsets, np.float64).reshape(-1, 4) * side).astype(np.float32)


def confirm_followed(expected: np.ndarray, detected: np.ndarray, min_iou: float = 0.3) -> np.ndarray:
    """Which followed faces a detection confirms: bool ``(N,)``, True where some detected box
    ``(M, 4)`` overlaps the face's expected box ``(N, 4)`` (where following would have put it in this
    frame) at IoU >= ``min_iou``."""
    expected = np.asarray(expected, np.float32).reshape(-1, 4)
    detected = np.asarray(detected, np.float32).reshape(-1, 4)
    if not len(expected) or not len(detected):
        return np.zeros(len(expected), bool)
    return box_iou(expected, detected).max(axis=1) >= min_iou

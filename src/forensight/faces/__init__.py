"""Faces: detection, 68-point landmarks and tracking of one subject through sampled frames.

Typical use for one video (frames: uint8 ``(T, H, W, 3)`` RGB, native resolution)::

    det = SequenceFaceDetector(get_detector(cfg.detector), max_side=cfg.detect_max_side,
                               face_px=cfg.detect_face_px, full_every=cfg.detect_full_every,
                               max_upscale=cfg.detect_max_upscale)
    lmk = get_landmark_predictor()
    dets = []
    for frame in frames:
        boxes, scores = det.detect(frame)  # native-pixel boxes, dlib convention
        dets.append((boxes, scores, lmk.predict_many(frame, boxes)))
    track = build_track(dets, cfg.smooth_window)  # PreprocessError("no_face") if none

Which tracks are people (face-like: size, confidence, landmark geometry, skin colour) is decided by
``faces.faceness.check_track``, applied where tracks become people (``preprocess._tracks``).
"""

from forensight.faces.detectors import (
    DETECTOR_NAMES,
    DlibCnnDetector,
    DlibHogDetector,
    FaceDetector,
    HaarDetector,
    detect_downscaled,
    get_detector,
    model_path,
)
from forensight.faces.faceness import FaceCheck, FaceVerdict, check_track, skin_fraction
from forensight.faces.landmarks import (
    EYES_AND_BROWS,
    JAW,
    LEFT_BROW,
    LEFT_EYE,
    LIPFORENSICS_STABLE_POINTS,
    MOUTH,
    MOUTH_INNER,
    MOUTH_OUTER,
    NOSE,
    RIGHT_BROW,
    RIGHT_EYE,
    LandmarkPredictor,
    get_landmark_predictor,
)
from forensight.faces.libfd import LibFaceDetector
from forensight.faces.res10 import Res10Detector
from forensight.faces.sequence import SequenceFaceDetector
from forensight.faces.tracking import build_track, interpolate_missing, link_detections, smooth_sequence

__all__ = [
    "DETECTOR_NAMES",
    "EYES_AND_BROWS",
    "JAW",
    "LEFT_BROW",
    "LEFT_EYE",
    "LIPFORENSICS_STABLE_POINTS",
    "MOUTH",
    "MOUTH_INNER",
    "MOUTH_OUTER",
    "NOSE",
    "RIGHT_BROW",
    "RIGHT_EYE",
    "DlibCnnDetector",
    "DlibHogDetector",
    "FaceCheck",
    "FaceDetector",
    "FaceVerdict",
    "HaarDetector",
    "LandmarkPredictor",
    "LibFaceDetector",
    "Res10Detector",
    "SequenceFaceDetector",
    "build_track",
    "check_track",
    "detect_downscaled",
    "get_detector",
    "get_landmark_predictor",
    "interpolate_missing",
    "link_detections",
    "model_path",
    "skin_fraction",
    "smooth_sequence",
]

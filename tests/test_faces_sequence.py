"""SequenceFaceDetector: full-frame passes on schedule, region-of-interest passes in between."""

from __future__ import annotations

import numpy as np
import pytest

from forensight.faces.detectors import get_detector
from forensight.faces.sequence import SequenceFaceDetector


class _Fake:
    """Finds one 'face': the bounding box of the bright pixels, in the image it is given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.shapes.append(rgb.shape[:2])
        ys, xs = np.nonzero(rgb[..., 0] > 128)
        if xs.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32), np.ones(1, np.float32)


def _frame(x: int, y: int, s: int = 200, w: int = 1280, h: int = 720) -> np.ndarray:
    f = np.zeros((h, w, 3), np.uint8)
    f[y:y + s, x:x + s] = 255
    return f


def test_roi_passes_are_smaller_and_boxes_stay_native() -> None:
    fake = _Fake()
    det = SequenceFaceDetector(fake, max_side=640, face_px=100, full_every=4)
    for i in range(8):
        boxes, _ = det.detect(_frame(500 + 5 * i, 200))
        np.testing.assert_allclose(boxes[0], [500 + 5 * i, 200, 700 + 5 * i, 400], atol=6)
    assert det.full_calls == 2 and det.roi_calls == 6  # frames 0 and 4 are full passes
    full_px = fake.shapes[0][0] * fake.shapes[0][1]
    assert all(h * w < full_px / 2 for h, w in fake.shapes[1:4])


def test_miss_in_roi_falls_back_to_full_frame() -> None:
    fake = _Fake()
    det = SequenceFaceDetector(fake, max_side=640, face_px=100, full_every=100)
    det.detect(_frame(100, 100))
    boxes, _ = det.detect(_frame(1000, 450, s=150))  # the face jumped far away
    assert det.full_calls == 2 and len(boxes) == 1 and boxes[0, 0] > 900


def test_no_face_returns_nothing() -> None:
    det = SequenceFaceDetector(_Fake(), full_every=2)
    boxes, scores = det.detect(np.zeros((100, 100, 3), np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    with pytest.raises(ValueError):
        SequenceFaceDetector(_Fake(), full_every=0)


def test_real_face_found_by_roi_matches_full_detection() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import moving_face_frames

    frames = moving_face_frames(6, size=(640, 512))
    seq = SequenceFaceDetector(get_detector("dlib_hog"), max_side=640, face_px=100, full_every=8, max_upscale=1.0)
    full = get_detector("dlib_hog")
    for f in frames:
        b_seq, _ = seq.detect(f)
        b_full, _ = full.detect(f)
        c_full = (b_full[:, :2] + b_full[:, 2:]) / 2
        for b in b_seq:  # every face the cheap path reports is one the full pass reports too
            c = (b[:2] + b[2:]) / 2
            err = np.abs(c_full - c).max(axis=1)
            j = int(err.argmin())
            assert err[j] < 0.15 * (b_full[j, 2] - b_full[j, 0])
    assert seq.roi_calls >= 4


class _MinSize(_Fake):
    """Like _Fake but, as dlib HOG, blind to faces smaller than 80 px in the image it gets."""

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = super().detect(rgb)
        keep = (boxes[:, 2] - boxes[:, 0]) >= 80
        return boxes[keep], scores[keep]


def test_small_frames_are_upscaled_for_detection() -> None:
    small = _frame(60, 40, s=60, w=176, h=144)  # a 60-px face in a 176x144 video (like carphone)
    assert len(SequenceFaceDetector(_MinSize(), max_upscale=1.0).detect(small)[0]) == 0
    det = SequenceFaceDetector(_MinSize(), max_side=640, face_px=100, max_upscale=2.0)
    for _ in range(3):  # full pass, then region-of-interest passes, all upscaled
        boxes, _ = det.detect(small)
        np.testing.assert_allclose(boxes[0], [60, 40, 120, 100], atol=2)
    assert det.roi_calls == 2 and det.full_calls == 1  # the full pass retried enlarged once


class _Blobs:
    """Finds every bright square at least ``min_px`` wide in the image it is given (one per blob)."""

    def __init__(self, min_px: int = 20) -> None:
        self.min_px = min_px

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        n, _, stats, _ = cv2.connectedComponentsWithStats((rgb[..., 0] > 128).astype(np.uint8))
        boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:n] if w >= self.min_px]
        return np.array(boxes, np.float32).reshape(-1, 4), np.ones(len(boxes), np.float32)


def test_faces_of_different_sizes_each_get_their_own_roi() -> None:
    """A 240-px and a 40-px face far apart: one shared region scaled for the big face would shrink
    the small one below the detector's minimum and force a full pass on every frame."""
    det = SequenceFaceDetector(_Blobs(min_px=20), max_side=1280, face_px=100, full_every=8)
    for i in range(8):
        f = _frame(800 + 2 * i, 300, s=240)
        f[60:100, 100 + 2 * i:140 + 2 * i] = 255
        boxes, _ = det.detect(f)
        assert len(boxes) == 2
        got = sorted(boxes.tolist())
        np.testing.assert_allclose(got[0], [100 + 2 * i, 60, 140 + 2 * i, 100], atol=2)
        np.testing.assert_allclose(got[1], [800 + 2 * i, 300, 1040 + 2 * i, 540], atol=4)
    assert det.full_calls == 1 and det.roi_calls == 7


def test_close_faces_found_in_two_regions_are_not_doubled() -> None:
    det = SequenceFaceDetector(_Blobs(), max_side=1280, face_px=100, full_every=8, roi_margin=0.6)
    f = _frame(400, 300, s=100)
    f[300:400, 530:630] = 255  # a second face 30 px to the right: inside the first one's region
    for _ in range(4):
        boxes, _ = det.detect(f)
        assert len(boxes) == 2
    assert det.full_calls == 1


def test_two_regions_that_found_the_same_face_give_one_box() -> None:
    """Two previous boxes on one face (e.g. a detector's duplicate): the next frame has one face."""
    det = SequenceFaceDetector(_Blobs(), max_side=1280, face_px=100, full_every=8)
    det.detect(_frame(400, 300, s=100))
    det._prev = np.array([[400, 300, 500, 400], [404, 302, 503, 398]], np.float32)  # a duplicate
    boxes, scores = det.detect(_frame(402, 300, s=100))
    assert boxes.shape == (1, 4) and scores.shape == (1,)
    np.testing.assert_allclose(boxes[0], [402, 300, 502, 400], atol=1)

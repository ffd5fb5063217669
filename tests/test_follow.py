"""Following faces by their landmarks between detections (``PreprocessConfig.detect_follow``), and
the rule that only a lost face-like face forces a full-frame pass (``faces.sequence``)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.config import PREPROCESS_PRESETS, PreprocessConfig, stable_hash
from forensight.faces import sequence
from forensight.faces.sequence import (
    SequenceFaceDetector,
    box_offsets,
    boxes_from_landmarks,
    confirm_followed,
    landmark_boxes,
)
from forensight.preprocess import process_frames
from forensight.records import SampledFrames

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from preprocess import talking_head_frames

PP = PreprocessConfig(sampling="all", num_frames=24, regions=("full",), size=64, smooth_window=1)


def _sampled(frames: list[np.ndarray]) -> SampledFrames:
    idx = np.arange(len(frames))
    return SampledFrames(indices=idx, timestamps=idx / 30.0, frames=np.stack(frames))


class _Counting(SequenceFaceDetector):
    calls = 0

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        type(self).calls += 1
        return super().detect(rgb)


@pytest.fixture()
def counting(monkeypatch: pytest.MonkeyPatch) -> type[_Counting]:
    _Counting.calls = 0
    monkeypatch.setattr(sequence, "SequenceFaceDetector", _Counting)
    return _Counting


def test_following_gives_the_landmarks_of_detection_with_a_quarter_of_the_detector_calls(
        counting: type[_Counting]) -> None:
    """The benchmark's talking head (moving, speaking, a flag beside it), 24 consecutive frames."""
    frames = list(talking_head_frames(0, indices=np.arange(24)))
    (ref, _), = process_frames(_sampled(frames), PP, people=0.25)[0]
    every = counting.calls
    (fol, _), = process_frames(_sampled(frames), dataclasses.replace(PP, detect_follow=4), people=0.25)[0]
    assert every == 24 and counting.calls - every == 6  # samples 0, 4, 8, ... detect; the rest follow
    assert ref.observed.all() and fol.observed.all()
    iod = np.linalg.norm(ref.raw_landmarks[:, 36:42].mean(1) - ref.raw_landmarks[:, 42:48].mean(1), axis=1)
    err = np.linalg.norm(ref.raw_landmarks - fol.raw_landmarks, axis=2).mean(1) / iod
    assert err.max() < 0.03, err  # measured 0.0066 mean / 0.012 max over the whole 300-frame video (lips preset)
    np.testing.assert_allclose(fol.boxes, ref.boxes, atol=0.05 * float(np.median(ref.boxes[:, 2] - ref.boxes[:, 0])))


def test_a_face_that_leaves_is_not_followed_onto_the_background() -> None:
    """A face for 10 frames, then only a textured background: the frames followed after the last
    detection that saw it are dropped when the next detection does not confirm it."""
    from skimage import data

    face = list(talking_head_frames(0, indices=np.arange(10)))
    h, w = face[0].shape[:2]
    wall = cv2.resize(np.repeat(data.brick()[..., None], 3, axis=2), (w, h))
    frames = face + [wall] * 14
    (ref, _), = process_frames(_sampled(frames), PP, people=0.25)[0]
    (fol, _), = process_frames(_sampled(frames), dataclasses.replace(PP, detect_follow=4), people=0.25)[0]
    assert ref.observed[:10].all() and not ref.observed[10:].any()
    # detections at samples 0, 4, 8, 12: 9-11 were followed from 8 and 12 found nobody
    assert fol.observed[:9].all() and not fol.observed[9:].any()


def test_samples_far_apart_are_always_detected(counting: type[_Counting]) -> None:
    frames = list(talking_head_frames(0, indices=np.arange(0, 72, 3)))  # every 3rd source frame
    idx = np.arange(0, 72, 3)
    sampled = SampledFrames(indices=idx, timestamps=idx / 30.0, frames=np.stack(frames))
    process_frames(sampled, dataclasses.replace(PP, detect_follow=4), people=0.25)
    assert counting.calls == len(frames)


class _Blinking:
    """Finds a big bright square in any image, and a small grey one only in whole (downscaled)
    frames, never in a region-of-interest crop (a false detection that only full passes make)."""

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for lo, hi in ((200, 256), (100, 150)):
            ys, xs = np.nonzero((rgb[..., 0] >= lo) & (rgb[..., 0] < hi))
            if xs.size and (lo == 200 or rgb.shape[1] >= 600):
                out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        return np.array(out, np.float32).reshape(-1, 4), np.ones(len(out), np.float32)


def _scene() -> np.ndarray:
    f = np.zeros((720, 1280, 3), np.uint8)
    f[200:400, 500:700] = 255
    f[100:140, 100:140] = 120
    return f


@pytest.mark.parametrize("face_like", [None, [True, True], [True, False]])
def test_only_losing_a_face_like_face_forces_a_full_pass(face_like: list[bool] | None) -> None:
    det = SequenceFaceDetector(_Blinking(), max_side=640, face_px=100, full_every=100)
    for _ in range(9):
        boxes, _ = det.detect(_scene())
        if face_like is not None and len(boxes) == 2:
            det.set_face_like(np.array(face_like))
    if face_like == [True, False]:
        assert det.full_calls == 1  # the flickering small one waits for the scheduled pass
    else:
        assert det.full_calls == 9  # every loss of it looked over the whole frame
    with pytest.raises(ValueError, match="set_face_like"):
        det.set_face_like(np.ones(5, bool))


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(0.05, 0.4), st.floats(0.5, 4.0),
       st.floats(-500, 500), st.floats(-500, 500))
def test_box_offsets_round_trip_and_follow_the_face(dx0: float, dy0: float, grow: float, scale: float,
                                                    tx: float, ty: float) -> None:
    from fixtures_faces import mean_face_in_frame

    lm = mean_face_in_frame()[None]
    lb = landmark_boxes(lm)[0]
    side = float(max(lb[2] - lb[0], lb[3] - lb[1]))
    box = np.array([[lb[0] + dx0 * side, lb[1] + dy0 * side, lb[2] + grow * side, lb[3] + grow * side]], np.float32)
    off = box_offsets(box, lm)
    np.testing.assert_allclose(boxes_from_landmarks(lm, off), box, atol=1e-2)
    # the same face moved and scaled: its box moves and scales with it
    moved = lm * scale + [tx, ty]
    np.testing.assert_allclose(boxes_from_landmarks(moved, off), box * scale + [tx, ty, tx, ty],
                               rtol=1e-5, atol=2e-2 * scale)


def test_confirmation_needs_an_overlapping_detection() -> None:
    exp = np.array([[0, 0, 100, 100], [500, 500, 600, 600]], np.float32)
    np.testing.assert_array_equal(confirm_followed(exp, np.array([[10, 5, 110, 105]], np.float32)), [True, False])
    np.testing.assert_array_equal(confirm_followed(exp, np.zeros((0, 4), np.float32)), [False, False])


def test_follow_setting_is_validated_and_leaves_old_hashes_alone() -> None:
    with pytest.raises(ValueError, match="detect_follow"):
        PreprocessConfig(detect_follow=-1)
    d = PreprocessConfig().to_dict()
    assert d.pop("detect_follow") == 0 and not d.get("perturbation")
    d.pop("perturbation", None)
    assert PreprocessConfig().hash == stable_hash(d)  # caches and model files made before keep their hash
    assert PreprocessConfig(detect_follow=4).hash != PreprocessConfig().hash
    assert PREPROCESS_PRESETS["lips"].detect_follow == 4

"""Tests of forensight.faces: detectors, landmarks, tracking and temporal smoothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures_faces import astronaut, det, no_det
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from forensight.faces import (
    LEFT_EYE,
    LIPFORENSICS_STABLE_POINTS,
    MOUTH,
    RIGHT_EYE,
    FaceDetector,
    build_track,
    detect_downscaled,
    get_detector,
    get_landmark_predictor,
    interpolate_missing,
    smooth_sequence,
)
from forensight.faces import detectors as detectors_mod
from forensight.faces import landmarks as landmarks_mod
from forensight.records import FaceTrack, PreprocessError

# ----------------------------------------------------------------------------- detectors


@pytest.fixture(scope="module")
def hog_astronaut() -> tuple[np.ndarray, np.ndarray]:
    return get_detector("dlib_hog").detect(astronaut())


def _check_output(boxes: np.ndarray, scores: np.ndarray) -> None:
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert scores.dtype == np.float32 and scores.shape == (boxes.shape[0],)


def test_dlib_hog_finds_exactly_one_face_on_astronaut(hog_astronaut: tuple[np.ndarray, np.ndarray]) -> None:
    boxes, scores = hog_astronaut
    _check_output(boxes, scores)
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    # The face is around x 180-270, y 80-170 in the 512x512 image.
    assert 150 < x0 < x1 < 300 and 60 < y0 < y1 < 200
    assert scores[0] > 0


def test_haar_finds_the_astronaut_face() -> None:
    boxes, scores = get_detector("haar").detect(astronaut())
    _check_output(boxes, scores)
    assert len(boxes) >= 1
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert any(150 < cx < 300 and 60 < cy < 200 for cx, cy in centres)


def test_dlib_cnn_on_a_small_face_crop() -> None:
    crop = np.ascontiguousarray(astronaut()[50:210, 150:300])  # small crop: the CNN is slow on CPU
    boxes, scores = get_detector("dlib_cnn").detect(crop)
    _check_output(boxes, scores)
    assert len(boxes) == 1


@pytest.mark.parametrize("name", ["dlib_hog", "haar"])
def test_blank_image_has_no_face(name: str) -> None:
    boxes, scores = get_detector(name).detect(np.full((240, 320, 3), 127, np.uint8))
    _check_output(boxes, scores)
    assert len(boxes) == 0


def test_get_detector_is_cached_and_checks_names() -> None:
    d = get_detector("dlib_hog")
    assert d is get_detector("dlib_hog")
    assert isinstance(d, FaceDetector)
    with pytest.raises(ValueError, match=r"dlib_hog.*haar.*dlib_cnn"):
        get_detector("mtcnn")


def test_missing_model_file_names_file_and_place() -> None:
    with pytest.raises(FileNotFoundError, match=r"no_such_model\.dat.*expected at"):
        detectors_mod.model_path("no_such_model.dat")


def test_detector_rejects_non_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        get_detector("dlib_hog").detect(np.zeros((64, 64, 3), np.float32))


def test_detect_downscaled_maps_boxes_back(hog_astronaut: tuple[np.ndarray, np.ndarray]) -> None:
    big = cv2.resize(astronaut(), (1024, 1024), interpolation=cv2.INTER_LINEAR)
    boxes, scores = detect_downscaled(get_detector("dlib_hog"), big, max_side=512)
    _check_output(boxes, scores)
    assert len(boxes) == 1
    expected = hog_astronaut[0][0] * 2
    side = expected[2] - expected[0]
    assert np.abs(boxes[0] - expected).max() < 0.1 * side


def test_detect_downscaled_never_enlarges(hog_astronaut: tuple[np.ndarray, np.ndarray]) -> None:
    boxes, _ = detect_downscaled(get_detector("dlib_hog"), astronaut(), max_side=4096)
    np.testing.assert_array_equal(boxes, hog_astronaut[0])
    with pytest.raises(ValueError):
        detect_downscaled(get_detector("dlib_hog"), astronaut(), max_side=0)


# ----------------------------------------------------------------------------- landmarks


def test_landmarks_on_astronaut(hog_astronaut: tuple[np.ndarray, np.ndarray]) -> None:
    boxes, _ = hog_astronaut
    pred = get_landmark_predictor()
    assert pred is get_landmark_predictor()
    lm = pred(astronaut(), boxes[0])
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    x0, y0, x1, y1 = boxes[0]
    pad = 0.15 * (x1 - x0)  # dlib's jaw points may poke slightly out of its own box
    assert (lm[:, 0] > x0 - pad).all() and (lm[:, 0] < x1 + pad).all()
    assert (lm[:, 1] > y0 - pad).all() and (lm[:, 1] < y1 + pad).all()
    eyes = lm[list(RIGHT_EYE) + list(LEFT_EYE)]
    assert lm[list(MOUTH), 1].min() > eyes[:, 1].max()  # mouth below the eyes
    assert lm[list(RIGHT_EYE), 0].mean() < lm[list(LEFT_EYE), 0].mean()  # subject's right = image left
    many = pred.predict_many(astronaut(), np.concatenate([boxes, boxes]))
    assert many.shape == (2, 68, 2)
    np.testing.assert_array_equal(many[0], lm)
    assert pred.predict_many(astronaut(), np.zeros((0, 4))).shape == (0, 68, 2)


def test_landmark_index_groups() -> None:
    assert list(landmarks_mod.JAW) == list(range(17))
    assert list(landmarks_mod.NOSE) == list(range(27, 36))
    assert list(landmarks_mod.MOUTH_OUTER) + list(landmarks_mod.MOUTH_INNER) == list(MOUTH)
    assert LIPFORENSICS_STABLE_POINTS == (33, 36, 39, 42, 45)
    assert sorted(landmarks_mod.EYES_AND_BROWS) == list(range(17, 27)) + list(range(36, 48))


# ----------------------------------------------------------------------------- tracking


def _still_frames(n: int, box: list[float]) -> list:
    return [det([box]) for _ in range(n)]


def test_single_still_face_is_exact() -> None:
    box = [100.25, 50.5, 300.75, 260.0]
    track = build_track(_still_frames(9, box), smooth_window=5)
    assert isinstance(track, FaceTrack) and len(track) == 9
    assert track.boxes.dtype == np.float32 and track.landmarks.shape == (9, 68, 2)
    assert track.observed.all() and track.coverage == 1.0
    np.testing.assert_array_equal(track.boxes, np.tile(np.float32(box), (9, 1)))
    np.testing.assert_array_equal(track.landmarks, np.repeat(det([box])[2], 9, axis=0))
    assert track.num_other_tracks == 0
    assert (track.scores == 1).all()


def test_missing_frames_are_interpolated() -> None:
    frames = [det([[10 * t, 0, 10 * t + 100, 100]], [0.5]) for t in range(8)]
    frames[3] = no_det()
    frames[4] = no_det()
    frames[0] = no_det()
    track = build_track(frames, smooth_window=1)
    np.testing.assert_array_equal(track.observed, [False, True, True, False, False, True, True, True])
    np.testing.assert_allclose(track.scores, [0, 0.5, 0.5, 0, 0, 0.5, 0.5, 0.5])
    # Frames 3, 4 linear between 2 and 5; frame 0 holds frame 1.
    np.testing.assert_allclose(track.boxes[3], [30, 0, 130, 100], atol=1e-4)
    np.testing.assert_allclose(track.boxes[4], [40, 0, 140, 100], atol=1e-4)
    np.testing.assert_allclose(track.boxes[0], track.boxes[1])
    np.testing.assert_allclose(track.landmarks[3], det([[30, 0, 130, 100]])[2][0], atol=1e-3)
    np.testing.assert_array_equal(track.raw_landmarks, track.landmarks)  # window 1: no smoothing
    assert track.coverage == pytest.approx(5 / 8)


def test_two_people_the_larger_consistent_one_wins() -> None:
    big = [600, 100, 900, 400]
    small = [100, 100, 200, 200]
    # Detection order varies between frames: association must follow position, not index.
    frames = [det([big, small]) if t % 2 else det([small, big]) for t in range(10)]
    track = build_track(frames, smooth_window=3)
    assert track.num_other_tracks == 1
    np.testing.assert_allclose(track.boxes, np.tile(big, (10, 1)))
    assert track.observed.all()


def test_consistency_beats_a_one_frame_giant() -> None:
    face = [100, 100, 250, 250]
    giant = [500, 0, 1000, 500]  # 11x the area, but in one frame only
    frames = [det([face]) for _ in range(20)]
    frames[7] = det([face, giant])
    track = build_track(frames, smooth_window=1)
    assert track.num_other_tracks == 1
    np.testing.assert_allclose(track.boxes, np.tile(face, (20, 1)))


def test_moving_face_stays_one_track_across_a_gap() -> None:
    frames = [det([[20 * t, 100, 20 * t + 150, 250]]) for t in range(12)]
    for t in (4, 5, 6):
        frames[t] = no_det()
    track = build_track(frames, smooth_window=1)
    assert track.num_other_tracks == 0
    np.testing.assert_allclose(track.boxes[:, 0], 20 * np.arange(12), atol=1e-4)


def test_raw_landmarks_are_gap_filled_but_not_smoothed() -> None:
    rng = np.random.default_rng(0)
    frames = [det([[100 + rng.normal(0, 3), 100, 250, 250]]) for _ in range(15)]
    frames[5] = no_det()
    track = build_track(frames, smooth_window=5)
    assert track.raw_landmarks is not None and track.raw_landmarks.dtype == np.float32
    np.testing.assert_allclose(track.raw_landmarks[4], frames[4][2][0])
    np.testing.assert_allclose(track.raw_landmarks[5], (frames[4][2][0] + frames[6][2][0]) / 2, atol=1e-4)
    np.testing.assert_allclose(track.landmarks, smooth_sequence(track.raw_landmarks, 5), atol=1e-4)
    assert track.landmarks[:, :, 0].std(axis=0).mean() < track.raw_landmarks[:, :, 0].std(axis=0).mean()


def test_no_face_anywhere() -> None:
    with pytest.raises(PreprocessError) as err:
        build_track([no_det() for _ in range(5)], smooth_window=5)
    assert err.value.reason == "no_face"
    with pytest.raises(PreprocessError):
        build_track([], smooth_window=1)


def test_build_track_validates_inputs() -> None:
    with pytest.raises(ValueError, match="odd"):
        build_track(_still_frames(3, [0, 0, 10, 10]), smooth_window=4)
    b, s, _ = det([[0, 0, 10, 10]])
    with pytest.raises(ValueError, match="disagree"):
        build_track([(b, s, np.zeros((2, 68, 2)))], smooth_window=1)


def test_interpolate_missing_holds_ends() -> None:
    v = np.array([[0.0], [0.0], [2.0], [0.0], [6.0], [0.0]])
    obs = np.array([False, False, True, False, True, False])
    np.testing.assert_allclose(interpolate_missing(v, obs)[:, 0], [2, 2, 2, 4, 6, 6])


# ----------------------------------------------------------------------------- smoothing

_floats = st.floats(-2000, 2000, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    value=arrays(np.float32, (68, 2), elements=_floats),
    t_len=st.integers(1, 40),
    window=st.sampled_from([1, 3, 5, 7, 9, 15]),
)
def test_smoothing_keeps_still_input_exactly_still(value: np.ndarray, t_len: int, window: int) -> None:
    x = np.repeat(value[None], t_len, axis=0)
    out = smooth_sequence(x, window)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)


@settings(max_examples=60, deadline=None)
@given(
    start=arrays(np.float64, (4,), elements=st.floats(-1000, 1000)),
    velocity=arrays(np.float64, (4,), elements=st.floats(-50, 50)),
    t_len=st.integers(1, 40),
    window=st.sampled_from([1, 3, 5, 7, 9, 15]),
)
def test_smoothing_keeps_linear_motion_linear(
    start: np.ndarray, velocity: np.ndarray, t_len: int, window: int
) -> None:
    x = start + np.arange(t_len)[:, None] * velocity
    out = smooth_sequence(x, window)
    np.testing.assert_allclose(out, x, atol=1e-7 * (1 + np.abs(x).max()))


@settings(max_examples=30, deadline=None)
@given(x=arrays(np.float64, st.tuples(st.integers(1, 30), st.just(3)), elements=st.floats(-100, 100)))
def test_smoothing_stays_within_the_input_range(x: np.ndarray) -> None:
    out = smooth_sequence(x, 5)
    assert out.shape == x.shape
    assert (out >= x.min(axis=0) - 1e-9).all() and (out <= x.max(axis=0) + 1e-9).all()


def test_smoothing_reduces_jitter_and_checks_window() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    assert smooth_sequence(x, 9)[10:-10].std() < 0.5 * x.std()
    np.testing.assert_array_equal(smooth_sequence(x, 1), x)
    # End frames use the symmetric (shrunk) window: frame 1 averages frames 0-2.
    np.testing.assert_allclose(smooth_sequence(x, 9)[1], x[:3].mean(axis=0))
    np.testing.assert_array_equal(smooth_sequence(x, 9)[0], x[0])
    for bad in (0, 2, -1):
        with pytest.raises(ValueError):
            smooth_sequence(x, bad)

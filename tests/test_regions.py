"""Tests of forensight.regions: region geometry, border padding, LipForensics lips alignment."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pytest
from fixtures_faces import (
    FRAME_H,
    FRAME_W,
    apply,
    astronaut,
    box_of,
    face_matrix,
    mean_face_in_frame,
    synthetic_frame,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import transform as sktf

from forensight.config import PreprocessConfig
from forensight.faces.landmarks import EYES_AND_BROWS, LIPFORENSICS_STABLE_POINTS, MOUTH
from forensight.records import FaceTrack
from forensight.regions import (
    align_lips,
    crop_box,
    crop_lips,
    crop_regions,
    crop_track_regions,
    lips_transform,
    mean_face,
    region_box,
    similarity_transform,
    smooth_lips_landmarks,
)

CFG = PreprocessConfig(regions=("frame", "full", "eyes", "mouth", "lips"), size=64)
SHAPE = (FRAME_H, FRAME_W, 3)


def _contains(box: np.ndarray, pts: np.ndarray) -> bool:
    """Every landmark's pixel (centre + [0, 1)) lies inside the edge box."""
    return bool(
        (pts[:, 0] >= box[0]).all()
        and (pts[:, 0] + 1 <= box[2]).all()
        and (pts[:, 1] >= box[1]).all()
        and (pts[:, 1] + 1 <= box[3]).all()
    )


def _side(box: np.ndarray) -> float:
    return float(box[2] - box[0])


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("angle", [0.0, 20.0])
def test_region_boxes_contain_their_landmarks(angle: float) -> None:
    lm = mean_face_in_frame(scale=2.0, angle_deg=angle)
    face = box_of(lm)
    eyes = region_box("eyes", lm, face, SHAPE, CFG)
    mouth = region_box("mouth", lm, face, SHAPE, CFG)
    full = region_box("full", lm, face, SHAPE, CFG)
    for b in (eyes, mouth, full):
        assert b.shape == (4,) and b.dtype == np.float32
        assert _side(b) == pytest.approx(float(b[3] - b[1]), rel=1e-5)  # square
    assert _contains(eyes, lm[list(EYES_AND_BROWS)])
    assert _contains(mouth, lm[list(MOUTH)])
    assert not _contains(eyes, lm[list(MOUTH)])  # the eyes box is not the whole face
    assert full[0] <= face[0] and full[1] <= face[1] and full[2] >= face[2] and full[3] >= face[3]
    longer = max(face[2] - face[0], face[3] - face[1])
    assert _side(full) == pytest.approx(longer * (1 + 2 * CFG.face_margin), rel=1e-5)
    # Mouth box reaches above the mouth (philtrum) and below it (chin side).
    assert mouth[1] < lm[list(MOUTH), 1].min() - 5 and mouth[3] > lm[list(MOUTH), 1].max() + 5
    np.testing.assert_array_equal(region_box("frame", lm, face, SHAPE, CFG), [0, 0, FRAME_W, FRAME_H])


@settings(max_examples=40, deadline=None)
@given(
    scale=st.floats(0.3, 4.0),
    angle=st.floats(-30, 30),
    cx=st.floats(-200, 1500),
    cy=st.floats(-200, 900),
)
def test_region_boxes_scale_with_the_face(scale: float, angle: float, cx: float, cy: float) -> None:
    base_lm = mean_face_in_frame(1.0, angle, 640, 360)
    lm = mean_face_in_frame(scale, angle, cx, cy)
    # lm is base_lm scaled by `scale` about (640, 360) and moved to (cx, cy).
    np.testing.assert_allclose(lm, (base_lm - [640, 360]) * scale + [cx, cy], atol=1e-6)
    base_face = box_of(base_lm).astype(np.float64)
    face = ((base_face.reshape(2, 2) - [640, 360]) * scale + [cx, cy]).reshape(4)
    for region in ("full", "eyes", "mouth"):
        b0 = region_box(region, base_lm, base_face, SHAPE, CFG).astype(np.float64)
        b1 = region_box(region, lm, face, SHAPE, CFG).astype(np.float64)
        assert _side(b1) == pytest.approx(scale * _side(b0), rel=1e-4, abs=1e-3)
        c0, c1 = (b0[:2] + b0[2:]) / 2, (b1[:2] + b1[2:]) / 2
        np.testing.assert_allclose(c1, (c0 - [640, 360]) * scale + [cx, cy], atol=1e-3 + 0.5 * abs(1 - scale))


def test_unknown_region() -> None:
    lm = mean_face_in_frame()
    with pytest.raises(ValueError, match="align_lips"):
        region_box("lips", lm, box_of(lm), SHAPE, CFG)
    with pytest.raises(ValueError, match="unknown region"):
        region_box("nose", lm, box_of(lm), SHAPE, CFG)


# ----------------------------------------------------------------------------- crops


def test_crop_pads_with_black_at_the_border() -> None:
    frame = np.full((100, 120, 3), 200, np.uint8)
    out = crop_box(frame, np.array([-20, -10, 44, 54]), 64)  # 64x64 box, no resize
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[:10] == 0).all() and (out[:, :20] == 0).all()
    assert (out[10:, 20:] == 200).all()
    # Bottom-right corner, not shifted back into the frame.
    out = crop_box(frame, np.array([100, 80, 140, 120]), 40)
    assert (out[:20, :20] == 200).all() and (out[20:] == 0).all() and (out[:, 20:] == 0).all()
    # Entirely outside: all black.
    assert (crop_box(frame, np.array([500, 500, 600, 600]), 32) == 0).all()


def test_crop_keeps_content_and_resizes() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    np.testing.assert_array_equal(crop_box(frame, np.array([10, 20, 42, 52]), 32), frame[20:52, 10:42])
    small = crop_box(frame, np.array([0, 0, 64, 64]), 16)  # area shrink: means of 4x4 blocks
    np.testing.assert_allclose(
        small.astype(float), frame[:64, :64].reshape(16, 4, 16, 4, 3).mean(axis=(1, 3)), atol=1
    )
    assert crop_box(frame, np.array([0, 0, 8, 8]), 33).shape == (33, 33, 3)  # cubic enlarge
    whole = crop_box(frame, np.array([0, 0, 160, 90]), 48)  # frame region: stretched, not padded
    assert whole.shape == (48, 48, 3) and whole.min() > 0
    with pytest.raises(ValueError):
        crop_box(frame, np.array([0, 0, np.nan, 10]), 8)


def test_crop_regions_returns_every_box_region() -> None:
    m = face_matrix(2.0)
    frame = synthetic_frame(m)
    lm = mean_face_in_frame(2.0)
    crops = crop_regions(frame, lm, box_of(lm), CFG)
    assert list(crops) == ["frame", "full", "eyes", "mouth"]
    for c in crops.values():
        assert c.shape == (64, 64, 3) and c.dtype == np.uint8
    cfg = PreprocessConfig(regions=("mouth",), size=32)
    assert list(crop_regions(frame, lm, box_of(lm), cfg)) == ["mouth"]


def test_crop_track_regions_shapes() -> None:
    m = face_matrix(2.0)
    frame = synthetic_frame(m)
    lm = mean_face_in_frame(2.0).astype(np.float32)
    t_len = 3
    track = FaceTrack(
        boxes=np.tile(box_of(lm), (t_len, 1)),
        landmarks=np.repeat(lm[None], t_len, 0),
        observed=np.ones(t_len, bool),
    )
    out = crop_track_regions(np.repeat(frame[None], t_len, 0), track, CFG)
    assert list(out) == list(CFG.regions)
    assert out["eyes"].shape == (t_len, 64, 64, 3)
    assert out["lips"].shape == (t_len, 96, 96) and out["lips"].dtype == np.uint8


# ----------------------------------------------------------------------------- lips


def _reference_lips(
    frame: np.ndarray, smoothed: np.ndarray, centre_lm: np.ndarray, size: int = 96
) -> np.ndarray:
    """The official two-step route: skimage similarity warp to 256x256, then cut, then gray."""
    idx = list(LIPFORENSICS_STABLE_POINTS)
    tform = sktf.estimate_transform("similarity", smoothed[idx], mean_face()[idx])
    warped = sktf.warp(
        frame,
        inverse_map=tform.inverse,
        output_shape=(256, 256),
        order=1,
        mode="constant",
        cval=0,
        preserve_range=True,
    )
    warped = np.round(warped).astype(np.uint8)
    cx, cy = tform(centre_lm[list(MOUTH)]).mean(axis=0)
    ox = int(np.clip(round(cx) - size // 2, 0, 256 - size))
    oy = int(np.clip(round(cy) - size // 2, 0, 256 - size))
    patch = warped[oy : oy + size, ox : ox + size]
    w = np.array([0.299, 0.587, 0.114])
    return np.round(patch.astype(np.float64) @ w)


def _rgb_face_frame(scale: float, angle: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """A 1280x720 frame with the (unblurred) astronaut placed by a similarity, and its landmarks."""
    import cv2

    m = face_matrix(scale, angle, cx, cy)
    canon = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    frame = cv2.warpAffine(canon, m, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR)
    return frame, apply(m, mean_face())


@pytest.mark.parametrize(
    ("scale", "angle", "cx", "cy"), [(2.0, 0, 640, 360), (1.3, 17, 500, 300), (3.1, -25, 700, 420)]
)
def test_align_lips_matches_the_two_step_reference(scale: float, angle: float, cx: float, cy: float) -> None:
    frame, lm = _rgb_face_frame(scale, angle, cx, cy)
    rng = np.random.default_rng(1)
    lm = lm + rng.normal(0, 1.5, lm.shape)  # landmarks off the exact mean face
    raw = lm + rng.normal(0, 1.0, lm.shape)
    for centre in (None, raw):
        ours = align_lips(frame, lm, center_landmarks=centre)
        ref = _reference_lips(frame, lm, lm if centre is None else centre)
        assert ours.shape == (96, 96) and ours.dtype == np.uint8
        diff = np.abs(ours.astype(float) - ref)
        assert diff.mean() < 1.0, diff.mean()
        assert np.percentile(diff, 99) <= 3


def test_similarity_transform_matches_skimage() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 500, (5, 2))
    dst = rng.uniform(0, 256, (5, 2))
    ours = similarity_transform(src, dst)
    ref = sktf.estimate_transform("similarity", src, dst).params[:2]
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    m = face_matrix(2.0, 10)
    np.testing.assert_allclose(similarity_transform(mean_face(), apply(m, mean_face())), m, atol=1e-9)
    np.testing.assert_allclose(lips_transform(apply(m, mean_face()))[:, :2] @ m[:, :2], np.eye(2), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(1.2, 3.5),
    angle=st.floats(-40, 40),
    cx=st.floats(400, 880),
    cy=st.floats(250, 470),
)
def test_align_lips_is_invariant_to_similarity_transforms(
    scale: float, angle: float, cx: float, cy: float
) -> None:
    from fixtures_faces import canonical_face_image

    m = face_matrix(scale, angle, cx, cy)
    frame = synthetic_frame(m)
    lm = apply(m, mean_face())
    ours = align_lips(frame, lm).astype(float)
    # In the mean-face frame the patch is the canonical image around the mean mouth.
    c = np.round(mean_face()[list(MOUTH)].mean(axis=0)).astype(int) - 48
    canon = canonical_face_image()[c[1] : c[1] + 96, c[0] : c[0] + 96].astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(ours - canon).mean() < 2.0


def test_lips_patch_is_clamped_inside_the_reference_frame() -> None:
    frame, lm = _rgb_face_frame(2.0, 0, 640, 360)
    low = lm.copy()
    low[list(MOUTH), 1] += 2.0 * 80  # mouth 80 reference pixels lower: centre y ~238 > 256 - 48
    ours = align_lips(frame, lm, center_landmarks=low)
    ref = _reference_lips(frame, lm, low)
    assert np.abs(ours - ref).mean() < 1.0
    # The clamped patch is the bottom 96 rows of the 256 frame: the same as a centre at y = 208.
    m = lips_transform(lm)
    at_edge = lm.copy()
    shift_y = 208 - (mean_face()[list(MOUTH)].mean(axis=0) @ m[:, :2].T + m[:, 2])[1]
    shift_y_frame = shift_y / np.hypot(*m[:, 0])
    at_edge[list(MOUTH), 1] += shift_y_frame
    np.testing.assert_array_equal(align_lips(frame, lm, center_landmarks=at_edge), ours)


def test_align_lips_is_fast() -> None:
    frame, lm = _rgb_face_frame(2.0, 5, 640, 360)
    align_lips(frame, lm)
    t0 = time.perf_counter()
    for _ in range(50):
        align_lips(frame, lm)
    per_frame = (time.perf_counter() - t0) / 50
    assert per_frame < 0.01  # target 2 ms; generous for a loaded CI machine


def _official_smoothing(landmarks: np.ndarray, window: int) -> list[np.ndarray]:
    """The smoothed landmarks of the official deque loop (crop_mouths.py), frame by frame."""
    q: deque = deque()
    out: list[np.ndarray] = []
    last = None
    for lm in landmarks:
        q.append(lm)
        if len(q) == window:
            last = np.mean(q, axis=0)
            out.append(last)
            q.popleft()
    out.extend([last] * len(q))  # tail frames reuse the last transform
    return out


@pytest.mark.parametrize("t_len", [12, 13, 30])
def test_lips_smoothing_is_the_official_window_centred(t_len: int) -> None:
    rng = np.random.default_rng(t_len)
    lm = rng.normal(100, 10, (t_len, 68, 2))
    official = _official_smoothing(lm, 12)
    ours = smooth_lips_landmarks(lm, 12)
    assert ours.shape == lm.shape
    for t in range(t_len):
        np.testing.assert_allclose(ours[t], official[int(np.clip(t - 6, 0, t_len - 12))], atol=1e-9)
    np.testing.assert_allclose(ours[0], official[0], atol=1e-9)  # same first and last windows
    np.testing.assert_allclose(ours[-1], official[-1], atol=1e-9)


def test_lips_smoothing_short_sequences_and_clips() -> None:
    rng = np.random.default_rng(0)
    lm = rng.normal(size=(5, 68, 2))
    np.testing.assert_allclose(smooth_lips_landmarks(lm, 12), np.repeat(lm.mean(0)[None], 5, 0))
    # Two clips of 25 consecutive frames far apart in the video are smoothed separately.
    lm = np.concatenate([np.zeros((25, 68, 2)), np.ones((25, 68, 2))])
    idx = np.concatenate([np.arange(0, 25), np.arange(100, 125)])
    out = smooth_lips_landmarks(lm, 12, idx)
    np.testing.assert_allclose(out, lm)
    assert not np.allclose(smooth_lips_landmarks(lm, 12), lm)
    with pytest.raises(ValueError):
        smooth_lips_landmarks(lm, 0)


def test_crop_lips_sequence() -> None:
    frame, lm = _rgb_face_frame(2.0, 0, 640, 360)
    frames = np.repeat(frame[None], 4, 0)
    lms = np.repeat(lm[None], 4, 0)
    clip = crop_lips(frames, lms)
    assert clip.shape == (4, 96, 96) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip[0], align_lips(frame, lm))
    with pytest.raises(ValueError):
        crop_lips(frames, lms, center_on="middle")

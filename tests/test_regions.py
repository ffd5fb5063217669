"""Tests of forensight.regions: region geometry, border padding, LipForensics lips alignment."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import cv2
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
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from skimage import transform as sktf

from forensight.config import PreprocessConfig
from forensight.faces.landmarks import EYES_AND_BROWS, LEFT_EYE, LIPFORENSICS_STABLE_POINTS, MOUTH, RIGHT_EYE
from forensight.records import FaceTrack
from forensight.regions import (
    BAND_FRACTION,
    align_lips,
    band_box,
    crop_box,
    crop_lips,
    crop_regions,
    crop_track_regions,
    lips_transform,
    mean_face,
    region_box,
    similarity_transform,
    smooth_lips_landmarks,
    snap_box,
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
    with pytest.raises(ValueError, match="unknown band"):
        band_box(np.array([0, 0, 10, 10]), "nose_band")
    with pytest.raises(ValueError, match="fraction"):
        band_box(np.array([0, 0, 10, 10]), "eyes_band", fraction=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        snap_box(np.array([0, 0, np.inf, 10]))


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


# ----------------------------------------------------------------------------- seed bands

BANDS_CFG = PreprocessConfig(regions=("full", "eyes_band", "mouth_band"), size=224)


def _resize_as_crop_box(patch: np.ndarray, size: int) -> np.ndarray:
    """crop_box's resize rule, written out: area when both sides shrink, else cubic."""
    h, w = patch.shape[:2]
    if w == size and h == size:
        return patch
    interp = cv2.INTER_AREA if (w >= size and h >= size) else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=interp)


def _band_rows(y: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Landmark y (pixel centres, native) → row in the ``size``-row crop of the edge box ``box``."""
    return (np.asarray(y, np.float64) + 0.5 - box[1]) / (box[3] - box[1]) * size


@pytest.mark.parametrize("size", [32, 100, 224])
@pytest.mark.parametrize("face", [[600.3, 280.6, 700.9, 395.2], [500.0, 250.0, 620.0, 370.0]])
def test_bands_are_the_top_and_bottom_rows_of_the_full_box(size: int, face: list[float]) -> None:
    frame, lm = _rgb_face_frame(2.0, 0, 640, 360)
    cfg = PreprocessConfig(regions=("full", "eyes_band", "mouth_band"), size=size)
    face_box = np.array(face, np.float32)
    full = region_box("full", lm, face_box, SHAPE, cfg)
    # The full crop's source pixels, snapped by hand (x0 rounded half up, side rounded).
    x0, y0 = int(np.floor(full[0] + 0.5)), int(np.floor(full[1] + 0.5))
    side = round(float(full[2] - full[0]))
    src = frame[y0 : y0 + side, x0 : x0 + side]
    assert src.shape == (side, side, 3)  # the box lies inside the frame
    crops = crop_regions(frame, lm, face_box, cfg)
    np.testing.assert_array_equal(crops["full"], _resize_as_crop_box(src, size))  # same snapping as "full"
    rows = round(BAND_FRACTION * side)
    assert rows == pytest.approx(0.35 * side, abs=0.5)
    expected = {"eyes_band": (src[:rows], y0), "mouth_band": (src[side - rows :], y0 + side - rows)}
    for name, (part, top) in expected.items():
        np.testing.assert_array_equal(region_box(name, lm, face_box, SHAPE, cfg), [x0, top, x0 + side, top + rows])
        assert crops[name].shape == (size, size, 3) and crops[name].dtype == np.uint8
        diff = np.abs(crops[name].astype(int) - _resize_as_crop_box(part, size).astype(int))
        assert diff.max() <= 1, (name, diff.max())
    assert not np.array_equal(crops["eyes_band"], crops["mouth_band"])


def test_band_box_snaps_like_crop_box() -> None:
    full = np.array([10.4, 20.6, 110.4, 120.6], np.float32)  # 100 x 100 → rows 10..110, cols 21..121
    assert snap_box(full) == (10, 21, 110, 121)
    np.testing.assert_array_equal(band_box(full, "eyes_band"), [10, 21, 110, 56])
    np.testing.assert_array_equal(band_box(full, "mouth_band"), [10, 86, 110, 121])
    np.testing.assert_array_equal(band_box(full, "mouth_band", fraction=1.0), [10, 21, 110, 121])
    assert band_box(np.array([0, 0, 2, 2]), "eyes_band").tolist() == [0, 0, 2, 1]  # never 0 rows


@pytest.fixture(scope="module")
def astronaut_face() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The astronaut (512x512 RGB), its dlib HOG face box (4,) and its 68 dlib landmarks (68, 2)."""
    from forensight.faces import get_detector, get_landmark_predictor

    img = astronaut()
    boxes, _ = get_detector("dlib_hog").detect(img)
    assert len(boxes) == 1
    lm = get_landmark_predictor().predict_many(img, boxes)[0].astype(np.float64)
    return img, boxes[0], lm


def test_bands_on_a_real_face(astronaut_face: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The project's defaults (dlib HOG box, face_margin 0.25) on the astronaut's real landmarks."""
    img, face_box, lm = astronaut_face
    size = BANDS_CFG.size
    crops = crop_regions(img, lm, face_box, BANDS_CFG)
    assert {k: v.shape for k, v in crops.items()} == {r: (size, size, 3) for r in BANDS_CFG.regions}
    eyes_box = region_box("eyes_band", lm, face_box, img.shape, BANDS_CFG)
    mouth_box = region_box("mouth_band", lm, face_box, img.shape, BANDS_CFG)

    def inside(rows: np.ndarray) -> bool:
        return bool(((rows >= 0) & (rows < size)).all())

    eye_centres = np.array([lm[list(RIGHT_EYE), 1].mean(), lm[list(LEFT_EYE), 1].mean()])
    corners_and_upper_lids = lm[[36, 37, 38, 39, 42, 43, 44, 45], 1]
    brows = lm[17:27, 1]
    mouth = lm[list(MOUTH), 1]
    # eyes_band: the brows, the eyes (centres, corners, upper lids) and none of the mouth. The lowest
    # lower-lid point sits on the band's bottom edge (within one native pixel) with this box.
    for y in (eye_centres, corners_and_upper_lids, brows):
        assert inside(_band_rows(y, eyes_box, size)), _band_rows(y, eyes_box, size)
    assert (_band_rows(lm[list(EYES_AND_BROWS), 1], eyes_box, size) < size + size / (eyes_box[3] - eyes_box[1])).all()
    assert (_band_rows(mouth, eyes_box, size) >= size).all()  # the whole mouth is below it
    assert (_band_rows(lm[33:34, 1], eyes_box, size) >= size).all()  # so is the nose tip
    # mouth_band: the lower lip (outer 55-59, inner 65-67) and the chin, none of the eyes or brows.
    lower_lip = lm[[55, 56, 57, 58, 59, 65, 66, 67], 1]
    assert inside(_band_rows(lower_lip, mouth_box, size)), _band_rows(lower_lip, mouth_box, size)
    assert inside(_band_rows(lm[8:9, 1], mouth_box, size))  # chin tip
    assert (_band_rows(lm[list(EYES_AND_BROWS), 1], mouth_box, size) < 0).all()
    # The crops show different things (the eyes band is not the mouth band shifted by a few rows).
    assert np.abs(crops["eyes_band"].astype(int) - crops["mouth_band"].astype(int)).mean() > 10


def test_mouth_band_cuts_off_the_upper_lip_on_a_dlib_box(
    astronaut_face: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """The documented limit of the seed geometry (README): on a dlib HOG box with face_margin 0.25
    the bottom 35 % of the full box starts at 65 % of its height and the astronaut's upper lip sits
    at ~60 %, so the band holds the lower lip (and chin) but not the upper lip."""
    img, face_box, lm = astronaut_face
    mouth_box = region_box("mouth_band", lm, face_box, img.shape, BANDS_CFG)
    rows = _band_rows(lm[list(MOUTH), 1], mouth_box, BANDS_CFG.size)
    inside = (rows >= 0) & (rows < BANDS_CFG.size)
    assert inside.any() and not inside.all(), rows
    upper_lip_top = _band_rows(lm[[50, 51, 52], 1], mouth_box, BANDS_CFG.size)  # iBUG 51-53: top of the upper lip
    lower_lip_bottom = _band_rows(lm[[56, 57, 58], 1], mouth_box, BANDS_CFG.size)  # iBUG 57-59
    assert (upper_lip_top < 0).all() and ((lower_lip_bottom >= 0) & (lower_lip_bottom < BANDS_CFG.size)).all()


@pytest.mark.parametrize("corner", ["top_left", "bottom_right"])
def test_bands_reaching_past_the_frame_are_padded_like_full(corner: str) -> None:
    frame, lm = _rgb_face_frame(2.0, 0, 640, 360)
    frame = np.maximum(frame, 1)  # no black pixel inside the frame: black = padding
    face_box = (
        np.array([-40, -30, 60, 80], np.float32)
        if corner == "top_left"
        else np.array([FRAME_W - 50, FRAME_H - 70, FRAME_W + 60, FRAME_H + 40], np.float32)
    )
    size = 64
    cfg = PreprocessConfig(regions=("full", "eyes_band", "mouth_band"), size=size)
    full = region_box("full", lm, face_box, SHAPE, cfg)
    ix0, iy0, ix1, iy1 = snap_box(full)
    side = ix1 - ix0
    assert ix0 < 0 or iy0 < 0 or ix1 > FRAME_W or iy1 > FRAME_H
    canvas = crop_box(frame, full, side)  # the full crop's own padded source pixels, not resized
    assert canvas.shape == (side, side, 3)
    rows = round(BAND_FRACTION * side)
    crops = crop_regions(frame, lm, face_box, cfg)
    for name, part in (("eyes_band", canvas[:rows]), ("mouth_band", canvas[side - rows :])):
        c = crops[name]
        assert c.shape == (size, size, 3) and c.dtype == np.uint8
        assert np.abs(c.astype(int) - _resize_as_crop_box(part, size).astype(int)).max() <= 1
    # Black padding where the box leaves the frame, image content where it does not (far from the edges).
    if corner == "top_left":  # full rows -57..108, cols -72..93: the eyes band is all but 1 row outside
        assert (crops["eyes_band"][: size // 2] == 0).all()
        assert (crops["mouth_band"][:, : size // 4] == 0).all() and (crops["mouth_band"][:, -size // 4 :] > 0).all()
    else:  # the mouth band lies below the frame; the eyes band's right part lies right of it
        assert (crops["mouth_band"] == 0).all()
        assert (crops["eyes_band"][:, -size // 4 :] == 0).all() and (crops["eyes_band"][:, : size // 4] > 0).all()


def test_bands_follow_every_frame_of_a_track_including_interpolated_ones() -> None:
    frame, lm = _rgb_face_frame(2.0, 0, 640, 360)
    face = box_of(lm)
    boxes = np.stack([face, face + [40, 20, 40, 20], face + [80, 40, 80, 40]]).astype(np.float32)
    track = FaceTrack(
        boxes=boxes,  # frame 1 unobserved: its box is the interpolation of frames 0 and 2
        landmarks=np.repeat(lm[None].astype(np.float32), 3, 0),
        observed=np.array([True, False, True]),
    )
    cfg = PreprocessConfig(regions=("eyes_band", "mouth_band"), size=48)
    out = crop_track_regions(np.repeat(frame[None], 3, 0), track, cfg)
    assert list(out) == ["eyes_band", "mouth_band"]
    for name in cfg.regions:
        assert out[name].shape == (3, 48, 48, 3) and out[name].dtype == np.uint8
        for t in range(3):
            box = region_box(name, lm, boxes[t], SHAPE, cfg)
            np.testing.assert_array_equal(out[name][t], crop_box(frame, box, 48))
        assert not np.array_equal(out[name][0], out[name][1])  # each frame uses its own box


def test_preprocess_a_face_video_with_bands(tmp_path: Path, face_video: Path) -> None:
    from forensight.cache import Cache
    from forensight.cli import main
    from forensight.preprocess import run_preprocess
    from forensight.records import VideoRecord
    from forensight.report import contact_sheet

    cfg = PreprocessConfig(num_frames=8, size=64, regions=("full", "eyes_band", "mouth_band"))
    rec = VideoRecord(path=face_video, label=0, split="train", dataset="test", method="original",
                      compression="c23", name="face")
    summary = run_preprocess([rec], tmp_path / "cache", cfg, progress=False)
    assert summary.done == 1, summary
    cache = Cache.open(tmp_path / "cache")
    e = cache.load(rec.video_id)
    assert sorted(e.regions) == sorted(cfg.regions)
    for name in cfg.regions:
        assert e.regions[name].shape == (8, 64, 64, 3) and e.regions[name].dtype == np.uint8
        assert e.regions[name].std() > 10  # real content, not padding
    # Each band is the full box's top / bottom rows: re-cut from the cached track, frame by frame.
    from forensight.video import read_frames

    frames = read_frames(face_video, np.asarray(e.indices, np.int64)).frames
    for t in range(len(e)):
        ref = crop_regions(frames[t], e.landmarks[t], e.boxes[t], cfg)
        for name in cfg.regions:
            np.testing.assert_array_equal(ref[name], e.regions[name][t])
    # The contact sheet draws them, with a label column wide enough for "mouth_band".
    png = contact_sheet(e.regions, tmp_path / "sheet.png", frames=4, cell=40)
    img = cv2.imread(str(png))
    label_w = cv2.getTextSize("mouth_band", cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] + 8
    assert img.shape[:2] == (3 * 44 + 4, max(70, label_w) + 4 * 44 + 4)
    assert main(["sheet", str(tmp_path / "cache"), "--out", str(tmp_path / "sheets"), "--frames", "4"]) == 0
    assert len(list((tmp_path / "sheets").glob("*.png"))) == 1


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
    # In the mean-face frame the patch is the canonical image around the mean mouth.
    c = np.round(mean_face()[list(MOUTH)].mean(axis=0)).astype(int) - 48
    # ... provided the patch lies inside the 1280x720 frame (e.g. scale 3.5 at cy 454 puts its
    # bottom edge at y 727: black rows there are padding, not an alignment error).
    corners = apply(m, c + np.array([[0, 0], [96, 0], [0, 96], [96, 96]], np.float64))
    assume(bool((corners >= 0).all() and (corners[:, 0] <= FRAME_W).all() and (corners[:, 1] <= FRAME_H).all()))
    frame = synthetic_frame(m)
    lm = apply(m, mean_face())
    ours = align_lips(frame, lm).astype(float)
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
    ours = smooth_lips_landmarks(lm, 12, mode="centred")
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


def test_lips_smoothing_has_one_default() -> None:
    """crop_lips, smooth_lips_landmarks and the preprocessing pipeline share one default window."""
    import inspect

    from forensight.config import PreprocessConfig

    cfg = PreprocessConfig()
    for fn in (crop_lips, smooth_lips_landmarks):
        params = inspect.signature(fn).parameters
        assert params["mode"].default == cfg.lips_smooth_mode == "forward"
        assert params["window"].default == cfg.lips_smooth_window == 12
    rng = np.random.default_rng(3)
    lm = rng.normal(100, 10, (30, 68, 2))
    np.testing.assert_array_equal(smooth_lips_landmarks(lm), smooth_lips_landmarks(lm, 12, mode="forward"))

"""False faces are not people: ``faces.faceness`` (the rule) and where tracks become people."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures_faces import box_of, mean_face_in_frame
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage import data

from forensight.config import PreprocessConfig
from forensight.faces.faceness import FaceCheck, check_track, is_colour_frame, landmark_ratios, skin_fraction
from forensight.faces.tracking import build_tracks
from forensight.preprocess import process_frames
from forensight.records import FaceTrack, PreprocessError, SampledFrames

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from preprocess import talking_head_frames

PP = PreprocessConfig(num_frames=8, regions=("full",), size=64)


def _sampled(frames: list[np.ndarray], fps: float = 30.0) -> SampledFrames:
    idx = np.arange(len(frames))
    return SampledFrames(indices=idx, timestamps=idx / fps, frames=np.stack(frames))


def _astronaut_face(side: int) -> np.ndarray:
    """The astronaut's head (a real face photo) resized to ``side`` x ``side``."""
    return cv2.resize(data.astronaut()[10:290, 90:370], (side, side), interpolation=cv2.INTER_AREA)


def _star_flag(h: int, w: int) -> np.ndarray:
    """Blue field with rows of white five-pointed stars (a flag's canton)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (40, 40, 120)
    for cy in range(40, h, 80):
        for cx in range(40, w, 80):
            a = np.deg2rad(np.arange(10) * 36 - 90)
            r = np.where(np.arange(10) % 2 == 0, 28, 11)
            pts = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1).round().astype(np.int32)
            cv2.fillPoly(img, [pts], (245, 245, 245))
    return img


def _track(lm: np.ndarray, box: np.ndarray, n: int = 6, score: float = 0.9,
           skin: float | None = 0.9) -> FaceTrack:
    t = FaceTrack(boxes=np.tile(box.astype(np.float32), (n, 1)), landmarks=np.tile(lm.astype(np.float32), (n, 1, 1)),
                  observed=np.ones(n, bool), scores=np.full(n, score, np.float32),
                  skin=None if skin is None else np.full(n, skin, np.float32))
    t.raw_landmarks = t.landmarks
    return t


# ---- the rule, on tracks -------------------------------------------------------------------------
def test_a_plausible_face_track_is_a_face() -> None:
    lm = mean_face_in_frame(scale=1.0)
    v = check_track(_track(lm, box_of(lm)))
    assert v.ok and v.reason == ""
    assert set(v.measures) >= {"side_px", "confidence", "iod_box", "mouth_iod", "eyes_mouth_iod", "jaw_box", "skin"}


@pytest.mark.parametrize("case, words", [
    ("mirrored", "eyes_mouth_iod"),
    ("collapsed", "landmarks implausible"),
    ("tiny", "px <"),
    ("grey_star", "not skin-coloured"),
    ("unsure", "detector confidence"),
])
def test_each_failed_check_is_named(case: str, words: str) -> None:
    lm = mean_face_in_frame(scale=1.0)
    box = box_of(lm)
    kwargs: dict = {}
    check = FaceCheck(min_confidence=0.5)
    if case == "mirrored":
        lm = lm.copy()
        lm[:, 1] = 2 * lm[:, 1].mean() - lm[:, 1]  # flipped top to bottom: the mouth above the eyes
    elif case == "collapsed":
        lm = lm.mean(axis=0) + 0.2 * (lm - lm.mean(axis=0))  # a small face drawn in a big box
    elif case == "tiny":
        lm = lm.mean(axis=0) + (lm - lm.mean(axis=0)) * 12 / (box[2] - box[0])
        box = box_of(lm)
    elif case == "grey_star":
        kwargs["skin"] = 0.0
    elif case == "unsure":
        kwargs["score"] = 0.3
    v = check_track(_track(lm, box, **kwargs), check)
    assert not v.ok and v.reason.startswith("not a face: ") and words in v.reason


def test_colour_is_not_judged_without_colour_or_without_a_measure() -> None:
    lm = mean_face_in_frame(scale=1.0)
    for skin in (None, float("nan")):
        v = check_track(_track(lm, box_of(lm), skin=skin))
        assert v.ok and v.measures["skin"] is None


# ---- skin colour -----------------------------------------------------------------------------
def _face_frame(factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 frame with the astronaut's face, brightness scaled by ``factor``; its landmarks."""
    from forensight.faces.detectors import get_detector
    from forensight.faces.landmarks import get_landmark_predictor

    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[100:380, 180:460] = _astronaut_face(280)
    boxes, _ = get_detector("libfd").detect(frame)
    assert len(boxes) == 1
    lm = get_landmark_predictor()(frame, boxes[0])
    return np.clip(frame.astype(np.float32) * factor, 0, 255).astype(np.uint8), lm


@settings(max_examples=8, deadline=None)
@given(st.floats(0.3, 1.0))
def test_skin_fraction_does_not_depend_on_brightness(factor: float) -> None:
    frame, lm = _face_frame(factor)
    assert skin_fraction(frame, lm) >= 0.7  # a darker face (tone, light) is still skin


def test_star_and_cartoon_colours_are_not_skin_and_grey_is_not_judged() -> None:
    frame, lm = _face_frame()
    star = _star_flag(480, 640)
    assert skin_fraction(star, lm - lm.mean(axis=0) + (120, 120)) < 0.1
    yellow = np.zeros_like(frame)
    yellow[:] = (255, 220, 0)  # emoji yellow
    assert skin_fraction(yellow, lm) < 0.1
    grey = np.repeat(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert not is_colour_frame(grey) and np.isnan(skin_fraction(grey, lm))
    assert is_colour_frame(frame)


def test_landmark_ratios_are_scale_free() -> None:
    lm = mean_face_in_frame(scale=1.0)
    a = landmark_ratios(lm, box_of(lm))
    b = landmark_ratios(lm * 3.0, box_of(lm * 3.0))
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 0.02 for k in a)


def test_tracks_carry_skin_only_when_given() -> None:
    lm = mean_face_in_frame(scale=1.0)
    b = box_of(lm)[None]
    dets3 = [(b, np.ones(1), lm[None])] * 3
    assert build_tracks(dets3, 1)[0].skin is None
    t = build_tracks([(b, np.ones(1), lm[None], np.array([0.8]))] * 3, 1)[0]
    assert t.skin is not None and np.allclose(t.skin, 0.8)
    with pytest.raises(ValueError, match="skin"):
        build_tracks([(b, np.ones(1), lm[None], np.array([0.8, 0.1]))], 1)


# ---- generated scenes through preprocessing (detector + landmarks + tracks + the rule) -----------------
def test_benchmark_video_has_exactly_one_person() -> None:
    """The benchmark video (benchmarks/preprocess.py): libfd finds a "face" on the flag's star."""
    frames = list(talking_head_frames(0, indices=np.linspace(0, 299, 8).round().astype(int)))
    people, rejected = process_frames(_sampled(frames), PP, people=0.25)
    assert len(people) == 1 and people[0][0].num_other_tracks == 0
    assert float(np.median(people[0][0].boxes[:, 2] - people[0][0].boxes[:, 0])) > 150  # the astronaut
    assert rejected and all(v.reason.startswith("not a face") and "skin" in v.reason for _, v in rejected)


def test_face_next_to_a_star_flag_is_the_only_person() -> None:
    frames = []
    for i in range(8):
        f = np.full((480, 854, 3), 200, np.uint8)
        f[20:340, 20:420] = _star_flag(320, 400)
        f[120 + i:400 + i, 500:780] = _astronaut_face(280)
        frames.append(f)
    people, _ = process_frames(_sampled(frames), PP, people=0.25)
    assert len(people) == 1 and people[0][0].boxes[0][0] > 450


def test_printed_photo_on_a_wall_is_still_a_person() -> None:
    wall = cv2.resize(np.repeat(data.brick()[..., None], 3, axis=2), (854, 480)).astype(np.float32)
    wall = np.clip(wall * np.array([1.0, 0.85, 0.7]), 0, 255).astype(np.uint8)  # a beige brick wall
    frames = []
    for i in range(8):
        f = wall.copy()
        f[90:390, 300 + i:560 + i] = 250  # the print's white border
        f[100:380, 310 + i:550 + i] = _astronaut_face(280)[:, 20:260]
        frames.append(f)
    people, rejected = process_frames(_sampled(frames), PP, people=0.25)
    assert len(people) == 1 and not rejected


def test_cartoon_face_and_textured_background_are_nobody() -> None:
    cartoon = np.full((480, 640, 3), (200, 220, 240), np.uint8)
    cv2.circle(cartoon, (320, 240), 110, (255, 220, 0), -1)
    cv2.circle(cartoon, (320, 240), 110, (0, 0, 0), 3)
    for x in (280, 360):
        cv2.ellipse(cartoon, (x, 210), (14, 20), 0, 0, 360, (0, 0, 0), -1)
    cv2.ellipse(cartoon, (320, 270), (55, 35), 0, 10, 170, (0, 0, 0), 5)
    gravel = np.repeat(cv2.resize(data.gravel(), (640, 480))[..., None], 3, axis=2)
    for scene in (cartoon, gravel):
        with pytest.raises(PreprocessError) as e:
            process_frames(_sampled([scene] * 8), PP, people=0.25)
        assert e.value.reason == "no_face"
    # and were a detector to fire on the cartoon, the rule rejects it (emoji yellow is not skin)
    from forensight.faces.landmarks import get_landmark_predictor

    box = np.array([210, 130, 430, 350], np.float32)
    lm = get_landmark_predictor()(cartoon, box)
    v = check_track(_track(lm, box, skin=skin_fraction(cartoon, lm)))
    assert not v.ok and "skin" in v.reason


def test_a_colour_cast_never_hides_the_only_face(tmp_path: Path) -> None:
    """A face swap with a colour cast (a classic artefact) must be scored, not dropped as "not a face":
    when the main face is not skin-coloured, colour judges no track of the video and an
    ``atypical_face_colour`` warning says so, while a face-like object BESIDE a skin-coloured face is
    still rejected (the star-flag test above). Fails on a rule where colour alone rejects a track."""
    from conftest import moving_face_frames

    from forensight.preprocess import process_video
    from forensight.records import VideoRecord
    from forensight.video import write_video

    green = []
    for f in moving_face_frames(16):
        g = f.astype(np.float32)
        g[..., 0] *= 0.45
        g[..., 2] *= 0.45  # a strong green cast over the whole face
        green.append(np.clip(g, 0, 255).astype(np.uint8))
    path = tmp_path / "green.mp4"
    write_video(path, green, fps=25)
    rec = VideoRecord(path=path, label=1, split="test", dataset="t", method="m", compression="c23", name="green")
    pv = process_video(rec, PP)
    codes = [w["code"] for w in pv.warnings]
    assert "atypical_face_colour" in codes, pv.warnings
    assert "skin-coloured" in next(w["message"] for w in pv.warnings if w["code"] == "atypical_face_colour")
    assert pv.track.observed.mean() > 0.5 and pv.regions["full"].shape[0] == PP.num_frames
    assert not pv.rejected

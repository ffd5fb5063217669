"""Phone and web formats: rotation metadata, 10-bit / 4:4:4 H.264 and HEVC, VP9 / AV1 WebM, interlacing.

Every test video is written here with PyAV's bundled FFmpeg encoders (libx264, libx265,
libvpx-vp9, libsvtav1, mpeg2video) in one session fixture: small frames, few frames.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from forensight.config import PreprocessConfig
from forensight.faces.landmarks import LEFT_EYE, MOUTH, RIGHT_EYE
from forensight.records import VideoRecord
from forensight.video import deinterlace_field, index_video, iter_frames, probe, read_frames

W, H = 160, 128
N = 12


def _pattern() -> np.ndarray:
    """An upright, asymmetric uint8 (H, W, 3) image: smooth face texture plus coloured corner marks."""
    from skimage.data import astronaut

    img = cv2.resize(astronaut()[40:300, 120:380], (W, H), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    img[:16, :32] = (255, 0, 0)     # red: top-left
    img[:16, -16:] = (0, 255, 0)    # green: top-right
    img[-16:, -16:] = (0, 0, 255)   # blue: bottom-right
    return img


def _smooth_source(i: int) -> np.ndarray:
    """Frame ``i`` of a smooth moving picture (no sharp colour edges, so 4:2:0 loses little)."""
    from skimage.data import astronaut

    img = cv2.resize(astronaut(), (W + 2 * N, H), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.GaussianBlur(img[:, i:i + W], (0, 0), 1.5))


def _write(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, options: dict[str, str] | None = None,
           rotation: tuple[int, bool, bool] | None = None, matrix: list[int] | None = None,
           metadata: dict[str, str] | None = None) -> Path:
    c = av.open(str(path), "w")
    s = c.add_stream(codec, rate=25)
    s.height, s.width = frames[0].shape[:2]
    s.pix_fmt = pix_fmt
    s.options = options or {}
    if rotation is not None:
        s.set_display_rotation(rotation[0], hflip=rotation[1], vflip=rotation[2])
    if matrix is not None:
        s.set_display_matrix(matrix)
    for k, v in (metadata or {}).items():
        s.metadata[k] = v
    for f in frames:
        for pk in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
            c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()
    return path


def _stored(upright: np.ndarray, deg: int, hflip: bool, vflip: bool) -> np.ndarray:
    """What a camera stores so that a player shows ``upright`` under PyAV's display rotation
    ``(deg counter-clockwise, then hflip, then vflip)``: the inverse of that transform."""
    d = upright
    if vflip:
        d = d[::-1]
    if hflip:
        d = d[:, ::-1]
    return np.ascontiguousarray(np.rot90(d, -deg // 90))


ORIENTATIONS = [(d, hf, vf) for d in (0, 90, 180, 270) for hf in (False, True) for vf in (False, True)]

SMOOTH_CASES = {
    # name: (codec, pixel format, container suffix, encoder options)
    "h264_10bit": ("libx264", "yuv420p10le", ".mp4", {"crf": "12"}),
    "h264_444": ("libx264", "yuv444p", ".mp4", {"crf": "12"}),
    "h264_444_10bit": ("libx264", "yuv444p10le", ".mp4", {"crf": "12"}),
    "hevc_10bit": ("libx265", "yuv420p10le", ".mp4", {"crf": "12", "x265-params": "log-level=error"}),
    "hevc_444": ("libx265", "yuv444p", ".mp4", {"crf": "12", "x265-params": "log-level=error"}),
    "h264_8bit": ("libx264", "yuv420p", ".mp4", {"crf": "12"}),  # the baseline the others are held to
    "vp9_webm": ("libvpx-vp9", "yuv420p", ".webm", {"crf": "12", "b": "0", "deadline": "realtime",
                                                    "cpu-used": "8", "g": "4"}),
    "av1_webm": ("libsvtav1", "yuv420p", ".webm", {"crf": "20", "preset": "12", "g": "4"}),
    "av1_10bit_webm": ("libsvtav1", "yuv420p10le", ".webm", {"crf": "20", "preset": "12", "g": "4"}),
}


@pytest.fixture(scope="session")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("formats")
    out: dict[str, Path] = {}
    up = _pattern()
    for deg, hf, vf in ORIENTATIONS:
        out[f"orient_{deg}_{hf}_{vf}"] = _write(d / f"orient_{deg}_{int(hf)}{int(vf)}.mp4",
                                                [_stored(up, deg, hf, vf)] * 3, "libx264", "yuv444p", {"crf": "0"},
                                                rotation=(deg, hf, vf))
    # a legacy 'rotate' tag (clockwise degrees) and no display matrix: Matroska keeps such tags
    out["rotate_tag"] = _write(d / "rotate_tag.mkv", [_stored(up, 270, False, False)] * 3, "libx264", "yuv444p",
                               {"crf": "0"}, metadata={"rotate": "90"})
    smooth = [_smooth_source(i) for i in range(N)]
    for name, (codec, pix, suffix, opts) in SMOOTH_CASES.items():
        out[name] = _write(d / f"{name}{suffix}", smooth, codec, pix, opts)
    # interlaced: each frame weaves two fields half a frame period apart (a bar moving right)
    for name, codec, opts, top_first in (
            ("interlaced_h264", "libx264", {"crf": "10", "x264-params": "interlaced=1:tff=1"}, True),
            ("interlaced_mpeg2", "mpeg2video", {"flags": "+ilme+ildct", "b": "6M"}, False)):
        woven = []
        for i in range(N):
            first, second = _bar(20 + 8 * i), _bar(24 + 8 * i)
            f = first.copy()
            rows = slice(1, None, 2) if top_first else slice(0, None, 2)  # the second field's rows
            f[rows] = second[rows]
            woven.append(f)
        out[name] = _write(d / f"{name}{'.mp4' if codec == 'libx264' else '.mpg'}", woven, codec, "yuv420p", opts)
    # a portrait phone video of a real face, stored landscape with a clockwise-90 display matrix
    from conftest import moving_face_frames

    faces = moving_face_frames(16, size=(256, 320))  # upright portrait frames, 256 wide x 320 tall
    out["phone_portrait"] = _write(d / "phone_portrait.mp4", [_stored(f, 270, False, False) for f in faces],
                                   "libx264", "yuv420p", {"crf": "18"}, rotation=(270, False, False))
    return out


def _bar(x: int) -> np.ndarray:
    f = np.full((H, W, 3), 40, np.uint8)
    f[:, x:x + 10] = 230
    return f


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) < tol


# ------------------------------------------------------------------------------------ rotation


@pytest.mark.parametrize("deg,hflip,vflip", ORIENTATIONS)
def test_display_matrix_frames_come_out_upright(formats: dict[str, Path], deg: int, hflip: bool, vflip: bool) -> None:
    path = formats[f"orient_{deg}_{hflip}_{vflip}"]
    up = _pattern()
    info = probe(path)
    assert (info.height, info.width) == up.shape[:2]  # sizes are reported upright
    if not (hflip or vflip):
        assert info.rotation == deg
    frame = read_frames(path, np.array([0, 2])).frames
    assert frame.shape == (2, H, W, 3)
    for f in frame:
        assert _close(f, up, 3.0)
        assert f[:16, :32, 0].mean() > 200 and f[:16, :32, 2].mean() < 60      # red mark top-left
        assert f[-16:, -16:, 2].mean() > 200 and f[-16:, -16:, 0].mean() < 60  # blue mark bottom-right


def test_legacy_rotate_tag_is_applied(formats: dict[str, Path]) -> None:
    path = formats["rotate_tag"]
    with av.open(str(path)) as c:  # the file really has the tag and no display matrix
        s = c.streams.video[0]
        assert {k.lower(): v for k, v in s.metadata.items()}.get("rotate") == "90"
        assert all(sd.type.name != "DISPLAYMATRIX" for sd in next(c.decode(s)).side_data)
    idx = index_video(path)
    assert idx.orientation.source == "rotate_tag"
    assert idx.info.rotation == 270  # 90 clockwise = 270 counter-clockwise
    assert (idx.info.width, idx.info.height) == (W, H)
    f = read_frames(path, np.array([1]), index=idx).frames[0]
    assert _close(f, _pattern(), 3.0)


def test_face_pipeline_finds_landmarks_in_the_upright_phone_frame(formats: dict[str, Path]) -> None:
    from forensight.preprocess import process_video

    path = formats["phone_portrait"]
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (256, 320, 270)
    cfg = PreprocessConfig(num_frames=8, regions=("full",), size=64)
    rec = VideoRecord(path=path, label=0, split="test", dataset="t", method="original", compression="c23", name="p")
    pv = process_video(rec, cfg)
    track = pv.track
    assert track.observed.sum() >= 6
    lm = track.landmarks[track.observed]
    assert (lm[..., 0] >= -5).all() and (lm[..., 0] <= 261).all() and (lm[..., 1] <= 325).all()
    eyes_y = lm[:, list(RIGHT_EYE) + list(LEFT_EYE), 1].mean(axis=1)
    mouth_y = lm[:, list(MOUTH), 1].mean(axis=1)
    assert (mouth_y > eyes_y + 10).all()  # upright: the mouth is below the eyes
    assert (lm[:, list(RIGHT_EYE), 0].mean(axis=1) < lm[:, list(LEFT_EYE), 0].mean(axis=1)).all()
    assert pv.regions["full"].shape == (8, 64, 64, 3)


# ------------------------------------------------------------------------------------ pixel formats


@pytest.mark.parametrize("name", [n for n in SMOOTH_CASES if n != "h264_8bit"])
def test_high_bit_depth_444_and_web_codecs_decode_to_uint8_rgb(formats: dict[str, Path], name: str) -> None:
    _, pix, suffix, _ = SMOOTH_CASES[name]
    path = formats[name]
    with av.open(str(path)) as c:  # the file is what the test claims
        assert next(c.decode(video=0)).format.name == pix
        assert c.format.name.startswith("matroska") == (suffix == ".webm")
    idx = index_video(path)
    assert idx.info.num_frames == N and (idx.info.width, idx.info.height) == (W, H)
    got = read_frames(path, np.arange(N), index=idx)
    assert got.frames.dtype == np.uint8 and got.frames.shape == (N, H, W, 3)
    np.testing.assert_allclose(np.diff(got.timestamps), 0.04, atol=1e-3)
    src = np.stack([_smooth_source(i) for i in range(N)])
    err = np.abs(got.frames.astype(np.int16) - src).astype(np.float64)
    base = np.abs(read_frames(formats["h264_8bit"], np.arange(N)).frames.astype(np.int16) - src).mean()
    assert err.mean() < max(3.0, 1.5 * base), (name, err.mean(), base)
    assert np.percentile(err, 99) < 16
    # sparse, seeking access gives the very frames of a full decode
    pick = np.array([1, 6, 11])
    sparse = read_frames(path, pick, index=idx).frames
    np.testing.assert_array_equal(sparse, got.frames[pick])


# ------------------------------------------------------------------------------------ interlacing


@pytest.mark.parametrize("name,first_rows", [("interlaced_h264", "top"), ("interlaced_mpeg2", "bottom")])
def test_interlaced_frames_are_deinterlaced_to_the_first_field(formats: dict[str, Path], name: str,
                                                               first_rows: str) -> None:
    path = formats[name]
    idx = index_video(path)
    assert idx.interlaced and idx.field_order == ("tt" if first_rows == "top" else "bb")
    got = read_frames(path, np.arange(N), index=idx).frames
    with av.open(str(path)) as c:
        raw = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    comb = lambda x: float(np.abs(x[:, 0:-1:2].astype(np.int16) - x[:, 1::2]).mean())
    assert comb(raw) > 8.0  # the decoder hands over woven, combed frames
    assert comb(got) < 1.5
    first = np.stack([_bar(20 + 8 * i) for i in range(N)])  # the temporally first field's picture
    assert _close(got, first, 3.0)
    np.testing.assert_array_equal(read_frames(path, np.array([3, 9]), index=idx).frames, got[[3, 9]])


def test_progressive_frames_are_untouched(formats: dict[str, Path]) -> None:
    path = formats["h264_8bit"]
    idx = index_video(path)
    assert not idx.interlaced
    with av.open(str(path)) as c:
        raw = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    np.testing.assert_array_equal(np.stack([f for _, _, f in iter_frames(path, np.arange(N), index=idx)]), raw)


def test_deinterlace_field_keeps_one_field_and_interpolates_the_other() -> None:
    x = np.arange(6 * 2 * 1, dtype=np.uint8).reshape(6, 2, 1) * 10
    top = deinterlace_field(x, top_first=True)
    np.testing.assert_array_equal(top[0::2], x[0::2])
    np.testing.assert_array_equal(top[1], (x[0].astype(int) + x[2] + 1) // 2)
    np.testing.assert_array_equal(top[5], x[4])  # the last row copies its one neighbour
    bottom = deinterlace_field(x, top_first=False)
    np.testing.assert_array_equal(bottom[1::2], x[1::2])
    np.testing.assert_array_equal(bottom[0], x[1])
    assert top.dtype == np.uint8 and top.shape == x.shape

"""Frame sampling and decoding: exact frames, one forward pass, clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.config import PreprocessConfig
from forensight.records import PreprocessError
from forensight.video import (
    clip_starts,
    index_video,
    iter_frames,
    probe,
    read_frames,
    sample_indices,
    write_video,
)


def _numbered_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Frames whose mean grey level encodes their number (robust to compression)."""
    return [np.full((h, w, 3), (i * 7) % 200 + 20, np.uint8) for i in range(n)]


def _decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("v") / "gop.mp4"
    write_video(p, _numbered_frames(150), fps=30, gop=20)
    return p


def test_probe_reports_size_fps_and_count(gop_video: Path) -> None:
    info = probe(gop_video)
    assert (info.width, info.height, info.num_frames) == (64, 48, 150)
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(5.0, abs=0.05)


def test_sampled_frames_equal_sequential_decode(gop_video: Path) -> None:
    full = _decode_all(gop_video)
    idx = index_video(gop_video)
    assert idx.keyframes.size > 3  # the gop=20 video really has keyframes to seek to
    for gap in (1, 12, 1000):
        wanted = np.array([0, 3, 40, 41, 90, 149])
        sf = read_frames(gop_video, wanted, index=idx, min_seek_gap=gap)
        assert sf.indices.tolist() == wanted.tolist()
        for j, i in enumerate(wanted):
            np.testing.assert_array_equal(sf.frames[j], full[i])
        assert sf.timestamps == pytest.approx(wanted / 30.0)


def test_decode_is_one_forward_pass(gop_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sampling 32 of 150 frames decodes each frame at most once.

    Decodes are counted at the packet level (every frame any ``packet.decode()`` returns), which
    sees all decoding whatever PyAV call the reader uses.
    """
    from test_decode_integrity import count_decodes

    idx = index_video(gop_video)
    decoded = count_decodes(monkeypatch)
    wanted = sample_indices(150, PreprocessConfig(num_frames=32))
    got = [n for n, _, _ in iter_frames(gop_video, wanted, index=idx)]
    assert got == wanted.tolist()
    assert 32 <= len(decoded) <= 150
    assert len(decoded) == len(set(decoded))


@pytest.mark.parametrize("sampling", ["all", "linear"])
def test_decode_once_on_a_long_video_beyond_the_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       sampling: str) -> None:
    """A 400-frame video whose sampled frames exceed the frame buffer many times over is still
    decoded once: the frames beyond the budget are held on disk, never decoded again."""
    from conftest import moving_face_frames
    from test_decode_integrity import count_decodes

    from forensight.preprocess import process_video
    from forensight.records import VideoRecord

    p = tmp_path / "long.mp4"
    frames = moving_face_frames(40, size=(160, 128))
    write_video(p, [frames[i % 40] for i in range(400)], fps=25, gop=50)
    idx = index_video(p)
    decoded = count_decodes(monkeypatch)
    cfg = PreprocessConfig(sampling=sampling, num_frames=200, size=32, regions=("full", "lips"))
    rec = VideoRecord(path=p, label=0, split="train", dataset="t", method="original", compression="c23", name="l")
    pv = process_video(rec, cfg, buffer_mb=0.5)  # 8 frames of 160x128
    sampled = pv.frames_idx.size
    assert sampled == (400 if sampling == "all" else 200)
    assert pv.frame_store == {"in_memory": 8, "spilled": sampled - 8}
    per_frame = [decoded.count(int(q)) for q in idx.pts]
    assert max(per_frame[1:]) == 1  # frame 0 is decoded once more by the index (rotation metadata)
    assert per_frame[0] <= 2 and sum(per_frame) <= 401


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    p = tmp_path / "rot.mp4"
    c = av.open(str(p), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
    s.set_display_rotation(90)
    for _ in range(5):
        a = np.zeros((32, 64, 3), np.uint8)
        a[:, :16] = 255  # white band on the left
        for pk in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
            c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()
    info = probe(p)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    f = read_frames(p, np.array([0])).frames[0]
    assert f.shape == (64, 32, 3)
    # rotated 90 deg counter-clockwise: the left band is now at the bottom
    assert f[-10:].mean() > 200 and f[:10].mean() < 60


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2000), k=st.integers(1, 64))
def test_linear_sampling_properties(n: int, k: int) -> None:
    cfg = PreprocessConfig(sampling="linear", num_frames=k)
    if n < k:
        with pytest.raises(PreprocessError, match="too_short"):
            sample_indices(n, cfg)
        return
    idx = sample_indices(n, cfg)
    assert idx.size == k and idx[0] == 0
    assert k == 1 or idx[-1] == n - 1  # evenly spaced over the WHOLE video
    assert np.all(np.diff(idx) > 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 1000), clip=st.integers(1, 40), max_clips=st.integers(0, 8))
def test_clip_sampling_gives_whole_consecutive_clips(n: int, clip: int, max_clips: int) -> None:
    cfg = PreprocessConfig(sampling="clips", clip_len=clip, max_clips=max_clips)
    if n < clip:
        with pytest.raises(PreprocessError, match="too_short"):
            sample_indices(n, cfg)
        return
    idx = sample_indices(n, cfg)
    starts = clip_starts(n, clip, max_clips)
    assert idx.size == starts.size * clip
    assert idx[-1] < n
    for s in starts:
        assert set(range(s, s + clip)) <= set(idx.tolist())


def test_stride_all_and_frame_cap() -> None:
    assert sample_indices(10, PreprocessConfig(sampling="stride", stride=3)).tolist() == [0, 3, 6, 9]
    assert sample_indices(10, PreprocessConfig(sampling="all")).tolist() == list(range(10))
    capped = sample_indices(500, PreprocessConfig(sampling="all", max_frames=110))
    assert capped.size == 110 and capped[-1] == 109


def test_too_many_sampled_frames_is_refused() -> None:
    with pytest.raises(PreprocessError, match="too_large"):
        sample_indices(10_000, PreprocessConfig(sampling="all", max_sampled_frames=500))


@pytest.mark.parametrize("case", ["empty_file", "unreadable", "no_video_stream", "directory", "not_found"])
def test_bad_files_raise_clear_reasons(bad_files: dict[str, Path], case: str) -> None:
    expected = {"directory": "unreadable"}.get(case, case)
    with pytest.raises(PreprocessError) as e:
        index_video(bad_files[case])
    assert e.value.reason == expected
    assert str(bad_files[case].name) in e.value.message


def test_truncated_file_is_reported_not_padded(bad_files: dict[str, Path]) -> None:
    with pytest.raises(PreprocessError) as e:
        idx = index_video(bad_files["truncated"])
        # the packet index only covers what survived; asking past the end is 'truncated'
        read_frames(bad_files["truncated"], np.arange(idx.info.num_frames), index=idx)
        read_frames(bad_files["truncated"], np.array([39]))
    assert e.value.reason in {"truncated", "decode_error", "unreadable", "too_short"}


def test_frame_size_limit(face_video: Path) -> None:
    with pytest.raises(PreprocessError, match="too_large"):
        index_video(face_video, max_side=100)


def test_write_video_is_atomic_and_validates(tmp_path: Path) -> None:
    p = tmp_path / "x.mp4"
    with pytest.raises(ValueError, match="even"):
        write_video(p, [np.zeros((31, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="no frames"):
        write_video(p, [])
    assert not p.exists() and not list(tmp_path.iterdir())
    assert write_video(p, _numbered_frames(3)) == 3 and probe(p).num_frames == 3


def test_prefetch_keeps_order_and_reraises() -> None:
    from forensight.video import prefetch

    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise PreprocessError("decode_error", "boom")

    with pytest.raises(PreprocessError, match="boom"):
        list(prefetch(broken()))
    gen = prefetch(iter(range(10**6)), depth=2)
    assert next(gen) == 0
    gen.close()  # stops the thread without draining the source

"""Data integrity of decoding: truncated files are flagged, VFR timing is exact, one decode with
bounded memory, and the official (forward) LipForensics landmark window."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import moving_face_frames

from forensight.config import PREPROCESS_PRESETS, PreprocessConfig
from forensight.preprocess import process_video, run_preprocess
from forensight.records import PreprocessError, VideoRecord
from forensight.regions import align_lips, smooth_lips_landmarks
from forensight.video import FrameStore, index_video, read_frames, write_video

CFG = PreprocessConfig(num_frames=16, size=64, regions=("full", "mouth"))
FRACTIONS = (0.5, 0.7, 0.9)


def _rec(path: Path, name: str = "v") -> VideoRecord:
    return VideoRecord(path=path, label=0, split="train", dataset="test", method="original", compression="c23",
                       name=name)


def _encode(path: Path, frames: list[np.ndarray], fmt: str, options: dict[str, str] | None = None,
            pts: list[int] | None = None, time_base: Fraction | None = None) -> None:
    """H.264 into container ``fmt`` with container ``options``; ``pts`` in ``time_base`` units if given."""
    c = av.open(str(path), "w", format=fmt, options=options or {})
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    if time_base is not None:
        s.time_base = time_base
        s.codec_context.time_base = time_base
    for i, rgb in enumerate(frames):
        f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if pts is not None:
            f.pts, f.time_base = pts[i], time_base
        for pk in s.encode(f):
            c.mux(pk)
    for pk in s.encode():
        c.mux(pk)
    c.close()


def _intact_prefix(path: Path, cut: int) -> int:
    """Independent ground truth from the complete file: how many of its first frames (presentation
    order) have their packet wholly inside the first ``cut`` bytes, i.e. the frame number of the
    first frame lost with the cut."""
    with av.open(str(path)) as c:
        pk = [(p.pts, p.pos + p.size <= cut) for p in c.demux(video=0) if p.size]
    ranks = np.argsort(np.argsort([p for p, _ in pk]))
    lost = [r for r, (_, ok) in zip(ranks, pk) if not ok]
    return int(min(lost)) if lost else len(pk)


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """60-frame 320x256 face videos: Matroska, MP4 (index at the end), MP4 faststart (index first)."""
    d = tmp_path_factory.mktemp("integrity")
    frames = moving_face_frames(60)
    out = {"mkv": d / "v.mkv", "mp4": d / "v.mp4", "mp4_faststart": d / "vf.mp4"}
    write_video(out["mkv"], frames, fps=25)
    write_video(out["mp4"], frames, fps=25)
    _encode(out["mp4_faststart"], frames, "mp4", {"movflags": "faststart"})
    return out


def _cut(src: Path, frac: float, dst_dir: Path) -> tuple[Path, int]:
    data = src.read_bytes()
    cut = int(len(data) * frac)
    dst = dst_dir / f"cut{int(frac * 100)}_{src.name}"
    dst.write_bytes(data[:cut])
    return dst, cut


# ---- 1. truncation -------------------------------------------------------------------------------

def test_complete_files_are_not_flagged(complete: dict[str, Path]) -> None:
    for kind, p in complete.items():
        idx = index_video(p)
        assert idx.info.num_frames == 60 and idx.truncation is None, kind
        assert idx.declared_s == pytest.approx(2.4, abs=1e-3)
    assert index_video(complete["mp4"]).declared_frames == 60
    assert index_video(complete["mkv"]).declared_frames is None  # Matroska stores no frame count


@pytest.mark.parametrize("frac", FRACTIONS)
@pytest.mark.parametrize("kind", ["mkv", "mp4_faststart"])
def test_truncated_file_is_flagged_with_counts(complete: dict[str, Path], tmp_path: Path, kind: str,
                                                frac: float) -> None:
    cut_path, cut = _cut(complete[kind], frac, tmp_path)
    intact = _intact_prefix(complete[kind], cut)
    assert 0 < intact < 60
    idx = index_video(cut_path)
    tr = idx.truncation
    assert tr is not None and tr.declared_frames == 60
    found = idx.info.num_frames
    assert tr.found_frames == found
    # never a frame after a lost one (frame numbers would shift); at most the B-frame reorder
    # depth (2 here) of intact frames dropped at the end
    assert intact - 2 <= found <= intact
    # Matroska declares only a duration (2.4 s at 25 fps: about 60 frames); a faststart MP4 its
    # frame count, and the cut lands inside a packet (partly read = corrupt).
    assert (tr.basis, tr.estimated) == (("duration", True) if kind == "mkv" else ("corrupt_packet", False))
    assert tr.declared_s == pytest.approx(2.4, abs=1e-3) and tr.found_s < 2.4
    # every indexed frame decodes, and equals the same frame of the complete file
    got = read_frames(cut_path, np.arange(found), index=idx)
    ref = read_frames(complete[kind], np.arange(found))
    np.testing.assert_array_equal(got.frames, ref.frames)


@pytest.mark.parametrize("frac", FRACTIONS)
def test_cut_mp4_with_index_at_end_is_unreadable(complete: dict[str, Path], tmp_path: Path, frac: float) -> None:
    """FFmpeg's default MP4 keeps its index (moov) at the end: a cut file cannot be opened at all."""
    cut_path, _ = _cut(complete["mp4"], frac, tmp_path)
    with pytest.raises(PreprocessError) as e:
        index_video(cut_path)
    assert e.value.reason == "unreadable"


@pytest.mark.parametrize("frac", FRACTIONS)
def test_truncation_policy_warn_and_fail(complete: dict[str, Path], tmp_path: Path, frac: float) -> None:
    cut_path, _ = _cut(complete["mkv"], frac, tmp_path)
    found = index_video(cut_path).info.num_frames
    assert PreprocessConfig().on_truncated == "warn"
    pv = process_video(_rec(cut_path), CFG)
    assert pv.truncated is not None and (pv.truncated["found_frames"], pv.truncated["declared_frames"]) == (found, 60)
    assert [w["code"] for w in pv.warnings] == ["truncated"]
    assert f"{found} of about 60 declared frames" in pv.warnings[0]["message"]
    assert pv.frames_idx[-1] == found - 1  # the surviving prefix is what was sampled
    meta = pv.meta()
    assert meta["truncated"]["found_frames"] == found and meta["warnings"][0]["code"] == "truncated"
    json.dumps(meta)  # storable as is
    with pytest.raises(PreprocessError) as e:
        process_video(_rec(cut_path), PreprocessConfig(**{**CFG.to_dict(), "on_truncated": "fail"}))
    assert e.value.reason == "truncated" and f"{found} of about 60" in e.value.message
    with pytest.raises(ValueError, match="on_truncated"):
        PreprocessConfig(on_truncated="ignore")


def test_complete_video_has_no_warning(complete: dict[str, Path]) -> None:
    pv = process_video(_rec(complete["mkv"]), CFG)
    assert pv.truncated is None and pv.warnings == [] and pv.meta()["truncated"] is None


def test_truncation_warning_reaches_the_cached_metadata(complete: dict[str, Path], tmp_path: Path) -> None:
    cut_path, _ = _cut(complete["mkv"], 0.7, tmp_path)
    summary = run_preprocess([_rec(cut_path, "cut")], tmp_path / "cache", CFG, progress=False)
    assert summary.done == 1
    meta = json.loads(next((tmp_path / "cache" / "entries").glob("*/meta.json")).read_text())
    assert meta["truncated"]["found_frames"] == index_video(cut_path).info.num_frames < 60
    assert meta["truncated"]["declared_frames"] == 60 and meta["warnings"][0]["code"] == "truncated"


# ---- 2. variable frame rate ----------------------------------------------------------------------

def test_variable_frame_rate_mkv(tmp_path: Path) -> None:
    """40 frames, gaps alternating 1 and 3 ticks of 1/75 s; Matroska stores no frame count."""
    p = tmp_path / "vfr.mkv"
    ticks = np.concatenate([[0], np.cumsum([1 if i % 2 == 0 else 3 for i in range(39)])]).tolist()
    _encode(p, moving_face_frames(40), "matroska", pts=ticks, time_base=Fraction(1, 75))
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        assert not s.frames  # no frame count in the header
        times = [float(f.pts * s.time_base) for f in c.decode(s)]  # what each frame says
    assert len(times) == 40
    idx = index_video(p)
    assert idx.info.num_frames == 40 and idx.truncation is None
    pv = process_video(_rec(p), PreprocessConfig(num_frames=32, size=64, regions=("full",)))
    want = np.linspace(0, 39, 32).round().astype(int)
    assert pv.frames_idx.tolist() == want.tolist()
    np.testing.assert_allclose(pv.timestamps, np.asarray(times)[want] - times[0], atol=1e-9)
    np.testing.assert_allclose(pv.timestamps, np.asarray(ticks)[want] / 75, atol=1e-3)  # ms rounding
    assert not np.allclose(pv.timestamps, want / 25.0, atol=1e-3)  # not index x nominal fps


# ---- 3. one decode, bounded memory ---------------------------------------------------------------

class _CountingPacket:
    """A demuxed packet whose decode() records the pts of every frame it produces."""

    def __init__(self, packet: av.Packet, log: list[int]) -> None:
        self._packet, self._log = packet, log

    def __getattr__(self, name: str):
        return getattr(self._packet, name)

    def decode(self):
        frames = self._packet.decode()
        self._log.extend(int(f.pts) for f in frames)
        return frames


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch PyAV's demuxer so every decoded frame's pts is appended to the returned list."""
    log: list[int] = []
    orig = av.container.InputContainer.demux

    def demux(self, *a, **k):
        for packet in orig(self, *a, **k):
            yield _CountingPacket(packet, log)

    monkeypatch.setattr(av.container.InputContainer, "demux", demux)
    return log


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 frames of 320x256 (240 KiB each, 36 MiB in all), keyframe every 25 frames."""
    p = tmp_path_factory.mktemp("long") / "long.mp4"
    write_video(p, moving_face_frames(150), fps=25, gop=25)
    return p


def test_every_frame_decoded_once_beyond_the_buffer(long_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All 150 frames with a 1 MiB buffer (4 frames): one decode, memory bounded, same crops."""
    cfg = PreprocessConfig(sampling="all", size=32, regions=("full", "lips"), smooth_window=5)
    ref = process_video(_rec(long_video), cfg, buffer_mb=1000)  # everything in RAM
    assert ref.frame_store == {"in_memory": 150, "spilled": 0}
    log = count_decodes(monkeypatch)
    budget_mb = 1.0
    peaks: list[int] = []
    orig_close = FrameStore.close

    def close(self: FrameStore) -> None:
        peaks.append(self.peak_resident_bytes)
        orig_close(self)

    monkeypatch.setattr(FrameStore, "close", close)
    pv = process_video(_rec(long_video), cfg, buffer_mb=budget_mb)
    counts = Counter(log)
    idx = index_video(long_video)
    assert set(counts) == set(idx.pts.tolist())
    # every frame is decoded exactly once by the processing pass; the first one once more by the
    # index, which decodes it to read the rotation metadata
    assert all(n == 1 for p, n in counts.items() if p != idx.pts[0]) and counts[int(idx.pts[0])] <= 2
    frame_bytes = 320 * 256 * 3
    assert pv.frame_store == {"in_memory": int(budget_mb * 2**20 // frame_bytes), "spilled": 150 - 4}
    assert peaks and max(peaks) <= budget_mb * 2**20
    for r in cfg.regions:
        np.testing.assert_array_equal(pv.regions[r], ref.regions[r])
    np.testing.assert_array_equal(pv.track.boxes, ref.track.boxes)


def test_frame_store_round_trip_and_bound(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(10)]
    store = FrameStore(budget_bytes=3 * frames[0].nbytes, spill_dir=tmp_path)
    for f in frames:
        store.append(f)
    assert (len(store), store.num_in_memory, store.num_spilled) == (10, 3, 7)
    assert store.peak_resident_bytes == 3 * frames[0].nbytes and store.spilled_bytes == 7 * frames[0].nbytes
    assert not list(tmp_path.iterdir())  # the spill file is anonymous: nothing left to clean up
    out = list(store.drain())
    assert len(out) == 10 and all(np.array_equal(a, b) for a, b in zip(out, frames))
    assert store.resident_bytes == 0
    with pytest.raises(RuntimeError):
        list(store.drain())
    with pytest.raises(ValueError):
        FrameStore(0).append(np.zeros((2, 2, 3), np.float32))


# ---- 4. LipForensics landmark window -------------------------------------------------------------

def _official_forward(landmarks: np.ndarray, window: int) -> np.ndarray:
    """The official crop_mouths.py queue logic, restated: frame t uses the mean of frames
    t..t+window-1 once the queue is full; the frames left in the queue at the end reuse the last
    transform (that of the last full window)."""
    t_len = len(landmarks)
    out = np.empty_like(landmarks)
    last = None
    for t in range(t_len):
        if t + window <= t_len:
            last = landmarks[t:t + window].mean(axis=0)
        out[t] = last
    return out


@pytest.mark.parametrize("t_len", [12, 13, 25, 40])
def test_forward_window_is_the_official_one(t_len: int) -> None:
    rng = np.random.default_rng(t_len)
    lm = rng.normal(100, 10, (t_len, 68, 2))
    fwd = smooth_lips_landmarks(lm, 12, mode="forward")
    for t in range(t_len):
        s = min(t, t_len - 12)  # t..t+11; the last 11 frames reuse the last full window
        np.testing.assert_allclose(fwd[t], lm[s:s + 12].mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(fwd, _official_forward(lm, 12), atol=1e-9)
    cen = smooth_lips_landmarks(lm, 12, mode="centred")
    for t in range(t_len):
        s = int(np.clip(t - 6, 0, t_len - 12))
        np.testing.assert_allclose(cen[t], lm[s:s + 12].mean(axis=0), atol=1e-9)
    np.testing.assert_array_equal(fwd, smooth_lips_landmarks(lm, 12))  # the default: forward, as the pipeline's
    if t_len > 12:
        assert not np.allclose(fwd, cen)


def test_forward_window_short_runs_and_clips() -> None:
    rng = np.random.default_rng(1)
    lm = rng.normal(size=(7, 68, 2))
    np.testing.assert_allclose(smooth_lips_landmarks(lm, 12, mode="forward"), np.repeat(lm.mean(0)[None], 7, 0))
    lm = rng.normal(size=(50, 68, 2))
    idx = np.concatenate([np.arange(0, 25), np.arange(100, 125)])
    out = smooth_lips_landmarks(lm, 12, idx, mode="forward")
    np.testing.assert_allclose(out[:25], _official_forward(lm[:25], 12), atol=1e-9)
    np.testing.assert_allclose(out[25:], _official_forward(lm[25:], 12), atol=1e-9)
    with pytest.raises(ValueError, match="mode"):
        smooth_lips_landmarks(lm, 12, mode="backward")


def test_lips_default_and_preset_use_the_official_forward_window() -> None:
    assert PreprocessConfig().lips_smooth_mode == "forward"
    assert PREPROCESS_PRESETS["lips"].lips_smooth_mode == "forward"
    assert PreprocessConfig(lips_smooth_mode="centred").hash != PreprocessConfig().hash
    with pytest.raises(ValueError, match="lips_smooth_mode"):
        PreprocessConfig(lips_smooth_mode="middle")


@pytest.mark.parametrize("mode", ["forward", "centred"])
def test_pipeline_lips_follow_the_configured_window(face_video: Path, mode: str) -> None:
    cfg = PreprocessConfig(sampling="all", regions=("lips",), smooth_window=1, lips_smooth_mode=mode)
    pv = process_video(_rec(face_video), cfg)
    raw = pv.track.raw_landmarks if pv.track.raw_landmarks is not None else pv.track.landmarks
    smoothed = smooth_lips_landmarks(raw, 12, pv.frames_idx, mode=mode)
    frames = read_frames(face_video, pv.frames_idx).frames
    want = np.stack([align_lips(f, s, 96, center_landmarks=r) for f, s, r in zip(frames, smoothed, raw)])
    np.testing.assert_array_equal(pv.regions["lips"][..., 0], want)

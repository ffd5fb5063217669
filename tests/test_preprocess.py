"""Preprocessing: a real face video end to end; bad inputs are recorded, never replaced; resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from forensight.cache import Cache, CacheConfigMismatch
from forensight.config import PreprocessConfig
from forensight.preprocess import effective_smooth_window, process_video, run_preprocess, shard_records
from forensight.records import PreprocessError, VideoRecord

CFG = PreprocessConfig(num_frames=16, size=64, regions=("frame", "full", "eyes", "mouth", "lips"))


def _rec(path: Path, name: str, label: int = 0, split: str = "train") -> VideoRecord:
    return VideoRecord(path=path, label=label, split=split, dataset="test", method="original" if label == 0
                       else "Face2Face", compression="c23", name=name)


def test_process_real_face_video(face_video: Path) -> None:
    pv = process_video(_rec(face_video, "face"), CFG)
    t = 16
    assert pv.frames_idx.tolist() == np.linspace(0, 39, 16).round().astype(int).tolist()
    assert pv.regions["full"].shape == (t, 64, 64, 3) and pv.regions["full"].dtype == np.uint8
    assert pv.regions["lips"].shape == (t, 96, 96, 1)
    assert pv.track.landmarks.shape == (t, 68, 2) and pv.track.observed.mean() > 0.8
    # geometry on the real face: eyes above the mouth, both inside the face box
    lm = pv.track.landmarks
    assert np.all(lm[:, 36:48, 1].mean(1) < lm[:, 48:68, 1].mean(1))
    box = pv.track.boxes
    assert np.all((lm[:, 30, 0] > box[:, 0]) & (lm[:, 30, 0] < box[:, 2]))
    # the crops are not blank and not all the same frame
    assert pv.regions["mouth"].std() > 10
    assert set(pv.timings) >= {"index", "decode", "detect", "landmarks", "track", "crop"}


def test_two_pass_streaming_matches_buffered(face_video: Path) -> None:
    """A tiny buffer forces the bounded-memory two-pass path; results are identical."""
    a = process_video(_rec(face_video, "face"), CFG, buffer_mb=1000)
    b = process_video(_rec(face_video, "face"), CFG, buffer_mb=0.0)
    for r in CFG.regions:
        np.testing.assert_array_equal(a.regions[r], b.regions[r])


def test_no_face_and_too_short_raise(noface_video: Path, short_video: Path) -> None:
    with pytest.raises(PreprocessError) as e:
        process_video(_rec(noface_video, "nf"), CFG)
    assert e.value.reason == "no_face"
    with pytest.raises(PreprocessError) as e:
        process_video(_rec(short_video, "short"), CFG)
    assert e.value.reason == "too_short" and "fewer than the 16" in e.value.message


def test_batch_records_every_bad_input_and_continues(tmp_path: Path, face_video: Path, noface_video: Path,
                                                     short_video: Path, bad_files: dict[str, Path]) -> None:
    recs = [_rec(face_video, "good"), _rec(noface_video, "noface"), _rec(short_video, "short")]
    recs += [_rec(p, f"bad_{k}") for k, p in bad_files.items()]
    huge = PreprocessConfig(**{**CFG.to_dict(), "max_side": 200})
    summary = run_preprocess(recs, tmp_path / "cache", CFG, workers=1, progress=False)
    assert summary.done == 1 and summary.failed == len(recs) - 1
    reasons = {vid.split("/")[-1]: r for vid, (r, _) in summary.failures.items()}
    assert reasons["noface"] == "no_face" and reasons["short"] == "too_short"
    assert reasons["bad_empty_file"] == "empty_file" and reasons["bad_unreadable"] == "unreadable"
    assert reasons["bad_no_video_stream"] == "no_video_stream" and reasons["bad_not_found"] == "not_found"
    assert reasons["bad_directory"] == "not_regular_file"
    assert reasons["bad_truncated"] in {"truncated", "decode_error", "too_short", "unreadable"}
    manifest = (tmp_path / "cache" / "manifest.csv").read_text()
    assert manifest.count("\n") == len(recs) + 1 and "no_face" in manifest
    assert "failed" in str(summary) and "no_face=1" in str(summary)
    # too large: a frame side over the limit is refused with its own reason (fresh cache)
    s2 = run_preprocess([_rec(face_video, "big")], tmp_path / "cache2", huge, progress=False)
    assert list(s2.failures.values())[0][0] == "too_large"
    # the good entry is intact and readable
    e = Cache.open(tmp_path / "cache").load("test/original/c23/good")
    assert e.regions["eyes"].shape == (16, 64, 64, 3)


def test_rerun_skips_finished_and_failed(tmp_path: Path, face_video: Path, noface_video: Path) -> None:
    recs = [_rec(face_video, "a"), _rec(noface_video, "b")]
    run_preprocess(recs, tmp_path, CFG, progress=False)
    meta = Cache.open(tmp_path).entry_dir("test/original/c23/a") / "meta.json"
    before = meta.stat().st_mtime_ns
    s = run_preprocess(recs, tmp_path, CFG, progress=False)
    assert (s.done, s.skipped, s.failed) == (0, 2, 0)
    assert meta.stat().st_mtime_ns == before
    s = run_preprocess(recs, tmp_path, CFG, retry_failed=True, progress=False)
    assert (s.done, s.skipped, s.failed) == (0, 1, 1)
    with pytest.raises(CacheConfigMismatch):
        run_preprocess(recs, tmp_path, PreprocessConfig(num_frames=8, size=64), progress=False)


def test_workers_and_shards(tmp_path: Path, face_video: Path) -> None:
    recs = [_rec(face_video, f"v{i}") for i in range(4)]
    parts = [shard_records(recs, (i, 2)) for i in range(2)]
    assert sorted(r.name for p in parts for r in p) == [f"v{i}" for i in range(4)]
    assert not set(r.name for r in parts[0]) & set(r.name for r in parts[1])
    cfg = PreprocessConfig(num_frames=8, size=32, regions=("full",))
    s0 = run_preprocess(recs, tmp_path, cfg, workers=2, shard=(0, 2), progress=False)
    s1 = run_preprocess(recs, tmp_path, cfg, workers=2, shard=(1, 2), progress=False)
    assert s0.done + s1.done == 4
    assert len(Cache.open(tmp_path).video_ids()) == 4
    with pytest.raises(ValueError, match="shard"):
        shard_records(recs, (2, 2))


def test_killed_run_resumes_without_redoing_or_corrupting(tmp_path: Path, face_video: Path) -> None:
    """SIGKILL a preprocessing process mid-batch; the rerun keeps finished entries untouched."""
    n = 6
    script = f"""
import sys
from pathlib import Path
from forensight.config import PreprocessConfig
from forensight.preprocess import run_preprocess
from forensight.records import VideoRecord
recs = [VideoRecord(path=Path({str(face_video)!r}), label=0, split='train', dataset='t', method='original',
                    compression='c23', name=f'v{{i}}') for i in range({n})]
run_preprocess(recs, {str(tmp_path)!r}, PreprocessConfig(num_frames=32, size=64, regions=('full', 'mouth')),
               workers=1, progress=False)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    entries = tmp_path / "entries"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list(entries.glob("*/meta.json")) if entries.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in entries.glob("*/meta.json")}
    assert 2 <= len(finished) < n, "the kill should land mid-batch"
    cfg = PreprocessConfig(num_frames=32, size=64, regions=("full", "mouth"))
    recs = [VideoRecord(path=face_video, label=0, split="train", dataset="t", method="original",
                        compression="c23", name=f"v{i}") for i in range(n)]
    s = run_preprocess(recs, tmp_path, cfg, progress=False)
    assert s.skipped == len(finished) and s.done == n - len(finished) and s.failed == 0
    for name, mtime in finished.items():
        assert (entries / name / "meta.json").stat().st_mtime_ns == mtime  # not redone
    assert not list(entries.glob(".tmp-*"))  # no half entry left
    cache = Cache.open(tmp_path)
    for vid in cache.video_ids():
        e = cache.load(vid)
        assert e.regions["full"].shape == (32, 64, 64, 3)


def test_effective_smooth_window() -> None:
    assert effective_smooth_window(5, np.arange(10)) == 5
    assert effective_smooth_window(5, np.arange(0, 20, 2)) == 1  # 5 frames cover 2.5 samples → odd 1
    assert effective_smooth_window(9, np.arange(0, 40, 2)) == 3
    assert effective_smooth_window(5, np.arange(0, 300, 10)) == 1
    assert effective_smooth_window(5, np.array([3])) == 1


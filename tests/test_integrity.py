"""Data integrity of preprocessing: nothing lost, nothing merged.

Two ids never share a cache entry; concurrent shards never delete each other's work; a crashing
worker costs only its own video; every candidate path in a dataset folder gets a manifest row with
a reason that says what it is; the summary counts every candidate exactly once.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import moving_face_frames

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.datasets import read_dataset
from forensight.preprocess import CRASH_ENV, run_preprocess
from forensight.records import VideoRecord
from forensight.video import write_video

CFG = PreprocessConfig(num_frames=8, size=32, regions=("full",))


def _face_video(path: Path, seed: int = 0, n: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, moving_face_frames(n, seed=seed), fps=25)
    return path


def _rec(path: Path, name: str, label: int = 0, method: str = "original") -> VideoRecord:
    return VideoRecord(path=path, label=label, split="train", dataset="test", method=method,
                       compression="c23", name=name)


def _manifest(root: Path) -> dict[str, dict[str, str]]:
    with (root / "manifest.csv").open(newline="") as f:
        return {row["video_id"]: row for row in csv.DictReader(f)}


# ---- 1. two videos, one cache entry ---------------------------------------------------------------

def test_ids_that_share_a_readable_stem_are_both_processed_and_kept_apart(tmp_path: Path) -> None:
    """``clip 1``/``clip-1`` and ``视频1``/``影片1`` used to share one entry ("already cached")."""
    names = ["clip 1", "clip-1", "视频1", "影片1"]
    lengths = [16, 18, 20, 22]
    recs = [_rec(_face_video(tmp_path / "v" / f"{i}.mp4", seed=i, n=n), name, label=i % 2, method="m")
            for i, (name, n) in enumerate(zip(names, lengths))]
    summary = run_preprocess(recs, tmp_path / "cache", CFG, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (4, 0, 0), str(summary)
    cache = Cache.open(tmp_path / "cache")
    entries = {}
    for rec, n in zip(recs, lengths):
        e = cache.load(rec.video_id)
        assert e.record == rec and e.record.label == rec.label
        assert e.meta["video"]["num_frames"] == n  # this video's own file
        entries[rec.name] = e
    for a, b in (("clip 1", "clip-1"), ("视频1", "影片1")):
        assert not np.array_equal(entries[a].regions["full"], entries[b].regions["full"])
    rows = _manifest(tmp_path / "cache")
    assert set(rows) == {r.video_id for r in recs} and len({r["entry"] for r in rows.values()}) == 4


# ---- 2. shards never delete each other's work ------------------------------------------------------

_SHARD_SCRIPT = """
import json, sys, time
from pathlib import Path
import numpy as np
from forensight.config import PreprocessConfig
from forensight.preprocess import run_preprocess
from forensight.records import VideoRecord

shard, root, paths = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
recs = [VideoRecord(path=Path(p), label=0, split='train', dataset='t', method='original', compression='c23',
                    name=f'v{i}') for i, p in enumerate(paths)]
cfg = PreprocessConfig(num_frames=8, size=32, regions=('full',))
if shard == 0:
    # a slow disk: every array written takes 0.3 s, so this shard is mid-write most of the time
    save = np.save
    def slow_save(*a, **k):
        save(*a, **k)
        time.sleep(0.3)
    np.save = slow_save
else:
    # start working while shard 0 is writing an entry (the moment a cleaning start used to hit)
    deadline = time.time() + 120
    while time.time() < deadline and not list((root / 'entries').glob('.tmp-*')):
        time.sleep(0.01)
s = run_preprocess(recs, root, cfg, shard=(shard, 2), progress=False)
print(json.dumps({'done': s.done, 'failed': s.failed, 'skipped': s.skipped, 'failures': s.failures}))
"""


def test_two_shards_writing_one_cache_concurrently_both_complete(tmp_path: Path) -> None:
    paths = [str(_face_video(tmp_path / "v" / f"{i}.mp4", seed=i)) for i in range(6)]
    root = tmp_path / "cache"
    Cache.create(root, CFG)  # both shards open the same existing cache
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _SHARD_SCRIPT, str(i), str(root), json.dumps(paths)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert [r["failed"] for r in results] == [0, 0], results
    assert sum(r["done"] for r in results) == 6 and all(r["done"] == 3 for r in results), results
    rows = _manifest(root)
    assert len(rows) == 6 and {r["status"] for r in rows.values()} == {"ok"}
    assert not list((root / "entries").glob(".tmp-*"))
    cache = Cache.open(root)
    assert all(cache.load(v).regions["full"].shape == (8, 32, 32, 3) for v in cache.video_ids())


# ---- 3. one crashing worker does not abort the batch ---------------------------------------------

def test_a_worker_killed_on_one_video_costs_only_that_video(tmp_path: Path, face_video: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "v2")  # test-only hook: that video's worker SIGKILLs itself
    recs = [_rec(face_video, f"v{i}") for i in range(5)]
    root = tmp_path / "cache"
    summary = run_preprocess(recs, root, CFG, workers=2, progress=False)
    assert (summary.done, summary.failed, summary.skipped) == (4, 1, 0), str(summary)
    reason, msg = summary.failures["test/original/c23/v2"]
    assert reason == "worker_crashed"
    assert str(face_video) in msg and "SIGKILL" in msg
    rows = _manifest(root)
    assert len(rows) == 5
    assert (rows["test/original/c23/v2"]["status"], rows["test/original/c23/v2"]["reason"]) == \
        ("failed", "worker_crashed")
    assert all(rows[f"test/original/c23/v{i}"]["status"] == "ok" for i in (0, 1, 3, 4))
    log_lines = (root / "preprocess.log").read_text().splitlines()
    assert any("test/original/c23/v2" in ln and "worker_crashed" in ln and "SIGKILL" in ln
               for ln in log_lines)
    assert not list((root / "entries").glob(".tmp-*"))


# ---- 4 + 5. every candidate path gets a row with a reason; the summary counts each once ----------

def _messy_folder(root: Path) -> dict[str, str]:
    """A real/ + fake/ folder with 2 good videos and 7 bad candidates; returns name → expected reason."""
    _face_video(root / "real" / "good.mp4", seed=0)
    _face_video(root / "fake" / "good.mp4", seed=1)
    (root / "real" / "frames.mp4").mkdir()  # a directory named like a video
    (root / "real" / "gone.mp4").symlink_to(root / "real" / "deleted-long-ago.mp4")
    os.mkfifo(root / "fake" / "pipe.mp4")
    (root / "fake" / "notes.mp4").write_text("this is not a video\n" * 20)
    (root / "fake" / "empty.mp4").write_bytes(b"")
    img = moving_face_frames(1)[0][:, :, ::-1]
    (root / "real" / "still.mp4").write_bytes(cv2.imencode(".png", img)[1].tobytes())
    (root / "fake" / "photo.mp4").write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    (root / "real" / ".hidden.mp4").write_bytes(b"")  # hidden: not a candidate
    (root / "real" / "readme.txt").write_text("not a video name")  # no video suffix: not a candidate
    return {"original/raw/good": "", "fake/raw/good": "", "original/raw/frames": "not_regular_file",
            "original/raw/gone": "dangling_link", "fake/raw/pipe": "not_regular_file",
            "fake/raw/notes": "unreadable", "fake/raw/empty": "empty_file",
            "original/raw/still": "not_a_video", "fake/raw/photo": "not_a_video"}


def test_readers_keep_paths_that_are_not_regular_files(tmp_path: Path) -> None:
    expected = _messy_folder(tmp_path / "data")
    recs = read_dataset("folder", tmp_path / "data", dataset="d")
    assert sorted(r.video_id for r in recs) == sorted(f"d/{k}" for k in expected)
    # a CSV manifest keeps a listed dangling link / folder (preprocessing says what it is), but nothing
    # at all at a listed path is still an error naming the line
    manifest = tmp_path / "data" / "list.csv"
    manifest.write_text("path,label\nreal/gone.mp4,0\nreal/frames.mp4,0\nreal/good.mp4,0\n")
    assert [r.name for r in read_dataset("csv", manifest)] == ["real__gone", "real__frames", "real__good"]
    manifest.write_text("path,label\nreal/never-existed.mp4,0\n")
    with pytest.raises(ValueError, match=r"list.csv:2: video .*never-existed.mp4 does not exist"):
        read_dataset("csv", manifest)


def test_every_candidate_gets_one_row_and_the_summary_counts_each_once(tmp_path: Path) -> None:
    expected = _messy_folder(tmp_path / "data")
    recs = read_dataset("folder", tmp_path / "data", dataset="d")
    found = len(recs)
    assert found == len(expected) == 9
    root = tmp_path / "cache"
    s = run_preprocess(recs, root, CFG, progress=False)
    assert (s.total, s.done, s.failed, s.skipped) == (found, 2, 7, 0), str(s)
    assert s.done + s.failed + s.skipped == found
    assert (f"{found} found in this shard = 2 done + 7 failed + 0 skipped; "
            "every candidate counted once") in str(s)
    got = {vid.removeprefix("d/"): reason for vid, (reason, _) in s.failures.items()}
    assert got == {k: v for k, v in expected.items() if v}
    msgs = {vid.removeprefix("d/"): msg for vid, (_, msg) in s.failures.items()}
    frames, pipe = msgs["original/raw/frames"], msgs["fake/raw/pipe"]
    assert "not a regular file" in frames and "a directory" in frames
    assert "not a regular file" in pipe and "a named pipe" in pipe
    gone, still = msgs["original/raw/gone"], msgs["original/raw/still"]
    assert "dangling symbolic link" in gone and "deleted-long-ago.mp4" in gone
    assert "not a video" in still and "still image (1 frame, png codec" in still
    assert "still image (1 frame, mjpeg codec" in msgs["fake/raw/photo"]
    rows = _manifest(root)
    assert sorted(rows) == sorted(r.video_id for r in recs)  # one row per candidate, none missing or extra
    for vid, row in rows.items():
        want = expected[vid.removeprefix("d/")]
        assert (row["status"], row["reason"]) == (("failed", want) if want else ("ok", ""))
    # a rerun skips every candidate, each with its reason, and still counts each once
    s2 = run_preprocess(recs, root, CFG, progress=False)
    assert (s2.done, s2.failed, s2.skipped) == (0, 0, found)
    assert s2.skipped_reasons == {"done_before": 2, "failed_before": 7}
    assert (f"{found} found in this shard = 0 done + 0 failed + {found} skipped "
            "(done_before=2, failed_before=7); every candidate counted once") in str(s2)
    assert len(_manifest(root)) == found

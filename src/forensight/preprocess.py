"""Preprocessing: videos → face-region crops in a cache, over many videos.

Per video (``process_video``):
  1. index the file (packets only) and choose the frame numbers to sample;
  2. pass 1: decode the sampled frames in one forward pass; per frame detect faces on a
     downscaled copy and predict 68 landmarks for each detection on the native frame;
  3. link detections into tracks, keep one subject, interpolate gaps, smooth over time;
  4. cut every region from the native-resolution frame (pass 2).
When the sampled frames fit ``buffer_mb`` (always for 32-frame linear sampling at 1080p) they are
kept from pass 1, so the video is decoded once; otherwise pass 2 decodes again, streaming, so a
worker's memory stays bounded whatever the video's length.

Over many videos (``run_preprocess``): worker processes, ``shard=(i, n)`` for cluster job arrays,
resume (finished and failed videos are skipped), a progress bar, a failure log, and a summary.
Bad input never stops the batch and is never replaced by anything: it is recorded with a reason.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.records import FaceTrack, PreprocessError, SampledFrames, VideoRecord
from forensight.video import VideoIndex, index_video, iter_frames, prefetch, sample_indices

log = logging.getLogger(__name__)

STAGES = ("index", "decode", "detect", "landmarks", "track", "crop", "write")


@dataclass
class ProcessedVideo:
    """Everything preprocessing produces for one video (before it is written).

    ``regions`` maps region → uint8 (T, h, w, c); ``timings`` maps stage → seconds.
    """

    record: VideoRecord
    index: VideoIndex
    frames_idx: np.ndarray
    timestamps: np.ndarray
    track: FaceTrack
    regions: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"indices": self.frames_idx.astype(np.int64), "timestamps": self.timestamps.astype(np.float64),
                "boxes": self.track.boxes.astype(np.float32), "landmarks": self.track.landmarks.astype(np.float32),
                "observed": self.track.observed.astype(bool)}

    def meta(self) -> dict[str, Any]:
        info = self.index.info
        return {"num_frames": int(self.frames_idx.size), "coverage": round(self.track.coverage, 4),
                "num_other_tracks": int(self.track.num_other_tracks),
                "video": {"width": info.width, "height": info.height, "fps": info.fps,
                          "num_frames": info.num_frames, "duration_s": info.duration_s,
                          "rotation": info.rotation, "codec": info.codec},
                "timings_s": {k: round(v, 4) for k, v in self.timings.items()}}


class _Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def add(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (t1 - t0)
        return t1


def _detect_pass(
    frames: Iterable[tuple[int, float, np.ndarray]], cfg: PreprocessConfig, keep: bool, timer: _Timer,
) -> tuple[list[int], list[float], list[Any], list[np.ndarray]]:
    """Pass 1: detections + landmarks for every sampled frame; optionally keep the frames."""
    from forensight.faces.detectors import get_detector
    from forensight.faces.landmarks import get_landmark_predictor
    from forensight.faces.sequence import SequenceFaceDetector

    detector = SequenceFaceDetector(get_detector(cfg.detector), max_side=cfg.detect_max_side,
                                    face_px=cfg.detect_face_px, full_every=cfg.detect_full_every,
                                    max_upscale=cfg.detect_max_upscale)
    predictor = get_landmark_predictor()
    nums: list[int] = []
    times: list[float] = []
    dets: list[Any] = []
    kept: list[np.ndarray] = []
    t = time.perf_counter()
    for num, ts, rgb in frames:
        t = timer.add("decode", t)
        boxes, scores = detector.detect(rgb)
        t = timer.add("detect", t)
        lms = predictor.predict_many(rgb, boxes) if len(boxes) else np.zeros((0, 68, 2), np.float32)
        t = timer.add("landmarks", t)
        nums.append(num)
        times.append(ts)
        dets.append((boxes, scores, lms))
        if keep:
            kept.append(rgb)
    return nums, times, dets, kept


def _crop_all(frames: Iterable[np.ndarray], track: FaceTrack, lips: tuple[np.ndarray, np.ndarray] | None,
              cfg: PreprocessConfig, timer: _Timer) -> dict[str, np.ndarray]:
    """Pass 2: every region of every frame; ``lips`` = (smoothed, raw) landmarks for alignment."""
    from forensight.regions import align_lips, crop_regions

    out: dict[str, list[np.ndarray]] = {r: [] for r in cfg.regions}
    t = time.perf_counter()
    for i, rgb in enumerate(frames):
        t = timer.add("decode", t)
        crops = crop_regions(rgb, track.landmarks[i], track.boxes[i], cfg)
        for name, crop in crops.items():
            out[name].append(crop)
        if lips is not None:
            # official geometry: transform from smoothed landmarks, patch centred on this frame's own
            out["lips"].append(align_lips(rgb, lips[0][i], cfg.lips_size, center_landmarks=lips[1][i])[..., None])
        t = timer.add("crop", t)
    return {k: np.stack(v) for k, v in out.items()}


def effective_smooth_window(window: int, frame_indices: np.ndarray) -> int:
    """The track-smoothing window in SAMPLES for a window of ``window`` source frames.

    Smoothing removes detector jitter between neighbouring frames; when the samples lie several
    frames apart (linear sampling) the same window covers fewer samples, down to 1 (none), so
    real head motion between distant samples is never averaged away. Always odd.
    """
    if frame_indices.size < 2:
        return 1
    gap = float(np.median(np.diff(frame_indices)))
    n = int(window / max(gap, 1.0))
    return max(1, n if n % 2 else n - 1)


def _track(dets: list[Any], nums: list[int], cfg: PreprocessConfig) -> tuple[FaceTrack, Any]:
    from forensight.faces.tracking import build_track

    idx = np.asarray(nums, np.int64)
    track = build_track(dets, effective_smooth_window(cfg.smooth_window, idx))
    lips = None
    if "lips" in cfg.regions:
        from forensight.regions import smooth_lips_landmarks

        raw = track.raw_landmarks if track.raw_landmarks is not None else track.landmarks
        lips = (smooth_lips_landmarks(raw, cfg.lips_smooth_window, frame_indices=idx), raw)
    return track, lips


def process_video(record: VideoRecord, cfg: PreprocessConfig, buffer_mb: float = 768.0,
                  threads: int = 0, overlap: bool = True) -> ProcessedVideo:
    """Preprocess one video (see the module docstring); raises ``PreprocessError`` on bad input.

    ``threads`` = decoder threads (0 = FFmpeg's choice); ``overlap`` decodes in a background
    thread while faces are detected (useful when a core is free: one process, or detect).
    """
    timings: dict[str, float] = {}
    timer = _Timer(timings)
    t0 = time.perf_counter()
    idx = index_video(record.path, max_side=cfg.max_side)
    wanted = sample_indices(idx.info.num_frames, cfg)
    timer.add("index", t0)
    if cfg.input == "mouth_crops":
        return _process_mouth_crops(record, cfg, idx, wanted, timer, threads)
    frame_mb = idx.info.width * idx.info.height * 3 / 2**20
    keep = wanted.size * frame_mb <= buffer_mb
    decoded = iter_frames(record.path, wanted, index=idx, threads=threads)
    nums, times, dets, kept = _detect_pass(prefetch(decoded) if overlap else decoded, cfg, keep, timer)

    t = time.perf_counter()
    track, lips = _track(dets, nums, cfg)
    timer.add("track", t)

    frames: Iterable[np.ndarray] = kept if keep else (f for _, _, f in iter_frames(
        record.path, np.asarray(nums), index=idx, threads=threads))
    regions = _crop_all(frames, track, lips, cfg, timer)
    return ProcessedVideo(record=record, index=idx, frames_idx=np.asarray(nums, np.int64),
                          timestamps=np.asarray(times, np.float64), track=track, regions=regions,
                          timings=timings)


def _process_mouth_crops(record: VideoRecord, cfg: PreprocessConfig, idx: VideoIndex, wanted: np.ndarray,
                         timer: _Timer, threads: int) -> ProcessedVideo:
    """Videos that already are aligned mouth crops: every frame → grayscale "lips" crop."""
    import cv2

    info = idx.info
    if (info.width, info.height) != (cfg.lips_size, cfg.lips_size):
        raise PreprocessError(
            "wrong_format", f"{record.path}: input 'mouth_crops' needs {cfg.lips_size}x{cfg.lips_size} frames "
                            f"(aligned mouth crops), got {info.width}x{info.height}; use input 'video' instead")
    nums, times, crops = [], [], []
    t = time.perf_counter()
    for num, ts, rgb in iter_frames(record.path, wanted, index=idx, threads=threads):
        nums.append(num)
        times.append(ts)
        crops.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None])
    timer.add("decode", t)
    n = len(nums)
    side = float(cfg.lips_size)
    track = FaceTrack(boxes=np.tile(np.array([0, 0, side, side], np.float32), (n, 1)),
                      landmarks=np.full((n, 68, 2), np.nan, np.float32), observed=np.ones(n, bool),
                      scores=np.ones(n, np.float32))
    return ProcessedVideo(record=record, index=idx, frames_idx=np.asarray(nums, np.int64),
                          timestamps=np.asarray(times, np.float64), track=track, regions={"lips": np.stack(crops)},
                          timings=timer.timings)


def process_frames(frames: SampledFrames, cfg: PreprocessConfig) -> tuple[FaceTrack, dict[str, np.ndarray]]:
    """Preprocess frames already in memory (uint8 (T,H,W,3) RGB): the face track and region crops."""
    timer = _Timer({})
    items = zip(frames.indices.tolist(), frames.timestamps.tolist(), frames.frames)
    nums, _, dets, _ = _detect_pass(items, cfg, False, timer)
    track, lips = _track(dets, nums, cfg)
    return track, _crop_all(iter(frames.frames), track, lips, cfg, timer)


# ---- many videos ---------------------------------------------------------------------------------

@dataclass
class PreprocessSummary:
    """What a preprocessing run did; ``failures`` maps video id → (reason, message)."""

    root: Path
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        head = (f"preprocess: {self.total} videos in this shard: {self.done} done, {self.skipped} skipped "
                f"(already in the cache), {self.failed} failed  [{self.seconds:.1f} s] -> {self.root}")
        lines = [head]
        if self.failures:
            reasons = Counter(r for r, _ in self.failures.values())
            lines.append("  failures by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
            for vid, (reason, msg) in list(self.failures.items())[:10]:
                lines.append(f"  - {vid}: {reason}: {msg}")
            if len(self.failures) > 10:
                lines.append(f"  ... and {len(self.failures) - 10} more (see manifest.csv / preprocess.log)")
        return "\n".join(lines)


def shard_records(records: Sequence[VideoRecord], shard: tuple[int, int]) -> list[VideoRecord]:
    """The records of shard ``i`` of ``n`` (0-based), split by a stable order of qualified ids."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    ordered = sorted(records, key=lambda r: r.video_id)
    return ordered[i::n]


def _work(args: tuple[VideoRecord, PreprocessConfig, str, float, int]) -> tuple[str, str, str, str, dict]:
    """Worker: process and write one video. Returns (video_id, status, reason, message, timings)."""
    record, cfg, root, buffer_mb, threads = args
    cache = Cache(Path(root), cfg)
    try:
        pv = process_video(record, cfg, buffer_mb=buffer_mb, threads=threads, overlap=threads != 1)
        t = time.perf_counter()
        cache.write_entry(record, pv.arrays(), pv.regions, pv.meta())
        pv.timings["write"] = time.perf_counter() - t
        return record.video_id, "ok", "", "", pv.timings
    except PreprocessError as e:
        cache.write_failure(record, e.reason, e.message)
        return record.video_id, "failed", e.reason, e.message, {}
    except MemoryError:
        cache.write_failure(record, "too_large", "ran out of memory")
        return record.video_id, "failed", "too_large", "ran out of memory", {}
    except Exception as e:  # noqa: BLE001 - an unexpected bug must not stop the batch, but must be loud
        msg = f"{type(e).__name__}: {e}"
        cache.write_failure(record, "error", msg + " | " + traceback.format_exc(limit=3).replace("\n", " "))
        return record.video_id, "failed", "error", msg, {}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_preprocess(records: Sequence[VideoRecord], root: str | Path, cfg: PreprocessConfig, workers: int = 1,
                   shard: tuple[int, int] = (0, 1), retry_failed: bool = False, progress: bool = True,
                   buffer_mb: float = 768.0) -> PreprocessSummary:
    """Preprocess ``records`` into the cache at ``root`` (created if new; resumed if it exists).

    Raises ``CacheConfigMismatch`` if ``root`` was made with another config. Videos already in
    the cache are skipped, and so are earlier failures unless ``retry_failed``.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    cache = Cache.create(root, cfg)
    cache.clean_partial()
    mine = shard_records(records, shard)
    ids = [r.video_id for r in mine]
    dup = [k for k, v in Counter(ids).items() if v > 1]
    if dup:
        raise ValueError(f"duplicate video ids in the input: {dup[:5]}")
    summary = PreprocessSummary(root=Path(root), total=len(mine))
    todo = []
    for r in mine:
        if cache.is_done(r.video_id) or (cache.is_failed(r.video_id) and not retry_failed):
            summary.skipped += 1
        else:
            todo.append(r)
    threads = 1 if workers > 1 else 0
    jobs = [(r, cfg, str(cache.root), buffer_mb, threads) for r in todo]
    bar = tqdm(total=len(jobs), desc="preprocess", unit="video", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1:
            _consume(map(_work, jobs), summary, bar)
        else:
            # forkserver, not fork: forking a process whose torch/OpenMP thread pools are running
            # can deadlock the children (seen in the full test suite); the server is clean.
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["forensight.preprocess", "cv2", "dlib"])
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
                _consume(pool.map(_work, jobs, chunksize=1), summary, bar)
    finally:
        bar.close()
        cache.write_manifest()
    summary.seconds = time.perf_counter() - t_start
    return summary


def _consume(results: Iterable[tuple], summary: PreprocessSummary, bar: Any) -> None:
    for vid, status, reason, msg, timings in results:
        if status == "ok":
            summary.done += 1
            for k, v in timings.items():
                summary.stage_seconds[k] = summary.stage_seconds.get(k, 0.0) + v
        else:
            summary.failed += 1
            summary.failures[vid] = (reason, msg)
            log.warning("skipped %s: %s: %s", vid, reason, msg)
        bar.update(1)
        bar.set_postfix(done=summary.done, failed=summary.failed, refresh=False)

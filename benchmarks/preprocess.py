"""Preprocessing speed on 10 s 1280x720 30 fps H.264 face videos (benchmark, not a test).

Measures in one run:
  - the decode floor: decoding just the 32 sampled frames to RGB (one pass, keyframe-aware);
  - the full pipeline per video: index + decode + detection + tracking + landmarks + 4 regions
    at 224 px + atomic write, with the breakdown by stage;
  - throughput in videos/minute with 2 worker processes.
Prints the pipeline/floor ratio (target <= 1.5x) and videos/minute (target >= 100 on 2 cores) and
writes them to ``benchmarks/results/preprocess.json`` (``--json``; ``benchmarks/report.py`` makes
the performance table from it).

    python benchmarks/preprocess.py [--videos 8] [--workers 2] [--detector dlib_hog] [--json PATH | --no-json]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.preprocess import STAGES, process_video, run_preprocess
from forensight.records import VideoRecord
from forensight.video import index_video, iter_frames, sample_indices, write_video


def talking_head_frames(seed: int, seconds: float = 10.0, fps: int = 30, size: tuple[int, int] = (1280, 720),
                        indices: Iterable[int] | None = None) -> Iterator[np.ndarray]:
    """Frames (uint8 RGB ``(h, w, 3)``) of :func:`make_video`'s video, all or only ``indices``."""
    from skimage.data import astronaut

    img = astronaut()
    w, h = size
    rng = np.random.default_rng(seed)
    ph = rng.uniform(0, 6.28, 3)
    for i in (range(int(seconds * fps)) if indices is None else indices):
        s = 2.2 + 0.08 * np.sin(i / 40 + ph[0])
        tx = w / 2 - s * 190 + 30 * np.sin(i / 55 + ph[1])
        ty = h / 2 - s * 120 + 15 * np.cos(i / 70 + ph[2])
        m = np.array([[s, 0, tx], [0, s, ty]], np.float32)
        f = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        yield np.clip(f.astype(np.int16) + int(8 * np.sin(i / 30)), 0, 255).astype(np.uint8)


def make_video(path: Path, seed: int, seconds: float = 10.0, fps: int = 30, size: tuple[int, int] = (1280, 720)) -> None:
    """A talking-head-like 720p video: the astronaut photo with slow zoom/pan and colour drift
    (and, mirrored in from the photo's edge, the flag's white stars: libfd finds a false "face" on
    one of them, which ``faces.faceness`` rejects)."""
    write_video(path, talking_head_frames(seed, seconds, fps, size), fps=fps, crf=23)


def bench_records(folder: Path, n: int) -> list[VideoRecord]:
    """``n`` real test records of :func:`make_video` videos ``folder/000.mp4`` ... (seeds 0..n-1),
    generated where missing: the benchmarks' one set of input videos."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        p = folder / f"{i:03d}.mp4"
        if not p.exists():
            make_video(p, seed=i)
        records.append(VideoRecord(path=p, label=0, split="test", dataset="bench", method="original",
                                   compression="c23", name=p.stem))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the generated videos in this folder")
    ap.add_argument("--detector", help="face detector (default: PreprocessConfig's)")
    ap.add_argument("--json", type=Path, help="results file (default benchmarks/results/preprocess.json)")
    ap.add_argument("--no-json", action="store_true", help="print only")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from benchjson import Recorder

    rec = Recorder("preprocess", note=f"{a.videos} generated 10 s 1280x720 30 fps H.264 videos (make_video)")

    work = Path(tempfile.mkdtemp(prefix="forensight-bench-"))
    vid_dir = a.keep or work / "videos"
    # 32 linear frames, frame/full/eyes/mouth at 224, the default face detector
    cfg = PreprocessConfig(**({"detector": a.detector} if a.detector else {}))
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"config {cfg.hash}: sampling={cfg.sampling} frames={cfg.num_frames} regions={cfg.regions} "
          f"size={cfg.size} detector={cfg.detector}@{cfg.detect_max_side}px")
    t = time.perf_counter()
    records = bench_records(vid_dir, a.videos)
    paths = [r.path for r in records]
    print(f"generated {a.videos} videos of 10 s 1280x720 30 fps in {time.perf_counter() - t:.1f} s")

    # 1. decode floor, single process, 1 decoder thread (as in a worker)
    floor = []
    for p in paths:
        t0 = time.perf_counter()
        idx = index_video(p)
        for _ in iter_frames(p, sample_indices(idx.info.num_frames, cfg), index=idx, threads=1):
            pass
        floor.append(time.perf_counter() - t0)
    # 2. full pipeline per video, single process, 1 decoder thread; with the decode prefetch
    #    thread (the default for one process) and without it (as inside a worker pool)
    cv2.setNumThreads(1)
    results = {}
    for overlap in (True, False):
        full, stages = [], dict.fromkeys(STAGES, 0.0)
        cache = Cache.create(work / f"cache1_{overlap}", cfg)
        for r in records:
            t0 = time.perf_counter()
            pv = process_video(r, cfg, threads=1, overlap=overlap)
            tw = time.perf_counter()
            cache.write_entry(r, pv.arrays(), pv.regions, pv.meta())
            pv.timings["write"] = time.perf_counter() - tw
            full.append(time.perf_counter() - t0)
            for k, v in pv.timings.items():
                stages[k] = stages.get(k, 0.0) + v
        results[overlap] = (float(np.median(full)), stages)
    f_floor = float(np.median(floor))
    f_full, stages = results[True]
    f_seq = results[False][0]
    print(f"\ndecode floor (32 sampled frames, 1 thread): {f_floor * 1000:7.0f} ms/video (median of {len(floor)})")
    print(f"full pipeline, decode prefetched in a thread: {f_full * 1000:7.0f} ms/video (median)")
    print(f"full pipeline, all in one thread            : {f_seq * 1000:7.0f} ms/video (median)")
    print(f"ratio full / floor: {f_full / f_floor:.2f}x with prefetch, {f_seq / f_floor:.2f}x single-threaded "
          "(target <= 1.50x)")
    total = sum(stages.values())
    print("breakdown with prefetch (mean ms/video; decode = time spent waiting for frames): " + ", ".join(
        f"{k} {1000 * v / len(records):.0f}" for k, v in stages.items()) + f"  [sum {1000 * total / len(records):.0f}]")

    # 3. throughput with worker processes
    t0 = time.perf_counter()
    s = run_preprocess(records, work / "cache2", cfg, workers=a.workers, progress=False)
    dt = time.perf_counter() - t0
    print(f"\nthroughput, {a.workers} workers: {s.done} videos in {dt:.1f} s = {60 * s.done / dt:.1f} videos/minute "
          f"(target >= 100)")
    breakdown = ", ".join(f"{k} {1000 * v / len(records):.0f}" for k, v in stages.items())
    rec.add("preprocess.ratio", f"preprocess one video ({cfg.detector}, {cfg.num_frames} frames, "
            f"{len(cfg.regions)} regions at {cfg.size} px) / decode floor", f_full / f_floor, "x floor", "<= 1.50x",
            f"floor {f_floor * 1000:.0f} ms, pipeline {f_full * 1000:.0f} ms/video with prefetch "
            f"({f_seq / f_floor:.2f}x single-threaded); ms/video: {breakdown}")
    rec.add("preprocess.throughput", f"preprocess throughput, {a.workers} worker processes", 60 * s.done / dt,
            "videos/min", ">= 100", f"{s.done} videos in {dt:.1f} s")
    if not a.no_json:
        rec.save(a.json)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Perturbation + preprocessing throughput against plain preprocessing, in one run (benchmark, not a test).

On 10 s 1280x720 30 fps H.264 face videos (the ones ``benchmarks/preprocess.py`` makes), per video
and in one process (one decoder thread, OpenCV single-threaded, as inside a worker):

  - plain: the full preprocessing of the original file (index, decode of the sampled frames, faces,
    landmarks, crops, atomic cache write);
  - for each perturbation type asked for: the perturbed video written as ``forensight robustness``
    writes it by default (only the sampled frames perturbed, Ut Video lossless in AVI; ``compression`` re-encodes
    every frame with libx264 at the CRF, preset medium, one thread), then the same preprocessing of it;
  - once, for reference, a fully perturbed video (``--keep-videos``: every frame perturbed and
    written losslessly) for the first type.

Prints ms/video (median) and the ratio (perturb + preprocess) / plain for each.

    python benchmarks/robustness.py [--videos 4] [--types noise,blur,compression,mixed] [--level 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.perturbations import Perturbation, perturb_video
from forensight.preprocess import process_video
from forensight.records import VideoRecord
from forensight.video import sample_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preprocess import bench_records


def preprocess_once(record: VideoRecord, cache: Cache, cfg: PreprocessConfig) -> None:
    pv = process_video(record, cfg, threads=1, overlap=False)
    cache.write_entry(record, pv.arrays(), pv.regions, pv.meta())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--types", default="noise,blur,compression,mixed")
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="keep the generated source videos in this folder")
    a = ap.parse_args()

    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="forensight-bench-robust-"))
    vid_dir = a.keep or work / "videos"
    cfg = PreprocessConfig()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print(f"preprocessing {cfg.hash}: {cfg.num_frames} {cfg.sampling} frames, regions {cfg.regions} at "
          f"{cfg.size} px, detector {cfg.detector}")
    records = bench_records(vid_dir, a.videos)
    print(f"{a.videos} videos of 10 s 1280x720 30 fps")

    # warm-up (face models loaded once) so that no row pays for it
    preprocess_once(records[0], Cache.create(work / "warm", cfg), cfg)

    plain = []
    cache = Cache.create(work / "plain", cfg)
    for r in records:
        t0 = time.perf_counter()
        preprocess_once(r, cache, cfg)
        plain.append(time.perf_counter() - t0)
    f_plain = float(np.median(plain))
    print(f"\nplain preprocessing                  : {1000 * f_plain:7.0f} ms/video (median)   1.00x")

    types = [t.strip() for t in a.types.split(",") if t.strip()]
    for k, t in enumerate(types):
        pert = Perturbation(t, a.level)
        pp = dataclasses.replace(cfg, perturbation=pert.spec)
        cache = Cache.create(work / f"c_{t}", pp)
        tot, perturb = [], []
        for r in records:
            t0 = time.perf_counter()
            res = perturb_video(r.path, work / "tmp" / r.name, pert, video_key=r.video_id,
                                frames=lambda n: sample_indices(n, cfg))
            t1 = time.perf_counter()
            preprocess_once(dataclasses.replace(r, path=res.path), cache, pp)
            tot.append(time.perf_counter() - t0)
            perturb.append(t1 - t0)
            res.path.unlink()
        f = float(np.median(tot))
        what = "every frame re-encoded" if pert.crf(records[0].video_id) is not None else "sampled frames only"
        print(f"{pert.name:>14} + preprocessing ({what:22s}): {1000 * f:7.0f} ms/video "
              f"(perturb {1000 * float(np.median(perturb)):6.0f})   {f / f_plain:5.2f}x")
        if k == 0:
            t0 = time.perf_counter()
            res = perturb_video(records[0].path, work / "tmp" / "full", pert, video_key=records[0].video_id)
            dt = time.perf_counter() - t0
            size = res.path.stat().st_size / 2**20
            res.path.unlink()
            print(f"{pert.name:>14}, whole video perturbed (--keep-videos): {1000 * dt:7.0f} ms for one video "
                  f"({res.num_frames} frames, Ut Video {size:.0f} MiB), {dt / f_plain:5.2f}x the plain preprocessing")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

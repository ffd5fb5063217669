"""Cost of pseudo-fakes in preprocessing: K = 1, 2 per video vs plain preprocessing (benchmark, not a test).

The same 10 s 1280x720 30 fps H.264 face videos (``benchmarks/preprocess.py``'s generator) are
preprocessed in one process (1 decoder thread, as inside a worker) in three conditions, each
video written into its own cache per condition:
  - plain: index + decode + detection + tracking + landmarks + 4 regions at 224 px + write;
  - K = 1: the same, plus one pseudo-fake (``--pseudo-fakes sbi,vb --per-video 1``) blended on the
    same decoded frames and landmarks, its regions cut and its entry written;
  - K = 2: two pseudo-fakes (one self-blend, one video-level blend).
The conditions are interleaved video by video and repeated, so a busy shared machine slows them
alike; the medians are compared. Prints ratio K=1 / plain (target <= 1.3x: decode and landmarks
are shared) and K=2 / plain, and the pseudo-fake stage time.

    python benchmarks/pseudofake.py [--videos 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from preprocess import bench_records  # benchmarks/preprocess.py: the benchmarks' one set of videos

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.preprocess import _write_pseudo, process_video
from forensight.pseudofake import PseudoFakeConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the generated videos in this folder")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="forensight-bench-pseudo-"))
    vid_dir = a.keep or work / "videos"
    cfg = PreprocessConfig()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"config {cfg.hash}: sampling={cfg.sampling} frames={cfg.num_frames} regions={cfg.regions} "
          f"size={cfg.size} detector={cfg.detector}")
    records = bench_records(vid_dir, a.videos)
    cv2.setNumThreads(1)
    conds: dict[str, PseudoFakeConfig | None] = {"plain": None, "K=1": PseudoFakeConfig(per_video=1),
                                                 "K=2": PseudoFakeConfig(per_video=2)}
    times: dict[str, list[float]] = {k: [] for k in conds}
    pseudo_s: dict[str, list[float]] = {k: [] for k in conds}
    process_video(records[0], cfg, threads=1, overlap=False)  # warm-up: models loaded, caches filled
    for rep in range(a.repeats):
        for r in records:
            for name, pcfg in conds.items():
                cache = Cache.create(work / f"cache_{name.replace('=', '')}_{rep}", cfg)
                t0 = time.perf_counter()
                pv = process_video(r, cfg, threads=1, overlap=False, pseudo=pcfg)
                _write_pseudo(cache, pv, pcfg)
                cache.write_entry(r, pv.arrays(), pv.regions, pv.meta())
                times[name].append(time.perf_counter() - t0)
                pseudo_s[name].append(pv.timings.get("pseudo", 0.0))
                if pcfg is not None and len([o for o in pv.pseudo if o.error is None]) != pcfg.per_video:
                    raise RuntimeError(f"{r.path}: expected {pcfg.per_video} pseudo-fakes, got "
                                       f"{[o.error for o in pv.pseudo]}")
    base = float(np.median(times["plain"]))
    print(f"\n{a.videos} videos x {a.repeats} repeats, one process, 1 decoder thread, conditions interleaved")
    for name in conds:
        med = float(np.median(times[name]))
        print(f"{name:6s}: {med * 1000:7.0f} ms/video (median of {len(times[name])}), pseudo-fake stage "
              f"{1000 * float(np.median(pseudo_s[name])):5.0f} ms, ratio to plain {med / base:.2f}x"
              + ("  (target <= 1.30x)" if name == "K=1" else ""))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

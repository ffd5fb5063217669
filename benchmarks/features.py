"""Frozen-feature cache and study speed: feature extraction vs the encoder's raw forward, and the
wall time of one study training run on cached features.

    python benchmarks/features.py [--videos 40] [--size 112] [--runs 4]

1. Feature extraction (``forensight.features.build_features``: memory-mapped uint8 crops →
   ``prepare_batch`` → EfficientNet-Lite0 → float16 ``.npy`` written atomically), in crops/s, against
   the encoder's raw forward rate on random tensors of the same shape, measured in the same run;
   the ratio is the pipeline's overhead.
2. One study training run (``region_lite0_attention`` on cached features, the demo recipe: 20 epochs
   max, patience 8) and its evaluation, in seconds per run, over ``--runs`` seeds.

The cache is synthetic random crops (content does not matter for speed).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import make_cache  # noqa: E402  (a cache of random uint8 crops)

from forensight.config import TrainConfig, get_model_config  # noqa: E402
from forensight.evaluate import evaluate  # noqa: E402
from forensight.features import build_features  # noqa: E402
from forensight.models.registry import build_model  # noqa: E402
from forensight.train import train  # noqa: E402


def raw_forward_rate(model: torch.nn.Module, size: int, frames: int, repeats: int = 3) -> float:
    """Crops/s of the encoder alone on channels-last float input (the ceiling)."""
    x = torch.randn(frames, 3, size, size).contiguous(memory_format=torch.channels_last)
    enc = model.encoder.eval()
    with torch.inference_mode():
        enc(x)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            enc(x)
            best = min(best, time.perf_counter() - t)
    return frames / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--runs", type=int, default=4)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forensight-features-"))
    try:
        cache = make_cache(work / "cache", a.videos, a.frames, a.size, splits=True)
        mc = get_model_config("region_lite0_attention", input_size=a.size)
        torch.manual_seed(0)
        model = build_model(mc)
        print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads; {a.videos} videos x "
              f"{a.frames} frames of {a.size}x{a.size} crops; EfficientNet-Lite0 (ImageNet)")
        raw = raw_forward_rate(model, a.size, a.frames)
        _, stats = build_features(cache, mc, model)
        rate = stats.frames_per_s
        print(f"encoder raw forward: {raw:7.1f} crops/s; feature extraction: {rate:7.1f} crops/s "
              f"({stats.seconds:.1f} s for {stats.frames} crops) = {rate / raw:.2f}x the raw rate")
        times = []
        for seed in range(a.runs):
            run = work / f"run{seed}"
            t = time.perf_counter()
            train(cache.root, run, mc, TrainConfig(max_epochs=20, patience=8, batch_size=8, lr=1e-3, seed=seed),
                  progress=False)
            evaluate(run, cache.root, run / "eval", n_bootstrap=200, progress=False)
            times.append(time.perf_counter() - t)
        print(f"study run (train on features + evaluate): median {np.median(times):.1f} s, "
              f"min {min(times):.1f} s over {a.runs} seeds")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Training / inference throughput of a region model vs its encoder alone (benchmark, not a test).

In one run, on the same frames (32 x 224 x 224 RGB clips by default):
  - full:    data loader over a memory-mapped cache (uint8) → on-device normalisation → encoder
             + BiLSTM + attention head (+ backward and an optimiser step when training);
  - ceiling: the encoder alone on the same number of frames, already normalised on the device.
Prints clips/s for both and the overhead of data loading + temporal head (target <= 15%).

    python benchmarks/train_throughput.py [--preset region_b1_attention] [--device cuda] [--batch 4]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.datasets.clips import ClipDataset, collate_clips, prepare_batch
from forensight.models.registry import build_model, get_model_config
from forensight.records import VideoRecord


def make_cache(root: Path, n: int, frames: int, size: int, splits: bool = False) -> Cache:
    """A cache of ``n`` videos with random uint8 'full' crops (content does not matter for speed);
    ``splits`` spreads them over train / val / test (60/20/20), else all are train."""
    cfg = PreprocessConfig(num_frames=frames, size=size, regions=("full",))
    cache = Cache.create(root, cfg)
    rng = np.random.default_rng(0)
    for i in range(n):
        split = "train" if not splits or i % 5 < 3 else ("val" if i % 5 == 3 else "test")
        rec = VideoRecord(path=Path(f"/bench/{i}.mp4"), label=(i // 5) % 2 if splits else i % 2, split=split,
                          dataset="bench",
                          method="original", compression="c23", name=f"{i:03d}")
        arrays = {"indices": np.arange(frames), "timestamps": np.arange(frames) / 30.0,
                  "boxes": np.zeros((frames, 4), np.float32), "landmarks": np.zeros((frames, 68, 2), np.float32),
                  "observed": np.ones(frames, bool)}
        crops = {"full": rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)}
        cache.write_entry(rec, arrays, crops, {"num_frames": frames})
    return cache


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(preset: str, device: torch.device, batch: int, steps: int, train: bool, frames: int, size: int,
        cache: Cache, workers: int, amp: bool) -> tuple[float, float]:
    """Returns (clips/s full pipeline, clips/s encoder alone)."""
    mc = get_model_config(preset, input_size=size, channels_last=device.type == "cuda")
    model = build_model(mc).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model.train(train)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    spec = mc.input_spec()
    ds = ClipDataset(cache, cache.video_ids(), spec)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         collate_fn=collate_clips, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, drop_last=True)
    dtype = torch.bfloat16 if amp else None

    def step_full(b: dict) -> None:
        x = prepare_batch(b["frames"].to(device, non_blocking=True), spec, channels_last=device.type == "cuda")
        with torch.autocast(device.type, dtype=dtype, enabled=amp), torch.set_grad_enabled(train):
            out = model(x, b["lengths"].to(device))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logits.float(), b["label"].to(device))
        if train:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    # channels-last, like the pipeline's frames (uint8 NHWC permuted to NCHW keeps NHWC memory),
    # which is also the faster layout for convolutions on CPU and GPU: a fair ceiling
    frames_t = torch.randn(batch * frames, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last)
    enc = model.encoder

    def step_enc() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=amp), torch.set_grad_enabled(train):
            feat = enc(frames_t)
            loss = feat.float().mean()
        if train:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def timed(fn, n: int) -> float:
        sync(device)
        t = time.perf_counter()
        fn(n)
        sync(device)
        return time.perf_counter() - t

    def loop_full(n: int) -> None:
        done = 0
        while done < n:
            for b in loader:
                step_full(b)
                done += 1
                if done >= n:
                    break

    def loop_enc(n: int) -> None:
        for _ in range(n):
            step_enc()

    loop_full(1)
    loop_enc(1)  # warm-up
    t_full, t_enc = [], []
    for _ in range(2):  # interleaved rounds, best of each
        t_full.append(timed(loop_full, steps))
        t_enc.append(timed(loop_enc, steps))
    return batch * steps / min(t_full), batch * steps / min(t_enc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="region_b1_attention")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    amp = device.type == "cuda"
    work = Path(tempfile.mkdtemp(prefix="forensight-tp-"))
    try:
        cache = make_cache(work / "cache", n=max(8, 2 * a.batch * (a.steps + 1)), frames=a.frames, size=a.size)
        print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}"
              + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
              + f", {'bf16 autocast' if amp else 'fp32'}; preset {a.preset}, clips of {a.frames}x{a.size}x{a.size}, "
              f"batch {a.batch}, loader workers {a.workers}")
        for mode in ("inference", "training"):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            full, enc = run(a.preset, device, a.batch, a.steps, mode == "training", a.frames, a.size, cache,
                            a.workers, amp)
            mem = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else ""
            print(f"{mode:9s}: full pipeline {full:7.2f} clips/s | encoder alone {enc:7.2f} clips/s | "
                  f"overhead {100 * (enc / full - 1):+5.1f}% (target <= 15%){mem}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

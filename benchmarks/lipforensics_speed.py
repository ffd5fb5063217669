"""LipForensics inference speed: ms per 25-frame clip (benchmark, not a test).

Compares, in one process and on the same input:
  (a) the reference: plain eager fp32 ``LipForensics`` in eval mode under ``torch.no_grad``
      (what the official code does);
  (b) the library's optimised path: ``optimize_for_inference(model)`` (BatchNorm folded into the
      convs, the 3D stem as a channels-last 2D conv over 5-frame stacks, channels-last trunk,
      PReLU after the max-pool when that is exact) under ``torch.inference_mode``;
  (c) with ``--compile``: (b) wrapped in ``torch.compile`` (inductor, weight freezing), reported
      with its compile time.
Runs are interleaved round-robin so that load from other processes hits every variant alike;
medians (and minima) are reported. Outputs of (b)/(c) are asserted equal to (a) within 1e-4.
Target on the 2-core development machine (2 threads, batch 4): (b) <= 120 ms/clip (the official
implementation takes about 160 ms).

Also reports the LipForensics mouth alignment (``forensight.regions.align_lips``) in ms/frame at
1280x720 when that module is available.

    python benchmarks/lipforensics_speed.py [--threads 2] [--batch 4] [--repeats 10]
                                            [--device cpu|cuda] [--head mean|attention]
                                            [--weights lipforensics_ff.pth] [--compile]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from forensight.models.fused import optimize_for_inference
from forensight.models.lipforensics import LipForensics, lipforensics

TOLERANCE = 1e-4


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                     warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, measured round-robin (``repeats`` rounds)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
        _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def build_model(weights: str | None, head: str, device: torch.device, seed: int = 0) -> LipForensics:
    """A LipForensics model in eval mode: from ``weights`` or randomly initialised (non-trivial
    BatchNorm statistics, so BN folding is exercised)."""
    torch.manual_seed(seed)
    model = lipforensics(weights, pooling=head, freeze="none")  # type: ignore[arg-type]
    if weights is None:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.normal_(1, 0.1)
                    m.bias.normal_(0, 0.1)
    return model.to(device).eval()


def bench_model(args: argparse.Namespace) -> dict[str, float]:
    device = torch.device(args.device)
    model = build_model(args.weights, args.head, device)
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn((args.batch, 1, args.frames, 88, 88), generator=gen).to(device)

    def eager() -> torch.Tensor:
        with torch.no_grad():
            return model.forward_official(x).logits

    t0 = time.perf_counter()
    fast = optimize_for_inference(model)
    build_s = time.perf_counter() - t0

    def optimised() -> torch.Tensor:
        with torch.inference_mode():
            return fast.forward_official(x).logits

    fns: dict[str, Callable[[], object]] = {"(a) eager fp32": eager, "(b) optimised": optimised}
    ref = eager()
    checks = {"(b) optimised": optimised()}
    compile_s = None
    if args.compile:
        compiled = torch.compile(fast, options={"freezing": True})

        def optimised_compiled() -> torch.Tensor:
            with torch.inference_mode():
                return compiled.forward_official(x).logits

        t0 = time.perf_counter()
        checks["(c) optimised + compile"] = optimised_compiled()
        _sync(device)
        compile_s = time.perf_counter() - t0
        fns["(c) optimised + compile"] = optimised_compiled

    print(f"eager logits: {[round(float(v), 4) for v in ref]}")
    with torch.inference_mode():
        feat_ref, feat_fast = model.temporal_features(x), fast.temporal_features(x)
    feat_err = float((feat_fast - feat_ref).abs().max())
    print(f"(b) optimised: max |MS-TCN feature - eager| = {feat_err:.2e} "
          f"(features up to {float(feat_ref.abs().max()):.2f})")
    assert feat_err <= TOLERANCE, f"optimised MS-TCN features differ by {feat_err:.2e}"
    for name, out in checks.items():
        err = float((out.float() - ref.float()).abs().max())  # type: ignore[union-attr]
        print(f"{name}: max |logit - eager| = {err:.2e}")
        assert err <= TOLERANCE, f"{name} differs from eager by {err:.2e} > {TOLERANCE}"

    times = time_interleaved(fns, args.repeats, device)
    per_clip = {name: [1000 * t / args.batch for t in ts] for name, ts in times.items()}
    print(f"\nms per {args.frames}-frame clip (batch {args.batch}, {args.repeats} interleaved rounds):")
    for name, ts in per_clip.items():
        med = statistics.median(ts)
        line = f"  {name:26s} median {med:8.1f}   min {min(ts):8.1f}"
        if device.type == "cuda":
            line += f"   {1000 / med:8.1f} clips/s"
        print(line)
    med_a = statistics.median(per_clip["(a) eager fp32"])
    med_b = statistics.median(per_clip["(b) optimised"])
    print(f"  ratio (b)/(a) = {med_b / med_a:.3f} (median), "
          f"{min(per_clip['(b) optimised']) / min(per_clip['(a) eager fp32']):.3f} (min)"
          f"; optimize_for_inference took {build_s * 1000:.0f} ms")
    if compile_s is not None:
        med_c = statistics.median(per_clip["(c) optimised + compile"])
        print(f"  ratio (c)/(a) = {med_c / med_a:.3f}; first call (compile) took {compile_s:.1f} s")
    if device.type == "cpu":
        verdict = "meets" if med_b <= 120 else "misses"
        print(f"  (b) {verdict} the 120 ms/clip target ({med_b:.1f} ms)")
    return {"eager_ms": med_a, "optimised_ms": med_b}


# ---------------------------------------------------------------------------------------------
# Mouth alignment (measured with the regions module, written separately)
# ---------------------------------------------------------------------------------------------
def bench_mouth_alignment(repeats: int = 200) -> float | None:
    """ms per frame of ``forensight.regions.align_lips`` on a 1280x720 frame, or None if absent."""
    try:
        from forensight.regions import align_lips, mean_face
    except ImportError:
        print("mouth alignment: not available yet (forensight.regions.align_lips)")
        return None
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    # a face about 3x the mean face, centred in the frame, with a little landmark noise
    landmarks = (mean_face() - 128.0) * 3.0 + np.array([640.0, 360.0]) + rng.normal(0, 1.0, (68, 2))
    for _ in range(5):
        align_lips(frame, landmarks)
    start = time.perf_counter()
    for _ in range(repeats):
        crop = align_lips(frame, landmarks)
    ms = 1000 * (time.perf_counter() - start) / repeats
    print(f"mouth alignment (align_lips, 1280x720 -> {crop.shape[0]}x{crop.shape[1]}): {ms:.3f} ms/frame")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    ap.add_argument("--batch", type=int, default=4, help="clips per forward pass")
    ap.add_argument("--frames", type=int, default=25, help="frames per clip")
    ap.add_argument("--repeats", type=int, default=10, help="interleaved timing rounds")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--head", choices=("mean", "attention"), default="mean")
    ap.add_argument("--weights", help="official lipforensics_ff.pth (default: random init)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on top of (b)")
    ap.add_argument("--skip-alignment", action="store_true", help="do not time the mouth alignment")
    ap.add_argument("--json", type=Path, help="results file (default benchmarks/results/lipforensics_speed.json)")
    ap.add_argument("--no-json", action="store_true", help="print only")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from benchjson import Recorder

    rec = Recorder("lipforensics_speed", device=args.device,
                   note=f"batch {args.batch}, {args.threads} threads, {args.frames}-frame clips, head {args.head}, "
                        f"{args.repeats} interleaved rounds")

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {args.device} ({name}), {torch.get_num_threads()} threads "
          f"of {os.cpu_count()} cores, batch {args.batch}, head {args.head}")
    ms = bench_model(args)
    rec.add("lipforensics.fused", f"LipForensics fused inference path, per {args.frames}-frame clip",
            ms["optimised_ms"], "ms/clip", "<= 120 ms",
            f"eager fp32 {ms['eager_ms']:.1f} ms/clip in the same run ({ms['optimised_ms'] / ms['eager_ms']:.2f}x)")
    if not args.skip_alignment:
        align = bench_mouth_alignment()
        if align is not None:
            rec.add("lipforensics.align", "mouth alignment at 1280x720", align, "ms/frame", "<= 2 ms")
    if not args.no_json:
        rec.save(args.json)


if __name__ == "__main__":
    main()

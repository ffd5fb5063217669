"""Cost of spatial evidence maps, and that scoring WITHOUT them is as fast as before (benchmark).

Two ratios, each against a reference measured in the same run, repeats interleaved:

1. **plain scoring vs the scoring path before explanations**: the one scoring path
   (``forensight.scoring.forward_batch``) of this tree with ``explain=False`` against the same
   function from a reference git revision (default: ``e50ab1e``, the commit before spatial maps
   existed), loaded side by side, on the same collated batch. Expected ratio ~1.0 (within noise).
2. **detect --explain vs plain detect, per video**: ``ForensightDetector.predict`` on one video
   file with ``explain=""`` (plain), ``"top"`` (the most-attended frames, ``detect --explain``) and
   ``"all"``; total seconds and the model stage, as ratios to plain.

    python benchmarks/explain_cost.py [--model RUN_DIR_OR_MODEL_PT] [--video FILE] [--repeats 5]

Without ``--model`` a randomly initialised ``region_lite0_attention`` file (112 px, 32 frames,
the demo's setup) is scored; without ``--video`` a generated talking-head video (320x256).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def reference_scoring(rev: str) -> object:
    """``forensight/scoring.py`` as it was at ``rev`` (imports the rest of this tree)."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/forensight/scoring.py"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"cannot read src/forensight/scoring.py at revision {rev!r} with git: {e}") from None
    path = Path(tempfile.mkdtemp(prefix="forensight-ref-")) / "scoring_reference.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("scoring_reference", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["scoring_reference"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def default_model(work: Path) -> Path:
    from forensight.config import PreprocessConfig
    from forensight.modelfile import save_model_file
    from forensight.models.registry import build_model, get_model_config

    mc = get_model_config("region_lite0_attention")
    torch.manual_seed(0)
    model = build_model(mc, pretrained=False)
    pp = PreprocessConfig(size=112, regions=("frame", "full", "eyes", "mouth"))
    return save_model_file(work / "model.pt", model, mc, pp, None, threshold=0.0, val_metrics={})


def default_video(work: Path) -> Path:
    import cv2
    from skimage.data import astronaut

    from forensight.video import write_video

    img = astronaut()
    frames = []
    for i in range(64):
        s = 0.62 + 0.02 * np.sin(i / 7)
        m = np.array([[s, 0, -40 + 6 * np.sin(i / 9)], [0, s, -10 + 4 * np.cos(i / 11)]], np.float32)
        frames.append(cv2.warpAffine(img, m, (320, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    path = work / "face.mp4"
    write_video(path, np.stack(frames), fps=25.0)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="run directory or model.pt (default: random region_lite0_attention)")
    ap.add_argument("--video", type=Path, help="video file (default: a generated 64-frame face video)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference-rev", default="e50ab1e", help="git revision of the reference scoring path")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    from forensight import scoring
    from forensight.datasets.clips import clip_item, collate_clips
    from forensight.detect import load_detector

    work = Path(tempfile.mkdtemp(prefix="forensight-explain-"))
    det = load_detector(a.model or default_model(work), device=a.device)
    video = a.video or default_video(work)
    ref = reference_scoring(a.reference_rev)
    print(f"machine: {platform.machine()} {platform.node()}, {torch.get_num_threads()} torch threads, device "
          f"{a.device}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; model {det.loaded.model_config.name} "
          f"({det.spec.describe()}); video {video.name}")

    # 1. the scoring path, plain, against the reference revision's, same batch
    first = det.predict(video)  # warm-up; gives the crops' shape
    assert first.ok, (first.reason, first.message)
    spec = det.spec
    t = len(first.frames) if spec.clip_len is None else spec.clip_len
    rng = np.random.default_rng(0)
    region = rng.integers(0, 255, (t, spec.size, spec.size, spec.channels), dtype=np.uint8)
    batch = collate_clips([clip_item("v", 1, region, np.arange(t), 0, t)])
    dev = torch.device(a.device)
    model = det.model
    times: dict[str, list[float]] = {"reference": [], "plain": [], "explain": []}
    for _ in range(a.repeats):
        for name, record in times.items():
            t0 = time.perf_counter()
            if name == "reference":
                ref.forward_batch(model, batch, dev)
            else:
                scoring.forward_batch(model, batch, dev, explain=name == "explain")
            record.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"scoring path, one {t}-frame clip, median of {a.repeats}: reference ({a.reference_rev}) "
          f"{med['reference'] * 1e3:.1f} ms, plain {med['plain'] * 1e3:.1f} ms, explain {med['explain'] * 1e3:.1f} ms")
    print(f"  plain / reference = {med['plain'] / med['reference']:.3f}  (1.0 = as fast as before; "
          f"spread of the reference: {min(times['reference']) * 1e3:.1f}-{max(times['reference']) * 1e3:.1f} ms)")
    print(f"  explain / plain   = {med['explain'] / med['plain']:.2f}")

    # 2. detect per video: plain vs --explain (top) vs --explain all
    modes = {"plain": "", "explain top": "top", "explain all": "all"}
    tot: dict[str, list[float]] = {k: [] for k in modes}
    mdl: dict[str, list[float]] = {k: [] for k in modes}
    for _ in range(a.repeats):
        for name, mode in modes.items():
            r = det.predict(video, explain=mode)
            assert r.ok and (bool(r.evidence_maps) == bool(mode)), (r.reason, r.message)
            tot[name].append(r.timings_s["total"])
            mdl[name].append(r.timings_s["model"])
    mt = {k: statistics.median(v) for k, v in tot.items()}
    mm = {k: statistics.median(v) for k, v in mdl.items()}
    print(f"detect per video, median of {a.repeats}:")
    for name in modes:
        print(f"  {name:<12} total {mt[name]:.3f} s ({mt[name] / mt['plain']:.2f}x plain)   "
              f"model stage {mm[name]:.3f} s ({mm[name] / mm['plain']:.2f}x plain)")


if __name__ == "__main__":
    main()

"""End-to-end latency of `forensight detect` on a 10 s 1280x720 30 fps video (benchmark).

Scores one generated talking-head video with (a) the LipForensics attention model (every frame,
300 frames → 12 clips of 25) and (b) the region model region_b1_attention (32 linear frames, four
regions at 224 px; detect cuts only the model's region), and prints seconds per stage and the
total as a ratio to the video's duration (targets on 2 CPU cores: <= 0.40x for LipForensics,
<= 0.15x for the region model), and how many people were scored (the video has one; libfd's
false "face" on the flag is rejected by ``faces.faceness``). Weights are random/deterministic:
speed does not depend on their values. Writes ``benchmarks/results/detect_latency.json``
(``--json``; ``benchmarks/report.py`` makes the performance table from it).

    python benchmarks/detect_latency.py [--device cuda] [--repeats 2] [--presets region_b1_attention]
                                        [--json PATH | --no-json]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchjson import Recorder
from preprocess import make_video

from forensight.config import PREPROCESS_PRESETS, PreprocessConfig
from forensight.detect import load_detector
from forensight.modelfile import save_model_file
from forensight.models.registry import build_model, get_model_config
from forensight.video import probe


def model_file(path: Path, preset: str, preprocess: PreprocessConfig) -> Path:
    mc = get_model_config(preset)
    torch.manual_seed(0)
    model = build_model(mc, pretrained=False)
    return save_model_file(path, model, mc, preprocess, None, threshold=0.0, val_metrics={})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--presets", default="lipforensics_attention,region_b1_attention",
                    help="comma-separated model presets to time (default both)")
    ap.add_argument("--json", type=Path, help="results file (default benchmarks/results/detect_latency.json)")
    ap.add_argument("--no-json", action="store_true", help="print only")
    a = ap.parse_args()
    rec = Recorder("detect_latency", device=a.device,
                   note="10 s 1280x720 30 fps H.264 talking head (benchmarks/preprocess.py make_video), best of "
                        f"{a.repeats} after a warm-up")
    work = Path(tempfile.mkdtemp(prefix="forensight-detect-"))
    video = work / "talking_head_720p.mp4"
    make_video(video, seed=0)
    dur = probe(video).duration_s
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {a.device}; "
          f"video {video.name}: {dur:.1f} s 1280x720 30 fps")
    setups = [("lipforensics_attention", PREPROCESS_PRESETS["lips"], 0.40),
              ("region_b1_attention", PreprocessConfig(), 0.15)]
    wanted = [p.strip() for p in a.presets.split(",") if p.strip()]
    unknown = sorted(set(wanted) - {p for p, _, _ in setups})
    if unknown:
        raise SystemExit(f"--presets: unknown {unknown}; choose from {[p for p, _, _ in setups]}")
    for preset, pp, target in setups:
        if preset not in wanted:
            continue
        det = load_detector(model_file(work / f"{preset}.pt", preset, pp), device=a.device)
        det.predict(video)  # warm-up (first call builds detectors, allocators)
        best = None
        for _ in range(a.repeats):
            r = det.predict(video)
            assert r.status == "ok", (r.reason, r.message)
            if best is None or r.timings_s["total"] < best.timings_s["total"]:
                best = r
        t = best.timings_s
        stages = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total")
        print(f"{preset:24s}: {t['total']:6.2f} s for {dur:.1f} s of video = {t['total'] / dur:.2f}x real time "
              f"(target <= {target:.2f}x); {len(best.clips)} clip(s), {len(best.frames)} frames scored, "
              f"{len(best.people)} person(s) scored")
        print(f"{'':24s}  stages (s): {stages}")
        short = preset.split("_")[0] if preset.startswith("lip") else "region_b1"
        rec.add(f"detect.{short}", f"detect, {preset} ({len(best.frames)} frames, {len(best.clips)} clip(s))",
                t["total"] / dur, "x real time", f"<= {target:.2f}x",
                f"{t['total']:.2f} s for {dur:.0f} s; {len(best.people)} person(s) scored; stages (s): {stages}")
    if not a.no_json:
        rec.save(a.json)


if __name__ == "__main__":
    main()

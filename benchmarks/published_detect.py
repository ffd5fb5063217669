"""Time a fresh ``forensight import`` + ``forensight detect`` with an official-format LipForensics file.

What a new user does with the published checkpoint, each step a fresh process (so imports of
torch etc. count, as they do for the user):

  1. ``forensight import lipforensics_ff.pth --out DIR`` (check keys / shapes, SHA-256, write the
     model folder: model.safetensors + config.json + README.md);
  2. ``forensight detect VIDEO --model DIR`` (lips preprocessing of every frame, 25-frame clips,
     the real-size 36M-parameter model).

The file holds the real-size official state_dict filled by the deterministic filler of
``tests/lipforensics_fill.py`` (the authors' weights are not downloadable here; the cost does not
depend on the values). The video is a generated talking-face clip (scikit-image's astronaut,
drifting), ``--seconds`` long at 25 fps and ``--size``.

Printed: wall and CPU (user + sys of the child processes) seconds of each step, the total, and
two ratios measured in the same run: total against the 60 s target, and total against the
reference ``forensight detect --model lipforensics_ff.pth`` (the same detect importing the file in
memory instead of reading the folder). The machine's load average is printed too: on a shared
machine wall time grows with other processes' load, CPU time much less.

    python benchmarks/published_detect.py [--seconds 10] [--size 640x480] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 60.0
HERE = Path(__file__).resolve().parent


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_step(argv: list[str]) -> tuple[float, float, str]:
    """Run ``forensight`` with ``argv`` in a fresh process: (wall s, CPU s, stdout)."""
    c0, t0 = _cpu_children(), time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "forensight.cli", *argv], capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    if p.returncode != 0:
        raise SystemExit(f"forensight {' '.join(argv)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return wall, cpu, p.stdout


def make_inputs(work: Path, seconds: float, size: tuple[int, int]) -> tuple[Path, Path]:
    import torch

    sys.path.insert(0, str(HERE.parent / "tests"))
    sys.path.insert(0, str(HERE))
    from lipforensics_fill import fill_state_dict
    from serve_load import make_face_video

    from forensight.models.lipforensics import LipForensics

    ckpt = work / "lipforensics_ff.pth"
    model = LipForensics(pooling="mean")
    torch.save({"model": fill_state_dict({k: v.shape for k, v in model.state_dict().items()})}, ckpt)
    video = make_face_video(work / "talk.mp4", num_frames=round(seconds * 25), size=size)
    return ckpt, video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="video length in seconds at 25 fps (default 10)")
    ap.add_argument("--size", default="640x480", help="video size WxH (default 640x480)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    work = a.work or Path(tempfile.mkdtemp(prefix="published_detect_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ckpt, video = make_inputs(work, a.seconds, (w, h))
        folder = work / "models" / "lipforensics_ff"
        shutil.rmtree(folder, ignore_errors=True)
        load0 = os.getloadavg()
        wi, ci, _ = run_step(["import", str(ckpt), "--out", str(folder)])
        wd, cd, out = run_step(["detect", str(video), "--model", str(folder), "-q"])
        wr, cr, _ = run_step(["detect", str(video), "--model", str(ckpt), "-q"])
        load1 = os.getloadavg()
        total_w, total_c = wi + wd, ci + cd
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
              f"default; load average before {load0[0]:.1f}, after {load1[0]:.1f}")
        print(f"video: {a.seconds:g} s, {w}x{h}, 25 fps ({round(a.seconds * 25)} frames); file: "
              f"{ckpt.stat().st_size / 2**20:.0f} MiB official-format state_dict")
        print(f"import             wall {wi:6.1f} s   cpu {ci:6.1f} s")
        print(f"detect (folder)    wall {wd:6.1f} s   cpu {cd:6.1f} s")
        print(f"import + detect    wall {total_w:6.1f} s   cpu {total_c:6.1f} s   "
              f"ratio to the {TARGET_S:.0f} s target: wall {total_w / TARGET_S:.2f}, cpu {total_c / TARGET_S:.2f}")
        print(f"reference: detect --model lipforensics_ff.pth (in-memory import)   wall {wr:6.1f} s   cpu {cr:6.1f} s"
              f"   ratio import+detect / reference: wall {total_w / wr:.2f}, cpu {total_c / cr:.2f}")
        print(out.strip().splitlines()[-2] if out.strip() else "")
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Memory and decode count of preprocessing one long 1080p video (benchmark, not a test).

Writes a 1920x1080, 25 fps, ``--seconds`` (default 60) H.264 video of a face with slow motion
(``--cycle`` distinct frames rendered once and played back and forth, encoded with libx264
ultrafast), then preprocesses it with the ``lips`` preset (every frame, aligned 96x96 mouths) in
a FRESH process, and prints that process's peak resident memory (``ru_maxrss``), how often each
frame was decoded (counted at the packet level), the frame store's split (frames held in RAM /
spilled to the temporary file) and the seconds per stage. Targets: peak RSS under 1.5 GB and
every frame decoded once (the index also decodes frame 0 once, to read the rotation metadata).

    python benchmarks/long_video.py [--seconds 60] [--buffer-mb 768] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def make_video(path: Path, seconds: float, fps: int = 25, size: tuple[int, int] = (1920, 1080),
               cycle: int = 50) -> int:
    """Encode the video (libx264 ultrafast, crf 23); returns the number of frames."""
    import av
    import cv2
    from skimage.data import astronaut

    img = astronaut()
    w, h = size
    base = []
    for i in range(cycle):  # slow zoom / pan around the face, rendered once
        s = 3.2 + 0.1 * np.sin(i / 8)
        tx = w / 2 - s * 190 + 40 * np.sin(i / 11)
        ty = h / 2 - s * 120 + 20 * np.cos(i / 13)
        m = np.array([[s, 0, tx], [0, s, ty]], np.float32)
        base.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    n = int(seconds * fps)
    order = [i % (2 * cycle) for i in range(n)]
    order = [k if k < cycle else 2 * cycle - 1 - k for k in order]  # back and forth: no jumps
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    c = av.open(str(tmp), "w")
    st = c.add_stream("libx264", rate=fps)
    st.width, st.height, st.pix_fmt = w, h, "yuv420p"
    st.options = {"preset": "ultrafast", "crf": "23"}
    for k in order:
        for pk in st.encode(av.VideoFrame.from_ndarray(base[k], format="rgb24")):
            c.mux(pk)
    for pk in st.encode():
        c.mux(pk)
    c.close()
    tmp.replace(path)
    return n


def measure(path: Path, buffer_mb: float) -> dict:
    """Preprocess ``path`` with the lips preset in this process; the figures as a dict."""
    import av

    from forensight.config import PREPROCESS_PRESETS
    from forensight.preprocess import process_video
    from forensight.records import VideoRecord
    from forensight.video import index_video

    decoded: list[int] = []
    orig = av.container.InputContainer.demux

    class Counting:
        def __init__(self, packet: av.Packet) -> None:
            self._p = packet

        def __getattr__(self, name: str):
            return getattr(self._p, name)

        def decode(self):
            frames = self._p.decode()
            decoded.extend(int(f.pts) for f in frames)
            return frames

    def demux(self, *a, **k):
        for packet in orig(self, *a, **k):
            yield Counting(packet)

    av.container.InputContainer.demux = demux
    rec = VideoRecord(path=path, label=0, split="test", dataset="bench", method="original", compression="raw",
                      name="long")
    t0 = time.perf_counter()
    pv = process_video(rec, PREPROCESS_PRESETS["lips"], buffer_mb=buffer_mb)
    seconds = time.perf_counter() - t0
    av.container.InputContainer.demux = orig
    idx = index_video(path)
    counts = Counter(decoded)
    per_frame = [counts.get(int(p), 0) for p in idx.pts]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"frames": int(idx.info.num_frames), "size": f"{idx.info.width}x{idx.info.height}",
            "processed": int(pv.frames_idx.size), "seconds": round(seconds, 1),
            "peak_rss_mb": round(rss_mb, 1), "decodes_total": len(decoded),
            "decodes_max_per_frame_after_0": max(per_frame[1:]), "decodes_frame_0": per_frame[0],
            "frames_never_decoded": sum(1 for n in per_frame if n == 0), "frame_store": pv.frame_store,
            "coverage": round(pv.track.coverage, 3),
            "stages_s": {k: round(v, 1) for k, v in pv.timings.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--buffer-mb", type=float, default=768.0)
    ap.add_argument("--cycle", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="write / reuse the video in this folder")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the fresh process
    a = ap.parse_args()
    if a.measure is not None:
        print(json.dumps(measure(a.measure, a.buffer_mb)))
        return
    folder = a.keep or Path(tempfile.mkdtemp(prefix="forensight-long-"))
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"long_1080p_{int(a.seconds)}s.mp4"
    if not video.exists():
        t0 = time.perf_counter()
        n = make_video(video, a.seconds, cycle=a.cycle)
        print(f"wrote {video} ({n} frames, {video.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f} s")
    out = subprocess.run([sys.executable, __file__, "--measure", str(video), "--buffer-mb", str(a.buffer_mb)],
                         check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(res, indent=1))
    ok_rss = res["peak_rss_mb"] < 1536
    ok_dec = res["decodes_max_per_frame_after_0"] == 1 and res["frames_never_decoded"] == 0
    print(f"peak RSS {res['peak_rss_mb']:.0f} MiB (target < 1536: {'ok' if ok_rss else 'MISSED'}); "
          f"each frame decoded once: {'ok' if ok_dec else 'NO'} (frame 0: {res['decodes_frame_0']}x, "
          f"once by the index for its rotation); {res['seconds']:.1f} s for {res['processed']} frames")
    if not a.keep:
        video.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()

"""Load test of ``forensight serve``: N concurrent uploads against a real server on 127.0.0.1.

Starts ``forensight serve`` as a subprocess (its own data folder, a free port, ``--workers``,
``--queue-size``), uploads ``--jobs`` videos from that many client threads at once (an upload
refused with HTTP 429 is retried after a short pause: the queue bound is part of the test),
follows every job to its end, and checks: every upload got exactly one job, every job finished
``done`` with its result, no job id was lost or duplicated, and the number of jobs queued or
running (sampled every 50 ms from ``/api/health``) never exceeded the bound. It prints
jobs/minute and the p50 / p95 latency from the start of an upload to the moment its result
was seen, in seconds. It stops by itself: ``--timeout`` seconds at most.

Usage (after ``forensight demo``)::

    python benchmarks/serve_load.py --model forensight_demo/study/runs/mouth_attention_s0 \\
        --videos forensight_demo/data --jobs 20 --workers 2 --queue-size 8
    python benchmarks/serve_load.py --tiny     # a random tiny model and generated face videos

The helpers (:class:`ServerProcess`, :func:`run_load`, :func:`make_tiny_model`,
:func:`make_face_video`) are also used by ``tests/test_serve_load.py`` and the fault test.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TERMINAL = ("done", "failed")


def wait_for(cond: Callable[[], Any], timeout_s: float = 90.0, what: str = "condition", poll_s: float = 0.05) -> Any:
    """Poll ``cond()`` until it returns something truthy (returned); AssertionError naming ``what``
    after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``forensight serve`` in a subprocess on 127.0.0.1 (stdout + stderr to ``log``).

    Args:
        data_dir: the server's ``--data-dir``.
        models: ``--model`` arguments.
        workers, queue_size: as on the command line.
        port: None = a free port.
        extra: more command-line arguments.
    """

    def __init__(self, data_dir: Path, models: Sequence[str | Path], workers: int = 1, queue_size: int = 50,
                 port: int | None = None, extra: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.data_dir.with_name(self.data_dir.name + f"-server-{self.port}.log")
        self.argv = [sys.executable, "-m", "forensight.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                     "--data-dir", str(self.data_dir), "--workers", str(workers), "--queue-size", str(queue_size),
                     *[a for m in models for a in ("--model", str(m))], *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 120.0) -> ServerProcess:
        """Start the server and wait until every worker is ready; RuntimeError with the log if not."""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode}:\n{self.log_text()}")
            try:
                h = httpx.get(f"{self.url}/api/health", timeout=2.0).json()
                if h["workers"]["ready"] >= h["workers"]["configured"]:
                    return self
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server was not ready within {ready_timeout_s:.0f} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the server process (no clean-up of any kind)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Ctrl-C (SIGINT) the server, then SIGKILL after ``timeout_s`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:  # noqa: PYI034 - start() returns this instance
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- the load ---------------------------------------------------------------------------------

@dataclass
class LoadReport:
    """What :func:`run_load` measured (times in seconds)."""

    submitted: int
    job_ids: list[str]
    statuses: dict[str, str]
    results_ok: int
    latencies_s: list[float]
    wall_s: float
    rejected_429: int
    max_active: int
    bound: int
    listed_ids: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def jobs_per_min(self) -> float:
        return 60.0 * len(self.latencies_s) / self.wall_s if self.wall_s > 0 else 0.0

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies_s)
        if not xs:
            return float("nan")
        k = min(len(xs) - 1, max(0, round(q / 100.0 * (len(xs) - 1))))
        return xs[k]

    def problems(self) -> list[str]:
        """Every violated expectation (empty when the run is clean)."""
        out = list(self.errors)
        if len(self.job_ids) != self.submitted:
            out.append(f"{self.submitted} uploads but {len(self.job_ids)} job ids")
        if len(set(self.job_ids)) != len(self.job_ids):
            out.append("a job id was returned twice")
        not_done = {k: v for k, v in self.statuses.items() if v != "done"}
        if not_done:
            out.append(f"jobs not done: {not_done}")
        if self.results_ok != self.submitted:
            out.append(f"{self.results_ok} of {self.submitted} jobs have a result")
        if sorted(self.listed_ids) != sorted(self.job_ids):
            out.append(f"GET /api/jobs lists {len(self.listed_ids)} jobs, the clients got {len(self.job_ids)}")
        if self.max_active > self.bound:
            out.append(f"{self.max_active} jobs active at once, above the bound {self.bound}")
        again = {k: v for k, v in self.attempts.items() if v != 1}
        if again:
            out.append(f"jobs scored more than once: {again}")
        return out

    def summary(self) -> str:
        return (f"{len(self.latencies_s)}/{self.submitted} jobs done in {self.wall_s:.1f} s: "
                f"{self.jobs_per_min:.1f} jobs/min; latency upload->result p50 {self.percentile(50):.2f} s, "
                f"p95 {self.percentile(95):.2f} s, max {max(self.latencies_s, default=float('nan')):.2f} s; "
                f"429 answers {self.rejected_429}; most jobs active at once {self.max_active} (bound {self.bound})")


def run_load(base_url: str, videos: Sequence[Path], n: int, timeout_s: float = 300.0, retry_s: float = 0.5,
             poll_s: float = 0.25, headers: dict[str, str] | None = None) -> LoadReport:
    """Upload ``n`` videos (cycling through ``videos``) at once, one client thread each, and follow
    every job to its end (see the module docstring). Stops after ``timeout_s`` seconds."""
    headers = dict(headers or {})
    deadline = time.monotonic() + timeout_s
    bound = int(httpx.get(f"{base_url}/api/health", headers=headers, timeout=10).json()["queue"]["bound"])
    stop = threading.Event()
    max_active = [0]
    rejected = [0]
    lock = threading.Lock()
    errors: list[str] = []

    def sample() -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as c:
            while not stop.is_set():
                try:
                    active = int(c.get("/api/health").json()["queue"]["active"])
                    with lock:
                        max_active[0] = max(max_active[0], active)
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                stop.wait(0.05)

    def one(k: int) -> tuple[str | None, float | None, str]:
        path = Path(videos[k % len(videos)])
        data = path.read_bytes()
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as c:
            t0 = time.monotonic()
            job_id = None
            while time.monotonic() < deadline:
                r = c.post("/api/jobs", files={"file": (f"load-{k}-{path.name}", data, "video/mp4")})
                if r.status_code == 429:
                    with lock:
                        rejected[0] += 1
                    time.sleep(retry_s)
                    continue
                if r.status_code != 202:
                    return None, None, f"upload {k}: HTTP {r.status_code} {r.text[:200]}"
                job_id = r.json()["id"]
                break
            if job_id is None:
                return None, None, f"upload {k}: still refused at the time limit"
            while time.monotonic() < deadline:
                j = c.get(f"/api/jobs/{job_id}", params={"result": "false"}).json()
                if j["status"] in TERMINAL:
                    return job_id, time.monotonic() - t0, j["status"]
                time.sleep(poll_s)
            return job_id, None, "timeout"

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as ex:
        outcomes = list(ex.map(one, range(n)))
    wall = time.monotonic() - t_start
    stop.set()
    sampler.join(timeout=5)

    ids = [o[0] for o in outcomes if o[0] is not None]
    statuses = {o[0]: o[2] for o in outcomes if o[0] is not None}
    errors += [o[2] for o in outcomes if o[0] is None]
    latencies = [o[1] for o in outcomes if o[1] is not None and o[2] == "done"]
    from forensight.result import SCHEMA

    results_ok = 0
    attempts: dict[str, int] = {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
        for job_id in ids:
            j = c.get(f"/api/jobs/{job_id}").json()
            attempts[job_id] = int(j["attempts"])
            res = j.get("result") or {}
            results_ok += bool(j["status"] == "done" and res.get("schema") == SCHEMA)
        listed = [j["id"] for j in c.get("/api/jobs", params={"limit": 500}).json()["jobs"]]
    return LoadReport(submitted=n, job_ids=ids, statuses=statuses, results_ok=results_ok, latencies_s=latencies,
                      wall_s=wall, rejected_429=rejected[0], max_active=max_active[0], bound=bound,
                      listed_ids=listed, attempts=attempts, errors=errors)


# ---- small inputs -----------------------------------------------------------------------------

def make_tiny_model(path: Path, **preprocess: Any) -> Path:
    """A randomly initialised ``region_tiny_attention`` model file (64 px face crops; 8 linearly
    spaced frames unless ``preprocess`` overrides :class:`forensight.config.PreprocessConfig`)."""
    import torch

    from forensight.config import PreprocessConfig
    from forensight.modelfile import save_model_file
    from forensight.models.registry import build_model, get_model_config

    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention")
    pp = PreprocessConfig(**{"num_frames": 8, "regions": ("full",), "size": 64, **preprocess})
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_model_file(path, build_model(mc, pretrained=False), mc, pp, train_cfg=None, threshold=0.0,
                           val_metrics={"auc": 0.75})


def make_face_video(path: Path, num_frames: int = 40, size: tuple[int, int] = (320, 256), fps: float = 25.0) -> Path:
    """An H.264 video of a real face (scikit-image's astronaut) drifting slowly: ``num_frames`` frames."""
    import cv2
    import numpy as np
    from skimage.data import astronaut

    from forensight.video import write_video

    img = astronaut()
    w, h = size
    frames = []
    for i in range(num_frames):
        s = 0.62 + 0.02 * np.sin(i / 7)
        m = np.array([[s, 0, -40 + 6 * np.sin(i / 9)], [0, s, -10 + 4 * np.cos(i / 11)]], np.float32)
        frames.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps=fps)
    return path


# ---- command line -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="forensight_demo/study/runs/mouth_attention_s0")
    p.add_argument("--videos", type=Path, default=Path("forensight_demo/data"),
                   help="a folder searched for .mp4 files, or one video")
    p.add_argument("--tiny", action="store_true", help="a random tiny model and generated face videos instead")
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--queue-size", type=int, default=8)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole load")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        if a.tiny:
            model = str(make_tiny_model(Path(tmp) / "tiny" / "model.pt"))
            videos = [make_face_video(Path(tmp) / f"face{k}.mp4", 40 + 4 * k) for k in range(4)]
        else:
            model = a.model
            videos = [a.videos] if a.videos.is_file() else sorted(a.videos.rglob("*.mp4"))[: a.jobs]
        if not videos:
            print(f"no videos under {a.videos}", file=sys.stderr)
            return 2
        print(f"server: {a.workers} worker(s), queue bound {a.queue_size}, model {model}; {a.jobs} uploads of "
              f"{len(videos)} distinct video(s), {os.cpu_count()} CPU core(s)")
        t0 = time.monotonic()
        with ServerProcess(Path(tmp) / "data", [model], workers=a.workers, queue_size=a.queue_size) as srv:
            print(f"server ready in {time.monotonic() - t0:.1f} s at {srv.url}")
            rep = run_load(srv.url, videos, a.jobs, timeout_s=a.timeout)
        print(rep.summary())
        bad = rep.problems()
        for b in bad:
            print(f"PROBLEM: {b}", file=sys.stderr)
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

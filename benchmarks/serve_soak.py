"""Soak test of ``forensight serve``: hundreds of jobs, mixed uploads, workers killed mid-job.

Starts ``forensight serve`` on 127.0.0.1 only (a subprocess with its own data folder and a free port,
``--retention-days 0`` so the server's retention sweep, once a minute, deletes the uploads of
finished jobs) and keeps ``--clients`` client threads uploading until ``--jobs`` jobs
were created. The uploads are a fixed mix (seeded): valid face videos, videos the server accepts
but cannot score (no face, too short), and files it must refuse at the door (random bytes, an
empty file, a PNG renamed ``.mp4``, a Matroska file whose codec cannot be opened). Meanwhile a
killer thread SIGKILLs a busy worker process every ``--kill-every`` seconds on average
(exponential gaps), as the out-of-memory killer would.

Reports jobs/minute, p50 / p95 latency (upload start → terminal status seen), resident memory
(RSS) and open file descriptors of the server and of each worker at the start (after warm-up)
and at the end, and the data folder's size after retention. Checks: every created job ends
exactly once (terminal status, a result iff ``done``, ``attempts`` <= 1 + the kills that hit it,
listed once), nothing is left queued or running or half-received, every refused upload got the
reason its file deserves, and the server's RSS grew by less than ``--max-growth`` (10 %).

Bounded: ``--timeout`` seconds (default 1800) and ``--jobs`` (default 300). Exit status 1 if a
check failed. Uses :mod:`serve_load`'s helpers (server process, waiting, tiny model, face video).

Usage::

    python benchmarks/serve_soak.py --jobs 300 --workers 2 --out benchmarks/results/soak/serve_soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import TERMINAL, ServerProcess, make_face_video, make_tiny_model, wait_for

#: What each kind of upload must end with: ("job", None) = a job that is scored ("done");
#: ("job", reason) = a job that fails with that reason; ("refused", reason) = HTTP 415 with that reason.
EXPECT: dict[str, tuple[str, str | None]] = {
    "face": ("job", None), "noface": ("job", "no_face"), "short": ("job", "too_short"),
    "random": ("refused", "unreadable"), "empty": ("refused", "empty_file"), "png": ("refused", "not_a_video"),
    "badcodec": ("refused", "unreadable"),
}
#: Share of each kind in the upload mix.
MIX = {"face": 0.6, "noface": 0.1, "short": 0.1, "random": 0.05, "empty": 0.05, "png": 0.05, "badcodec": 0.05}


def make_inputs(folder: Path) -> dict[str, Path]:
    """One file of each kind of :data:`EXPECT` in ``folder``."""
    import cv2
    import numpy as np

    from forensight.video import write_video

    folder.mkdir(parents=True, exist_ok=True)
    out = {"face": make_face_video(folder / "face.mp4", num_frames=24, size=(160, 128)),
           "short": make_face_video(folder / "short.mp4", num_frames=3, size=(160, 128))}
    yy, xx = np.mgrid[0:128, 0:160]
    write_video(folder / "noface.mp4", [np.stack([(xx + i) % 256, yy % 256, np.full_like(xx, 90)], -1)
                                        .astype(np.uint8) for i in range(24)], fps=25)
    out["noface"] = folder / "noface.mp4"
    out["random"] = folder / "random.mp4"
    out["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out["empty"] = folder / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["png"] = folder / "image.mp4"
    out["png"].write_bytes(cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())
    mkv = folder / "ok.mkv"
    write_video(mkv, [np.full((64, 64, 3), 100, np.uint8)] * 8, fps=25)
    data = mkv.read_bytes()
    out["badcodec"] = folder / "badcodec.mkv"
    out["badcodec"].write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQQQQQQQQQ", 1))
    return out


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (``VmRSS``), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@dataclass
class Outcome:
    kind: str
    http: int
    job_id: str | None = None
    status: str = ""
    reason: str = ""
    latency_s: float | None = None
    refused_reason: str = ""


@dataclass
class Soak:
    """Shared state of one soak run."""

    url: str
    inputs: dict[str, Path]
    target_jobs: int
    deadline: float
    rng: random.Random
    mix: dict[str, float] = field(default_factory=lambda: dict(MIX))
    outcomes: list[Outcome] = field(default_factory=list)
    created: int = 0
    rejected_429: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def next_kind(self) -> str | None:
        with self.lock:
            if self.created >= self.target_jobs or time.monotonic() > self.deadline:
                return None
            return self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]

    def client(self, k: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as c:
            while (kind := self.next_kind()) is not None:
                data = self.inputs[kind].read_bytes()
                t0 = time.monotonic()
                while True:
                    r = c.post("/api/jobs", files={"file": (f"soak-{k}-{self.inputs[kind].name}", data, "video/mp4")})
                    if r.status_code != 429 or time.monotonic() > self.deadline:
                        break
                    with self.lock:
                        self.rejected_429 += 1
                    time.sleep(0.3)
                out = Outcome(kind=kind, http=r.status_code)
                if r.status_code != 202:
                    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                    out.refused_reason = (body.get("error") or {}).get("reason", "")
                    with self.lock:
                        self.outcomes.append(out)
                    continue
                with self.lock:
                    self.created += 1
                out.job_id = r.json()["id"]
                while time.monotonic() < self.deadline + 120:
                    j = c.get(f"/api/jobs/{out.job_id}", params={"result": "false"}).json()
                    if j["status"] in TERMINAL:
                        out.status, out.reason = j["status"], j.get("reason") or ""
                        out.latency_s = time.monotonic() - t0
                        break
                    time.sleep(0.2)
                with self.lock:
                    self.outcomes.append(out)

    def killer(self, store: Any, mean_gap_s: float) -> None:
        """SIGKILL a busy worker every ``mean_gap_s`` seconds on average (exponential gaps)."""
        while not self.stop.wait(self.rng.expovariate(1.0 / mean_gap_s)):
            busy = [w for w in store.workers() if w["state"] == "busy" and rss_bytes(int(w["pid"])) is not None]
            if not busy:
                continue
            w = self.rng.choice(busy)
            try:
                os.kill(int(w["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                continue
            with self.lock:
                self.kills[str(w["message"])] += 1


def outcome(rec: dict[str, Any]) -> str:
    """A job record's end as ``done:ok``, ``done:<reason>`` (scored as failed) or ``failed:<reason>``."""
    if rec["status"] == "done":
        summary = rec.get("summary") or {}
        return "done:ok" if summary.get("status") == "ok" else f"done:{summary.get('reason')}"
    return f"{rec['status']}:{(rec.get('error') or {}).get('reason')}"


def resources(srv: ServerProcess, store: Any) -> dict[str, Any]:
    """RSS (MiB) and open fds of the server and of each live worker now."""
    assert srv.proc is not None
    workers = [int(w["pid"]) for w in store.workers() if rss_bytes(int(w["pid"])) is not None]
    mib = 2**20
    return {"server_rss_mib": round((rss_bytes(srv.proc.pid) or 0) / mib, 1), "server_fds": open_fds(srv.proc.pid),
            "workers": [{"pid": p, "rss_mib": round((rss_bytes(p) or 0) / mib, 1), "fds": open_fds(p)}
                        for p in workers]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=300, help="jobs to create (refused uploads do not count)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--clients", type=int, default=6, help="client threads uploading at once")
    p.add_argument("--queue-size", type=int, default=8)
    p.add_argument("--kill-every", type=float, default=20.0, help="mean seconds between worker kills (0 = none)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole soak")
    p.add_argument("--max-growth", type=float, default=0.10, help="largest allowed server RSS growth")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds the server may take to start")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    a = p.parse_args(argv)
    from forensight.serve.store import JobStore

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="serve-soak-") as tmp:
        model = make_tiny_model(Path(tmp) / "tiny" / "model.pt")
        inputs = make_inputs(Path(tmp) / "inputs")
        data = Path(tmp) / "data"
        srv = ServerProcess(data, [model], workers=a.workers, queue_size=a.queue_size,
                            extra=["--retention-days", "0"]).start(ready_timeout_s=a.ready_timeout)
        try:
            store = JobStore(data / "forensight-serve.sqlite3")
            soak = Soak(url=srv.url, inputs=inputs, target_jobs=a.jobs, deadline=time.monotonic() + a.timeout,
                        rng=random.Random(a.seed))
            # warm-up: a few jobs through every worker before the "start" figures
            warm = Soak(url=srv.url, inputs=inputs, target_jobs=2 * a.workers, deadline=time.monotonic() + 300,
                        rng=random.Random(a.seed), mix={"face": 1.0})
            warm_threads = [threading.Thread(target=warm.client, args=(k,)) for k in range(a.workers)]
            for t in warm_threads:
                t.start()
            for t in warm_threads:
                t.join()
            start = resources(srv, store)
            t0 = time.monotonic()
            killer = threading.Thread(target=soak.killer, args=(store, a.kill_every), daemon=True)
            if a.kill_every > 0:
                killer.start()
            clients = [threading.Thread(target=soak.client, args=(k,)) for k in range(a.clients)]
            for t in clients:
                t.start()
            for t in clients:
                t.join()
            wall = time.monotonic() - t0
            soak.stop.set()
            wait_for(lambda: store.active_count() == 0, 120, "the queue to empty")
            wait_for(lambda: len(resources(srv, store)["workers"]) == a.workers, 60, "every worker to be up")
            time.sleep(1.0)
            end = resources(srv, store)
            jobs = [o for o in soak.outcomes if o.job_id] + [o for o in warm.outcomes if o.job_id]
            # retention (--retention-days 0): the server's minutely sweep deletes the finished uploads
            wait_for(lambda: not any((data / "jobs" / o.job_id / "video").exists() for o in jobs), 150,
                     "retention to delete the finished uploads", poll_s=1.0)
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                listed = [j["id"] for j in c.get("/api/jobs", params={"limit": 500}).json()["jobs"]]
                records = {o.job_id: c.get(f"/api/jobs/{o.job_id}", params={"result": "false"}).json() for o in jobs}
            data_mib = dir_bytes(data) / 2**20
            incoming = list((data / "incoming").iterdir())
        finally:
            srv.stop()

        # ---- checks ----
        soak_jobs = [o for o in soak.outcomes if o.job_id]
        if len(soak_jobs) < a.jobs:
            problems.append(f"only {len(soak_jobs)} of {a.jobs} jobs were created before the time limit")
        if sorted(listed) != sorted(o.job_id for o in jobs):
            problems.append(f"GET /api/jobs lists {len(listed)} jobs, the clients created {len(jobs)}")
        if incoming:
            problems.append(f"{len(incoming)} half-received upload(s) left in incoming/")
        for o in soak.outcomes:
            want_kind, want_reason = EXPECT[o.kind]
            if want_kind == "refused":
                if (o.http, o.refused_reason) != (415, want_reason):
                    problems.append(f"{o.kind}: HTTP {o.http} {o.refused_reason!r}, expected 415 {want_reason!r}")
                continue
            rec = records[o.job_id]
            kills = soak.kills.get(o.job_id, 0)
            got = outcome(rec)
            want = f"done:{want_reason or 'ok'}"
            if rec["status"] not in TERMINAL or o.status != rec["status"]:
                problems.append(f"job {o.job_id} ({o.kind}) was seen {o.status!r}, is now {rec['status']!r}")
            if rec["attempts"] > 1 + kills:
                problems.append(f"job {o.job_id} was scored {rec['attempts']} times but killed {kills} times")
            if (data / "jobs" / o.job_id / "result.json").exists() != (rec["status"] == "done"):
                problems.append(f"job {o.job_id} is {rec['status']} but its result file says otherwise")
            if got != want and not (kills and got == "failed:worker_crashed"):
                problems.append(f"job {o.job_id} ({o.kind}, killed {kills}x) ended {got}, expected {want}")
        growth = end["server_rss_mib"] / start["server_rss_mib"] - 1 if start["server_rss_mib"] else float("nan")
        if not growth < a.max_growth:
            problems.append(f"server RSS grew {100 * growth:.1f} % ({start['server_rss_mib']} -> "
                            f"{end['server_rss_mib']} MiB), limit {100 * a.max_growth:.0f} %")
        # workers: the largest at the end against the largest after warm-up (a killed worker restarts
        # small, so the largest at the end is one that served many jobs since its start)
        w0 = max((w["rss_mib"] for w in start["workers"]), default=0.0)
        w1 = max((w["rss_mib"] for w in end["workers"]), default=0.0)
        worker_growth = w1 / w0 - 1 if w0 else float("nan")
        if not worker_growth < a.max_growth:
            problems.append(f"worker RSS grew {100 * worker_growth:.1f} % ({w0} -> {w1} MiB)")
        fd_growth = (end["server_fds"] or 0) - (start["server_fds"] or 0)
        if fd_growth > 4:
            problems.append(f"the server holds {fd_growth} more open files at the end than at the start")
        lat = sorted(o.latency_s for o in soak_jobs if o.latency_s is not None)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, round(q / 100 * (len(lat) - 1)))] if lat else float("nan")

        statuses = Counter(outcome(records[o.job_id]) for o in soak_jobs)
        summary = {
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cpu_cores": os.cpu_count(),
            "jobs": len(soak_jobs), "uploads": len(soak.outcomes),
            "refused": dict(Counter(o.refused_reason for o in soak.outcomes if not o.job_id)),
            "job_outcomes": dict(statuses), "kills": sum(soak.kills.values()),
            "jobs_hit_by_kills": len(soak.kills), "rejected_429": soak.rejected_429, "wall_s": round(wall, 1),
            "jobs_per_min": round(60 * len(soak_jobs) / wall, 1) if wall else None,
            "latency_p50_s": round(pct(50), 2), "latency_p95_s": round(pct(95), 2),
            "latency_mean_s": round(statistics.fmean(lat), 2) if lat else None,
            "start": start, "end": end, "server_rss_growth_pct": round(100 * growth, 1),
            "worker_rss_growth_pct": round(100 * worker_growth, 1),
            "data_dir_mib_after_retention": round(data_mib, 2), "problems": problems,
        }
    print(json.dumps(summary, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(summary, indent=1) + "\n")
    for prob in problems:
        print(f"PROBLEM: {prob}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""``forensight serve`` survives kill -9: the server is killed in the middle of a job and started again.

The job that was running is scored again and completes; the job finished before the kill keeps its
result untouched; the queued jobs are all scored once; no job is lost or duplicated; the worker
processes do not outlive the killed server.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from serve_load import ServerProcess, make_face_video, make_tiny_model, wait_for

from forensight.serve.store import JobStore


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # a zombie has exited; only its parent's bookkeeping is left


def _job(url: str, job_id: str) -> dict:
    return httpx.get(f"{url}/api/jobs/{job_id}", params={"result": "false"}, timeout=10).json()


def test_kill_9_mid_job_then_restart(tmp_path: Path) -> None:
    fast = make_tiny_model(tmp_path / "fast" / "model.pt")
    slow = make_tiny_model(tmp_path / "slow" / "model.pt", num_frames=96)  # 12x the frames: seconds per job
    short = make_face_video(tmp_path / "short.mp4", num_frames=32)
    long = make_face_video(tmp_path / "long.mp4", num_frames=120)
    data = tmp_path / "data"
    srv = ServerProcess(data, [fast, slow], workers=1, queue_size=10).start()
    try:
        def upload(path: Path, model: str) -> str:
            r = httpx.post(f"{srv.url}/api/jobs", files={"file": (path.name, path.read_bytes(), "video/mp4")},
                           data={"model": model}, timeout=30)
            assert r.status_code == 202, r.text
            return r.json()["id"]

        done_before = upload(short, "fast")
        wait_for(lambda: _job(srv.url, done_before)["status"] == "done", 120, "the first job")
        result_file = data / "jobs" / done_before / "result.json"
        before = (result_file.read_bytes(), result_file.stat().st_mtime_ns)

        victim = upload(long, "slow")
        queued = [upload(short, "fast"), upload(short, "fast")]
        running = ("analysing", "decoding", "faces", "scoring")
        wait_for(lambda: _job(srv.url, victim)["progress"]["stage"] in running, 120, "the slow job to run")
        time.sleep(0.2)
        worker_pids = [w["pid"] for w in JobStore(data / "forensight-serve.sqlite3").workers()]
        assert worker_pids
        srv.kill9()
    finally:
        srv.stop()
    wait_for(lambda: all(_gone(p) for p in worker_pids), 15, "the workers to die with the server")

    store = JobStore(data / "forensight-serve.sqlite3")
    assert store.get(victim).status == "running"  # type: ignore[union-attr]  # as the crash left it

    srv2 = ServerProcess(data, [fast, slow], workers=1, queue_size=10, port=srv.port).start()
    try:
        ids = [done_before, victim, *queued]
        jobs = wait_for(lambda: (js := [_job(srv2.url, i) for i in ids]) and all(j["status"] == "done" for j in js)
                     and js, 180, "every job to finish after the restart")
        listed = [j["id"] for j in httpx.get(f"{srv2.url}/api/jobs", timeout=10).json()["jobs"]]
    finally:
        srv2.stop()
    assert sorted(listed) == sorted(ids)  # nothing lost, nothing duplicated
    by_id = dict(zip(ids, jobs))
    assert by_id[victim]["attempts"] == 2 and by_id[victim]["summary"]["status"] == "ok"
    assert all(by_id[i]["attempts"] == 1 for i in (done_before, *queued))
    assert (result_file.read_bytes(), result_file.stat().st_mtime_ns) == before  # finished work untouched
    assert all((data / "jobs" / i / "result.json").is_file() for i in ids)
    assert list((data / "incoming").iterdir()) == []
    assert "re-queued 1 job(s), failed 0" in srv2.log_text()

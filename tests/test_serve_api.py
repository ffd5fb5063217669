"""``forensight serve``: the HTTP API and pages through the framework's test client.

Every endpoint, the 429 path, the token, the size limit, non-video uploads, a hostile file name,
the security checks (host, cross-site writes, headers, no stack traces), the job table's
recovery rules, and one real job scored by a real worker process whose result must equal
``detect``'s for the same file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi.testclient import TestClient

from forensight.result import SCHEMA
from forensight.serve import ServeConfig, ServeConfigError, create_app
from forensight.serve.models import ModelEntry, load_models, model_id_for
from forensight.serve.store import JobStore, QueueFull, new_job_id
from forensight.serve.uploads import display_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from serve_load import make_tiny_model, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOSTILE = "<script>alert(1)</script>../../x.mp4"
BASE = "http://127.0.0.1:8000"
TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("serve_model") / "tiny_att" / "model.pt")


@pytest.fixture(scope="module")
def entries(tiny_model: Path) -> list[ModelEntry]:
    return load_models([tiny_model])


def _client(tmp: Path, entries: list[ModelEntry], **kw: object) -> TestClient:
    cfg = ServeConfig(models=[str(e.path) for e in entries], data_dir=tmp, **kw)  # type: ignore[arg-type]
    return TestClient(create_app(cfg, models=entries), base_url=BASE, raise_server_exceptions=False)


@pytest.fixture()
def queue_only(tmp_path: Path, entries: list[ModelEntry]) -> Iterator[TestClient]:
    """An app without workers (jobs stay queued) and a queue bound of 2."""
    with _client(tmp_path / "data", entries, workers=0, queue_size=2) as c:
        yield c


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, entries: list[ModelEntry]) -> Iterator[TestClient]:
    """An app with one real worker process."""
    with _client(tmp_path_factory.mktemp("live") / "data", entries, workers=1, queue_size=4) as c:
        wait_for(lambda: c.get("/api/health").json()["workers"]["ready"] == 1, what="the worker")
        yield c


def _upload(c: TestClient, path: Path | None = None, name: str = "clip.mp4", data: bytes | None = None,
            **fields: str) -> object:
    body = data if data is not None else Path(path).read_bytes()  # type: ignore[arg-type]
    return c.post("/api/jobs", files={"file": (name, body, "video/mp4")}, data=fields)


def _wait_done(c: TestClient, job_id: str) -> dict:
    return wait_for(lambda: (j := c.get(f"/api/jobs/{job_id}").json())["status"] in ("done", "failed") and j,
                    what=f"job {job_id}")  # type: ignore[return-value]


# ---- one real job ---------------------------------------------------------------------------

def test_job_is_scored_like_detect(live: TestClient, face_video: Path, tiny_model: Path) -> None:
    from forensight.detect import load_detector

    r = _upload(live, face_video, name="face.mp4")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and r.headers["location"] == f"/api/jobs/{body['id']}"
    job = _wait_done(live, body["id"])
    assert job["status"] == "done" and job["attempts"] == 1, job
    assert job["progress"]["stage"] == "done" and all(s["state"] == "done" for s in job["progress"]["stages"])
    res = job["result"]
    direct = load_detector(tiny_model, device="cpu").predict(face_video, name="face.mp4").to_dict()
    assert res["schema"] == SCHEMA and set(res) == set(direct)
    assert res["status"] == "ok" and res["name"] == "face.mp4"
    assert res["p_fake"] == pytest.approx(direct["p_fake"], abs=1e-5)
    assert res["logit"] == pytest.approx(direct["logit"], abs=1e-5) and res["verdict"] == direct["verdict"]
    assert job["summary"] == {"status": "ok", "verdict": res["verdict"], "p_fake": res["p_fake"], "reason": "",
                              "message": res["message"]}

    # the JSON download is the same object, as a file
    d = live.get(job["links"]["result"])
    assert d.status_code == 200 and "attachment" in d.headers["content-disposition"]
    assert json.loads(d.content) == res
    # the report page detect --report writes, served beside the job page
    rep = live.get(job["links"]["report"])
    assert rep.status_code == 200 and rep.headers["content-type"].startswith("text/html")
    assert "P(fake)" in rep.text and 'id="forensight-result"' in rep.text
    page = live.get(f"/jobs/{body['id']}")
    assert page.status_code == 200 and f'src="{job["links"]["report"]}"' in page.text
    # listed, without the result object
    listed = live.get("/api/jobs").json()
    assert [j["id"] for j in listed["jobs"]].count(body["id"]) == 1
    assert all(j["result"] is None for j in listed["jobs"])
    assert live.get(f"/api/jobs/{body['id']}", params={"result": "false"}).json()["result"] is None


def test_video_without_face_is_done_but_not_scored(live: TestClient, noface_video: Path) -> None:
    job = _wait_done(live, _upload(live, noface_video, name="gradient.mp4").json()["id"])
    assert job["status"] == "done" and job["summary"]["status"] == "failed"
    assert job["summary"]["reason"] == "no_face" and job["result"]["verdict"] is None
    page = live.get(f"/jobs/{job['id']}").text
    assert "NOT SCORED" in page


def test_hostile_file_name_is_text_only(live: TestClient, face_video: Path, tmp_path: Path) -> None:
    data_root = live.app.state.serve.layout.root  # type: ignore[attr-defined]
    r = _upload(live, face_video, name=HOSTILE)
    assert r.status_code == 202
    job = _wait_done(live, r.json()["id"])
    assert job["name"] == HOSTILE and job["result"]["name"] == HOSTILE
    # no client text reaches the file system: only server-made names under the data folder
    job_dir = data_root / "jobs" / job["id"]
    assert sorted(p.name for p in job_dir.iterdir()) == ["report", "result.json", "video"]
    assert all(p.name.isascii() and "<" not in p.name for p in data_root.rglob("*"))
    assert not list(data_root.parent.rglob("x.mp4")) and not (data_root.parent.parent / "x.mp4").exists()
    # shown as text everywhere
    for url in (f"/jobs/{job['id']}", "/", job["links"]["report"]):
        html = live.get(url).text
        assert "<script>alert(1)" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;../../x.mp4" in html, url


def test_delete_job(live: TestClient, face_video: Path) -> None:
    job = _wait_done(live, _upload(live, face_video).json()["id"])
    job_dir = live.app.state.serve.layout.job_dir(job["id"])  # type: ignore[attr-defined]
    assert job_dir.is_dir()
    r = live.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 200 and r.json() == {"id": job["id"], "deleted": True}
    assert not job_dir.exists()
    assert live.get(f"/api/jobs/{job['id']}").status_code == 404
    assert live.delete(f"/api/jobs/{job['id']}").json()["error"]["reason"] == "not_found"
    assert live.get(job["links"]["report"]).status_code == 404


def test_models_health_openapi(live: TestClient, entries: list[ModelEntry]) -> None:
    m = live.get("/api/models").json()
    assert m["default"] == "tiny_att" and m["hint"] is None
    assert m["models"][0]["id"] == "tiny_att" and m["models"][0]["region"] == "full"
    h = live.get("/api/health").json()
    assert h["status"] == "ok" and h["workers"] == {"configured": 1, "alive": 1, "ready": 1}
    assert h["queue"]["bound"] == 4
    spec = live.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result", "/api/models",
                                  "/api/health"}
    assert set(spec["paths"]["/api/jobs"]) == {"get", "post"}
    assert set(spec["paths"]["/api/jobs/{job_id}"]) == {"get", "delete"}
    body = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file"] and body["properties"]["file"]["format"] == "binary"
    assert "429" in spec["paths"]["/api/jobs"]["post"]["responses"]
    assert live.get("/docs").status_code == 404  # no page that would load scripts from elsewhere


def test_form_upload_without_script(live: TestClient, face_video: Path) -> None:
    r = live.post("/upload", files={"file": ("form.mp4", face_video.read_bytes(), "video/mp4")},
                  data={"model": "tiny_att"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    _wait_done(live, r.headers["location"].rsplit("/", 1)[1])
    r = live.post("/upload", files=[("file", ("a.mp4", face_video.read_bytes(), "video/mp4")),
                                    ("file", ("b.txt", b"not a video at all" * 20, "text/plain"))],
                  follow_redirects=False)
    assert r.status_code == 200 and "a.mp4" in r.text and "unreadable" in r.text  # one queued, one refused


# ---- the queue bound, deletion of queued jobs, positions -------------------------------------

def test_queue_full_gives_429(queue_only: TestClient, face_video: Path) -> None:
    ids = [_upload(queue_only, face_video).json()["id"] for _ in range(2)]
    jobs = [queue_only.get(f"/api/jobs/{i}").json() for i in ids]
    assert [j["queue_position"] for j in jobs] == [1, 2]
    assert all(j["status"] == "queued" and j["progress"]["stage"] == "queued" for j in jobs)
    r = _upload(queue_only, face_video)
    assert r.status_code == 429 and r.json()["error"]["reason"] == "queue_full"
    assert int(r.headers["retry-after"]) > 0
    incoming = queue_only.app.state.serve.layout.incoming  # type: ignore[attr-defined]
    assert list(incoming.iterdir()) == []  # nothing kept of a refused upload
    page = queue_only.post("/upload", files={"file": ("x.mp4", face_video.read_bytes(), "video/mp4")})
    assert page.status_code == 429 and "queue is full" in page.text.lower()
    assert queue_only.get("/api/jobs").json()["queue"] == {"active": 2, "bound": 2}
    # deleting a queued job frees a place and moves the next one up
    assert queue_only.delete(f"/api/jobs/{ids[0]}").status_code == 200
    assert queue_only.get(f"/api/jobs/{ids[1]}").json()["queue_position"] == 1
    assert _upload(queue_only, face_video).status_code == 202
    # a result that does not exist yet
    r = queue_only.get(f"/api/jobs/{ids[1]}/result")
    assert r.status_code == 409 and r.json()["error"]["reason"] == "not_finished"


def test_queue_bound_is_atomic(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    import threading

    made, full = [], []

    def add() -> None:
        try:
            made.append(store.create(new_job_id(), "v", "m", 1, queue_size=5).id)
        except QueueFull:
            full.append(1)

    threads = [threading.Thread(target=add) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 5 and len(full) == 15 and store.active_count() == 5


# ---- uploads that are refused ----------------------------------------------------------------

def test_non_video_uploads_are_refused_by_content(queue_only: TestClient, bad_files: dict[str, Path],
                                                  face_video: Path, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    png = tmp_path / "photo.mp4"  # a still image with a video's name
    _, buf = cv2.imencode(".png", np.full((64, 64, 3), 127, np.uint8))
    png.write_bytes(buf.tobytes())
    cases = {"unreadable": bad_files["unreadable"], "empty_file": bad_files["empty_file"],
             "no_video_stream": bad_files["no_video_stream"], "not_a_video": png}
    for reason, path in cases.items():
        r = _upload(queue_only, path, name=path.name)
        assert r.status_code == 415, (reason, r.text)
        err = r.json()["error"]
        assert err["reason"] == reason, err
        assert str(path.parent) not in err["message"] and "incoming" not in err["message"]  # no server path
    # a real video is accepted whatever it is called
    assert _upload(queue_only, face_video, name="notes.txt").status_code == 202
    assert list(queue_only.app.state.serve.layout.incoming.iterdir()) == []  # type: ignore[attr-defined]


def test_upload_size_limit(tmp_path: Path, entries: list[ModelEntry], face_video: Path) -> None:
    with _client(tmp_path / "data", entries, workers=0, max_upload_mb=0.25) as c:
        big = b"\0" * (512 * 1024)
        r = _upload(c, data=big)  # declared Content-Length above the limit: refused before reading
        assert r.status_code == 413 and r.json()["error"]["reason"] == "too_large"

        def stream() -> Iterator[bytes]:  # no Content-Length: counted while the parts arrive
            body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n"
                    b"Content-Type: video/mp4\r\n\r\n" + big + b"\r\n--B--\r\n")
            for k in range(0, len(body), 65536):
                yield body[k:k + 65536]

        r = c.post("/api/jobs", content=stream(), headers={"content-type": "multipart/form-data; boundary=B"})
        assert r.status_code == 413 and r.json()["error"]["reason"] == "too_large"
        assert list(c.app.state.serve.layout.incoming.iterdir()) == []  # type: ignore[attr-defined]
        page = c.post("/upload", files={"file": ("big.mp4", big, "video/mp4")})
        assert page.status_code == 413 and "text/html" in page.headers["content-type"]
        assert _upload(c, face_video).status_code == 202  # below the limit


def test_bad_requests(queue_only: TestClient, face_video: Path) -> None:
    cases = [
        (queue_only.post("/api/jobs", content=b"{}", headers={"content-type": "application/json"}), 415,
         "not_multipart"),
        (queue_only.post("/api/jobs", data={"model": "tiny_att"}, files={"other": ("", b"")}), 400, None),
        (_upload(queue_only, face_video, model="no-such-model"), 400, "unknown_model"),
        (queue_only.post("/api/jobs", files=[("file", ("a.mp4", b"1", "video/mp4")),
                                             ("file", ("b.mp4", b"2", "video/mp4"))]), 400, "too_many_files"),
        (queue_only.post("/api/jobs", content=b"--B\r\nContent-Disposition: form-data; name=\"file\"; "
                                              b"filename=\"a.mp4\"\r\n\r\nabc",
                         headers={"content-type": "multipart/form-data; boundary=B"}), 400, "incomplete_upload"),
        (queue_only.get("/api/jobs/0123456789abcdef"), 404, "not_found"),
        (queue_only.get("/api/jobs/..%2F..%2Fetc%2Fpasswd"), 404, "not_found"),
        (queue_only.get("/api/jobs/NOT-AN-ID"), 404, "not_found"),
        (queue_only.get("/api/jobs", params={"limit": "many"}), 400, "bad_request"),
        (queue_only.put("/api/jobs"), 405, "method_not_allowed"),
    ]
    for r, status, reason in cases:
        assert r.status_code == status, (r.request.url, r.text)
        err = r.json()["error"]
        assert reason is None or err["reason"] == reason, err
        assert "Traceback" not in r.text
    assert list(queue_only.app.state.serve.layout.incoming.iterdir()) == []  # type: ignore[attr-defined]
    # pages: errors are pages, and no directory is ever listed
    for url in ("/nope", "/static/", "/jobs/0123456789abcdef", "/jobs/zzz/report/x.html"):
        r = queue_only.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), url
        assert "Not found" in r.text and "Traceback" not in r.text
    job_id = _upload(queue_only, face_video).json()["id"]
    for name in ("..%2F..%2Fforensight-serve.sqlite3", "video", "result.json", ".hidden.html"):
        assert queue_only.get(f"/jobs/{job_id}/report/{name}").status_code == 404, name


def test_internal_error_has_no_stack_trace(queue_only: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    state = queue_only.app.state.serve  # type: ignore[attr-defined]

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("secret detail /etc/passwd")

    monkeypatch.setattr(state.store, "list", boom)
    for url, kind in (("/api/jobs", "application/json"), ("/", "text/html")):
        r = queue_only.get(url)
        assert r.status_code == 500 and r.headers["content-type"].startswith(kind)
        assert "internal_error" in r.text and "secret detail" not in r.text and "Traceback" not in r.text


# ---- security --------------------------------------------------------------------------------

def test_token(tmp_path: Path, entries: list[ModelEntry], face_video: Path) -> None:
    with _client(tmp_path / "data", entries, workers=0, token=TOKEN) as c:
        for url in ("/", "/api/jobs", "/api/models", "/api/health", "/openapi.json", "/static/app.js"):
            r = c.get(url)
            assert r.status_code == 401, url
            assert "token_required" in r.text
        assert c.get("/api/jobs").json()["error"]["reason"] == "token_required"
        assert _upload(c, face_video).status_code == 401
        assert c.get("/api/jobs", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert c.get("/api/jobs", params={"token": TOKEN}).status_code == 401  # the API takes headers only
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/api/jobs", headers=ok).status_code == 200
        assert c.get("/api/jobs", headers={"X-Forensight-Token": TOKEN}).status_code == 200
        r = c.post("/api/jobs", headers=ok, files={"file": ("a.mp4", face_video.read_bytes(), "video/mp4")})
        assert r.status_code == 202
        # a browser: the link with ?token= sets a cookie and drops the token from the address
        r = c.get("/", params={"token": TOKEN}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
        c.cookies.set("forensight_token", TOKEN)
        assert c.get("/").status_code == 200 and c.get("/api/jobs").status_code == 200


def test_network_binding_needs_token(tmp_path: Path) -> None:
    with pytest.raises(ServeConfigError, match="--token"):
        ServeConfig(host="0.0.0.0").validate()
    with pytest.raises(ServeConfigError, match="at least 16"):
        ServeConfig(host="0.0.0.0", token="short").validate()
    ServeConfig(host="0.0.0.0", token=TOKEN).validate()
    ServeConfig(host="::1").validate()
    ServeConfig(host="localhost").validate()
    r = subprocess.run([sys.executable, "-m", "forensight.cli", "serve", "--host", "0.0.0.0", "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "FORENSIGHT_TOKEN": ""}, check=False)
    assert r.returncode == 2 and "refusing to listen on '0.0.0.0' without --token" in r.stderr
    assert "Traceback" not in r.stderr


def test_host_and_cross_site_checks(queue_only: TestClient, face_video: Path) -> None:
    r = queue_only.get("/api/jobs", headers={"host": "evil.example:8000"})  # DNS rebinding
    assert r.status_code == 400 and r.json()["error"]["reason"] == "bad_host"
    assert queue_only.get("/api/jobs", headers={"host": "localhost:8000"}).status_code == 200
    files = {"file": ("a.mp4", face_video.read_bytes(), "video/mp4")}
    r = queue_only.post("/api/jobs", files=files, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["reason"] == "cross_origin"
    r = queue_only.post("/api/jobs", files=files, headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    assert queue_only.post("/api/jobs", files=files, headers={"origin": BASE}).status_code == 202
    h = queue_only.get("/").headers
    assert "script-src 'self'" in h["content-security-policy"] and h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "SAMEORIGIN" and h["referrer-policy"] == "no-referrer"


def test_no_model(tmp_path: Path, face_video: Path) -> None:
    with TestClient(create_app(ServeConfig(data_dir=tmp_path / "d", workers=1)), base_url=BASE) as c:
        page = c.get("/")
        assert page.status_code == 200 and "No model loaded" in page.text and "forensight demo" in page.text
        m = c.get("/api/models").json()
        assert m["models"] == [] and m["default"] is None and "forensight demo" in m["hint"]
        r = _upload(c, face_video)
        assert r.status_code == 503 and r.json()["error"]["reason"] == "no_model"
        assert c.get("/api/health").json()["workers"]["configured"] == 0


# ---- the job table's rules -------------------------------------------------------------------

def test_store_recovery_and_claims(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    a, b, c = (store.create(new_job_id(), n, "m", 10, queue_size=10) for n in "abc")
    ja = store.claim_next(worker_pid=111)
    assert ja is not None and ja.id == a.id and ja.attempts == 1 and ja.claim
    assert store.set_progress(a.id, ja.claim, "analysing")
    # the server was killed: the running job goes back in front of the queue
    rep = store.recover(max_attempts=2)
    assert rep.requeued == [a.id] and rep.failed == []
    again = store.claim_next(worker_pid=222)
    assert again is not None and again.id == a.id and again.attempts == 2 and again.claim != ja.claim
    assert not store.finish(a.id, ja.claim, "ok", "real", 0.1, "", "", None)  # the old claim is void
    assert store.get(a.id).status == "running"  # type: ignore[union-attr]
    rep = store.recover(max_attempts=2)  # interrupted twice: failed, not retried forever
    assert rep.failed == [a.id] and store.get(a.id).reason == "interrupted"  # type: ignore[union-attr]
    # a worker that died: its job is re-queued; an orderly stop refunds the attempt
    jb = store.claim_next(worker_pid=333)
    assert jb is not None and jb.id == b.id
    assert store.release(333, max_attempts=3, reason="worker_crashed", message="x").requeued == [b.id]
    jb = store.claim_next(worker_pid=444)
    assert jb is not None and jb.attempts == 2
    store.release(444, max_attempts=3, reason="interrupted", message="x", refund=True)
    assert store.get(b.id).attempts == 1 and store.get(b.id).status == "queued"  # type: ignore[union-attr]
    # finish with the live claim; a deleted job cannot be finished
    jb = store.claim_next(worker_pid=555)
    assert jb is not None and store.finish(b.id, jb.claim or "", "ok", "fake", 0.9, "", "scored", "r.html")
    assert store.get(b.id).status == "done"  # type: ignore[union-attr]
    jc = store.claim_next(worker_pid=555)
    assert jc is not None and jc.id == c.id
    store.delete(c.id)
    assert not store.set_progress(c.id, jc.claim or "", "report")
    assert not store.finish(c.id, jc.claim or "", "ok", "fake", 0.9, "", "", None)
    assert store.counts() == {"queued": 0, "running": 0, "done": 1, "failed": 1}


def test_retention_deletes_old_uploads(queue_only: TestClient, face_video: Path) -> None:
    state = queue_only.app.state.serve  # type: ignore[attr-defined]
    job_id = _upload(queue_only, face_video).json()["id"]
    job = state.store.claim_next(worker_pid=1)
    state.store.finish(job_id, job.claim, "ok", "real", 0.2, "", "", None)
    video = state.layout.video(job_id)
    assert video.is_file()
    assert state.purge_uploads(now=time.time() + 3600) == []  # 7 days by default
    assert state.purge_uploads(now=time.time() + 8 * 86400) == [job_id]
    assert not video.exists()
    j = queue_only.get(f"/api/jobs/{job_id}").json()
    assert j["upload_deleted"] is True and j["status"] == "done"
    assert "retention" in queue_only.get(f"/jobs/{job_id}").text


def test_names_and_ids() -> None:
    assert display_name(b"a\x00b\r\n\x1b[31mc.mp4") == "ab[31mc.mp4"
    assert display_name(b"") == "upload" and len(display_name("x" * 1000)) == 255
    assert display_name(b"\xff\xfe.mp4") == "\ufffd\ufffd.mp4"
    taken: set[str] = set()
    a = model_id_for(Path("/r/mouth_attention_s0/model.pt"), taken)
    taken.add(a)
    assert a == "mouth_attention_s0" and model_id_for(Path("/x/mouth_attention_s0/model.pt"), taken) == \
        "mouth_attention_s0-2"
    assert model_id_for(Path("/x/<b>.pt"), set()) == "b"


def test_the_detectors_progress_stages_reach_the_job(tmp_path: Path) -> None:
    from forensight.serve.views import progress_view
    from forensight.serve.worker import _ProgressReporter

    store = JobStore(tmp_path / "jobs.sqlite3")
    job = store.create(new_job_id(), "v.mp4", "m", 1, queue_size=5)
    claimed = store.claim_next(worker_pid=1)
    assert claimed is not None and claimed.claim
    reporter = _ProgressReporter(store, job.id, claimed.claim)

    class Hooked:
        def predict(self, path: Path, name: str | None = None, progress: object = None) -> str:
            for stage, frac in (("decoding", 0.5), ("faces", 0.25), ("scoring", None)):
                progress(stage, frac)  # type: ignore[operator]
            return "result"

    assert Hooked().predict(tmp_path / "v", name="v.mp4", progress=reporter) == "result"  # as the worker calls it
    row = store.get(job.id)
    assert row is not None and row.stage == "scoring"
    states = {s["name"]: s["state"] for s in progress_view(row)["stages"]}
    assert states["decoding"] == states["faces"] == "done" and states["scoring"] == "active"
    reporter("analysing", None, force=True)
    view = progress_view(store.get(job.id))  # type: ignore[arg-type]
    assert [s["name"] for s in view["stages"] if s["state"] == "active"] == ["decoding", "faces", "scoring"]


def test_pool_requeues_the_job_of_a_dead_worker_and_restarts_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from forensight.serve.pool import WorkerPool
    from forensight.serve.worker import WorkerSpec

    store = JobStore(tmp_path / "jobs.sqlite3")
    pool = WorkerPool([WorkerSpec(slot=0, data_dir=str(tmp_path))], store, max_attempts=2)
    started: list[int] = []
    monkeypatch.setattr(pool, "_start", lambda slot: started.append(slot.spec.slot))
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait(timeout=30)
    pool._slots[0].process = dead
    job = store.create(new_job_id(), "v.mp4", "m", 1, queue_size=5)
    assert store.claim_next(worker_pid=dead.pid) is not None
    pool.check()
    assert store.get(job.id).status == "queued" and started == []  # type: ignore[union-attr]  # back-off
    pool._slots[0].restart_at = 0.0
    pool.check()
    assert started == [0]
    assert store.claim_next(worker_pid=dead.pid) is not None  # attempt 2 dies too: failed, not retried forever
    pool._slots[0].process = dead
    pool._slots[0].restart_at = 0.0
    pool.check()
    row = store.get(job.id)
    assert row is not None and row.status == "failed" and row.reason == "worker_crashed"
    assert "exit code 3" in row.message

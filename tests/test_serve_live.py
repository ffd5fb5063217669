"""``forensight serve`` as a real server on 127.0.0.1 (uvicorn in a subprocess, 2 worker processes):
a load test, the size limit enforced on a streamed upload, and the real page in headless Chromium.

The browser test drives Debian's ``chromium`` through Playwright for Python (no browser is
downloaded): it uploads a generated face video through the page, waits for the verdict, checks
it against the API and the embedded report, and saves a screenshot (to ``docs/serve_job.png``
only with ``FORENSIGHT_WRITE_DOCS=1``; ``FORENSIGHT_DOCS_MODEL`` / ``FORENSIGHT_DOCS_VIDEO``
then choose a trained model and a video for it).
"""

from __future__ import annotations

import os
import re
import select
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from conftest import require_chromium
from serve_load import ServerProcess, make_face_video, make_tiny_model, run_load

WORKERS = 2
QUEUE = 8
MAX_UPLOAD_MB = 1
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("load_videos")
    return [make_face_video(d / f"face{k}.mp4", num_frames=32 + 4 * k) for k in range(4)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("live_server")
    models = [make_tiny_model(root / "tiny_att" / "model.pt")]
    docs_model = os.environ.get("FORENSIGHT_DOCS_MODEL") if os.environ.get("FORENSIGHT_WRITE_DOCS") == "1" else None
    if docs_model:
        models.append(Path(docs_model))
    srv = ServerProcess(root / "data", models, workers=WORKERS, queue_size=QUEUE,
                        extra=["--max-upload-mb", str(MAX_UPLOAD_MB)])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_load_20_concurrent_uploads(server: ServerProcess, videos: list[Path]) -> None:
    rep = run_load(server.url, videos, n=20, timeout_s=240)
    print(f"\nserve load ({os.cpu_count()} CPU cores, {WORKERS} workers, tiny model): {rep.summary()}")
    assert rep.problems() == []
    assert rep.rejected_429 > 0  # 20 uploads against a bound of 8: the bound was exercised and held
    assert rep.max_active <= QUEUE
    h = httpx.get(f"{server.url}/api/health").json()
    assert h["queue"]["active"] == 0 and h["counts"]["done"] >= 20 and h["counts"]["failed"] == 0


def test_streamed_upload_is_cut_at_the_limit(server: ServerProcess) -> None:
    """A chunked upload without Content-Length is refused once it passes the limit, while it streams:
    the server answers 413 and stops reading long before the client's 64 MiB are sent."""
    limit = MAX_UPLOAD_MB * 2**20
    head = (f"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    part = b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    chunk = b"\0" * 65536
    sent = 0
    reply = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        try:
            while sent < 64 * 2**20:
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    break
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in reply:
                data = s.recv(65536)
                if not data:
                    break
                reply += data
        except (ConnectionResetError, TimeoutError):
            pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 16 * 2**20, f"the client could send {sent / 2**20:.1f} MiB of a {limit / 2**20:.0f} MiB limit"
    assert list((server.data_dir / "incoming").iterdir()) == []



def test_browser_upload_shows_the_verdict(server: ServerProcess, videos: list[Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    write_docs = os.environ.get("FORENSIGHT_WRITE_DOCS") == "1"
    video = Path(os.environ["FORENSIGHT_DOCS_VIDEO"]) if write_docs and os.environ.get("FORENSIGHT_DOCS_VIDEO") \
        else videos[0]
    models = httpx.get(f"{server.url}/api/models").json()["models"]
    model_id = models[-1]["id"] if write_docs else models[0]["id"]
    shot = DOCS / "serve_job.png" if write_docs else Path(os.environ.get("FORENSIGHT_SHOT_DIR", tmp_path)) / "serve_job.png"
    hostile = "<img src=x onerror=alert(1)>clip.mp4"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{server.url}/")
            expect(page.locator("h1")).to_contain_text("manipulated")
            page.select_option("#model-select", model_id)
            page.set_input_files("#file-input", str(video))
            page.click("#upload-button")
            page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{16}$"), timeout=60_000)
            verdict = page.locator("#verdict")
            expect(verdict).to_have_text(re.compile(r"^(FAKE|REAL) · P\(fake\) \d\.\d{3}$"), timeout=120_000)
            job_id = page.url.rsplit("/", 1)[1]
            job = httpx.get(f"{server.url}/api/jobs/{job_id}").json()
            s = job["summary"]
            assert job["status"] == "done" and s["status"] == "ok" and job["model"] == model_id
            assert verdict.inner_text() == f"{s['verdict'].upper()} · P(fake) {s['p_fake']:.3f}"
            expect(page.locator("#download")).to_be_visible()
            # the report detect --report writes, embedded in the job page
            report = page.frame_locator("#report")
            expect(report.locator("h1")).to_have_text(video.name, timeout=30_000)
            expect(report.locator(".badge").first).to_have_text(s["verdict"].upper())
            page.wait_for_function("document.getElementById('report').offsetHeight > 800", timeout=30_000)
            page.screenshot(path=str(shot))
            # a file name with markup, through the real page: shown as text, never run
            page.goto(f"{server.url}/")
            page.set_input_files("#file-input", files=[{"name": hostile, "mimeType": "video/mp4",
                                                        "buffer": videos[1].read_bytes()}])
            page.click("#upload-button")
            page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{16}$"), timeout=60_000)
            expect(page.locator("#job-name")).to_have_text(hostile)
            expect(page.locator("#verdict")).to_have_text(re.compile(r"^(FAKE|REAL) "), timeout=120_000)
            expect(page.frame_locator("#report").locator("h1")).to_have_text(hostile, timeout=30_000)
            page.goto(f"{server.url}/")
            expect(page.locator("#jobs-body a", has_text=hostile)).to_have_count(1)
            assert page.locator("#jobs-body img").count() == 0
            assert dialogs == []
        finally:
            browser.close()
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[1] == 1280 and float(img.std()) > 10

"""The web app and HTTP API of ``forensight serve`` (FastAPI + Jinja2 templates).

:func:`create_app` builds the ASGI app; :func:`forensight.serve.server.serve` runs it with
uvicorn. Pages: ``/`` (upload several videos, choose a model, recent jobs), ``/jobs/{id}``
(queue position, live progress, then the ``detect --report`` page and the JSON download).
API (schema at ``/openapi.json``): ``POST /api/jobs``, ``GET /api/jobs``,
``GET /api/jobs/{id}``, ``DELETE /api/jobs/{id}``, ``GET /api/jobs/{id}/result``,
``GET /api/models``, ``GET /api/health``.

Errors are JSON ``{"error": {"reason", "message"}}`` under ``/api/`` and pages elsewhere, with
the HTTP status: 400 bad request, 401 token, 403 cross-site, 404, 409 not finished, 413 too
large, 415 not a video, 429 queue full (with ``Retry-After``), 503 no model. An unexpected
error is logged on the server and answered with ``internal_error``: never a stack trace.

While the app runs (its lifespan) it holds the data folder's lock, has re-queued the jobs a
crash interrupted, supervises the worker processes, and deletes uploads past the retention
time once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from forensight._version import __version__
from forensight.io import DiskFullError, free_bytes, is_disk_full
from forensight.serve.config import ServeConfig, is_loopback
from forensight.serve.layout import JOB_ID_RE, DataDir, DataDirLock
from forensight.serve.models import NO_MODEL_HINT, ModelEntry
from forensight.serve.pool import WorkerPool
from forensight.serve.schemas import ErrorOut, HealthOut, JobCreated, JobDeleted, JobList, JobOut, ModelList
from forensight.serve.security import SecurityMiddleware, is_api_path
from forensight.serve.store import Job, JobStore, QueueFull, new_job_id
from forensight.serve.uploads import ReceivedFile, UploadError, check_video, receive_upload
from forensight.serve.views import job_record
from forensight.serve.worker import WorkerSpec

__all__ = ["ApiError", "ServeState", "create_app"]

log = logging.getLogger("forensight.serve")

HERE = Path(__file__).parent
#: Most files one browser form may send (the page's script sends one request per file).
MAX_FORM_FILES = 20
RETRY_AFTER_S = 5
_REPORT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(html|png|json)$")
_REPORT_TYPES = {"html": "text/html; charset=utf-8", "png": "image/png", "json": "application/json"}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "one video; its type is decided by reading it, not by its name"},
                "model": {"type": "string", "description": "model id from GET /api/models (default: the first)"},
                "explain": {"type": "string", "enum": ["", "top", "all"],
                            "description": "spatial evidence maps (Grad-CAM): 'top' = the most-attended frames, "
                                           "'all' = every scored frame; default none (faster)"},
            }}}},
    }
}
_ERRORS = {s: {"model": ErrorOut} for s in (400, 401, 403, 404, 409, 413, 415, 429, 503, 507)}


class ApiError(Exception):
    """An error answered as JSON (API) or as a page: HTTP ``status``, ``reason`` code, ``message``."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}


@dataclass
class ServeState:
    """What the routes share: settings, folders, the job table, the models and the workers."""

    cfg: ServeConfig
    layout: DataDir
    store: JobStore
    models: list[ModelEntry]
    pool: WorkerPool | None
    templates: Environment

    @property
    def default_model(self) -> str | None:
        return self.models[0].id if self.models else None

    def model_ids(self) -> set[str]:
        return {m.id for m in self.models}

    def record(self, job: Job, with_result: bool = False) -> dict[str, Any]:
        """The API record of ``job`` (with its ``detect --json`` result when asked and done)."""
        result = None
        if with_result and job.status == "done":
            try:
                result = json.loads(self.layout.result(job.id).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("job %s: result file missing or unreadable", job.id)
        return job_record(job, self.store.queue_position(job), result)

    def purge_uploads(self, now: float | None = None) -> list[str]:
        """Delete the uploaded videos of jobs finished more than ``retention_days`` ago; returns their ids."""
        cutoff = (time.time() if now is None else now) - self.cfg.retention_days * 86400.0
        purged = []
        for job in self.store.uploads_to_purge(cutoff):
            self.layout.video(job.id).unlink(missing_ok=True)
            self.store.mark_upload_deleted(job.id)
            purged.append(job.id)
        if purged:
            log.info("retention: deleted %d uploaded video(s)", len(purged))
        return purged

    def remove_orphans(self) -> int:
        """Delete job folders that have no job row (a job deleted while a worker still wrote to it)."""
        n = 0
        for d in self.layout.jobs.iterdir():
            if d.is_dir() and JOB_ID_RE.match(d.name) and self.store.get(d.name) is None:
                self.layout.remove_job(d.name)
                n += 1
        return n


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–"
    env.filters["size"] = _fmt_size
    return env


def _fmt_size(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _allowed_hosts(cfg: ServeConfig) -> set[str] | None:
    if not is_loopback(cfg.host):
        return None
    return {"127.0.0.1", "localhost", "::1", cfg.host.strip("[]").lower()}


def create_app(cfg: ServeConfig, models: list[ModelEntry] | None = None, lock: DataDirLock | None = None) -> FastAPI:
    """The ASGI app for ``cfg``.

    Args:
        cfg: the settings (validated here).
        models: the offered models (:func:`forensight.serve.models.load_models`); None loads
            ``cfg.models``.
        lock: the data folder's lock when the caller holds it already; otherwise the app takes it
            when it starts and drops it when it stops.
    """
    from forensight.serve.models import load_models

    cfg.validate()
    entries = load_models(cfg.models) if models is None else list(models)
    layout = DataDir(cfg.data_dir).create()
    store = JobStore(layout.db)
    pool = None
    if cfg.workers > 0 and entries:
        specs = [WorkerSpec(slot=i, data_dir=str(layout.root), models={m.id: str(m.path) for m in entries},
                            default_model=entries[0].id, torch_threads=cfg.torch_threads, device=cfg.device,
                            poll_s=cfg.poll_s, parent_pid=os.getpid()) for i in range(cfg.workers)]
        pool = WorkerPool(specs, store, cfg.max_attempts)
    state = ServeState(cfg=cfg, layout=layout, store=store, models=entries, pool=pool, templates=_templates())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_lock = lock is None
        held = DataDirLock(layout.lock).acquire() if own_lock else lock
        try:
            layout.clean_incoming()
            rep = store.recover(cfg.max_attempts)
            if rep.requeued or rep.failed:
                log.warning("recovered after an interruption: re-queued %d job(s), failed %d", len(rep.requeued),
                            len(rep.failed))
            state.remove_orphans()
            state.purge_uploads()
            if pool is not None:
                pool.start()
            task = asyncio.create_task(_supervise(state))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if pool is not None:
                    pool.stop()
        finally:
            if own_lock and held is not None:
                held.release()

    app = FastAPI(title="Forensight", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="Deepfake video checks on this machine: upload a video, follow its job, read the "
                              "result (the `forensight detect --json` object) and the HTML report.")
    app.state.serve = state
    app.add_middleware(SecurityMiddleware, token=cfg.token, allowed_hosts=_allowed_hosts(cfg),
                       render_error=lambda path, status, reason, msg: _error_response(state, path, status, reason, msg))
    app.mount("/static", StaticFiles(directory=HERE / "static", html=False), name="static")
    _install_error_handlers(app, state)
    _api_routes(app, state)
    _page_routes(app, state)
    return app


async def _supervise(state: ServeState) -> None:
    """Once a second: restart dead workers (in this thread: see ``pool``); once a minute: retention."""
    last_purge = time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        try:
            if state.pool is not None:
                state.pool.check()
            if time.monotonic() - last_purge >= 60.0:
                last_purge = time.monotonic()
                await run_in_threadpool(state.purge_uploads)
        except Exception:
            log.exception("supervision step failed")


# ---- errors -------------------------------------------------------------------------------------

def _error_response(state: ServeState, path: str, status: int, reason: str, message: str,
                    headers: dict[str, str] | None = None) -> Response:
    if is_api_path(path):
        return JSONResponse({"error": {"reason": reason, "message": message}}, status_code=status, headers=headers)
    page = state.templates.get_template("error.html").render(status=status, reason=reason, message=message)
    return HTMLResponse(page, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI, state: ServeState) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _error_response(state, request.url.path, exc.status, exc.reason, exc.message, exc.headers)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError) -> Response:
        return _error_response(state, request.url.path, exc.status, exc.reason, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "nothing here", 405: "this method is not allowed here"}.get(exc.status_code,
                                                                                    str(exc.detail))
        return _error_response(state, request.url.path, exc.status_code, reason, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()) or "the request"
        return _error_response(state, request.url.path, 400, "bad_request", f"invalid value in {where}")

    @app.exception_handler(DiskFullError)
    async def disk_full(request: Request, exc: DiskFullError) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        free = "" if exc.free_bytes is None else f" ({exc.free_bytes / 2**20:.1f} MiB free)"
        return _error_response(state, request.url.path, 507, "disk_full",
                               f"the server's disk is full{free}: {exc.what} could not be written; nothing was "
                               "kept: try again later")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error_response(state, request.url.path, 500, "internal_error",
                               "something went wrong on the server; its log has the details")


# ---- shared steps -------------------------------------------------------------------------------

def _get_job(state: ServeState, job_id: str) -> Job:
    job = state.store.get(job_id) if JOB_ID_RE.match(job_id) else None
    if job is None:
        raise ApiError(404, "not_found", "no such job (it may have been deleted)")
    return job


def _queue_full(active: int, bound: int) -> ApiError:
    return ApiError(429, "queue_full", f"the queue is full: {active} jobs are waiting or running (limit {bound}); "
                                       f"try again in a little while", headers={"Retry-After": str(RETRY_AFTER_S)})


def _accepting(state: ServeState) -> None:
    """Refuse an upload before reading it: no model (503) or a full queue (429)."""
    if not state.models:
        raise ApiError(503, "no_model", NO_MODEL_HINT)
    active = state.store.active_count()
    if active >= state.cfg.queue_size:
        raise _queue_full(active, state.cfg.queue_size)


def _model_choice(state: ServeState, value: str | None) -> str:
    if value is None or value.strip() == "":
        assert state.default_model is not None
        return state.default_model
    if value not in state.model_ids():
        raise ApiError(400, "unknown_model", f"no model {value!r} here; GET /api/models lists them")
    return value


def _explain_choice(value: str | None) -> str:
    """The form's ``explain`` field: "" (default, no maps), "top" (a checked box sends "top") or "all"."""
    v = (value or "").strip()
    if v not in ("", "top", "all"):
        raise ApiError(400, "bad_explain", f"explain must be '', 'top' or 'all', got {v[:40]!r}")
    return v


def _enqueue(state: ServeState, f: ReceivedFile, model: str, explain: str = "") -> Job:
    """Check the received file is a video, move it into a new job folder, queue the job (sync)."""
    try:
        check_video(f.path, f.name)
        job_id = new_job_id()
        job_dir = state.layout.job_dir(job_id)
        try:
            job_dir.mkdir(mode=0o700)
            os.replace(f.path, state.layout.video(job_id))  # the file is in place before a worker can see the job
            return state.store.create(job_id, f.name, model, f.size, state.cfg.queue_size, explain=explain)
        except QueueFull as e:
            state.layout.remove_job(job_id)
            raise _queue_full(e.active, e.bound) from None
        except (OSError, sqlite3.OperationalError) as e:  # no job half-created: folder and row, or neither
            state.layout.remove_job(job_id)
            full = (is_disk_full(e, job_dir.parent) if isinstance(e, OSError)
                    else "full" in str(e).lower())  # SQLite: "database or disk is full"
            if not full:
                raise
            raise UploadError(507, "disk_full", "the server's disk is full: the job could not be created "
                                                f"({(free_bytes(job_dir.parent) or 0) / 2**20:.1f} MiB free); "
                                                "nothing was kept: try again later") from None
    finally:
        f.path.unlink(missing_ok=True)


# ---- API ----------------------------------------------------------------------------------------

async def _receive(request: Request, state: ServeState, max_files: int, no_file: str) -> tuple[Any, Any]:
    """The one upload intake of the API and the page's form: refuse while not accepting, stream the
    files in (size limit, content check), require at least one (``no_file`` says how), resolve the
    chosen model; a bad model choice discards what was received."""
    _accepting(state)
    form = await receive_upload(request, state.layout.new_incoming, state.cfg.max_upload_bytes, max_files=max_files)
    if not form.files:
        raise ApiError(400, "no_file", no_file)
    try:
        return form, (_model_choice(state, form.fields.get("model")), _explain_choice(form.fields.get("explain")))
    except ApiError:
        form.discard()
        raise


def _api_routes(app: FastAPI, state: ServeState) -> None:
    @app.post("/api/jobs", status_code=202, response_model=JobCreated, responses=_ERRORS, openapi_extra=_UPLOAD_BODY,
              summary="Upload one video (multipart field `file`, optional `model`) and queue it")
    async def create_job(request: Request) -> JSONResponse:
        form, (model, explain) = await _receive(request, state, 1, "send the video in the multipart field 'file'")
        job = await run_in_threadpool(_enqueue, state, form.files[0], model, explain)
        rec = state.record(job)
        return JSONResponse({"id": job.id, "status": job.status, "name": job.name, "model": job.model,
                             "links": rec["links"]}, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs", response_model=JobList, responses=_ERRORS, summary="Recent jobs, newest first")
    def list_jobs(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        return {"jobs": [state.record(j) for j in state.store.list(limit)], "counts": state.store.counts(),
                "queue": {"active": state.store.active_count(), "bound": state.cfg.queue_size}}

    @app.get("/api/jobs/{job_id}", response_model=JobOut, responses=_ERRORS,
             summary="A job: status, queue position, progress and, when done, the `detect --json` result")
    def get_job(job_id: str, result: bool = Query(True, description="include the result object when done")
                ) -> dict[str, Any]:
        return state.record(_get_job(state, job_id), with_result=result)

    @app.delete("/api/jobs/{job_id}", response_model=JobDeleted, responses=_ERRORS,
                summary="Delete a job, its upload, result and report (a running job is abandoned)")
    def delete_job(job_id: str) -> dict[str, Any]:
        _get_job(state, job_id)
        if state.store.delete(job_id) is None:
            raise ApiError(404, "not_found", "no such job (it may have been deleted)")
        state.layout.remove_job(job_id)
        return {"id": job_id, "deleted": True}

    @app.get("/api/jobs/{job_id}/result", responses={200: {"content": {"application/json": {}}}, **_ERRORS},
             summary="Download the result (`detect --json` object) as a file")
    def download_result(job_id: str) -> FileResponse:
        job = _get_job(state, job_id)
        path = state.layout.result(job.id)
        if job.status != "done" or not path.is_file():
            raise ApiError(409, "not_finished", f"the job is {job.status}; there is no result (yet)")
        return FileResponse(path, media_type="application/json", filename=f"forensight-{job.id}.json")

    @app.get("/api/models", response_model=ModelList, responses=_ERRORS, summary="The models this server offers")
    def list_models() -> dict[str, Any]:
        return {"models": [m.to_api(default=(m.id == state.default_model)) for m in state.models],
                "default": state.default_model, "hint": None if state.models else NO_MODEL_HINT}

    @app.get("/api/health", response_model=HealthOut, responses=_ERRORS, summary="Workers, queue and counts")
    def health() -> dict[str, Any]:
        rows = state.store.workers()
        alive = state.pool.pids() if state.pool is not None else []
        return {"status": "ok", "version": __version__, "models": len(state.models),
                "workers": {"configured": state.pool.size if state.pool is not None else 0, "alive": len(alive),
                            "ready": sum(r["state"] in ("ready", "busy") and r["pid"] in alive for r in rows)},
                "queue": {"active": state.store.active_count(), "bound": state.cfg.queue_size},
                "counts": state.store.counts(), "max_upload_bytes": state.cfg.max_upload_bytes}


# ---- pages --------------------------------------------------------------------------------------

def _page(state: ServeState, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = state.templates.get_template(name).render(version=__version__, **context)
    return HTMLResponse(html, status_code=status)


def _index(state: ServeState, notices: list[dict[str, Any]]) -> HTMLResponse:
    jobs = [state.record(j) for j in state.store.list(50)]
    return _page(state, "index.html", models=state.models, default_model=state.default_model, jobs=jobs,
                 hint=None if state.models else NO_MODEL_HINT, max_upload_mb=state.cfg.max_upload_mb,
                 queue_size=state.cfg.queue_size, retention_days=state.cfg.retention_days, notices=notices)


def _page_routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return _index(state, [])

    @app.post("/upload", include_in_schema=False)
    async def upload_form(request: Request) -> Response:
        """The page's form without its script: every chosen file becomes a job."""
        form, (model, explain) = await _receive(request, state, MAX_FORM_FILES, "choose at least one video file")
        jobs: list[Job] = []
        notices: list[dict[str, Any]] = []
        last_error: ApiError | UploadError | None = None
        try:
            for f in form.files:
                try:
                    job = await run_in_threadpool(_enqueue, state, f, model, explain)
                    jobs.append(job)
                    notices.append({"name": f.name, "ok": True, "message": "queued", "link": f"/jobs/{job.id}"})
                except (ApiError, UploadError) as e:
                    last_error = e
                    notices.append({"name": f.name, "ok": False, "message": f"{e.reason}: {e.message}",
                                    "link": None})
        finally:
            form.discard()
        if not jobs and last_error is not None:
            raise last_error
        if len(jobs) == len(form.files):
            return RedirectResponse(f"/jobs/{jobs[0].id}" if len(jobs) == 1 else "/", status_code=303)
        return _index(state, notices)

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    def job_page(job_id: str) -> HTMLResponse:
        job = _get_job(state, job_id)
        return _page(state, "job.html", job=state.record(job), retention_days=state.cfg.retention_days)

    @app.post("/jobs/{job_id}/delete", include_in_schema=False)
    def delete_page(job_id: str) -> RedirectResponse:
        _get_job(state, job_id)
        state.store.delete(job_id)
        state.layout.remove_job(job_id)
        return RedirectResponse("/", status_code=303)

    @app.get("/jobs/{job_id}/report/{filename}", include_in_schema=False)
    def report_file(job_id: str, filename: str) -> FileResponse:
        job = _get_job(state, job_id)
        m = _REPORT_FILE.match(filename)
        root = state.layout.report_dir(job.id)
        target = (root / filename) if m else None
        if target is None or not target.is_file() or target.resolve().parent != root.resolve():
            raise ApiError(404, "not_found", "no such report file")
        return FileResponse(target, media_type=_REPORT_TYPES[m.group(1)])  # type: ignore[union-attr]

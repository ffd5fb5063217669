"""How a job is presented: the API record of a job and its progress (torch-free, no HTTP).

Progress stages, in order: ``queued`` → ``starting`` (a worker took the job; loading the model
the first time) → ``decoding`` → ``faces`` → ``scoring`` → ``report`` → ``done`` (the detector's
stages come from ``predict(..., progress=...)``). ``analysing`` (decoding, faces and scoring at
once) is what the worker shows until the detector reports its first stage
(see :mod:`forensight.serve.worker`).
"""

from __future__ import annotations

from typing import Any

from forensight.serve.store import Job

__all__ = ["STAGES", "job_links", "job_record", "progress_view"]

#: (stage, label) in the order a job passes them.
STAGES: tuple[tuple[str, str], ...] = (
    ("queued", "Queued"),
    ("starting", "Starting"),
    ("decoding", "Decoding"),
    ("faces", "Finding faces"),
    ("scoring", "Scoring"),
    ("report", "Writing report"),
    ("done", "Done"),
)
_ORDER = {name: i for i, (name, _) in enumerate(STAGES)}
#: The worker's combined stage while the detector reports no finer progress.
ANALYSING = ("decoding", "faces", "scoring")


def progress_view(job: Job) -> dict[str, Any]:
    """``{"stage", "label", "fraction", "stages": [{"name", "label", "state"}]}`` where each
    state is ``done``, ``active`` or ``pending`` (``failed`` marks where a failed job stopped)."""
    stage = job.stage
    labels = dict(STAGES)
    if stage == "analysing":
        active = set(ANALYSING)
        pos = _ORDER["decoding"]
        label = "Decoding, finding faces and scoring"
    elif stage in _ORDER:
        active = {stage}
        pos = _ORDER[stage]
        label = labels[stage]
    else:  # "failed" or an unknown stage: show how far it got
        active = set()
        pos = _ORDER["done"] if job.status == "done" else -1
        label = "Failed" if job.status == "failed" else stage
    out = []
    for name, lab in STAGES:
        if job.status == "done":
            state = "done"
        elif name in active:
            state = "active"
        elif _ORDER[name] < pos:
            state = "done"
        else:
            state = "pending"
        out.append({"name": name, "label": lab, "state": state})
    return {"stage": stage, "label": label, "fraction": job.stage_fraction, "stages": out}


def job_links(job: Job) -> dict[str, str | None]:
    """URLs of the job (API record, page, result download, report page when written)."""
    done = job.status == "done"
    return {"api": f"/api/jobs/{job.id}", "page": f"/jobs/{job.id}",
            "result": f"/api/jobs/{job.id}/result" if done else None,
            "report": f"/jobs/{job.id}/report/{job.report_name}" if done and job.report_name else None}


def job_record(job: Job, queue_position: int | None, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API record of a job; ``result`` (the ``detect --json`` object) when given."""
    summary = None
    if job.status == "done":
        summary = {"status": job.result_status, "verdict": job.verdict, "p_fake": job.p_fake,
                   "reason": job.reason, "message": job.message}
    error = {"reason": job.reason, "message": job.message} if job.status == "failed" else None
    return {
        "id": job.id, "status": job.status, "name": job.name, "model": job.model, "size_bytes": job.size_bytes,
        "created_at": job.created_at, "updated_at": job.updated_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "attempts": job.attempts, "queue_position": queue_position,
        "progress": progress_view(job), "summary": summary, "error": error,
        "upload_deleted": bool(job.upload_deleted), "explain": job.explain, "result": result, "links": job_links(job),
    }

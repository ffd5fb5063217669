"""Response models of the HTTP API (pydantic): they define ``/openapi.json`` and check replies.

The records themselves are built in :mod:`forensight.serve.views`; ``result`` is the
``detect --json`` object (:meth:`forensight.result.DetectionResult.to_dict`), schema
``forensight-detect-v1``, kept as a free-form object here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ErrorOut", "HealthOut", "JobCreated", "JobDeleted", "JobList", "JobOut", "ModelList"]

JobStatus = Literal["queued", "running", "done", "failed"]


class StageOut(BaseModel):
    name: str
    label: str
    state: Literal["done", "active", "pending"]


class ProgressOut(BaseModel):
    stage: str = Field(description="current stage: queued, starting, analysing (decoding + faces + scoring), "
                                   "decoding, faces, scoring, report, done, failed")
    label: str
    fraction: float | None = Field(None, description="fraction 0..1 of the current stage, when known")
    stages: list[StageOut]


class SummaryOut(BaseModel):
    status: str | None = Field(description="the result's status: ok (scored) or failed (not scored, see reason)")
    verdict: str | None = Field(description="fake or real; null when not scored")
    p_fake: float | None
    reason: str
    message: str


class ErrorInfo(BaseModel):
    reason: str = Field(description="machine code, e.g. queue_full, too_large, unreadable, not_found")
    message: str


class ErrorOut(BaseModel):
    error: ErrorInfo


class LinksOut(BaseModel):
    api: str
    page: str
    result: str | None = Field(description="the JSON result as a download (when done)")
    report: str | None = Field(description="the HTML report page (when done)")


class JobOut(BaseModel):
    id: str
    status: JobStatus = Field(description="queued, running, done (a detect result exists: scored or not "
                                          "scored with a reason) or failed (no result: see error)")
    name: str = Field(description="the uploaded file's name, as text only")
    model: str
    size_bytes: int
    created_at: float = Field(description="Unix time, seconds")
    updated_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int = Field(description="times a worker started this job")
    queue_position: int | None = Field(description="1 = next to be scored; null unless queued")
    progress: ProgressOut
    summary: SummaryOut | None
    error: ErrorInfo | None
    upload_deleted: bool = Field(description="the uploaded video was deleted (retention)")
    explain: str = Field("", description="evidence maps asked for: '' none, 'top' most-attended frames, 'all'")
    result: dict[str, Any] | None = Field(description="when done: the same object as `forensight detect --json`")
    links: LinksOut


class JobCreated(BaseModel):
    id: str
    status: JobStatus
    name: str
    model: str
    links: LinksOut


class JobDeleted(BaseModel):
    id: str
    deleted: bool


class QueueOut(BaseModel):
    active: int = Field(description="jobs queued or running")
    bound: int = Field(description="most jobs queued or running at once; more uploads get HTTP 429")


class JobList(BaseModel):
    jobs: list[JobOut]
    counts: dict[str, int]
    queue: QueueOut


class ModelOut(BaseModel):
    id: str
    default: bool
    path: str
    name: str | None
    arch: str | None
    region: str | None
    pooling: str | None
    input_size: int | None
    val_auc: float | None
    clips: str | None
    preprocess_hash: str | None
    source: dict[str, str] | None = Field(None, description="where the weights come from when not trained here "
                                          "(kind 'published', name, file, sha256)")
    threshold_source: str | None = Field(None, description="how the decision threshold was set")
    threshold_calibrated: bool | None = Field(None, description="False: a documented default, not fitted on data "
                                              "like yours (forensight calibrate fits one)")
    warning: str | None = Field(None, description="the warning every verdict of this model carries, if any")


class ModelList(BaseModel):
    models: list[ModelOut]
    default: str | None
    hint: str | None = Field(description="how to get a model, when none is loaded")


class WorkersOut(BaseModel):
    configured: int
    alive: int
    ready: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    models: int
    workers: WorkersOut
    queue: QueueOut
    counts: dict[str, int]
    max_upload_bytes: int

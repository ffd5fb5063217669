"""The durable job table of ``forensight serve``: one SQLite file, shared by the web process and
the worker processes (standard-library ``sqlite3``, WAL journal, one short connection per call).

A job moves ``queued → running → done | failed`` (``DELETE`` removes it in any state):

- :meth:`JobStore.create` inserts a queued job only while fewer than ``queue_size`` jobs are
  queued or running, checked and inserted in one write transaction, so concurrent uploads
  can never exceed the bound (:class:`QueueFull` otherwise: HTTP 429).
- :meth:`JobStore.claim_next` hands the oldest queued job to one worker, in one transaction,
  with a fresh random ``claim`` token and ``attempts + 1``. Every later write by that worker
  (progress, finish, fail) names its claim, so a worker that lost its job (the job was
  deleted, or re-queued after a restart) changes nothing.
- :meth:`JobStore.recover` (server start) puts jobs left ``running`` by a crash back in the
  queue, or fails them once they were interrupted ``max_attempts`` times;
  :meth:`JobStore.release` does the same for the job of a worker process that died.

Times are Unix seconds (float). Job ids are 16 random hex digits, made by the caller.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forensight.io import LOW_SPACE_BYTES, DiskFullError, free_bytes

__all__ = ["DB_FILE", "Job", "JobStore", "QueueFull", "RecoveryReport", "new_job_id"]

DB_FILE = "forensight-serve.sqlite3"
SCHEMA_VERSION = "2"  # 2: jobs.explain (a v1 database is upgraded in place)
ACTIVE = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claim TEXT,
    worker_pid INTEGER,
    stage TEXT NOT NULL DEFAULT 'queued',
    stage_fraction REAL,
    result_status TEXT,
    verdict TEXT,
    p_fake REAL,
    reason TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    report_name TEXT,
    upload_deleted INTEGER NOT NULL DEFAULT 0,
    explain TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS workers (
    slot INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
"""


def new_job_id() -> str:
    """A fresh job id: 16 random hex digits (64 bits; ids are not guessable)."""
    return secrets.token_hex(8)


class QueueFull(RuntimeError):
    """The queue holds ``queue_size`` jobs already (HTTP 429)."""

    def __init__(self, active: int, bound: int) -> None:
        super().__init__(f"the queue is full: {active} jobs waiting or running (limit {bound}); "
                         "try again when some have finished")
        self.active = active
        self.bound = bound


@dataclass
class Job:
    """One row of the job table (see the module docstring for the states)."""

    seq: int
    id: str
    name: str
    model: str
    size_bytes: int
    status: str
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    claim: str | None
    worker_pid: int | None
    stage: str
    stage_fraction: float | None
    result_status: str | None
    verdict: str | None
    p_fake: float | None
    reason: str
    message: str
    report_name: str | None
    upload_deleted: int
    explain: str = ""  # evidence maps asked for: "" (none), "top", "all" (DetectConfig.explain)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def to_dict(self) -> dict[str, Any]:
        """All columns as a plain dict."""
        return asdict(self)


@dataclass
class RecoveryReport:
    """What :meth:`JobStore.recover` did at start: ids re-queued and ids failed."""

    requeued: list[str]
    failed: list[str]


class JobStore:
    """The job table in ``path`` (created with its schema when missing).

    Safe to use from several threads and processes at once: every call opens its own
    connection (``busy_timeout`` 30 s) and writes in ``BEGIN IMMEDIATE`` transactions.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._read() as db:
            db.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS); runs in its own transaction
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] == "1":  # v1 -> v2: the explain column, empty (no maps) for the old jobs
                db.execute("ALTER TABLE jobs ADD COLUMN explain TEXT NOT NULL DEFAULT ''")
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: job database schema {row[0]!r}, this version reads "
                                   f"{SCHEMA_VERSION!r}; use another --data-dir")

    # -- connections ----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    @contextmanager
    def _disk_full_is_named(self) -> Iterator[None]:
        """SQLite's view of a full disk ("database or disk is full", or "disk I/O error" when even the
        WAL's shared-memory file cannot be made) as :class:`forensight.io.DiskFullError`: nothing was
        written (the transaction rolled back)."""
        try:
            yield
        except sqlite3.OperationalError as e:
            text = str(e).lower()
            free = free_bytes(self.path.parent)
            if ("full" in text or "disk i/o" in text) and free is not None and free < LOW_SPACE_BYTES:
                raise DiskFullError("the job table", self.path, None, 0, free) from e
            raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on error."""
        with self._disk_full_is_named():
            db = self._connect()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                db.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._disk_full_is_named():
            db = self._connect()
            try:
                yield db
            finally:
                db.close()

    @staticmethod
    def _job(row: sqlite3.Row | None) -> Job | None:
        return Job(**dict(row)) if row is not None else None

    # -- the web process ------------------------------------------------------------------------
    def create(self, job_id: str, name: str, model: str, size_bytes: int, queue_size: int,
               explain: str = "") -> Job:
        """Queue a new job, or raise :class:`QueueFull` when ``queue_size`` jobs are active.
        ``explain``: evidence maps asked for ("", "top" or "all")."""
        now = time.time()
        with self._tx() as db:
            active = self._active(db)
            if active >= queue_size:
                raise QueueFull(active, queue_size)
            db.execute("INSERT INTO jobs (id, name, model, size_bytes, status, created_at, updated_at, explain) "
                       "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)", (job_id, name, model, int(size_bytes), now, now,
                                                                   explain))
            job = self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        assert job is not None
        return job

    @staticmethod
    def _active(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0])

    def active_count(self) -> int:
        """Jobs queued or running now."""
        with self._read() as db:
            return self._active(db)

    def counts(self) -> dict[str, int]:
        """Number of jobs per status (every status present, 0 when none)."""
        out = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        with self._read() as db:
            for status, n in db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
                out[status] = int(n)
        return out

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self._read() as db:
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, limit: int = 50) -> list[Job]:
        """The ``limit`` most recent jobs, newest first."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (int(limit),)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job a worker takes, 2 for the one after, ...; None unless queued."""
        if job.status != "queued":
            return None
        with self._read() as db:
            ahead = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < ?", (job.seq,)).fetchone()
        return int(ahead[0]) + 1

    def delete(self, job_id: str) -> Job | None:
        """Remove the job's row (its worker, if any, then finds its claim gone); returns the row."""
        with self._tx() as db:
            job = self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
            if job is not None:
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return job

    def uploads_to_purge(self, cutoff: float) -> list[Job]:
        """Finished jobs whose upload still exists and that finished before ``cutoff`` (Unix s)."""
        with self._read() as db:
            rows = db.execute("SELECT * FROM jobs WHERE status IN ('done', 'failed') AND upload_deleted = 0 "
                              "AND finished_at IS NOT NULL AND finished_at <= ?", (cutoff,)).fetchall()
        return [Job(**dict(r)) for r in rows]

    def mark_upload_deleted(self, job_id: str) -> None:
        """Record that the job's uploaded video was deleted (retention)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET upload_deleted = 1 WHERE id = ?", (job_id,))

    def fail_queued(self, job_id: str, reason: str, message: str) -> bool:
        """Fail a job that is still queued (e.g. its model is gone); False if it was not queued."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET status = 'failed', reason = ?, message = ?, stage = 'failed', "
                             "finished_at = ?, updated_at = ? WHERE id = ? AND status = 'queued'",
                             (reason, message, now, now, job_id))
        return cur.rowcount == 1

    # -- start-up and supervision ---------------------------------------------------------------
    def recover(self, max_attempts: int) -> RecoveryReport:
        """At server start: every job left ``running`` (the server or a worker was killed) goes back
        to the queue (its place by age kept), or fails with reason ``interrupted`` once it was
        started ``max_attempts`` times. Worker rows of the previous run are removed."""
        rep = RecoveryReport(requeued=[], failed=[])
        with self._tx() as db:
            for row in db.execute("SELECT id, attempts FROM jobs WHERE status = 'running'").fetchall():
                self._release_row(db, row["id"], int(row["attempts"]), max_attempts, "interrupted",
                                  "the server stopped during this job", rep)
            db.execute("DELETE FROM workers")
        return rep

    def release(self, worker_pid: int, max_attempts: int, reason: str, message: str,
                refund: bool = False) -> RecoveryReport:
        """The job(s) running on worker process ``worker_pid`` (which died or was stopped) go back to the
        queue, or fail with ``reason`` once started ``max_attempts`` times. ``refund``: the attempt
        does not count (an orderly shutdown)."""
        rep = RecoveryReport(requeued=[], failed=[])
        with self._tx() as db:
            rows = db.execute("SELECT id, attempts FROM jobs WHERE status = 'running' AND worker_pid = ?",
                              (int(worker_pid),)).fetchall()
            for row in rows:
                attempts = int(row["attempts"]) - (1 if refund else 0)
                if refund:
                    db.execute("UPDATE jobs SET attempts = ? WHERE id = ?", (attempts, row["id"]))
                self._release_row(db, row["id"], attempts, max_attempts, reason, message, rep)
        return rep

    @staticmethod
    def _release_row(db: sqlite3.Connection, job_id: str, attempts: int, max_attempts: int, reason: str,
                     message: str, rep: RecoveryReport) -> None:
        now = time.time()
        if attempts >= max_attempts:
            db.execute("UPDATE jobs SET status = 'failed', claim = NULL, worker_pid = NULL, stage = 'failed', "
                       "reason = ?, message = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                       (reason, f"{message} ({attempts} time(s)); not retried", now, now, job_id))
            rep.failed.append(job_id)
        else:
            db.execute("UPDATE jobs SET status = 'queued', claim = NULL, worker_pid = NULL, stage = 'queued', "
                       "stage_fraction = NULL, started_at = NULL, updated_at = ? WHERE id = ?", (now, job_id))
            rep.requeued.append(job_id)

    def set_worker(self, slot: int, pid: int, state: str, message: str = "") -> None:
        """Record worker ``slot``'s process id and state (``starting``, ``ready``, ``busy``, ``error``)."""
        with self._tx() as db:
            db.execute("INSERT INTO workers (slot, pid, state, updated_at, message) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (slot) DO UPDATE SET pid = excluded.pid, state = excluded.state, "
                       "updated_at = excluded.updated_at, message = excluded.message",
                       (int(slot), int(pid), state, time.time(), message))

    def workers(self) -> list[dict[str, Any]]:
        """Worker rows (slot, pid, state, updated_at, message)."""
        with self._read() as db:
            return [dict(r) for r in db.execute("SELECT * FROM workers ORDER BY slot").fetchall()]

    # -- the worker processes -------------------------------------------------------------------
    def claim_next(self, worker_pid: int) -> Job | None:
        """Take the oldest queued job for this worker (status ``running``, new claim, attempts + 1)."""
        now = time.time()
        claim = secrets.token_hex(8)
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', claim = ?, worker_pid = ?, attempts = attempts + 1, "
                       "stage = 'starting', stage_fraction = NULL, started_at = ?, updated_at = ? WHERE id = ?",
                       (claim, int(worker_pid), now, now, row["id"]))
            return self._job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def set_progress(self, job_id: str, claim: str, stage: str, fraction: float | None = None) -> bool:
        """Record the running job's stage (and fraction 0..1 of it); False when the claim is gone."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET stage = ?, stage_fraction = ?, updated_at = ? "
                             "WHERE id = ? AND claim = ? AND status = 'running'",
                             (stage, fraction, time.time(), job_id, claim))
        return cur.rowcount == 1

    def finish(self, job_id: str, claim: str, result_status: str, verdict: str | None, p_fake: float | None,
               reason: str, message: str, report_name: str | None) -> bool:
        """Mark the job done with its result summary; False (nothing changed) when the claim is gone."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'done', stage = 'done', stage_fraction = NULL, result_status = ?, "
                "verdict = ?, p_fake = ?, reason = ?, message = ?, report_name = ?, finished_at = ?, "
                "updated_at = ?, claim = NULL WHERE id = ? AND claim = ? AND status = 'running'",
                (result_status, verdict, p_fake, reason, message, report_name, now, now, job_id, claim))
        return cur.rowcount == 1

    def fail(self, job_id: str, claim: str, reason: str, message: str) -> bool:
        """Mark the running job failed (no result); False when the claim is gone."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET status = 'failed', stage = 'failed', reason = ?, message = ?, "
                             "finished_at = ?, updated_at = ?, claim = NULL "
                             "WHERE id = ? AND claim = ? AND status = 'running'",
                             (reason, message, now, now, job_id, claim))
        return cur.rowcount == 1

    def dump(self) -> str:
        """All jobs as JSON lines (for debugging and tests)."""
        with self._read() as db:
            return "\n".join(json.dumps(dict(r)) for r in db.execute("SELECT * FROM jobs ORDER BY seq"))

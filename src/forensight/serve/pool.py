"""Supervision of the scoring worker processes (in the server process).

:class:`WorkerPool` starts ``workers`` processes (``python -m forensight.serve.worker SPEC``: a
fresh interpreter that inherits no state from the web server and never re-imports the
caller's main script), and :meth:`WorkerPool.check`
(called about once a second by the server) notices a worker that died: its running job goes
back to the queue (or fails with ``worker_crashed`` after ``max_attempts`` starts) and a new
worker takes its slot, after a back-off of 1, 2, 4 ... 30 s when it keeps dying.
:meth:`WorkerPool.stop` ends the workers; their running jobs are re-queued without counting
the attempt, so an orderly restart costs nothing.

Workers must be started and restarted from the same long-lived thread (the server's event
loop): on Linux a worker is killed when the thread that started it ends (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from forensight.serve.store import JobStore
from forensight.serve.worker import WorkerSpec

__all__ = ["WorkerPool"]

log = logging.getLogger("forensight.serve.pool")

MAX_BACKOFF_S = 30.0


@dataclass
class _Slot:
    spec: WorkerSpec
    process: subprocess.Popen[bytes] | None = None
    crashes: int = 0
    restart_at: float = 0.0
    started_at: float = 0.0


class WorkerPool:
    """``len(specs)`` supervised worker processes sharing the job table ``store``."""

    def __init__(self, specs: list[WorkerSpec], store: JobStore, max_attempts: int) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self._slots = [_Slot(spec=s) for s in specs]
        self._stopping = False

    @property
    def size(self) -> int:
        return len(self._slots)

    def start(self) -> None:
        """Start every worker process."""
        for slot in self._slots:
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        p = subprocess.Popen([sys.executable, "-m", "forensight.serve.worker", slot.spec.to_json()],
                             stdin=subprocess.DEVNULL, close_fds=True)
        slot.process = p
        slot.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", slot.spec.slot, p.pid)

    def alive(self) -> int:
        """Worker processes running now."""
        return sum(s.process is not None and s.process.poll() is None for s in self._slots)

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [s.process.pid for s in self._slots if s.process is not None and s.process.poll() is None]

    def check(self) -> None:
        """Release the job of any worker that died and restart it (with back-off)."""
        if self._stopping:
            return
        now = time.monotonic()
        for slot in self._slots:
            p = slot.process
            if p is not None and p.poll() is not None:
                code = p.returncode
                rep = self.store.release(p.pid, self.max_attempts, "worker_crashed",
                                         f"the scoring process stopped while scoring (exit code {code})")
                log.error("worker %d (pid %s) died with exit code %s; re-queued %s, failed %s", slot.spec.slot,
                          p.pid, code, rep.requeued, rep.failed)
                slot.process = None
                if now - slot.started_at > 60.0:  # it had been working: start the back-off afresh
                    slot.crashes = 0
                slot.crashes += 1
                slot.restart_at = now + min(MAX_BACKOFF_S, 2.0 ** (slot.crashes - 1))
            if slot.process is None and now >= slot.restart_at:
                self._start(slot)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the workers (SIGTERM, then SIGKILL after ``timeout_s`` seconds); their running jobs
        return to the queue with the attempt refunded."""
        self._stopping = True
        procs = [s.process for s in self._slots if s.process is not None]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + timeout_s
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5.0)
        for p in procs:
            self.store.release(p.pid, self.max_attempts, "interrupted", "the server stopped during this job",
                               refund=True)
        for s in self._slots:
            s.process = None
        log.info("workers stopped (pid %d)", os.getpid())

"""A scoring worker process: takes queued jobs from the job table and scores them, one at a time.

:func:`worker_main` is the process entry point (``python -m forensight.serve.worker SPEC_JSON``,
started by :mod:`forensight.serve.pool`). It limits torch and OpenCV to ``torch_threads`` threads, loads the default
model (others on first use, then kept), marks itself ready, and loops: claim the oldest queued
job (:meth:`~forensight.serve.store.JobStore.claim_next`), score it with the one scoring path
(:meth:`forensight.detect.ForensightDetector.predict`), write the report
(:func:`forensight.html_report.write_video_report`, the page ``detect --report`` writes) and the
``detect --json`` record (:func:`forensight.io.atomic_write_json`), then mark the job done. The
result file is written before the job is marked done, so a done job always has its result; a
worker killed in between leaves the job ``running``, and it is scored again after a restart.

Progress: the worker reports ``starting``, then the detector's own stages through
``predict(..., progress=...)``: ``decoding``, ``faces`` (with the fraction of sampled frames
done) and ``scoring``, then ``report``.

A worker dies with the server: on Linux the kernel kills it when its parent exits
(``PR_SET_PDEATHSIG``), and a watchdog thread exits when the parent process id changes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forensight.serve.layout import DataDir
from forensight.serve.store import Job, JobStore

__all__ = ["JobRunner", "WorkerSpec", "worker_main"]

log = logging.getLogger("forensight.serve.worker")

#: Fewest seconds between two progress writes of the same stage.
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs (JSON on its command line: :meth:`to_json`, :meth:`from_json`).

    ``models`` maps model id → model file; ``default_model`` is loaded before the worker says it
    is ready; ``parent_pid`` is the server's process id (the worker exits when it is gone).
    """

    slot: int
    data_dir: str
    models: dict[str, str] = field(default_factory=dict)
    default_model: str | None = None
    torch_threads: int = 1
    device: str = "cpu"
    poll_s: float = 0.2
    parent_pid: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


def _die_with_parent(parent_pid: int) -> None:
    """Exit when the server process is gone (kill -9 included), never outlive it as an orphan."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            log.debug("prctl(PR_SET_PDEATHSIG) unavailable; relying on the watchdog")
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)  # the parent died before prctl took effect

    def watch() -> None:
        while True:
            if parent_pid and os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _limit_threads(n: int) -> None:
    """Give torch, its OpenMP pool and OpenCV ``n`` threads (before any of them starts work)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    import cv2
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    cv2.setNumThreads(n)


class JobRunner:
    """Scores claimed jobs: the loaded detectors (by model id) and the per-job steps."""

    def __init__(self, spec: WorkerSpec, store: JobStore, layout: DataDir) -> None:
        self.spec = spec
        self.store = store
        self.layout = layout
        self._detectors: dict[str, Any] = {}

    def detector(self, model_id: str) -> Any:
        """The loaded detector for ``model_id`` (loaded on first use); KeyError if not offered."""
        if model_id not in self._detectors:
            from forensight.detect import load_detector

            self._detectors[model_id] = load_detector(self.spec.models[model_id], device=self.spec.device)
        return self._detectors[model_id]

    def warm_up(self, model_id: str) -> None:
        """Load the model, the face detector and the report code now, so the first job is not slower:
        a blank in-memory clip goes through the detector (no face: nothing is scored)."""
        import numpy as np

        import forensight.html_report  # noqa: F401

        self.detector(model_id).predict_frames(np.zeros((16, 96, 96, 3), np.uint8), fps=25.0, name="warm-up")

    def run(self, job: Job) -> None:
        """Score one claimed job and record the outcome (never raises for a job's failure)."""
        from forensight.io import DiskFullError

        claim = job.claim or ""
        try:
            self._run(job, claim)
        except DiskFullError as e:  # no half job: the result and report of this attempt are removed
            log.error("job %s: %s", job.id, e)
            shutil.rmtree(self.layout.report_dir(job.id), ignore_errors=True)
            self.layout.result(job.id).unlink(missing_ok=True)
            self.store.fail(job.id, claim, "disk_full",
                            f"the server's disk is full: could not write {e.what} (" + (
                                f"it needs {e.needed_bytes / 2**20:.2f} MiB, " if e.needed_bytes is not None else "")
                            + f"{(e.free_bytes or 0) / 2**20:.2f} MiB free); upload the video again later")
        except Exception as e:
            log.exception("job %s failed", job.id)
            self.store.fail(job.id, claim, "error", f"internal error while scoring ({type(e).__name__}); "
                                                    "the server log has the details")

    def _run(self, job: Job, claim: str) -> None:
        from forensight.html_report import write_video_report
        from forensight.io import DiskFullError, atomic_write_json
        from forensight.modelfile import ModelFileError
        from forensight.report import to_jsonable

        if job.model not in self.spec.models:
            self.store.fail(job.id, claim, "model_unavailable",
                            f"the model {job.model!r} is not offered by this server any more")
            return
        try:
            det = self.detector(job.model)
        except ModelFileError as e:
            self.store.fail(job.id, claim, "model_error", f"the model {job.model!r} could not be loaded: {e}")
            return
        video = self.layout.video(job.id)
        if not video.is_file():
            self.store.fail(job.id, claim, "upload_missing", "the uploaded video is no longer on the server")
            return
        report = _ProgressReporter(self.store, job.id, claim)
        report("analysing", None, force=True)
        # scored by its path inside the data folder (the worker's working folder), so results and
        # reports say "jobs/<id>/video", not where the server keeps its files
        video = video.relative_to(self.layout.root) if Path.cwd() == self.layout.root else video
        res = det.predict(video, name=job.name, progress=report,  # live stages: decoding, faces, scoring
                          explain=job.explain or "")
        report("report", None, force=True)
        report_name = None
        try:
            report_name = write_video_report(res, self.layout.report_dir(job.id)).name
        except DiskFullError:
            raise
        except Exception:
            log.exception("job %s: no report page", job.id)
        res.drop_artifacts()
        atomic_write_json(self.layout.result(job.id), to_jsonable(res.to_dict()))
        message = res.message.replace(str(video), repr(job.name))
        done = self.store.finish(job.id, claim, res.status, res.verdict, res.p_fake, res.reason, message,
                                 report_name)
        if not done and self.store.get(job.id) is None:  # deleted while it was being scored
            self.layout.remove_job(job.id)


class _ProgressReporter:
    """Progress callback: writes the stage to the job table (a new stage at once, the same stage
    at most every :data:`PROGRESS_EVERY_S` seconds)."""

    def __init__(self, store: JobStore, job_id: str, claim: str) -> None:
        self.store = store
        self.job_id = job_id
        self.claim = claim
        self._stage: str | None = None
        self._last = 0.0

    def __call__(self, stage: str, fraction: float | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if force or stage != self._stage or now - self._last >= PROGRESS_EVERY_S:
            frac = None if fraction is None else min(1.0, max(0.0, float(fraction)))
            self.store.set_progress(self.job_id, self.claim, stage, frac)
            self._stage = stage
            self._last = now


def worker_main(spec: WorkerSpec) -> None:
    """Process entry point: serve jobs until the process is stopped (see the module docstring)."""
    _die_with_parent(spec.parent_pid)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {spec.slot} %(levelname)s %(message)s")
    layout = DataDir(spec.data_dir)
    os.chdir(layout.root)  # uploads are scored by their path inside the data folder
    store = JobStore(layout.db)
    pid = os.getpid()
    store.set_worker(spec.slot, pid, "starting")
    _limit_threads(spec.torch_threads)
    runner = JobRunner(spec, store, layout)
    state, message = "ready", ""
    if spec.default_model is not None:
        try:
            runner.detector(spec.default_model)
        except Exception as e:
            log.exception("could not load the model %s", spec.default_model)
            state, message = "error", f"{type(e).__name__}: {e}"
        else:
            try:
                runner.warm_up(spec.default_model)
            except Exception:
                log.warning("warm-up failed (the first job will be slower)", exc_info=True)
    store.set_worker(spec.slot, pid, state, message)
    while True:
        job = store.claim_next(pid)
        if job is None:
            time.sleep(spec.poll_s)
            continue
        store.set_worker(spec.slot, pid, "busy", job.id)
        t0 = time.perf_counter()
        runner.run(job)
        log.info("job %s finished in %.2f s", job.id, time.perf_counter() - t0)
        store.set_worker(spec.slot, pid, state, message)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m forensight.serve.worker SPEC_JSON (started by forensight serve)")
    worker_main(WorkerSpec.from_json(sys.argv[1]))

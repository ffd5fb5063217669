"""Where ``forensight serve`` keeps its files under ``--data-dir`` (no client text in any path).

```
DATA_DIR/
  forensight-serve.sqlite3      the job table (forensight.serve.store)
  serve.lock                    held by the running server: one server per data folder
  incoming/<random>.part        uploads being received (removed at start and when rejected)
  jobs/<job id>/video           the uploaded file (server-side name; deleted by retention)
  jobs/<job id>/result.json     the `detect --json` record
  jobs/<job id>/report/         the `detect --report` page and its files
```

Job ids are 16 hex digits made by the server; :meth:`DataDir.job_dir` refuses anything else.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO

from forensight.serve.config import ServeConfigError
from forensight.serve.store import DB_FILE

__all__ = ["JOB_ID_RE", "DataDir", "DataDirLock"]

JOB_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class DataDir:
    """The folder layout above, rooted at ``root`` (created by :meth:`create`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def create(self) -> DataDir:
        """Create the folders (mode 0o700: uploads are private) and return ``self``."""
        for d in (self.root, self.incoming, self.jobs):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def db(self) -> Path:
        return self.root / DB_FILE

    @property
    def lock(self) -> Path:
        return self.root / "serve.lock"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    def new_incoming(self) -> Path:
        """A fresh, unused server-side path for an upload being received."""
        return self.incoming / f"{secrets.token_hex(12)}.part"

    def job_dir(self, job_id: str) -> Path:
        """``jobs/<job_id>``; ValueError for anything but a server-made id."""
        if not JOB_ID_RE.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs / job_id

    def video(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "video"

    def result(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "result.json"

    def report_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "report"

    def remove_job(self, job_id: str) -> None:
        """Delete the job's folder (upload, result, report) if it exists."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def clean_incoming(self) -> int:
        """Remove uploads left half-received by a previous run; returns how many."""
        n = 0
        for p in self.incoming.glob("*.part"):
            p.unlink(missing_ok=True)
            n += 1
        return n


class DataDirLock:
    """An exclusive ``flock`` on ``DATA_DIR/serve.lock`` held while a server uses the folder.

    The kernel drops it when the process ends, however it ends (kill -9 included), so a
    crashed server never blocks the next start.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock or raise :class:`ServeConfigError` naming the process that holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open while serving
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise ServeConfigError(f"another forensight serve (pid {holder}) is using {self.path.parent}; "
                                   "stop it or pass another --data-dir") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

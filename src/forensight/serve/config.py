"""Settings of ``forensight serve`` (torch-free): one typed, validated dataclass.

:class:`ServeConfig` holds what the command line sets; :meth:`ServeConfig.validate` refuses
unsafe or impossible combinations with a message saying what to do (a non-loopback ``host``
without a ``token``, a queue bound below 1, ...). Paths are not touched here.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MIN_TOKEN_LENGTH", "ServeConfig", "ServeConfigError", "is_loopback"]

#: Shortest accepted ``--token`` (characters); a token guards every request on the network.
MIN_TOKEN_LENGTH = 16


class ServeConfigError(ValueError):
    """The serve settings cannot be used as given (the message says why and what to do)."""


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on this machine: ``localhost`` or a loopback IP (127.0.0.0/8, ::1)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@dataclass
class ServeConfig:
    """What ``forensight serve`` runs with.

    Attributes:
        models: model files or run directories (``--model``, repeatable); empty = the app starts
            and explains how to get one (``forensight demo``).
        host: interface to bind; loopback by default. Any other needs ``token``.
        port: TCP port.
        data_dir: the job database, uploads, results and reports live here (created).
        workers: scoring worker processes (each scores one video at a time). 0 = none
            (jobs wait in the queue; for tests of the web layer only).
        threads_per_worker: torch / OpenCV threads per worker; None = CPU cores / ``workers``.
        max_upload_mb: largest accepted upload in MiB (2**20 bytes), enforced while receiving.
        queue_size: most jobs waiting or running at once; more uploads get HTTP 429.
        retention_days: uploaded videos of finished jobs are deleted this many days after
            they finished (results and reports are kept until the job is deleted); 0 = at once.
        token: shared secret every request must carry (``Authorization: Bearer``, the
            ``X-Forensight-Token`` header, or once as ``?token=`` in a browser, then a cookie).
        max_attempts: a job interrupted (server killed, worker crashed) this many times is failed.
        poll_s: how often an idle worker looks for a queued job, in seconds.
        device: torch device for scoring ("cpu" by default: the web app is meant for one machine).
    """

    models: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("forensight_serve")
    workers: int = 1
    threads_per_worker: int | None = None
    max_upload_mb: float = 500.0
    queue_size: int = 50
    retention_days: float = 7.0
    token: str | None = None
    max_attempts: int = 3
    poll_s: float = 0.2
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.models = [str(m) for m in self.models]
        if self.token is not None and self.token == "":
            self.token = None

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 2**20)

    @property
    def torch_threads(self) -> int:
        """Threads each worker gives torch and OpenCV."""
        return self.threads_per_worker or _default_threads(self.workers)

    def validate(self) -> ServeConfig:
        """Raise :class:`ServeConfigError` for unsafe or impossible settings; returns ``self``."""
        if not is_loopback(self.host) and not self.token:
            raise ServeConfigError(
                f"refusing to listen on {self.host!r} without --token: anyone who can reach this machine could "
                "upload videos and read results. Pass --token (e.g. the output of "
                "`python -c \"import secrets; print(secrets.token_urlsafe(24))\"`) or bind to 127.0.0.1")
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ServeConfigError(f"--token must have at least {MIN_TOKEN_LENGTH} characters "
                                   f"(got {len(self.token)})")
        if not 0 <= self.port <= 65535:
            raise ServeConfigError(f"--port must be 0..65535, got {self.port}")
        if self.workers < 0:
            raise ServeConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ServeConfigError(f"--threads-per-worker must be >= 1, got {self.threads_per_worker}")
        if not self.max_upload_mb > 0:
            raise ServeConfigError(f"--max-upload-mb must be > 0, got {self.max_upload_mb}")
        if self.queue_size < 1:
            raise ServeConfigError(f"--queue-size must be >= 1, got {self.queue_size}")
        if self.retention_days < 0:
            raise ServeConfigError(f"--retention-days must be >= 0, got {self.retention_days}")
        if self.max_attempts < 1:
            raise ServeConfigError(f"max_attempts must be >= 1, got {self.max_attempts}")
        return self

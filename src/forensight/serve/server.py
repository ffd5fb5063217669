"""Running ``forensight serve``: check the settings and models, lock the data folder, start uvicorn.

:func:`serve` is what the command line calls. Everything that can be wrong is checked before
the server listens: the settings (:meth:`ServeConfig.validate`: no non-loopback address without
a token), every model file (:func:`forensight.serve.models.load_models`) and the data folder's
lock (:class:`DataDirLock`: one server per data folder, since a second one would re-queue the
first one's running jobs as "interrupted"). Errors are :class:`ServeConfigError` /
``ModelFileError`` with a readable message; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import logging

from forensight.serve.config import ServeConfig, ServeConfigError, is_loopback
from forensight.serve.layout import DataDirLock  # re-exported: it lives with the data folder's layout

__all__ = ["DataDirLock", "serve"]

log = logging.getLogger("forensight.serve")


def serve(cfg: ServeConfig, log_level: str = "info") -> None:
    """Check everything (see the module docstring), then serve until interrupted (Ctrl-C)."""
    import uvicorn

    from forensight.serve.app import create_app
    from forensight.serve.layout import DataDir
    from forensight.serve.models import NO_MODEL_HINT, load_models

    cfg.validate()
    if cfg.workers < 1:
        raise ServeConfigError(f"--workers must be >= 1, got {cfg.workers}")
    models = load_models(cfg.models)
    layout = DataDir(cfg.data_dir).create()
    lock = DataDirLock(layout.lock).acquire()
    try:
        app = create_app(cfg, models=models, lock=lock)
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        print(f"forensight serve: http://{host}:{cfg.port}/  (data in {layout.root}; "
              f"{len(models)} model(s), {cfg.workers} worker(s))", flush=True)
        if not models:
            print(f"forensight serve: {NO_MODEL_HINT}", flush=True)
        if cfg.token:
            print("forensight serve: a token is required: open the page once as "
                  f"http://{host}:{cfg.port}/?token=TOKEN, or send 'Authorization: Bearer TOKEN'", flush=True)
        if not is_loopback(cfg.host):
            print(f"forensight serve: listening on {cfg.host}: reachable from other machines", flush=True)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=log_level, access_log=False,
                    timeout_graceful_shutdown=10)
    finally:
        lock.release()

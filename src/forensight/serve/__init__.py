"""``forensight serve``: a local web app and HTTP API over the one scoring path.

A newsroom runs it on one machine; people upload videos in a browser and read the same report
``forensight detect --report`` writes; other tools use the JSON API (``/openapi.json``).

Modules (one concern each): :mod:`~forensight.serve.config` (settings), :mod:`~.store` (the
SQLite job table), :mod:`~.layout` (files under ``--data-dir``), :mod:`~.uploads` (streamed,
size-limited uploads; type decided by the video reader), :mod:`~.models` (the offered models),
:mod:`~.worker` (a scoring process), :mod:`~.pool` (their supervision), :mod:`~.security`
(host, origin and token checks, headers), :mod:`~.views` / :mod:`~.schemas` (what the API
returns), :mod:`~.app` (routes and pages), :mod:`~.server` (checks, lock, uvicorn).

Usage::

    from forensight.serve import ServeConfig, serve
    serve(ServeConfig(models=["runs/mouth_attention"], port=8000, workers=2))
"""

from __future__ import annotations

from typing import Any

from forensight.serve.config import ServeConfig, ServeConfigError, is_loopback

__all__ = ["ServeConfig", "ServeConfigError", "create_app", "is_loopback", "serve"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The ASGI app (:func:`forensight.serve.app.create_app`)."""
    from forensight.serve.app import create_app as _create

    return _create(*args, **kwargs)


def serve(*args: Any, **kwargs: Any) -> None:
    """Check, lock and run the server (:func:`forensight.serve.server.serve`)."""
    from forensight.serve.server import serve as _serve

    _serve(*args, **kwargs)

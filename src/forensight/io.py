"""Atomic file writes: the one place the package writes a file so that it is all there or not at all.

Every result, cache, report and model file goes through :func:`atomic_write`: the content is
written to a unique temporary file in the destination's folder (``.<name>.<random>.tmp``),
flushed to disk with ``fsync`` and moved onto the destination with ``os.replace``, which is atomic
on POSIX and Windows. A reader therefore sees either the previous file or the complete new one,
never a half-written file; if writing fails or is interrupted (any exception, KeyboardInterrupt
included) the temporary file is removed and the previous file is left untouched.

Permissions: the temporary file is created with mode ``0o666`` filtered by the process umask (the
kernel applies it, as for ``open(path, "w")``), so written files are shared like any other file
and not private ``0o600`` as ``tempfile.mkstemp`` would make them. ``mode`` sets explicit bits.

Missing parent folders are not created here; callers that promise that create them.
This module uses the standard library only (no numpy, no torch).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_dir", "atomic_write_json", "atomic_write_text"]

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_ATTEMPTS = 100


def _create_temp(path: Path) -> Path:
    """Create a new empty file next to ``path`` (mode ``0o666 & ~umask``) and return its path."""
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, _OPEN_FLAGS, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no unused temporary file name next to {path} after {_ATTEMPTS} attempts")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, writer: Callable[[Path], None], mode: int | None = None) -> Path:
    """Write ``path`` atomically: ``writer(tmp)`` fills a temporary file that then replaces ``path``.

    Args:
        path: destination file; its folder must exist. A previous file there is replaced.
        writer: called once with the temporary file's path (an existing empty file in the same
            folder); it writes the whole content there, e.g. ``lambda p: torch.save(obj, p)``.
        mode: permission bits of the final file (e.g. ``0o600``); None gives ``0o666 & ~umask``.

    Returns:
        ``path`` as a ``Path``.

    On any exception from ``writer``, ``fsync`` or the rename (KeyboardInterrupt too) the temporary
    file is removed, the previous ``path`` is left as it was, and the exception propagates.
    """
    path = Path(path)
    tmp = _create_temp(path)
    try:
        writer(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically in ``encoding``, newlines as given (no translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` to ``path`` atomically as strict JSON (UTF-8, ``indent``, trailing newline).

    ``obj`` must already be JSON types. NaN or infinity raises ``ValueError`` and a type JSON cannot
    hold raises ``TypeError``, both before any file is created.
    """
    text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def atomic_write_dir(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Create the folder ``path`` atomically: ``writer(tmp)`` fills a new temporary folder next to it
    (``.<name>.<random>.tmpdir``), which is then renamed to ``path``.

    ``path`` must not exist (or be an empty folder): a folder is never overwritten
    (``FileExistsError`` before anything is written). Its parent is created. On any exception the
    temporary folder is removed and ``path`` is left as it was. Files inside are written by
    ``writer`` (with the functions above or plain writes: the folder appears whole or not at all).
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} already exists and is not an empty folder; it is never overwritten "
                              "(choose a new folder)")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmpdir")
        try:
            tmp.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no unused temporary folder name next to {path} after {_ATTEMPTS} attempts")
    try:
        writer(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                _fsync(f)
        if path.is_dir():
            path.rmdir()  # empty (checked above); fails loudly if something appeared meanwhile
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path

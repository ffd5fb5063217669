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

A full disk. A write that fails on a full file system (``ENOSPC``, a quota's ``EDQUOT``, or any
write error while the file system has less than :data:`LOW_SPACE_BYTES` left: ``np.save`` and
``torch.save`` report a short write without an errno) raises :class:`DiskFullError`, an ``OSError``
whose message says what was being written, where, how much room it needed and how much is free;
nothing half-written is left behind. :func:`guard_disk_full` gives writes that do not go through
:func:`atomic_write` (a cache entry's folder, an upload's stream) the same error.

Missing parent folders are not created here; callers that promise that create them.
This module uses the standard library only (no numpy, no torch).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["DISK_FULL_ERRNOS", "LOW_SPACE_BYTES", "DiskFullError", "atomic_write", "atomic_write_bytes", "atomic_write_dir", "atomic_write_json", "atomic_write_text",
           "free_bytes", "guard_disk_full", "is_disk_full"]

#: errno values that mean "no room": a full file system, an exceeded disk quota.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: A write error on a file system with less free space than this (bytes) is a full disk.
LOW_SPACE_BYTES = 1 << 20


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def free_bytes(path: str | Path) -> int | None:
    """Bytes an unprivileged user may still write on the file system holding ``path`` (or its
    nearest existing parent), or None if it cannot be asked."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


class DiskFullError(OSError):
    """A write met a full disk (``errno`` = ENOSPC); nothing half-written was kept.

    Attributes:
        what: what was being written ("cache entry for <id>", "model file", ...).
        path: the destination.
        needed_bytes: the room the write needs, when known (else None).
        written_bytes: how far the write got before the disk was full (a lower bound of the need).
        free_bytes: free space on the destination's file system after cleaning up (None: unknown).
    """

    def __init__(self, what: str, path: str | Path, needed_bytes: int | None = None, written_bytes: int = 0,
                 free_bytes: int | None = None) -> None:
        self.what, self.path = what, Path(path)
        self.needed_bytes, self.written_bytes, self.free_bytes = needed_bytes, int(written_bytes), free_bytes
        if needed_bytes is not None:
            need = f"it needs {_fmt_bytes(needed_bytes)}"
        elif written_bytes:
            need = f"it needs more than {_fmt_bytes(written_bytes)} (the write stopped there)"
        else:
            need = "its size is unknown"
        free = "unknown free space" if free_bytes is None else f"{_fmt_bytes(free_bytes)} free"
        todo = "Free space"
        if needed_bytes is not None and free_bytes is not None and needed_bytes > free_bytes:
            todo = f"Free at least {_fmt_bytes(needed_bytes - free_bytes)} more"
        super().__init__(errno.ENOSPC, f"disk full: could not write {what} {self.path}: {need}, {free} on its "
                                       f"file system; nothing half-written was kept. {todo} and run again "
                                       "(finished work is kept)")

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (type(self), (self.what, str(self.path), self.needed_bytes, self.written_bytes, self.free_bytes))


def is_disk_full(exc: BaseException, where: str | Path) -> bool:
    """Whether ``exc``, raised while writing under ``where``, means the disk (or quota) is full:
    a :class:`DiskFullError`, an ``OSError`` with ENOSPC / EDQUOT, or a write error (``OSError`` or
    ``RuntimeError``, as ``np.save`` / ``torch.save`` raise) while less than
    :data:`LOW_SPACE_BYTES` is free there."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, (FileNotFoundError, PermissionError)):
        free = free_bytes(where)
        return free is not None and free < LOW_SPACE_BYTES
    return False


@contextmanager
def guard_disk_full(path: str | Path, what: str, needed_bytes: int | None = None,
                    cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn a full disk met by the writes in the ``with`` block into :class:`DiskFullError`.

    ``path``: the destination (its file system is asked for free space); ``what``: what is being
    written; ``needed_bytes``: its size if known; ``cleanup``: removes the partial output before
    free space is measured (the caller's own ``except`` clauses still run afterwards).
    """
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e, path):
            raise
        if cleanup is not None:
            cleanup()
        raise DiskFullError(what, path, needed_bytes, 0, free_bytes(path)) from e

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


def atomic_write(path: str | Path, writer: Callable[[Path], None], mode: int | None = None, *,
                 what: str = "file", size_hint: int | None = None) -> Path:
    """Write ``path`` atomically: ``writer(tmp)`` fills a temporary file that then replaces ``path``.

    Args:
        path: destination file; its folder must exist. A previous file there is replaced.
        writer: called once with the temporary file's path (an existing empty file in the same
            folder); it writes the whole content there, e.g. ``lambda p: torch.save(obj, p)``.
        mode: permission bits of the final file (e.g. ``0o600``); None gives ``0o666 & ~umask``.
        what: what is written, for the message of a full disk ("model file", "feature file", ...).
        size_hint: the content's size in bytes if known (a full disk's message then says it).

    Returns:
        ``path`` as a ``Path``.

    On any exception from ``writer``, ``fsync`` or the rename (KeyboardInterrupt too) the temporary
    file is removed, the previous ``path`` is left as it was, and the exception propagates; on a
    full disk (see :func:`is_disk_full`) it is a :class:`DiskFullError` saying what, where, how much.
    """
    path = Path(path)
    try:
        tmp = _create_temp(path)
    except OSError as e:
        if is_disk_full(e, path.parent):
            raise DiskFullError(what, path, size_hint, 0, free_bytes(path.parent)) from e
        raise
    try:
        writer(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        full = isinstance(e, Exception) and is_disk_full(e, path.parent)
        try:
            written = tmp.stat().st_size if full else 0
        except OSError:
            written = 0
        tmp.unlink(missing_ok=True)
        if full and not isinstance(e, DiskFullError):
            raise DiskFullError(what, path, size_hint, written, free_bytes(path.parent)) from e
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, what: str = "file") -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    return atomic_write(path, lambda p: p.write_bytes(data), what=what, size_hint=len(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8", what: str = "file") -> Path:
    """Write ``text`` to ``path`` atomically in ``encoding``, newlines as given (no translation)."""
    return atomic_write_bytes(path, text.encode(encoding), what=what)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2, what: str = "file") -> Path:
    """Write ``obj`` to ``path`` atomically as strict JSON (UTF-8, ``indent``, trailing newline).

    ``obj`` must already be JSON types. NaN or infinity raises ``ValueError`` and a type JSON cannot
    hold raises ``TypeError``, both before any file is created.
    """
    text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"
    return atomic_write_text(path, text, what=what)


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
        with guard_disk_full(path, f"folder {path.name}", cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)):
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

"""Receiving uploads: multipart bodies streamed to server-named files, with the size limit
enforced while the bytes arrive, and the file type decided by the video reader.

:func:`receive_upload` feeds the request body, chunk by chunk as it arrives, to the streaming
multipart parser of ``python-multipart`` (the parser Starlette itself uses) and writes each
file part straight to a fresh file from :meth:`forensight.serve.layout.DataDir.new_incoming`.
The limit is checked per chunk, so an oversized upload is refused (HTTP 413) after at most
``limit + one chunk`` bytes, never buffered whole; a declared ``Content-Length`` above the limit
is refused before any byte is read. The client's file name is kept as display text only
(control characters removed, 255 characters at most) and never reaches a path.

:func:`check_video` decides whether a received file is a video by opening it with
:func:`forensight.video.probe` (PyAV/FFmpeg reading the content) and
:func:`forensight.preprocess.still_image_error`; the extension and the client's content type
are ignored. A failure is an :class:`UploadError` (HTTP 415) with the reader's reason code.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from forensight.io import free_bytes, is_disk_full

__all__ = ["ReceivedFile", "ReceivedForm", "UploadError", "check_video", "display_name", "receive_upload"]

#: Room allowed above the file limits for multipart boundaries, part headers and small fields.
ENVELOPE_BYTES = 64 * 1024
#: Longest accepted value of a text field (``model``), in bytes.
MAX_FIELD_BYTES = 1024
MAX_NAME_CHARS = 255


class UploadError(Exception):
    """An upload refused: HTTP ``status``, machine ``reason``, readable ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class ReceivedFile:
    """A file part written to ``path`` (server-side name); ``name`` is the client's name (text only)."""

    path: Path
    name: str
    size: int = 0
    chosen: bool = True  # False for the empty part a browser sends when no file was chosen


@dataclass
class ReceivedForm:
    """The file parts (field ``file``) and the text fields of one multipart body."""

    files: list[ReceivedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete every received file that is still in the incoming folder."""
        for f in self.files:
            f.path.unlink(missing_ok=True)


def display_name(raw: bytes | str) -> str:
    """The client's file name as safe display text: decoded (UTF-8, bad bytes replaced), control
    and format characters dropped, trimmed to 255 characters; "upload" when nothing is left.
    Markup and ``../`` stay as they are: they are text, escaped wherever they are shown."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()
    return text[:MAX_NAME_CHARS] or "upload"


class _Receiver:
    """Multipart parser callbacks writing file parts to disk (see :func:`receive_upload`)."""

    def __init__(self, new_path: Callable[[], Path], max_file_bytes: int, max_files: int) -> None:
        self.new_path = new_path
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.form = ReceivedForm()
        self.ended = False
        self._headers: dict[str, str] = {}
        self._hfield = bytearray()
        self._hvalue = bytearray()
        self._file: IO[bytes] | None = None
        self._current: ReceivedFile | None = None
        self._field_name: str | None = None
        self._field_value = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_end": self.end}

    def part_begin(self) -> None:
        self._headers = {}
        self._current = None
        self._field_name = None
        self._field_value = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._hfield += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def header_end(self) -> None:
        self._headers[self._hfield.decode("latin-1").strip().lower()] = self._hvalue.decode("latin-1")
        self._hfield = bytearray()
        self._hvalue = bytearray()

    def headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition != b"form-data" or b"name" not in params:
            raise UploadError(400, "bad_multipart", "a part of the upload has no form-data name")
        name = params[b"name"].decode("utf-8", "replace")
        if b"filename" in params:
            if name != "file":
                raise UploadError(400, "bad_field", f"files go in the field 'file', not {display_name(name)!r}")
            if len(self.form.files) >= self.max_files:
                raise UploadError(400, "too_many_files",
                                  f"at most {self.max_files} file(s) per request; send one request per video")
            path = self.new_path()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            self._file = os.fdopen(fd, "wb")
            raw = params[b"filename"]
            self._current = ReceivedFile(path=path, name=display_name(raw), chosen=bool(raw))
            self.form.files.append(self._current)
        else:
            self._field_name = name

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None and self._file is not None:
            self._current.size += end - start
            if self._current.size > self.max_file_bytes:
                raise UploadError(413, "too_large", f"the upload is larger than the limit of "
                                                    f"{self.max_file_bytes / 2**20:g} MiB")
            self._file.write(data[start:end])
        elif self._field_name is not None:
            self._field_value += data[start:end]
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise UploadError(400, "bad_field", f"the field {display_name(self._field_name)!r} is too long")

    def part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._field_name is not None:
            self.form.fields[self._field_name] = self._field_value.decode("utf-8", "replace")
        self._current = None
        self._field_name = None

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_upload(request: Request, new_path: Callable[[], Path], max_file_bytes: int,
                         max_files: int = 1) -> ReceivedForm:
    """Stream a ``multipart/form-data`` body to disk (see the module docstring).

    Args:
        request: the incoming request (its body is read here, once).
        new_path: gives a fresh server-side path for each file part.
        max_file_bytes: largest accepted file part, in bytes.
        max_files: most file parts (field ``file``) accepted.

    Returns:
        The files (empty-named parts, which browsers send when no file was chosen, dropped)
        and text fields. Raises :class:`UploadError` (400, 413, 415; 507 ``disk_full`` when the
        server's disk fills during the upload) after deleting what it wrote.
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, "not_multipart", "send the video as multipart/form-data with the field 'file'")
    hard_limit = max_files * max_file_bytes + ENVELOPE_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > hard_limit:
        raise UploadError(413, "too_large", f"the upload ({int(declared) / 2**20:.1f} MiB) is larger than "
                                            f"the limit of {max_file_bytes / 2**20:g} MiB")
    rx = _Receiver(new_path, max_file_bytes, max_files)
    parser = MultipartParser(params[b"boundary"], rx.callbacks())
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > hard_limit:
                raise UploadError(413, "too_large", f"the upload is larger than the limit of "
                                                    f"{max_file_bytes / 2**20:g} MiB")
            parser.write(chunk)
        parser.finalize()
        if not rx.ended:
            raise UploadError(400, "incomplete_upload", "the upload ended before its last part")
    except UploadError:
        rx.close()
        rx.form.discard()
        raise
    except ClientDisconnect:
        rx.close()
        rx.form.discard()
        raise UploadError(400, "incomplete_upload", "the client disconnected during the upload") from None
    except OSError as e:
        rx.close()
        received = sum(f.size for f in rx.form.files)
        where = rx.form.files[-1].path.parent if rx.form.files else None
        rx.form.discard()
        if where is None or not is_disk_full(e, where):
            raise
        need = int(declared) if declared is not None and declared.isdigit() else None
        free = free_bytes(where)
        size = (f"it needs about {need / 2**20:.1f} MiB" if need is not None
                else f"it needs more than the {received / 2**20:.1f} MiB received")
        raise UploadError(507, "disk_full", f"the server's disk is full: the upload could not be stored ({size}; "
                                            f"{(free or 0) / 2**20:.1f} MiB free); nothing was kept, no job was "
                                            "created: try again later") from None
    except Exception as e:  # noqa: BLE001 - the multipart parser's own errors: a malformed body
        rx.close()
        rx.form.discard()
        raise UploadError(400, "bad_multipart", f"the upload is not valid multipart/form-data "
                                                f"({type(e).__name__})") from None
    rx.close()
    kept = []
    for f in rx.form.files:
        if f.size == 0 and not f.chosen:
            f.path.unlink(missing_ok=True)
        else:
            kept.append(f)
    rx.form.files = kept
    return rx.form


def check_video(path: Path, name: str) -> dict[str, Any]:
    """Open ``path`` with the video reader; returns its metadata (width, height, fps, num_frames,
    duration_s, rotation, codec) or raises :class:`UploadError` 415 with the reader's reason
    (``empty_file``, ``unreadable``, ``no_video_stream``, ``too_short``, ``not_a_video``). Messages
    name the upload by ``name``, never by its server path."""
    import dataclasses

    from forensight.preprocess import still_image_error
    from forensight.records import PreprocessError
    from forensight.video import probe

    def clean(msg: str) -> str:
        return msg.replace(str(path), name)

    try:
        info = probe(path)
    except PreprocessError as e:
        raise UploadError(415, e.reason, clean(e.message)) from None
    except Exception as e:  # noqa: BLE001 - any reader failure means: not a video we can read
        raise UploadError(415, "unreadable", f"not a readable video ({type(e).__name__})") from None
    still = still_image_error(path, info)
    if still is not None:
        raise UploadError(415, still.reason, clean(still.message))
    return dataclasses.asdict(info)

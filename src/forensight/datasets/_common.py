"""Helpers shared by the dataset layout readers (paths, video listing, split filtering)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forensight.records import SPLITS, VIDEO_EXTENSIONS, VideoRecord

_SPLIT_SYNONYMS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
    "": "",
}


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise FileNotFoundError naming it and ``what``."""
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise FileNotFoundError(f"{what}: expected a directory at {path}, found {found}")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise FileNotFoundError naming it and ``what``."""
    if not path.is_file():
        found = "a directory" if path.exists() else "nothing"
        raise FileNotFoundError(f"{what}: expected a file at {path}, found {found}")
    return path


def is_video(path: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> bool:
    """True for a regular, non-hidden file whose suffix (case-insensitive) is in ``extensions``."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in tuple(extensions)


def is_video_candidate(path: Path, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> bool:
    """True for a non-hidden path whose suffix (case-insensitive) is in ``extensions``, WHATEVER it is.

    A directory named ``x.mp4``, a dangling symbolic link or a named pipe is a candidate too: the
    readers keep it as a record so that preprocessing reports what it is (``not_regular_file``,
    ``dangling_link``) instead of it vanishing without a word.
    """
    return not path.name.startswith(".") and path.suffix.lower() in tuple(e.lower() for e in extensions)


def list_videos(folder: Path, recursive: bool = False,
                extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Every video candidate in ``folder`` (see ``is_video_candidate``), sorted by path.

    Hidden files and folders are skipped, symbolic links to folders are not followed (the link
    itself is a candidate if its name has a video suffix), and folders are searched inside even
    when their own name has a video suffix. Non-regular candidates are kept, not dropped.
    """
    exts = tuple(e.lower() for e in extensions)
    it = folder.rglob("*") if recursive else folder.iterdir()
    out = []
    for p in it:
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if is_video_candidate(p, exts):
            out.append(p)
    return sorted(out)


def expand_inputs(paths: Iterable[str | Path],
                  extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[tuple[Path, str]]:
    """Input files and folders → ``(path, display name)`` per video, in a stable order (``detect``).

    Folders are searched recursively (symlinked folders are not followed; hidden entries are
    skipped) for files with a video extension; names are relative to the folder. A file given
    explicitly is kept whatever its extension (and whether or not it exists: scoring reports
    why it failed). An empty folder is kept as itself, so the batch can say nothing was in it.
    Duplicates (same resolved path) are kept once.
    """
    exts = {e.lower() for e in extensions}
    out: list[tuple[Path, str]] = []
    seen: set[str] = set()

    def add(p: Path, name: str) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append((p, name))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / f for f in sorted(files)
                             if not f.startswith(".") and Path(f).suffix.lower() in exts)
            if not found:
                add(p, p.name or str(p))
            for f in sorted(found, key=lambda q: q.relative_to(p).as_posix()):
                add(f, f.relative_to(p).as_posix())
        else:
            add(p, p.name or str(p))
    return out


def name_from_relpath(rel: Path) -> str:
    """A video name from its path relative to a layout folder: no extension, ``/`` → ``__``."""
    parts = list(rel.parent.parts) + [rel.stem]
    return "__".join(p for p in parts if p not in ("", "."))


def normalise_split(value: str, where: str) -> str:
    """Map a split spelling (train/val/validation/test/...; case-insensitive) to ``SPLITS`` or ""."""
    key = str(value).strip().lower()
    if key not in _SPLIT_SYNONYMS:
        raise ValueError(f"{where}: unknown split {value!r}; expected one of {list(SPLITS)} (or empty)")
    return _SPLIT_SYNONYMS[key]


def keep_split(records: list[VideoRecord], include_unsplit: bool) -> list[VideoRecord]:
    """Drop records whose split is "" unless ``include_unsplit``."""
    return records if include_unsplit else [r for r in records if r.split]


def check_unique_ids(records: Iterable[VideoRecord], where: str) -> None:
    """Raise ValueError if two records share a qualified id (naming the first clashes)."""
    seen: dict[str, Path] = {}
    clashes: list[str] = []
    for r in records:
        vid = r.video_id
        if vid in seen:
            clashes.append(f"{vid} ({seen[vid]} and {r.path})")
        else:
            seen[vid] = r.path
    if clashes:
        raise ValueError(f"{where}: {len(clashes)} duplicate video id(s), e.g. " + "; ".join(clashes[:3]))


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; a ValueError names the file when it is not valid JSON."""
    try:
        return json.loads(require_file(path, what).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: {path} is not valid JSON ({e})") from e


def dataset_name(root: Path, default: str) -> str:
    """The ``name`` in ``root/dataset.json`` if that file exists (e.g. "synthetic"), else ``default``."""
    meta = root / "dataset.json"
    if meta.is_file():
        data = read_json(meta, "dataset description")
        name = data.get("name") if isinstance(data, dict) else None
        if name:
            return str(name)
    return default


def missing_message(what: str, missing: list[str], total: int, hint: str) -> str:
    """A one-line message naming how many listed items are missing and the first few of them."""
    first = ", ".join(missing[:5])
    more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
    return f"{len(missing)} of {total} {what} are missing: {first}{more}; {hint}"

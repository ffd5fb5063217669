"""CSV manifest reader: one video per row.

Columns (header required, order free, names case-insensitive):

* ``path`` (required): the video file; a relative path is resolved against the CSV's folder.
* ``label`` (required): ``0``/``1``/``real``/``fake`` (case-insensitive; 1 = fake).
* ``split`` (optional): ``train``/``val``/``test`` (also ``validation``) or empty.
* ``dataset``, ``method``, ``compression``, ``name`` (optional): fill the qualified id; defaults
  are the ``dataset`` option (else the CSV file's stem), "original"/"fake" by label, "raw", and
  the path relative to the CSV's folder without extension (``/`` written ``__``).

Blank rows are skipped. A bad row (unknown label or split, empty path, missing file, duplicate
qualified id) is a ValueError naming the CSV file and line number. A path that exists but is not a
regular video file (a folder, a dangling link, a named pipe) is kept as a record: preprocessing
records what it is (``not_regular_file``, ``dangling_link``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from forensight.datasets._common import name_from_relpath, normalise_split
from forensight.records import FAKE, REAL, VideoRecord

__all__ = ["CSV_COLUMNS", "parse_label", "read_csv_manifest", "resolve_csv"]

CSV_COLUMNS = ("path", "label", "split", "dataset", "method", "compression", "name")
_LABELS = {"0": REAL, "1": FAKE, "real": REAL, "fake": FAKE}


def parse_label(value: str, where: str) -> int:
    """``0``/``1``/``real``/``fake`` (case-insensitive, also ``0.0``/``1.0``) → 0 or 1."""
    key = str(value).strip().lower()
    if key in ("0.0", "1.0"):
        key = key[0]
    if key not in _LABELS:
        raise ValueError(f"{where}: label must be 0, 1, real or fake (1 = fake), got {value!r}")
    return _LABELS[key]


def resolve_csv(root: str | Path) -> Path:
    """The manifest file: ``root`` itself, or the only ``*.csv`` in the folder ``root``."""
    root = Path(root)
    if root.is_file():
        return root
    if root.is_dir():
        found = sorted(p for p in root.glob("*.csv") if p.is_file())
        if len(found) == 1:
            return found[0]
        raise FileNotFoundError(
            f"CSV manifest: {root} is a folder with {len(found)} *.csv files "
            f"({', '.join(p.name for p in found[:5]) or 'none'}); pass the manifest file itself")
    raise FileNotFoundError(f"CSV manifest: expected a file at {root}, found nothing")


def read_csv_manifest(root: str | Path, dataset: str | None = None, check_exists: bool = True) -> list[VideoRecord]:
    """Read a CSV manifest (see the module docstring) into records, in file order.

    Args:
        root: the CSV file (or a folder holding exactly one ``*.csv``).
        dataset: default dataset name for rows without a ``dataset`` value (default: the CSV stem).
        check_exists: require something to exist at every video path (nothing there is an error
            naming its line; a dangling link or a folder is kept for preprocessing to report).

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: missing required columns, or a bad row (the message names file and line).
    """
    path = resolve_csv(root)
    base = path.parent
    default_dataset = dataset or path.stem
    records: list[VideoRecord] = []
    seen: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected a header with at least 'path,label'")
        cols = [h.strip().lower() for h in header]
        missing = [c for c in ("path", "label") if c not in cols]
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {missing}; header is {header}, "
                             f"expected path,label[,split,dataset,method,compression,name]")
        unknown = [c for c in cols if c not in CSV_COLUMNS]
        if unknown:
            raise ValueError(f"{path}:1: unknown column(s) {unknown}; known: {list(CSV_COLUMNS)}")
        for row in reader:
            lineno = reader.line_num
            where = f"{path}:{lineno}"
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(cols):
                raise ValueError(f"{where}: {len(row)} fields, the header has {len(cols)}")
            cell = {c: v.strip() for c, v in zip(cols, row)}
            if not cell["path"]:
                raise ValueError(f"{where}: empty path")
            label = parse_label(cell["label"], where)
            rel = Path(cell["path"])
            video = rel if rel.is_absolute() else base / rel
            if check_exists and not os.path.lexists(video):
                raise ValueError(f"{where}: video {video} does not exist")
            split = normalise_split(cell.get("split", ""), where)
            if rel.is_absolute():
                try:
                    rel = rel.relative_to(base)
                except ValueError:
                    rel = Path(rel.name)
            try:
                rec = VideoRecord(
                    path=video, label=label, split=split,
                    dataset=cell.get("dataset") or default_dataset,
                    method=cell.get("method") or ("original" if label == REAL else "fake"),
                    compression=cell.get("compression") or "raw",
                    name=cell.get("name") or name_from_relpath(rel),
                )
                vid = rec.video_id
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from e
            if vid in seen:
                raise ValueError(f"{where}: video id {vid} repeats line {seen[vid]}")
            seen[vid] = lineno
            records.append(rec)
    return records

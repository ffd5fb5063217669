"""DFDC (Deepfake Detection Challenge) layout reader.

Expected tree under ``root``: ``metadata.json`` files in the root and/or its immediate
subfolders (the training set comes as ``dfdc_train_part_0/ ... dfdc_train_part_49/``), each
mapping a video file name in the same folder to its description::

    {"aaqaifqrwn.mp4": {"label": "FAKE", "split": "train", "original": "vudstovrck.mp4"}, ...}

Labels "REAL"/"FAKE" become 0/1; the metadata ``split`` ("train", "val"/"validation", "test")
gives the split. The LipForensics DFDC test folder's ``metadata.json`` describes each video with
``"is_fake": 0 | 1`` (or true/false) and no split instead: such entries are test videos. The test
set as released after the challenge ships ``labels.csv`` (``filename,label`` with label 1 = fake)
instead: such a file in the same folders is read too, its videos get split "test".

``test_list="lipforensics"`` uses the 3,215 DFDC test videos LipForensics reports on (packaged
with forensight as ``resources/dfdc_test_videos.txt``, one video name per line without
extension): the test split becomes EXACTLY those videos (any other video the metadata marks
"test" gets split "" and is dropped unless ``include_unsplit``), and a listed video that is not
found is an error naming how many are missing and the first few, unless ``allow_missing=True``:
then each missing video is still returned as a record (its path does not exist), so preprocessing
records it as failed (``not_found``) with a manifest row, and nothing is dropped without a word.
A listed video absent from every metadata file has no label: it is counted in the warning.

Records: dataset "DFDC", compression "raw", method "original" (real) or "fake"; names are file
stems (DFDC names are unique across parts).
"""

from __future__ import annotations

import csv
import importlib.resources
import warnings
from collections.abc import Iterable
from pathlib import Path

from forensight.datasets._common import (
    check_unique_ids,
    keep_split,
    missing_message,
    normalise_split,
    read_json,
    require_dir,
    require_file,
)
from forensight.records import FAKE, REAL, VideoRecord

__all__ = ["load_lipforensics_dfdc_test", "read_dfdc"]

_LABELS = {"REAL": REAL, "FAKE": FAKE, "0": REAL, "1": FAKE}


def load_lipforensics_dfdc_test() -> list[str]:
    """The 3,215 DFDC test video names (no extension) LipForensics evaluates on, in file order."""
    res = importlib.resources.files("forensight") / "resources" / "dfdc_test_videos.txt"
    return [line.strip() for line in res.read_text(encoding="utf-8").splitlines() if line.strip()]


def _test_names(test_list: str | Path | Iterable[str]) -> list[str]:
    if isinstance(test_list, str) and test_list == "lipforensics":
        names = load_lipforensics_dfdc_test()
    elif isinstance(test_list, (str, Path)):
        path = require_file(Path(test_list), "DFDC test list")
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        names = [str(n).strip() for n in test_list]
    return [Path(n).stem if Path(n).suffix else n for n in names]


def _metadata_folders(root: Path) -> list[Path]:
    folders = [root] + sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    return [d for d in folders if (d / "metadata.json").is_file() or (d / "labels.csv").is_file()]


def _entries(folder: Path) -> Iterable[tuple[str, int, str, str]]:
    """(file name, label, split, where) from ``folder``'s metadata.json and labels.csv."""
    meta = folder / "metadata.json"
    if meta.is_file():
        data = read_json(meta, "DFDC metadata")
        if not isinstance(data, dict):
            raise ValueError(f"{meta}: expected a JSON object mapping file names to descriptions")
        for fname, desc in data.items():
            where = f"{meta} entry {fname!r}"
            if isinstance(desc, dict) and "label" not in desc and "is_fake" in desc:  # LipForensics test folder
                flag = desc["is_fake"]
                if flag not in (0, 1, True, False):
                    raise ValueError(f"{where}: is_fake must be 0/1 or true/false, got {flag!r}")
                yield fname, FAKE if flag else REAL, normalise_split(str(desc.get("split", "test")), where), where
                continue
            if not isinstance(desc, dict) or str(desc.get("label", "")).upper() not in _LABELS:
                raise ValueError(f"{where}: expected {{'label': 'REAL' | 'FAKE', ...}} or {{'is_fake': 0 | 1}}, "
                                 f"got {desc!r}")
            split = normalise_split(str(desc.get("split", "")), where)
            yield fname, _LABELS[str(desc["label"]).upper()], split, where
    labels = folder / "labels.csv"
    if labels.is_file():
        with labels.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
                raise ValueError(f"{labels}: expected the columns 'filename,label', got {reader.fieldnames}")
            for lineno, row in enumerate(reader, start=2):
                where = f"{labels}:{lineno}"
                lab = str(row["label"]).strip().upper()
                if lab not in _LABELS:
                    raise ValueError(f"{where}: label must be 0/1 or REAL/FAKE, got {row['label']!r}")
                yield str(row["filename"]).strip(), _LABELS[lab], "test", where


def read_dfdc(
    root: str | Path,
    test_list: str | Path | Iterable[str] | None = None,
    allow_missing: bool = False,
    include_unsplit: bool = False,
    dataset: str = "DFDC",
) -> list[VideoRecord]:
    """Read a DFDC tree (metadata.json / labels.csv in the root or its subfolders) into records.

    Args:
        root: the DFDC root.
        test_list: None = splits as the metadata says; "lipforensics" = the packaged 3,215-video
            LipForensics test list; a path to a text file (one name per line) or an iterable of
            names (extensions optional) = that list. With a list the test split is exactly it.
        allow_missing: tolerate videos that are listed (in metadata or the test list) but absent
            on disk (a warning says how many); by default that is a ValueError.
        include_unsplit: keep videos with split "" (e.g. metadata "test" videos off the list).
        dataset: dataset name in the qualified ids.

    Raises:
        FileNotFoundError: no ``metadata.json``/``labels.csv`` in ``root`` or its subfolders.
        ValueError: bad metadata, duplicate names, missing videos (see ``allow_missing``).
    """
    root = Path(root)
    require_dir(root, "DFDC root")
    folders = _metadata_folders(root)
    if not folders:
        raise FileNotFoundError(
            f"DFDC metadata: expected {root / 'metadata.json'} or "
            f"{root / 'dfdc_train_part_*' / 'metadata.json'} (or labels.csv), found none")
    records: list[VideoRecord] = []
    absent: list[str] = []
    for folder in folders:
        for fname, label, split, _where in _entries(folder):
            path = folder / fname
            if not path.is_file():
                absent.append(str(path))
                if not allow_missing:
                    continue  # an error below
            records.append(VideoRecord(path=path, label=label, split=split, dataset=dataset,
                                       method="original" if label == REAL else "fake",
                                       compression="raw", name=Path(fname).stem))
    if absent:
        msg = missing_message("videos named in DFDC metadata", absent, len(records) if allow_missing
                              else len(absent) + len(records),
                              "download them or pass allow_missing=True (--allow-missing): each is then "
                              "recorded as failed (not_found)")
        if not allow_missing:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    check_unique_ids(records, f"DFDC at {root}")

    if test_list is not None:
        names = _test_names(test_list)
        wanted = set(names)
        present = {r.name for r in records}
        missing = [n for n in names if n not in present]
        if missing:
            msg = missing_message("videos of the DFDC test list", missing, len(names),
                                  "put them (with their metadata.json/labels.csv) under the root "
                                  "or pass allow_missing=True (--allow-missing); listed videos with no "
                                  "metadata have no label and cannot be scored")
            if not allow_missing:
                raise ValueError(msg)
            warnings.warn(msg, stacklevel=2)
        records = [
            r if (r.split == "test") == (r.name in wanted)
            else VideoRecord(path=r.path, label=r.label, split="test" if r.name in wanted else "",
                             dataset=r.dataset, method=r.method, compression=r.compression, name=r.name)
            for r in records
        ]
    return keep_split(records, include_unsplit)

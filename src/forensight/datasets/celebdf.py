"""Celeb-DF-v2 layout reader.

Expected tree under ``root`` (as distributed)::

    Celeb-real/id0_0000.mp4              real celebrity videos (label 0)
    YouTube-real/00000.mp4               real YouTube videos (label 0)
    Celeb-synthesis/id0_id16_0000.mp4    deepfakes: target id0's video with id16's face (label 1)
    List_of_testing_videos.txt           the official test list (518 videos)

Videos may also sit one level deeper (``Celeb-real/videos/*.mp4``, as some re-packagings do);
they are matched to the test list by folder and file name.

**Label convention of the test list.** Each line is ``<label> <relative path>`` where, in that
file, ``1`` means REAL and ``0`` means FAKE (e.g. ``1 YouTube-real/00170.mp4`` and
``0 Celeb-synthesis/id1_id0_0007.mp4``). This is the opposite of forensight's convention
(1 = fake). The reader takes each video's label from its folder and checks that it agrees with the
inverted list label; a disagreement is an error naming the line.

**Splits.** Listed videos are ``test``; the rest are ``train``. Celeb-DF-v2 has no official
validation split: ``val_fraction`` > 0 moves a deterministic (``seed``), identity-disjoint share
of the non-test videos to ``val``. A video's identity is its target person (``id0`` for
``id0_0000`` and ``id0_id16_0000``; each YouTube-real video is its own identity), so no target
identity has non-test videos in both ``train`` and ``val`` (the swapped-in source face of a fake
may still appear in the other split, as in the dataset's own train/test protocol).

Records: dataset "Celeb-DF-v2", compression "raw" (as distributed), method "original" for real
videos and "Celeb-synthesis" for fakes; names are file stems (unique across the folders).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forensight.datasets._common import (
    check_unique_ids,
    list_videos,
    missing_message,
    require_dir,
    require_file,
)
from forensight.records import FAKE, REAL, VideoRecord

__all__ = ["CELEBDF_FOLDERS", "TEST_LIST", "celebdf_identity", "read_celebdf", "read_celebdf_test_list"]

#: Folder → label (forensight convention, 1 = fake).
CELEBDF_FOLDERS: dict[str, int] = {"Celeb-real": REAL, "YouTube-real": REAL, "Celeb-synthesis": FAKE}
TEST_LIST = "List_of_testing_videos.txt"


def read_celebdf_test_list(path: str | Path) -> dict[tuple[str, str], int]:
    """Parse ``List_of_testing_videos.txt`` into ``{(folder, file name): label}``, label 1 = FAKE.

    The file's own labels (1 = real) are inverted. Blank lines are skipped; a malformed line is a
    ValueError naming the file and line number.
    """
    path = Path(path)
    require_file(path, "Celeb-DF-v2 test list")
    out: dict[tuple[str, str], int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise ValueError(f"{path}:{lineno}: expected '<0|1> <folder>/<file>', got {line!r}")
        rel = Path(parts[1].strip())
        if len(rel.parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected a path '<folder>/<file>', got {parts[1]!r}")
        key = (rel.parts[0], rel.name)
        if key in out:
            raise ValueError(f"{path}:{lineno}: {parts[1]!r} is listed twice")
        out[key] = 1 - int(parts[0])  # the list says 1 = real; forensight says 1 = fake
    return out


def celebdf_identity(folder: str, name: str) -> str:
    """The target identity of a Celeb-DF video: ``id0`` for ``id0_0000``/``id0_id16_0000``;
    ``YouTube-real/<name>`` for YouTube videos (one person per video)."""
    if folder == "YouTube-real":
        return f"YouTube-real/{name}"
    return name.split("_", 1)[0]


def _carve_val(records: list[VideoRecord], folders: dict[str, str], val_fraction: float,
               seed: int) -> list[VideoRecord]:
    by_id: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r.split == "train":
            by_id.setdefault(celebdf_identity(folders[r.name], r.name), []).append(i)
    n_pool = sum(len(v) for v in by_id.values())
    if not n_pool:
        return records
    identities = sorted(by_id)
    order = np.random.default_rng(seed).permutation(len(identities))
    target = math.ceil(val_fraction * n_pool)
    chosen: set[int] = set()
    for k in order:
        if len(chosen) >= target:
            break
        chosen.update(by_id[identities[k]])
    if len(chosen) == n_pool:
        raise ValueError(f"val_fraction={val_fraction} leaves no training video (identities: {len(identities)})")
    out = list(records)
    for i in chosen:
        out[i] = dataclasses.replace(out[i], split="val")
    return out


def read_celebdf(
    root: str | Path,
    val_fraction: float = 0.0,
    seed: int = 0,
    folders: Sequence[str] = tuple(CELEBDF_FOLDERS),
    allow_missing: bool = False,
    dataset: str = "Celeb-DF-v2",
) -> list[VideoRecord]:
    """Read a Celeb-DF-v2 tree into records (splits: test from the official list, train, optional val).

    Args:
        root: folder holding ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/`` and
            ``List_of_testing_videos.txt``.
        val_fraction: share (0 ≤ f < 1) of the non-test videos moved to an identity-disjoint
            ``val`` split (whole identities, so the share is reached or slightly exceeded).
        seed: seed of the deterministic identity choice for ``val``.
        folders: which of the three folders to read (e.g. without ``YouTube-real``).
        allow_missing: tolerate test-list videos missing on disk (they are then simply absent);
            by default a missing listed video is an error.
        dataset: dataset name in the qualified ids.

    Raises:
        FileNotFoundError: naming the missing folder or test list.
        ValueError: listed videos missing (count and first few), a list label that contradicts
            the folder, a bad ``val_fraction``.
    """
    root = Path(root)
    require_dir(root, "Celeb-DF-v2 root")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    unknown = [f for f in folders if f not in CELEBDF_FOLDERS]
    if unknown:
        raise ValueError(f"unknown Celeb-DF-v2 folder(s) {unknown}; choose from {list(CELEBDF_FOLDERS)}")
    test = read_celebdf_test_list(root / TEST_LIST)

    records: list[VideoRecord] = []
    folder_of: dict[str, str] = {}
    found: set[tuple[str, str]] = set()
    for folder in folders:
        d = require_dir(root / folder, f"Celeb-DF-v2 folder {folder!r}")
        label = CELEBDF_FOLDERS[folder]
        for p in list_videos(d, recursive=True):
            key = (folder, p.name)
            if key in found:
                raise ValueError(f"two videos named {p.name!r} under {d}")
            found.add(key)
            listed = test.get(key)
            if listed is not None and listed != label:
                raise ValueError(
                    f"{root / TEST_LIST}: {folder}/{p.name} is labelled "
                    f"{'real' if listed == REAL else 'fake'} (list label {1 - listed}, where 1 = real) but "
                    f"lies in {folder}/ ({'fake' if label else 'real'})")
            folder_of[p.stem] = folder
            records.append(VideoRecord(path=p, label=label, split="test" if listed is not None else "train",
                                       dataset=dataset, method="original" if label == REAL else folder,
                                       compression="raw", name=p.stem))
    missing = sorted(f"{f}/{n}" for (f, n) in test if f in folders and (f, n) not in found)
    if missing and not allow_missing:
        raise ValueError(missing_message(f"videos of {root / TEST_LIST}", missing,
                                         sum(f in folders for f, _ in test),
                                         "put them under the root or pass allow_missing=True"))
    check_unique_ids(records, f"Celeb-DF-v2 at {root}")
    if val_fraction > 0:
        records = _carve_val(records, folder_of, val_fraction, seed)
    return records

"""Plain folder layout reader: ``real/`` and ``fake/`` subfolders.

Three arrangements are accepted under ``root``::

    real/**/*.mp4, fake/**/*.mp4                      (split "" unless real/train/, real/val/, ...)
    real/train/..., real/val/..., fake/test/...         (split from the sub-subfolder)
    real/** alone                                        (real videos only: train from them with
                                                        pseudo-fakes, ``preprocess --pseudo-fakes``)
    train/real/..., train/fake/..., val/real/..., ...   (split folders first)

Videos are found recursively (common video extensions, case-insensitive; hidden files skipped).
Every path with a video extension becomes a record, also one that is not a regular file (a
folder named ``x.mp4``, a dangling link, a named pipe): preprocessing records why it failed.
A video's split is the ``train``/``val``/``test`` folder directly inside (or directly above)
``real``/``fake`` when present; videos outside such a folder get split "". Names are the path
relative to the label folder without extension, ``/`` written ``__``, with the split
folder included (``train__clip01``) so equal file names in different splits stay distinct; the
method is "original" for real and "fake" for fake videos.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from forensight.datasets._common import VIDEO_EXTENSIONS, check_unique_ids, list_videos, name_from_relpath
from forensight.records import FAKE, REAL, SPLITS, VideoRecord

__all__ = ["read_folder"]

_LABEL_DIRS = {"real": REAL, "fake": FAKE}


def _video_records(folder: Path, label: int, split: str | None, dataset: str, prefix: str,
                   extensions: Iterable[str]) -> list[VideoRecord]:
    """Records of the videos under ``folder``; ``split=None`` takes it from the first sub-folder."""
    out = []
    for p in list_videos(folder, recursive=True, extensions=extensions):
        rel = p.relative_to(folder)
        s = split
        if s is None:
            s = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in SPLITS else ""
        out.append(VideoRecord(path=p, label=label, split=s, dataset=dataset,
                               method="original" if label == REAL else "fake", compression="raw",
                               name=prefix + name_from_relpath(rel)))
    return out


def read_folder(root: str | Path, dataset: str | None = None,
                extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[VideoRecord]:
    """Read a ``real/`` + ``fake/`` folder tree (see the module docstring) into records.

    Args:
        root: folder holding ``real/`` and ``fake/`` (or ``train/real``, ``val/fake``, ...).
        dataset: dataset name for the qualified ids; default the root folder's name.
        extensions: file suffixes counted as videos.

    Raises:
        FileNotFoundError: when neither ``root/real`` (with or without ``root/fake``) nor
            ``root/<split>/real|fake`` exist, or ``root/fake`` exists without ``root/real`` (the
            message names the paths looked for).
        ValueError: when the folders hold no video at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder dataset: expected a directory at {root}, found "
                                f"{'a file' if root.exists() else 'nothing'}")
    name = dataset or root.resolve().name or "folder"
    records: list[VideoRecord] = []
    label_dirs = [(root / d, lab) for d, lab in _LABEL_DIRS.items() if (root / d).is_dir()]
    split_dirs = [(root / s / d, lab, s) for s in SPLITS for d, lab in _LABEL_DIRS.items()
                  if (root / s / d).is_dir()]
    if label_dirs:
        if not (root / "real").is_dir():
            raise FileNotFoundError(f"folder dataset: expected {root / 'real'} next to {root / 'fake'} "
                                    "(a folder of only real videos is valid: real/ without fake/; "
                                    "one of only fakes is not)")
        for folder, lab in label_dirs:
            records += _video_records(folder, lab, None, name, "", extensions)
    elif split_dirs:
        for folder, lab, s in split_dirs:
            records += _video_records(folder, lab, s, name, f"{s}__", extensions)
    else:
        raise FileNotFoundError(
            f"folder dataset: expected {root / 'real'} and {root / 'fake'} "
            f"(or {root / 'train' / 'real'}, {root / 'train' / 'fake'}, ...), found neither")
    if not records:
        raise ValueError(f"folder dataset: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) under {root}")
    check_unique_ids(records, f"folder dataset at {root}")
    return records

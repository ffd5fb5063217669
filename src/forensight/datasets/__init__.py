"""Dataset layouts: turn a dataset root into a list of ``VideoRecord`` (label 1 = fake, split, id).

Kinds (see each module for its tree and options):

* ``"ffpp"``: FaceForensics++ (also the synthetic dataset of ``forensight.synth``),
  :func:`~forensight.datasets.ffpp.read_ffpp`.
* ``"celebdf"``: Celeb-DF-v2, :func:`~forensight.datasets.celebdf.read_celebdf`.
* ``"dfdc"``: DFDC, :func:`~forensight.datasets.dfdc.read_dfdc`.
* ``"folder"``: ``real/`` + ``fake/`` folders, :func:`~forensight.datasets.folder.read_folder`.
* ``"csv"``: a CSV manifest, :func:`~forensight.datasets.csv_manifest.read_csv_manifest`.

``read_dataset(kind, root, **opts)`` dispatches to them; ``detect_layout(root)`` guesses the kind.
Missing folders or files raise FileNotFoundError and malformed content ValueError, each naming
what was expected where.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forensight.datasets._common import VIDEO_EXTENSIONS
from forensight.datasets.celebdf import read_celebdf
from forensight.datasets.csv_manifest import read_csv_manifest
from forensight.datasets.dfdc import load_lipforensics_dfdc_test, read_dfdc
from forensight.datasets.ffpp import FFPP_METHODS, load_official_splits, read_ffpp
from forensight.datasets.folder import read_folder
from forensight.records import SPLITS, VideoRecord

__all__ = [
    "FFPP_METHODS",
    "LAYOUTS",
    "VIDEO_EXTENSIONS",
    "detect_layout",
    "load_lipforensics_dfdc_test",
    "load_official_splits",
    "read_celebdf",
    "read_csv_manifest",
    "read_dataset",
    "read_dfdc",
    "read_ffpp",
    "read_folder",
    "summarize",
]

#: kind → reader ``(root, **opts) -> list[VideoRecord]``.
LAYOUTS: dict[str, Callable[..., list[VideoRecord]]] = {
    "ffpp": read_ffpp,
    "celebdf": read_celebdf,
    "dfdc": read_dfdc,
    "folder": read_folder,
    "csv": read_csv_manifest,
}

_ALIASES = {"faceforensics": "ffpp", "faceforensics++": "ffpp", "ff++": "ffpp", "synthetic": "ffpp",
            "celeb-df": "celebdf", "celeb-df-v2": "celebdf", "celebdf-v2": "celebdf",
            "manifest": "csv"}


def read_dataset(kind: str, root: str | Path, **opts: Any) -> list[VideoRecord]:
    """Read the dataset at ``root`` with the layout ``kind`` ("auto" = :func:`detect_layout`).

    ``opts`` go to the layout's reader (e.g. ``compression="c40"`` for "ffpp",
    ``val_fraction=0.1`` for "celebdf", ``test_list="lipforensics"`` for "dfdc").

    Raises:
        ValueError: unknown kind (the message lists the kinds) or an option the reader lacks.
    """
    key = kind.strip().lower()
    key = _ALIASES.get(key, key)
    if key == "auto":
        key = detect_layout(root)
    if key not in LAYOUTS:
        raise ValueError(f"unknown dataset layout {kind!r}; choose one of {sorted(LAYOUTS)} or 'auto'")
    reader = LAYOUTS[key]
    params = inspect.signature(reader).parameters
    unknown = sorted(set(opts) - set(params))
    if unknown:
        accepted = [n for n in params if n != "root"]
        raise ValueError(f"layout {key!r} has no option(s) {unknown}; its options are {accepted}")
    return reader(root, **opts)


def detect_layout(root: str | Path) -> str:
    """Guess the layout kind of ``root`` from its top-level entries.

    Rules, first match wins: a ``*.csv`` file → "csv"; ``original_sequences/`` or
    ``manipulated_sequences/`` → "ffpp"; ``Celeb-synthesis/``, ``Celeb-real/`` or
    ``List_of_testing_videos.txt`` → "celebdf"; ``metadata.json`` or ``labels.csv`` in the root
    or a ``dfdc_train_part_*`` folder → "dfdc"; ``real/``/``fake/`` (or ``<split>/real``) → "folder";
    a folder holding exactly one ``*.csv`` → "csv".

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: nothing matched (the message lists what was looked for).
    """
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise ValueError(f"cannot guess the layout of the file {root}: only a *.csv manifest is a file layout")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root: expected a directory (or a *.csv manifest) at {root}, found nothing")
    if (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir():
        return "ffpp"
    if any((root / n).exists() for n in ("Celeb-synthesis", "Celeb-real", "List_of_testing_videos.txt")):
        return "celebdf"
    if (root / "metadata.json").is_file() or (root / "labels.csv").is_file() or any(
            (d / "metadata.json").is_file() for d in root.glob("dfdc_train_part_*")):
        return "dfdc"
    if (root / "real").is_dir() or (root / "fake").is_dir() or any(
            (root / s / d).is_dir() for s in SPLITS for d in ("real", "fake")):
        return "folder"
    if len([p for p in root.glob("*.csv") if p.is_file()]) == 1:
        return "csv"
    raise ValueError(
        f"cannot guess the dataset layout of {root}: looked for original_sequences/ or "
        "manipulated_sequences/ (ffpp), Celeb-real/, Celeb-synthesis/ or List_of_testing_videos.txt "
        "(celebdf), metadata.json or dfdc_train_part_*/metadata.json (dfdc), real/ and fake/ (folder), "
        "or a single *.csv manifest (csv); pass the kind explicitly")


def summarize(records: list[VideoRecord]) -> dict[str, dict[str, int]]:
    """Counts of records per split, label ("real"/"fake"), method and dataset."""
    return {
        "split": dict(Counter(r.split or "(none)" for r in records)),
        "label": dict(Counter("fake" if r.label else "real" for r in records)),
        "method": dict(Counter(r.method for r in records)),
        "dataset": dict(Counter(r.dataset for r in records)),
    }

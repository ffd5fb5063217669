"""FaceForensics++ layout reader.

Expected tree under ``root`` (the layout of the official download script)::

    original_sequences/youtube/<compression>/videos/000.mp4            label 0, method "original"
    manipulated_sequences/<Method>/<compression>/videos/000_003.mp4    label 1, method <Method>

``<compression>`` is ``c0``, ``c23`` or ``c40``. Any folder under ``manipulated_sequences`` is a
method (Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter, or e.g. the synthetic
dataset's EyeBlink and its sweep variants such as ``Face2Face_f0.25``); the folder name is the
record's ``method``. A fake ``<target>_<source>`` shows the target video's scene with the
source's face (or expressions).

Ground truth of when a fake is manipulated: when ``root/dataset.json`` (written by
``forensight.synth``) lists a fake as ``videos["<method folder>/<name>"]`` with
``manipulated_frames``, the record carries those 0-based frame numbers
(``VideoRecord.manipulated_frames``); otherwise (real FaceForensics++, and every real video) it
is None.

Splits are lists of ``[target, source]`` id pairs per split (the official 360/70/70 pairs). A real
video id belongs to the split of the pair that contains it; a fake ``t_s`` to the split of the
pair ``[t, s]`` or ``[s, t]``. Videos in no pair get split "" and are dropped unless
``include_unsplit=True``.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forensight.datasets._common import (
    keep_split,
    list_videos,
    read_json,
    require_dir,
)
from forensight.records import FAKE, REAL, SPLITS, VideoRecord

__all__ = [
    "FFPP_METHODS",
    "load_official_splits",
    "load_split_pairs",
    "read_ffpp",
    "split_lookup",
]

#: The manipulation methods of the FaceForensics++ benchmark.
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
COMPRESSIONS = ("c0", "c23", "c40")

Pairs = dict[str, list[tuple[str, str]]]


def _parse_pairs(data: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(data, list):
        raise ValueError(  # noqa: TRY004 - malformed file content, not a caller's type error
            f"{where}: expected a JSON list of [target, source] pairs, got {type(data).__name__}")
    pairs = []
    for i, item in enumerate(data):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"{where}: entry {i} is {item!r}, expected a [target, source] pair")
        pairs.append((str(item[0]), str(item[1])))
    return pairs


def load_official_splits() -> Pairs:
    """The official FaceForensics++ split (360/70/70 ``[target, source]`` pairs) shipped with the package."""
    base = importlib.resources.files("forensight") / "resources" / "faceforensics_splits"
    out: Pairs = {}
    for split in SPLITS:
        res = base / f"{split}.json"
        out[split] = _parse_pairs(json.loads(res.read_text(encoding="utf-8")), f"packaged {split}.json")
    return out


def load_split_pairs(folder: str | Path) -> Pairs:
    """Read ``{train,val,test}.json`` (lists of ``[target, source]`` pairs) from ``folder``.

    Raises FileNotFoundError naming each file that is missing.
    """
    folder = Path(folder)
    missing = [str(folder / f"{s}.json") for s in SPLITS if not (folder / f"{s}.json").is_file()]
    if missing:
        raise FileNotFoundError("FaceForensics++ split files missing: " + ", ".join(missing))
    return {s: _parse_pairs(read_json(folder / f"{s}.json", "split file"), str(folder / f"{s}.json"))
            for s in SPLITS}


def split_lookup(pairs: Pairs) -> tuple[dict[str, str], dict[str, str]]:
    """Maps for split membership: real id → split, and fake name ``t_s`` → split.

    Both orders ``t_s`` and ``s_t`` of a pair map to the pair's split. An id listed in two
    splits is an error (the split files would leak).
    """
    real: dict[str, str] = {}
    fake: dict[str, str] = {}
    for split, plist in pairs.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} in split pairs; expected {list(SPLITS)}")
        for t, s in plist:
            for vid in (t, s):
                if real.get(vid, split) != split:
                    raise ValueError(f"video id {vid!r} is listed in both {real[vid]!r} and {split!r}")
                real[vid] = split
            fake[f"{t}_{s}"] = split
            fake[f"{s}_{t}"] = split
    return real, fake


def _resolve_pairs(root: Path, splits: str | Path | Mapping[str, Sequence[Sequence[str]]] | None) -> Pairs:
    if splits is None:
        own = root / "splits"
        if all((own / f"{s}.json").is_file() for s in SPLITS):
            return load_split_pairs(own)
        return load_official_splits()
    if isinstance(splits, str) and splits == "official":
        return load_official_splits()
    if isinstance(splits, (str, Path)):
        return load_split_pairs(splits)
    return {str(k): _parse_pairs([list(p) for p in v], f"splits[{k!r}]") for k, v in splits.items()}


def _description(root: Path) -> dict[str, Any]:
    """``root/dataset.json`` (the synthetic dataset's description) as a dict, or {} when absent."""
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    data = read_json(path, "dataset description")
    return data if isinstance(data, dict) else {}


def _manipulated_frames(desc: dict[str, Any], method: str, name: str, where: Path) -> tuple[int, ...] | None:
    """The ``manipulated_frames`` that ``dataset.json`` lists for ``<method>/<name>``, or None."""
    videos = desc.get("videos")
    entry = videos.get(f"{method}/{name}") if isinstance(videos, dict) else None
    frames = entry.get("manipulated_frames") if isinstance(entry, dict) else None
    if frames is None:
        return None
    if not isinstance(frames, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0
                                               for k in frames):
        raise ValueError(f"{where}: videos[{method + '/' + name!r}].manipulated_frames must be a list of "
                         f"non-negative integers, got {frames!r}")
    return tuple(frames)


def read_ffpp(
    root: str | Path,
    compression: str = "c23",
    methods: Sequence[str] | None = None,
    splits: str | Path | Mapping[str, Sequence[Sequence[str]]] | None = None,
    include_unsplit: bool = False,
    include_original: bool = True,
    dataset: str | None = None,
) -> list[VideoRecord]:
    """Read a FaceForensics++ tree into records (originals first, then methods in name order).

    Args:
        root: the dataset root holding ``original_sequences/`` and ``manipulated_sequences/``.
        compression: ``c0``, ``c23`` or ``c40``: which quality folder to read.
        methods: manipulation methods to include; None = every method folder present that has
            ``<compression>/videos``; ``[]`` = originals only.
        splits: where the ``[target, source]`` split pairs come from. None = the root's own
            ``splits/{train,val,test}.json`` if all three exist (the synthetic dataset writes
            these), otherwise the official FaceForensics++ split packaged with forensight;
            ``"official"`` = always the packaged split; a folder path = that folder's
            ``{train,val,test}.json``; a mapping ``{"train": [[t, s], ...], ...}`` = those pairs.
        include_unsplit: keep videos that no split pair covers (split "").
        include_original: include the real videos of ``original_sequences/youtube``.
        dataset: dataset name for the qualified ids; default the ``name`` in ``root/dataset.json``
            if present (e.g. "synthetic"), else "FaceForensics++".

    Returns:
        the records; a fake's ``manipulated_frames`` comes from ``root/dataset.json`` when that file
        lists it (the synthetic dataset), else None; real videos have None.

    Raises:
        FileNotFoundError: naming the expected folder (root, original videos, a requested method).
        ValueError: for an unknown compression, an empty videos folder, or no method found.
    """
    root = Path(root)
    require_dir(root, "FaceForensics++ root")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {list(COMPRESSIONS)}, got {compression!r}")
    desc = _description(root)
    name = dataset or str(desc.get("name") or "FaceForensics++")
    real_split, fake_split = split_lookup(_resolve_pairs(root, splits))

    records: list[VideoRecord] = []
    if include_original:
        folder = require_dir(root / "original_sequences" / "youtube" / compression / "videos",
                             f"FaceForensics++ original ({compression}) videos")
        videos = list_videos(folder)
        if not videos:
            raise ValueError(f"no video files in {folder} (expected e.g. 000.mp4)")
        records += [VideoRecord(path=p, label=REAL, split=real_split.get(p.stem, ""), dataset=name,
                                method="original", compression=compression, name=p.stem) for p in videos]

    manip = root / "manipulated_sequences"
    if methods is None:
        require_dir(manip, "FaceForensics++ manipulated sequences")
        method_dirs = sorted(d for d in manip.iterdir()
                             if d.is_dir() and not d.name.startswith(".")
                             and (d / compression / "videos").is_dir())
        if not method_dirs:
            raise ValueError(f"no method folder with {compression}/videos under {manip} "
                             f"(expected e.g. {manip / 'Face2Face' / compression / 'videos'})")
    else:
        method_dirs = [manip / m for m in methods]
    for mdir in method_dirs:
        folder = require_dir(mdir / compression / "videos", f"FaceForensics++ method {mdir.name!r} ({compression})")
        videos = list_videos(folder)
        if not videos and methods is not None:
            raise ValueError(f"no video files in {folder} (expected e.g. 000_003.mp4)")
        records += [VideoRecord(path=p, label=FAKE, split=fake_split.get(p.stem, ""), dataset=name,
                                method=mdir.name, compression=compression, name=p.stem,
                                manipulated_frames=_manipulated_frames(desc, mdir.name, p.stem,
                                                                       root / "dataset.json"))
                    for p in videos]
    return keep_split(records, include_unsplit)

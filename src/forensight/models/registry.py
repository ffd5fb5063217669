"""Named model presets (timm-style) and a config that rebuilds any model from data.

* :func:`register_model` registers a builder ``fn(**overrides) -> nn.Module`` under a name;
* :func:`create_model` builds a registered preset, or a model described by a YAML file;
* :class:`ModelConfig` is the whole architecture as data. Every model built here carries its
  config as ``model.model_config``; a checkpoint stores ``model_config.to_dict()`` and
  :func:`build_from_config` rebuilds the same architecture from it.

Two architectures:

* ``arch="region"``: :class:`~forensight.models.detector.Detector` (per-frame encoder,
  BiLSTM or none, mean/attention pooling, shared classifier);
* ``arch="lipforensics"``: ``forensight.models.lipforensics.lipforensics(...)``, imported only
  when such a model is built, so a missing module fails only for those presets.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from forensight.config import from_dict, load_yaml, stable_hash, to_dict
from forensight.models.detector import IMAGENET_MEAN, IMAGENET_STD, Detector
from forensight.models.encoders import ENCODERS, build_encoder
from forensight.models.pooling import build_pooling
from forensight.models.temporal import build_temporal

__all__ = [
    "LIPFORENSICS_MEAN",
    "LIPFORENSICS_STD",
    "ModelConfig",
    "build_from_config",
    "create_model",
    "get_model_config",
    "list_models",
    "load_model_config",
    "register_model",
]

# Grayscale normalisation of the official LipForensics code.
LIPFORENSICS_MEAN = (0.421,)
LIPFORENSICS_STD = (0.165,)

ARCHS = ("region", "lipforensics")
POOLINGS = ("mean", "attention")
REGION_TEMPORALS = ("bilstm", "none")


@dataclass
class ModelConfig:
    """A model's architecture as data (YAML/JSON-able via :meth:`to_dict`).

    Attributes:
        name: preset name (or any label for a custom config).
        arch: ``"region"`` (Detector) or ``"lipforensics"``.
        encoder: per-frame encoder (``efficientnet_b1``, ``efficientnet_b0``,
            ``mobilenet_v3_small``, ``tiny``); ``resnet18_3d`` for LipForensics (informative).
        temporal: ``"bilstm"`` or ``"none"`` (region); ``"mstcn"`` for LipForensics (informative).
        pooling: ``"mean"`` (Control) or ``"attention"``.
        input_size: square input side in pixels.
        num_frames: frames per clip.
        region: face region read: ``frame``, ``full``, ``eyes``, ``mouth``, ``lips``.
        in_channels: 3 (RGB) or 1 (grayscale).
        dropout: classifier dropout.
        hidden: classifier hidden width.
        lstm_hidden: BiLSTM units per direction.
        attn_dim: attention MLP width.
        weights: ``None``, ``"imagenet"`` or a file path: encoder ImageNet weights for
            ``region``; the official checkpoint for ``lipforensics``.
        mean, std: per-channel input normalisation (default: ImageNet for RGB, LipForensics'
            0.421 / 0.165 for grayscale).
        channels_last: channels-last convolutions (GPU speed).
        options: extra keyword arguments for the architecture builder (e.g. LipForensics).
    """

    name: str = "custom"
    arch: str = "region"
    encoder: str = "efficientnet_b1"
    temporal: str = "bilstm"
    pooling: str = "attention"
    input_size: int = 224
    num_frames: int = 32
    region: str = "full"
    in_channels: int = 3
    dropout: float = 0.5
    hidden: int = 64
    lstm_hidden: int = 128
    attn_dim: int = 128
    weights: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels_last: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.arch == "region":
            if self.temporal not in REGION_TEMPORALS:
                raise ValueError(
                    f"temporal must be one of {REGION_TEMPORALS} for arch 'region', got {self.temporal!r}"
                )
            if self.encoder not in ENCODERS:
                raise ValueError(f"unknown encoder {self.encoder!r}; known: {sorted(ENCODERS)}")
        for name in ("input_size", "num_frames", "in_channels", "hidden", "lstm_hidden", "attn_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.weights is not None:
            self.weights = str(self.weights)
        if self.mean is None:
            self.mean = IMAGENET_MEAN if self.in_channels == 3 else LIPFORENSICS_MEAN * self.in_channels
        if self.std is None:
            self.std = IMAGENET_STD if self.in_channels == 3 else LIPFORENSICS_STD * self.in_channels
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError(f"mean/std need {self.in_channels} values, got {len(self.mean)}/{len(self.std)}")
        self.options = dict(self.options or {})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples), suitable for YAML, JSON and checkpoints."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        return from_dict(cls, dict(data))

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with ``overrides`` applied (validated)."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit hash of the architecture (``weights`` excluded)."""
        d = self.to_dict()
        d.pop("weights", None)
        return stable_hash(d)


Builder = Callable[..., nn.Module]

_MODELS: dict[str, Builder] = {}
_CONFIGS: dict[str, ModelConfig] = {}


def register_model(name: str, config: ModelConfig | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering builder ``fn(**overrides) -> nn.Module`` as ``name``.

    ``config`` (optional) is the preset's default :class:`ModelConfig`, returned by
    :func:`get_model_config`. Registering a name twice is an error.
    """

    def deco(fn: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        if config is not None:
            _CONFIGS[name] = config
        return fn

    return deco


def list_models(pattern: str = "") -> list[str]:
    """Sorted registered names containing ``pattern``."""
    return sorted(n for n in _MODELS if pattern in n)


def get_model_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset's :class:`ModelConfig` with ``overrides`` applied (no model is built)."""
    if name not in _CONFIGS:
        raise KeyError(f"no config registered for model {name!r}; known: {sorted(_CONFIGS)}")
    return _CONFIGS[name].replace(**overrides)


def load_model_config(path: str | Path, **overrides: Any) -> ModelConfig:
    """:class:`ModelConfig` from a YAML file.

    The file is a ModelConfig mapping, or has one under a top-level ``model:`` key. If its
    ``name`` is a registered preset, fields it leaves out come from that preset.
    """
    data = load_yaml(path)
    if isinstance(data.get("model"), dict):
        data = data["model"]
    data = {**data, **overrides}
    base = _CONFIGS.get(str(data.get("name", "")))
    if base is not None:
        return base.replace(**data)
    return ModelConfig.from_dict(data)


def build_from_config(cfg: ModelConfig | dict[str, Any], *, pretrained: bool = True) -> nn.Module:
    """Build the model described by ``cfg`` (a :class:`ModelConfig` or its dict).

    ``pretrained=False`` ignores ``cfg.weights`` (use it when a checkpoint's state_dict is
    loaded right after, so the original weight file need not exist on this machine).
    The model carries ``model_config`` (the config), ``input_size``, ``region``,
    ``in_channels`` and ``num_frames`` attributes.
    """
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    weights = cfg.weights if pretrained else None
    if cfg.arch == "region":
        model = _build_region(cfg, weights)
    elif cfg.arch == "lipforensics":
        model = _build_lipforensics(cfg, weights)
    else:  # pragma: no cover - validated in ModelConfig
        raise ValueError(f"unknown arch {cfg.arch!r}")
    model.model_config = cfg  # type: ignore[assignment]
    for attr in ("input_size", "region", "in_channels", "num_frames"):
        if not hasattr(model, attr):
            setattr(model, attr, getattr(cfg, attr))
    return model


def create_model(name: str | Path, *, pretrained: bool = True, **overrides: Any) -> nn.Module:
    """Build a registered preset (``create_model("region_b1_attention", weights="imagenet")``)
    or the model in a YAML file (a path ending in ``.yaml``/``.yml``), with field ``overrides``.
    """
    s = str(name)
    if s.endswith((".yaml", ".yml")) or (s not in _MODELS and Path(s).is_file()):
        return build_from_config(load_model_config(s, **overrides), pretrained=pretrained)
    if s not in _MODELS:
        raise KeyError(f"unknown model {s!r}; registered: {list_models()}")
    if s in _CONFIGS:
        return build_from_config(get_model_config(s, **overrides), pretrained=pretrained)
    return _MODELS[s](**overrides)


def _build_region(cfg: ModelConfig, weights: str | None) -> Detector:
    if cfg.options:
        raise ValueError(f"options {sorted(cfg.options)} are not used by arch 'region' (only by 'lipforensics')")
    encoder = build_encoder(cfg.encoder, weights=weights, in_channels=cfg.in_channels)
    temporal = build_temporal(cfg.temporal, encoder.out_dim, cfg.lstm_hidden)
    pooling = build_pooling(cfg.pooling, temporal.out_dim, cfg.attn_dim)  # type: ignore[arg-type]
    return Detector(
        encoder, temporal, pooling,
        hidden=cfg.hidden, dropout=cfg.dropout, input_size=cfg.input_size, region=cfg.region,
        in_channels=cfg.in_channels, num_frames=cfg.num_frames, mean=cfg.mean, std=cfg.std,
        channels_last=cfg.channels_last,
    )


def _build_lipforensics(cfg: ModelConfig, weights: str | None) -> nn.Module:
    # lazy (only these presets need it), and through sys.modules so a blocked import is honoured
    lf = importlib.import_module("forensight.models.lipforensics")

    kwargs: dict[str, Any] = {"head": cfg.pooling}
    if weights is not None:
        kwargs["weights"] = weights
    kwargs.update(cfg.options)  # architecture-specific extras, passed through as given
    return lf.lipforensics(**kwargs)


# ---------------------------------------------------------------------------------------------
# Presets

def _preset(cfg: ModelConfig) -> None:
    name = cfg.name

    def builder(**overrides: Any) -> nn.Module:
        return build_from_config(get_model_config(name, **overrides))

    builder.__name__ = name
    builder.__doc__ = f"Preset {name}: {cfg.to_dict()}"
    register_model(name, cfg)(builder)


for _pool in POOLINGS:
    _suffix = "control" if _pool == "mean" else "attention"
    # The published region setup: EfficientNet-B1 per frame at 224 px, 32 frames, BiLSTM 2x128.
    _preset(ModelConfig(name=f"region_b1_{_suffix}", encoder="efficientnet_b1", pooling=_pool,
                        input_size=224, num_frames=32, region="full"))
    # CPU-sized variants.
    _preset(ModelConfig(name=f"region_mobile_{_suffix}", encoder="mobilenet_v3_small", pooling=_pool,
                        input_size=112, num_frames=32, region="full"))
    _preset(ModelConfig(name=f"region_tiny_{_suffix}", encoder="tiny", pooling=_pool,
                        input_size=64, num_frames=8, region="full", lstm_hidden=32, attn_dim=32))
    # LipForensics: 25-frame 88x88 grayscale aligned mouth clips, ResNet-18 (3D stem) + MS-TCN.
    _preset(ModelConfig(name="lipforensics" if _pool == "mean" else "lipforensics_attention",
                        arch="lipforensics", encoder="resnet18_3d", temporal="mstcn", pooling=_pool,
                        input_size=88, num_frames=25, region="lips", in_channels=1))

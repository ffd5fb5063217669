"""Architectures and named presets: the ONE place that knows which architectures exist.

* :class:`Architecture` ties an ``arch`` name to its config dataclass (a
  :class:`forensight.config.ModelConfig` subclass), a builder, and optionally an eval-only fast
  copy (:attr:`Architecture.inference`). :func:`register_architecture` adds one; a new
  architecture needs one module (its config, its ``nn.Module`` following the detector protocol,
  its builder) and one registration call.
* :func:`build_model` / :func:`create_model` build a model from a config, a preset name
  (``forensight.config.MODEL_PRESETS``; ``create_model("region_b1_attention")``) or a YAML file.
* :func:`inference_model` gives the fastest equivalent of a trained model for scoring.

Nothing outside this module branches on an architecture's name: everything else uses the
detector protocol (:mod:`forensight.models.protocol`) and the model's ``input_spec``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forensight.config import (
    MODEL_PRESETS,
    LipForensicsModelConfig,
    ModelConfig,
    RegionModelConfig,
    get_model_config,
    model_config_from_dict,
    register_model_config,
    resolve_model_config,
)

__all__ = [
    "Architecture",
    "architectures",
    "build_model",
    "check_training",
    "create_model",
    "get_model_config",
    "inference_model",
    "list_models",
    "load_model_config",
    "register_architecture",
]


@dataclass(frozen=True)
class Architecture:
    """One architecture.

    Attributes:
        name: the ``arch`` of its config class.
        config: its :class:`ModelConfig` subclass.
        build: ``build(cfg, pretrained) -> nn.Module`` following the detector protocol;
            ``pretrained=False`` must ignore ``cfg.weights`` (a model file's weights follow).
        inference: ``inference(model) -> nn.Module``, an eval-only copy with the same outputs
            (e.g. BatchNorm folded), or None (the model itself is used).
        check_training: ``check_training(cfg)`` raises ValueError when ``cfg`` cannot be trained
            as asked (e.g. a frozen trunk with no weights to freeze), or None.
    """

    name: str
    config: type[ModelConfig]
    build: Callable[[Any, bool], nn.Module]
    inference: Callable[[nn.Module], nn.Module] | None = None
    check_training: Callable[[Any], None] | None = None


_ARCHS: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Register ``arch`` (and its config class, so model files with it load). Once per name."""
    if arch.config.arch != arch.name:
        raise ValueError(f"architecture {arch.name!r}: its config class says arch {arch.config.arch!r}")
    if arch.name in _ARCHS:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    register_model_config(arch.config)
    _ARCHS[arch.name] = arch
    return arch


def architectures() -> dict[str, Architecture]:
    """The registered architectures by name."""
    return dict(_ARCHS)


def _arch_of(cfg: ModelConfig) -> Architecture:
    arch = _ARCHS.get(cfg.arch)
    if arch is None:
        raise ValueError(f"no architecture {cfg.arch!r} is registered; known: {sorted(_ARCHS)}")
    return arch


def build_model(cfg: ModelConfig | dict[str, Any], *, pretrained: bool = True) -> nn.Module:
    """The model described by ``cfg`` (a config or its ``to_dict()``).

    ``pretrained=False`` ignores ``cfg.weights`` (a model file's state_dict is loaded next, so
    the original weight file need not exist on this machine).
    """
    if not isinstance(cfg, ModelConfig):
        cfg = model_config_from_dict(cfg)
    return _arch_of(cfg).build(cfg, pretrained)


def inference_model(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    """An eval-only model with the same outputs as ``model``, as fast as its architecture allows."""
    fast = _arch_of(cfg).inference
    return (fast(model) if fast is not None else model).eval()


def check_training(cfg: ModelConfig) -> None:
    """Refuse (ValueError) a model config that its architecture cannot train as configured."""
    check = _arch_of(cfg).check_training
    if check is not None:
        check(cfg)


def list_models(pattern: str = "") -> list[str]:
    """Sorted preset names containing ``pattern``."""
    return sorted(n for n in MODEL_PRESETS if pattern in n)


def load_model_config(path: str | Path, **overrides: Any) -> ModelConfig:
    """A model config from YAML (a ``model:`` section or a flat mapping; a ``name`` that is a
    preset starts from it), with ``overrides``."""
    return resolve_model_config(path, None, overrides)


def create_model(name: str | Path | ModelConfig, *, pretrained: bool = True, **overrides: Any) -> nn.Module:
    """Build a preset (``create_model("region_b1_attention", weights="imagenet")``), a config, or
    the model in a YAML file, with field ``overrides``."""
    return build_model(resolve_model_config(name, None, overrides), pretrained=pretrained)


# ---- the two built-in architectures --------------------------------------------------------------

def _build_region(cfg: RegionModelConfig, pretrained: bool) -> nn.Module:
    from forensight.models.detector import Detector
    from forensight.models.encoders import build_encoder
    from forensight.models.pooling import build_pooling
    from forensight.models.temporal import build_temporal

    encoder = build_encoder(cfg.encoder, weights=cfg.weights if pretrained else None, in_channels=cfg.in_channels)
    temporal = build_temporal(cfg.temporal, encoder.out_dim, cfg.lstm_hidden)
    pooling = build_pooling(cfg.pooling, temporal.out_dim, cfg.attn_dim)
    return Detector(encoder, temporal, pooling, input_spec=cfg.input_spec(), hidden=cfg.hidden,
                    dropout=cfg.dropout, feature_norm=cfg.feature_norm, feature_dropout=cfg.feature_dropout,
                    channels_last=cfg.channels_last)


def _build_lipforensics(cfg: LipForensicsModelConfig, pretrained: bool) -> nn.Module:
    # lazy (only these presets need it), and through sys.modules so a blocked import is honoured
    lf = importlib.import_module("forensight.models.lipforensics")
    return lf.lipforensics(weights=cfg.weights if pretrained else None, pooling=cfg.pooling, freeze=cfg.freeze,
                           dropout=cfg.dropout, input_spec=cfg.input_spec())


def _check_lipforensics(cfg: LipForensicsModelConfig) -> None:
    if cfg.freeze == "frontend_trunk" and not cfg.weights:
        raise ValueError(f"{cfg.name}: freeze 'frontend_trunk' keeps the front end and ResNet trunk frozen, but no "
                         "weights were given, so they would stay random. Pass the official checkpoint "
                         "(--init lipforensics_ff.pth) or train everything from scratch (--unfreeze)")


def _fast_lipforensics(model: nn.Module) -> nn.Module:
    return importlib.import_module("forensight.models.fused").optimize_for_inference(model)


def _fast_region(model: nn.Module) -> nn.Module:
    """An eval copy of a region ``Detector`` whose encoder has its BatchNorms folded into the
    convolutions (``fused.fold_batchnorm``: all 69 of EfficientNet-B1's; ~25 % less CPU time for 32
    frames of 224 px on one core, 2026-12-07) and runs channels-last (on 2 CPU cores B1 encoded 32
    frames ~25% faster: 37-40 vs 49-55 s on a machine loaded 30x, three alternating runs; on GPUs
    channels-last is the fast layout too). Outputs equal the model's up to float rounding. The
    trained model itself is left as it is."""
    import copy

    from forensight.models.detector import Detector
    from forensight.models.fused import fold_batchnorm

    if not isinstance(model, Detector):
        return model
    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast.encoder)
    fast.channels_last = True
    fast.encoder.to(memory_format=torch.channels_last)
    return fast


# per-frame encoder + BiLSTM + mean/attention pooling (Control vs Attention)
register_architecture(Architecture("region", RegionModelConfig, _build_region, inference=_fast_region))
# ResNet-18 (3D stem) + MS-TCN on 25-frame aligned mouth clips
register_architecture(Architecture("lipforensics", LipForensicsModelConfig, _build_lipforensics,
                                   inference=_fast_lipforensics, check_training=_check_lipforensics))

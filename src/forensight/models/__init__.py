"""Detectors: per-frame encoders, temporal models, mean/attention pooling, named presets.

Quick use::

    from forensight.models import create_model, build_from_config
    model = create_model("region_b1_attention")            # random init
    out = model(model.normalize_uint8(frames_uint8))        # DetectorOutput(logits (B,), weights (B, T))
    ckpt_cfg = model.model_config.to_dict()                 # store in a checkpoint ...
    same = build_from_config(ckpt_cfg, pretrained=False)    # ... and rebuild it later

``forensight.models.lipforensics`` is imported lazily, only when a LipForensics preset is built.
"""

from __future__ import annotations

from forensight.models.detector import IMAGENET_MEAN, IMAGENET_STD, Detector, make_classifier, normalize_uint8
from forensight.models.encoders import (
    ENCODERS,
    EfficientNetEncoder,
    MobileNetV3SmallEncoder,
    TinyCNNEncoder,
    build_encoder,
    imagenet_weights_path,
)
from forensight.models.outputs import DetectorOutput
from forensight.models.pooling import AttentionPooling, MeanPooling, build_pooling
from forensight.models.registry import (
    ModelConfig,
    build_from_config,
    create_model,
    get_model_config,
    list_models,
    load_model_config,
    register_model,
)
from forensight.models.temporal import BiLSTM, IdentityTemporal, build_temporal, lengths_to_mask

__all__ = [
    "ENCODERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AttentionPooling",
    "BiLSTM",
    "Detector",
    "DetectorOutput",
    "EfficientNetEncoder",
    "IdentityTemporal",
    "MeanPooling",
    "MobileNetV3SmallEncoder",
    "ModelConfig",
    "TinyCNNEncoder",
    "build_encoder",
    "build_from_config",
    "build_pooling",
    "build_temporal",
    "create_model",
    "get_model_config",
    "imagenet_weights_path",
    "lengths_to_mask",
    "list_models",
    "load_model_config",
    "make_classifier",
    "normalize_uint8",
    "register_model",
]

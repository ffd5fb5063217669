"""BatchNorm folding and the eval-only fast LipForensics model.

:func:`fuse_conv_bn` folds an eval-mode BatchNorm into the convolution before it (exact up to
float rounding); :func:`fold_batchnorm` does it for every ``Conv2d`` → ``BatchNorm2d`` pair of any
model's sequential blocks (the region models' EfficientNet encoders: all of their BatchNorms);
:class:`LipForensicsInference` uses it, runs the 3D stem as a channels-last 2D
convolution over 5-frame stacks and the trunk channels-last. It follows the detector protocol
like the model it copies. Built through the registry (``registry.inference_model``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from forensight.models.lipforensics import (
    BasicBlock,
    ConvBNPReLU1d,
    LipForensics,
    MultibranchTemporalBlock,
    pool_tcn_features,
    to_official_layout,
)
from forensight.models.outputs import DetectorOutput

__all__ = ["LipForensicsInference", "fold_batchnorm", "fuse_conv_bn", "optimize_for_inference"]


def fuse_conv_bn(weight: Tensor, bias: Tensor | None, bn: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``bn(conv(x))`` as a single conv (``bn`` in eval mode)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = weight * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return w.detach().clone(), ((b - bn.running_mean) * scale + bn.bias).detach().clone()


def _fused_conv2d(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode)
    w, b = fuse_conv_bn(conv.weight, conv.bias, bn)
    fused.weight = nn.Parameter(w, requires_grad=False)
    fused.bias = nn.Parameter(b, requires_grad=False)
    return fused


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, IN PLACE, every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d`` into that
    convolution (its weight and bias are replaced, so a ``Conv2d`` subclass keeps its own padding);
    the BatchNorm becomes ``nn.Identity``. Pairs are found in every ``nn.Sequential`` (torchvision's
    ``Conv2dNormActivation`` and the like) and in every module that declares them as a
    ``conv_bn_pairs`` attribute ``((conv attribute, BatchNorm attribute), ...)`` (the Lite0
    encoder). Outputs are unchanged up to float rounding; the module must be in eval mode and be
    used only for inference afterwards. Returns how many BatchNorms were folded."""
    if module.training:
        raise ValueError("fold_batchnorm needs a module in eval mode (BatchNorm running statistics)")
    n = 0
    for child in list(module.modules()):
        names = list(child._modules)
        pairs = list(itertools.pairwise(names)) if isinstance(child, nn.Sequential) else []
        pairs += [p for p in getattr(child, "conv_bn_pairs", ()) if p[0] in child._modules and p[1] in child._modules]
        for a, b in pairs:
            conv, bn = child._modules[a], child._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                w, bias = fuse_conv_bn(conv.weight, conv.bias, bn)
                conv.weight = nn.Parameter(w, requires_grad=False)
                conv.bias = nn.Parameter(bias, requires_grad=False)
                child._modules[b] = nn.Identity()
                n += 1
    return n


class _FusedBasicBlock(nn.Module):
    """:class:`BasicBlock` with BatchNorm folded into its convs (eval only)."""

    def __init__(self, block: BasicBlock) -> None:
        super().__init__()
        self.conv1 = _fused_conv2d(block.conv1, block.bn1)
        self.relu1 = copy.deepcopy(block.relu1)
        self.conv2 = _fused_conv2d(block.conv2, block.bn2)
        self.relu2 = copy.deepcopy(block.relu2)
        self.downsample = (None if block.downsample is None
                           else _fused_conv2d(block.downsample[0], block.downsample[1]))

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (N, C_in, H, W) -> (N, C_out, H', W')."""
        out = self.conv2(self.relu1(self.conv1(x)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + residual)


class _FusedFrontend(nn.Module):
    """The 3D stem as a 2D conv over 5-frame stacks: ``(B, 1, T, H, W) -> (B*T, 64, H/4, W/4)``.

    A Conv3d with one input channel and temporal kernel 5 (padding 2) equals a Conv2d whose 5
    input channels are frames ``t-2 .. t+2`` (zeros beyond the ends); oneDNN runs the 2D form
    (channels-last) about twice as fast. BatchNorm is folded into the conv. When every PReLU
    slope is >= 0 the PReLU is monotone, so it commutes with the max-pool and is applied to the
    4x smaller pooled map.
    """

    def __init__(self, frontend: nn.Sequential) -> None:
        super().__init__()
        conv, bn, prelu = frontend[0], frontend[1], frontend[2]
        w, b = fuse_conv_bn(conv.weight, conv.bias, bn)  # (64, 1, kT, kH, kW)
        self.k_t = conv.kernel_size[0]
        self.pad_t = conv.padding[0]
        self.conv = nn.Conv2d(self.k_t, conv.out_channels, conv.kernel_size[1:], conv.stride[1:],
                              conv.padding[1:], bias=True)
        self.conv.weight = nn.Parameter(w.squeeze(1), requires_grad=False)
        self.conv.bias = nn.Parameter(b, requires_grad=False)
        self.prelu = copy.deepcopy(prelu)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.prelu_after_pool = bool((prelu.weight >= 0).all())

    def forward(self, x: Tensor) -> Tensor:
        """``x``: (B, 1, T, H, W) -> (B*T, 64, H/4, W/4), channels-last."""
        b, _, t, h, w = x.shape
        xp = F.pad(x[:, 0], (0, 0, 0, 0, self.pad_t, self.pad_t))  # (B, T + 2p, H, W)
        stacks = xp.unfold(1, self.k_t, 1).permute(0, 1, 4, 2, 3).reshape(b * t, self.k_t, h, w)
        y = self.conv(stacks.contiguous(memory_format=torch.channels_last))
        if self.prelu_after_pool:
            return self.prelu(self.pool(y))
        return self.pool(self.prelu(y))


class _FusedTCNBranch(nn.Module):
    def __init__(self, m: ConvBNPReLU1d) -> None:
        super().__init__()
        c = m.conv
        self.conv = nn.Conv1d(c.in_channels, c.out_channels, c.kernel_size, dilation=c.dilation,
                              padding=c.padding, bias=True)
        w, b = fuse_conv_bn(c.weight, c.bias, m.batchnorm)
        self.conv.weight = nn.Parameter(w, requires_grad=False)
        self.conv.bias = nn.Parameter(b, requires_grad=False)
        self.non_lin = copy.deepcopy(m.non_lin)

    def forward(self, x: Tensor) -> Tensor:
        return self.non_lin(self.conv(x))


class _FusedTemporalBlock(nn.Module):
    def __init__(self, block: MultibranchTemporalBlock) -> None:
        super().__init__()
        n = block.num_kernels
        self.stage0 = nn.ModuleList(_FusedTCNBranch(getattr(block, f"cbcr0_{i}")) for i in range(n))
        self.stage1 = nn.ModuleList(_FusedTCNBranch(getattr(block, f"cbcr1_{i}")) for i in range(n))
        self.downsample = copy.deepcopy(block.downsample)
        self.relu_final = copy.deepcopy(block.relu_final)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([br(x) for br in self.stage0], 1)
        out = torch.cat([br(out) for br in self.stage1], 1)
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu_final(out + residual)


class LipForensicsInference(nn.Module):
    """Eval-only, BatchNorm-folded, channels-last version of a :class:`LipForensics` model.

    Same inputs and outputs as :class:`LipForensics` (``forward``: the protocol layout,
    ``forward_official``: ``(B, 1, T, H, W)``) and the same function within float
    rounding (~1e-5). Built by :func:`optimize_for_inference`; it has no trainable state and its
    parameters do not follow the checkpoint format.
    """

    def __init__(self, model: LipForensics) -> None:
        super().__init__()
        model = model.eval()
        self.num_classes = model.num_classes
        self.input_spec = model.input_spec
        with torch.no_grad():
            self.frontend = _FusedFrontend(model.frontend3D)
            blocks = [blk for name in ("layer1", "layer2", "layer3", "layer4")
                      for blk in getattr(model.trunk, name)]
            self.trunk = nn.Sequential(*(_FusedBasicBlock(b) for b in blocks))
            self.tcn = nn.Sequential(*(_FusedTemporalBlock(b) for b in model.tcn.mb_ms_tcn.network))
            self.attention = copy.deepcopy(model.attention)
            self.classifier = copy.deepcopy(model.tcn.tcn_output)
            self.mean_pool = copy.deepcopy(model.mean_pool)
        self.trunk.to(memory_format=torch.channels_last)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def cam_layer(self) -> nn.Module:
        """The spatial protocol's hook point: the last (fused) ResNet block, ``(B*T, 512, h, w)``."""
        return self.trunk[-1]

    def temporal_features(self, x: Tensor) -> Tensor:
        """``(B, 1, T, H, W) -> (B, 768, T)``."""
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, T, H, W), got {tuple(x.shape)}")
        b, t = x.shape[0], x.shape[2]
        feats = self.trunk(self.frontend(x))  # (B*T, 512, h, w)
        feats = feats.mean((2, 3)).reshape(b, t, -1).transpose(1, 2)  # (B, 512, T)
        return self.tcn(feats.contiguous())

    def forward_official(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> DetectorOutput:
        """``x (B, 1, T, H, W)`` → logits ``(B,)`` and pooling weights ``(B, T)``."""
        pooled, weights = pool_tcn_features(self.attention or self.mean_pool, self.temporal_features(x), lengths)
        logits = self.classifier(pooled)
        return DetectorOutput(logits=logits.squeeze(1) if self.num_classes == 1 else logits, weights=weights)

    def forward(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> DetectorOutput:
        """The detector protocol: ``x (B, T, 1, H, W)`` → :class:`DetectorOutput`."""
        return self.forward_official(to_official_layout(x), lengths)

    def train(self, mode: bool = True) -> LipForensicsInference:
        """Inference-only: ``train(True)`` is refused."""
        if mode:
            raise RuntimeError("LipForensicsInference is eval-only; train the LipForensics model instead")
        return super().train(False)


def optimize_for_inference(model: LipForensics) -> LipForensicsInference:
    """A fast eval-only copy of ``model`` for scoring (detect / evaluate).

    BatchNorm is folded into the convolutions, the 3D stem runs as a channels-last 2D conv over
    5-frame stacks, and the trunk runs channels-last. Use it under ``torch.inference_mode()``.
    Outputs equal ``model.eval()``'s within ~1e-5. The original model is not modified; the copy is
    on the same device as ``model``.
    """
    was_training = model.training
    try:
        return LipForensicsInference(model)
    finally:
        model.train(was_training)

"""The region-based temporal detector: per-frame encoder -> temporal model -> pooling -> classifier.

``Detector.forward(x (B, T, C, H, W) float, lengths (B,) | None) -> DetectorOutput``
with ``logits (B,)`` (``sigmoid`` = P(fake)) and pooling ``weights (B, T)``.

The Control and Attention variants differ only in the pooling module; both use the same
classifier ``Linear(D, 64) -> ReLU -> Dropout(0.5) -> Linear(64, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from forensight.models.outputs import DetectorOutput
from forensight.models.temporal import lengths_to_mask

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Detector", "make_classifier", "normalize_uint8"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_uint8(
    x: Tensor,
    mean: Sequence[float] | Tensor,
    std: Sequence[float] | Tensor,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """uint8 frames ``(B, T, H, W, C)`` (or ``(T, H, W, C)``) -> normalised float ``(B, T, C, H, W)``.

    ``(x / 255 - mean) / std`` per channel, computed on ``device`` (default: where ``x`` is), so a
    loader can ship compact uint8 batches and normalise them on the accelerator. The result is a
    channels-last strided view (``.contiguous()`` it if a plain layout is needed).
    """
    if x.dim() == 4:
        x = x.unsqueeze(0)
    if x.dim() != 5:
        raise ValueError(f"expected uint8 frames (B, T, H, W, C), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"expected dtype uint8, got {x.dtype}")
    c = x.shape[-1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
    if mean_t.numel() != c or std_t.numel() != c:
        raise ValueError(f"{c} channels but mean/std have {mean_t.numel()}/{std_t.numel()} values")
    device = x.device if device is None else torch.device(device)
    x = x.to(device, non_blocking=True)
    scale = (1.0 / (255.0 * std_t)).to(device)
    shift = (mean_t / std_t).to(device)
    out = x.to(torch.float32) * scale - shift  # (B, T, H, W, C)
    return out.to(dtype).permute(0, 1, 4, 2, 3)


def make_classifier(in_dim: int, hidden: int = 64, dropout: float = 0.5) -> nn.Sequential:
    """The shared head: ``Linear(in_dim, hidden) -> ReLU -> Dropout -> Linear(hidden, 1)``."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )


class Detector(nn.Module):
    """Encoder per frame, temporal model, pooling, classifier.

    Args:
        encoder: module ``(N, C, H, W) -> (N, encoder.out_dim)``.
        temporal: module ``(B, T, D, lengths) -> (B, T, temporal.out_dim)``.
        pooling: module ``(h (B, T, D), mask (B, T)) -> (pooled (B, D), weights (B, T))``.
        hidden, dropout: classifier width and dropout.
        input_size: square side in pixels the model expects (metadata for loaders).
        region: which face region the model reads (``"full"``, ``"eyes"``, ``"mouth"``, ...).
        in_channels: 3 (RGB) or 1 (grayscale).
        num_frames: frames per clip the model was built for (metadata; any T works).
        mean, std: per-channel normalisation used by :meth:`normalize_uint8`.
        channels_last: run the encoder on channels-last tensors (faster convs on GPU).
        encoder_chunk: encode at most this many frames per encoder call (0 = all at once);
            bounds activation memory for long clips at inference.
    """

    def __init__(
        self,
        encoder: nn.Module,
        temporal: nn.Module,
        pooling: nn.Module,
        *,
        hidden: int = 64,
        dropout: float = 0.5,
        input_size: int = 224,
        region: str = "full",
        in_channels: int = 3,
        num_frames: int = 32,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channels_last: bool = False,
        encoder_chunk: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.temporal = temporal
        self.pooling = pooling
        self.classifier = make_classifier(int(temporal.out_dim), hidden, dropout)
        self.input_size = int(input_size)
        self.region = str(region)
        self.in_channels = int(in_channels)
        self.num_frames = int(num_frames)
        self.channels_last = bool(channels_last)
        self.encoder_chunk = int(encoder_chunk)
        mean = IMAGENET_MEAN if mean is None else tuple(mean)
        std = IMAGENET_STD if std is None else tuple(std)
        if len(mean) != self.in_channels or len(std) != self.in_channels:
            raise ValueError(f"mean/std need {self.in_channels} values, got {len(mean)}/{len(std)}")
        # Non-persistent: follow .to(device) but stay out of the state_dict.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        if self.channels_last:
            self.encoder.to(memory_format=torch.channels_last)

    def normalize_uint8(self, x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """uint8 ``(B, T, H, W, C)`` -> float ``(B, T, C, H, W)`` normalised, on this model's device."""
        return normalize_uint8(x, self.mean, self.std, device=self.mean.device, dtype=dtype)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """``frames (N, C, H, W)`` -> features ``(N, encoder.out_dim)``, chunked if configured."""
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        n = frames.shape[0]
        if self.encoder_chunk <= 0 or n <= self.encoder_chunk:
            return self.encoder(frames)
        step = self.encoder_chunk
        return torch.cat([self.encoder(frames[i : i + step]) for i in range(0, n, step)])

    def forward(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> DetectorOutput:
        """``x (B, T, C, H, W)`` normalised float, ``lengths (B,)`` valid frames per clip (None = all).

        Padded frames (index >= length) are never encoded, so they cannot change the output,
        and they get exactly 0 pooling weight.

        Returns:
            DetectorOutput(logits (B,), weights (B, T)).
        """
        feats, mask = self.features(x, lengths)
        return self.head(feats, mask)

    def features(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """Per-frame encoder features: ``x (B, T, C, H, W)`` → ``feats (B, T, D)``, ``mask (B, T)``.

        Padded frames are not encoded (their features are 0 and ``mask`` is False there).
        """
        if x.dim() != 5:
            raise ValueError(f"expected x of shape (B, T, C, H, W), got {tuple(x.shape)}")
        b, t, c = x.shape[:3]
        if c != self.in_channels:
            raise ValueError(f"model expects {self.in_channels} channels, got {c} (x shape {tuple(x.shape)})")
        mask = lengths_to_mask(None if lengths is None else torch.as_tensor(lengths), b, t, x.device)
        if bool(mask.all()):
            feats = self.encode_frames(x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1)
        else:
            valid = self.encode_frames(x[mask])  # (N_valid, D)
            feats = valid.new_zeros(b, t, valid.shape[-1])
            feats[mask] = valid
        return feats, mask

    def head(self, feats: Tensor, mask: Tensor) -> DetectorOutput:
        """Temporal model + pooling + classifier on encoder features ``(B, T, D)`` with ``mask (B, T)``.

        Lets a caller encode frames once and score several windows of them (``detect`` does).
        """
        lengths_t = mask.sum(dim=1)
        full = bool(mask.all())
        h = self.temporal(feats, None if full else lengths_t)
        pooled, weights = self.pooling(h, mask)
        logits = self.classifier(pooled).squeeze(-1)
        return DetectorOutput(logits=logits, weights=weights)

    def forward_with_weights(
        self, x: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> DetectorOutput:
        """Same as :meth:`forward` (the name LipForensics uses for its DetectorOutput path)."""
        return self.forward(x, lengths)

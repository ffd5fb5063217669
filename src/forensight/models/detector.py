"""The region-based temporal detector: per-frame encoder -> temporal model -> pooling -> classifier.

``Detector.forward(x (B, T, C, H, W) float, lengths (B,) | None) -> DetectorOutput``
with ``logits (B,)`` (``sigmoid`` = P(fake)) and pooling ``weights (B, T)``: the detector
protocol every Forensight model follows (:mod:`forensight.models.protocol`). What it reads is
``model.input_spec`` (:class:`forensight.config.InputSpec`).

The Control and Attention variants differ only in the pooling module; both use the same
classifier ``Linear(D, 64) -> ReLU -> Dropout(0.5) -> Linear(64, 1)``. Optionally the per-frame
features are normalised (LayerNorm) and dropped out before the temporal model (the recipe knobs
``feature_norm`` / ``feature_dropout``; off by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from forensight.config import InputSpec
from forensight.models.outputs import DetectorOutput
from forensight.models.temporal import lengths_to_mask

__all__ = ["Detector", "make_classifier", "make_feature_norm"]


def make_feature_norm(kind: str, dim: int) -> nn.Module:
    """``"none"`` -> identity; ``"layernorm"`` -> ``LayerNorm(dim)`` over the last axis of ``(B, T, dim)``."""
    if kind == "none":
        return nn.Identity()
    if kind == "layernorm":
        return nn.LayerNorm(dim)
    raise ValueError(f"feature_norm must be 'none' or 'layernorm', got {kind!r}")


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
        input_spec: what the model reads (region, side, channels, normalisation).
        hidden, dropout: classifier width and dropout.
        feature_norm: ``"none"`` or ``"layernorm"``: normalise each frame's encoder features (over
            the feature axis) before the temporal model.
        feature_dropout: dropout on the frame features before the temporal model (0 = none).
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
        input_spec: InputSpec,
        hidden: int = 64,
        dropout: float = 0.5,
        feature_norm: str = "none",
        feature_dropout: float = 0.0,
        channels_last: bool = False,
        encoder_chunk: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_norm = make_feature_norm(feature_norm, int(encoder.out_dim))
        self.feature_dropout = nn.Dropout(feature_dropout) if feature_dropout > 0 else nn.Identity()
        self.temporal = temporal
        self.pooling = pooling
        self.classifier = make_classifier(int(temporal.out_dim), hidden, dropout)
        self.input_spec = input_spec
        self.channels_last = bool(channels_last)
        self.encoder_chunk = int(encoder_chunk)
        if self.channels_last:
            self.encoder.to(memory_format=torch.channels_last)

    def encode_frames(self, frames: Tensor) -> Tensor:
        """``frames (N, C, H, W)`` -> features ``(N, encoder.out_dim)``, chunked if configured."""
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        n = frames.shape[0]
        if self.encoder_chunk <= 0 or n <= self.encoder_chunk:
            return self.encoder(frames)
        step = self.encoder_chunk
        return torch.cat([self.encoder(frames[i : i + step]) for i in range(0, n, step)])

    def cam_layer(self) -> nn.Module:
        """The spatial protocol's hook point: the encoder's last convolutional block
        (``encoder.cam_layer()``), whose output is ``(N_valid, C, h, w)`` (padded frames are not
        encoded)."""
        layer = getattr(self.encoder, "cam_layer", None)
        if layer is None:
            raise TypeError(f"encoder {type(self.encoder).__name__} exposes no cam_layer()")
        return layer()

    def forward(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> DetectorOutput:
        """``x (B, T, C, H, W)`` normalised float, ``lengths (B,)`` valid frames per clip (None = all).

        Padded frames (index >= length) are never encoded, so they cannot change the output,
        and they get exactly 0 pooling weight.

        Returns:
            DetectorOutput(logits (B,), weights (B, T)).
        """
        feats, mask = self.features(x, lengths)
        return self.classify_features(feats, mask)

    def features(self, x: Tensor, lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """Per-frame encoder features: ``x (B, T, C, H, W)`` → ``feats (B, T, D)``, ``mask (B, T)``.

        Padded frames are not encoded (their features are 0 and ``mask`` is False there).
        """
        if x.dim() != 5:
            raise ValueError(f"expected x of shape (B, T, C, H, W), got {tuple(x.shape)}")
        b, t, c = x.shape[:3]
        if c != self.input_spec.channels:
            raise ValueError(f"model expects {self.input_spec.channels} channels, got {c} (x shape {tuple(x.shape)})")
        mask = lengths_to_mask(None if lengths is None else torch.as_tensor(lengths), b, t, x.device)
        if bool(mask.all()):
            feats = self.encode_frames(x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1)
        else:
            valid = self.encode_frames(x[mask])  # (N_valid, D)
            feats = valid.new_zeros(b, t, valid.shape[-1])
            feats[mask] = valid
        return feats, mask

    def classify_features(self, feats: Tensor, mask: Tensor) -> DetectorOutput:
        """Temporal model + pooling + classifier on encoder features ``(B, T, D)`` with ``mask (B, T)``.

        Lets a caller encode frames once and score several windows of them (the scoring path's
        sliding windows do): part of the optional frame-feature protocol.
        """
        lengths_t = mask.sum(dim=1)
        full = bool(mask.all())
        feats = self.feature_dropout(self.feature_norm(feats))
        if not full:  # padded steps stay exactly 0 (a LayerNorm would give them its bias)
            feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        h = self.temporal(feats, None if full else lengths_t)
        pooled, weights = self.pooling(h, mask)
        logits = self.classifier(pooled).squeeze(-1)
        return DetectorOutput(logits=logits, weights=weights)

"""Typed outputs shared by all Forensight detectors."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["DetectorOutput"]


@dataclass(frozen=True)
class DetectorOutput:
    """What a detector says about a batch of clips.

    Attributes:
        logits: ``(B,)`` raw scores; ``sigmoid(logits)`` = P(fake) (label 1 = fake).
        weights: ``(B, T)`` per-time-step pooling weights. Each row sums to 1 over the valid
            steps and is exactly 0 on padded steps. A mean (control) head gives uniform weights
            ``1 / length``; an attention head gives its softmax weights.
    """

    logits: Tensor
    weights: Tensor

"""The base of every per-frame encoder, below the encoder modules and their registry.

``forensight.models.encoders`` (the torchvision encoders and the ``ENCODERS`` registry) and
``forensight.models.efficientnet_lite`` both build on :class:`FrameEncoder`; it lives here so that
neither imports the other's module back.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

__all__ = ["FrameEncoder", "adapt_first_conv"]


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


def adapt_first_conv(w: Tensor, in_channels: int) -> Tensor:
    """Adapt a conv weight ``(O, 3, k, k)`` to ``(O, in_channels, k, k)`` keeping its response scale."""
    c = w.shape[1]
    if c == in_channels:
        return w
    if in_channels == 1:
        return w.sum(dim=1, keepdim=True)
    reps = math.ceil(in_channels / c)
    return w.repeat(1, reps, 1, 1)[:, :in_channels] * (c / in_channels)

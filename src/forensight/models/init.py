"""Weight initialisation shared by the convolutional encoders (one rule, written once)."""

from __future__ import annotations

from torch import nn

__all__ = ["he_init"]


def he_init(module: nn.Module) -> None:
    """He-normal (fan-out, ReLU gain) init of every ``Conv2d`` in ``module``; unit / zero affine of
    every ``BatchNorm2d`` (the torchvision ResNet / EfficientNet rule). Biases are left as built."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

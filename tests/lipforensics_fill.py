"""Deterministic LipForensics-format weights and input for the parity test.

Our implementation of the documented filler that ``tests/data/lipforensics/reference_logits.json``
was computed with: every tensor is drawn from a ``torch.Generator`` seeded with
``zlib.crc32(key)``, so the values depend only on the key name and shape. The rules, in order:

* ``*num_batches_tracked`` -> int64 scalar 0
* ``*running_var``  -> ``0.5 + U[0, 1)``
* ``*running_mean`` -> ``0.1 * N(0, 1)``
* 1-D batch-norm affine (key contains ``bn`` or ``batchnorm``, starts with ``frontend3D.1``, or
  contains ``.downsample.1.``) -> ``base + 0.1 * N(0, 1)``, base 1 for ``weight``, 0 for ``bias``
* other 1-D ``*weight`` (PReLU slopes) -> ``0.25 + 0.05 * N(0, 1)``
* other 1-D (conv / linear biases) -> ``0.01 * N(0, 1)``
* everything else -> ``N(0, 1) / sqrt(fan_in)``, ``fan_in`` = product of ``shape[1:]``
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch

__all__ = ["fill_state_dict", "fill_tensor", "reference_input"]


def _is_batchnorm_affine(key: str) -> bool:
    return ("bn" in key or "batchnorm" in key or key.startswith("frontend3D.1")
            or ".downsample.1." in key)


def fill_tensor(key: str, shape: Sequence[int]) -> torch.Tensor:
    """The deterministic value of parameter/buffer ``key`` with ``shape``."""
    gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    shape = tuple(int(s) for s in shape)
    if key.endswith("num_batches_tracked"):
        return torch.tensor(0, dtype=torch.long)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=gen) + 0.5
    if key.endswith("running_mean"):
        return torch.randn(shape, generator=gen) * 0.1
    if len(shape) == 1:
        if _is_batchnorm_affine(key):
            base = 1.0 if key.endswith("weight") else 0.0
            return torch.randn(shape, generator=gen) * 0.1 + base
        if key.endswith("weight"):
            return torch.randn(shape, generator=gen) * 0.05 + 0.25
        return torch.randn(shape, generator=gen) * 0.01
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=gen) * (1.0 / fan_in) ** 0.5


def fill_state_dict(shapes: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """``{key: shape}`` -> ``{key: deterministic tensor}`` (a loadable state_dict)."""
    return {key: fill_tensor(key, shape) for key, shape in shapes.items()}


def reference_input(batch: int = 2, frames: int = 25, size: int = 88) -> torch.Tensor:
    """The fixed normalised clip batch ``(B, 1, T, H, W)``: ``randn`` from generator seed 1234."""
    gen = torch.Generator().manual_seed(1234)
    return torch.randn((batch, 1, frames, size, size), generator=gen)

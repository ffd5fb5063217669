"""The detector protocol: what every Forensight model is, whatever its architecture.

* :class:`ForensicDetector`: ``model(x, lengths) -> DetectorOutput`` with ``x`` float
  ``(B, T, C, H, W)`` normalised as ``model.input_spec`` says, ``lengths (B,)`` valid frames per
  clip (``None`` = all), ``DetectorOutput(logits (B,), weights (B, T))``; ``model.input_spec``
  (:class:`forensight.config.InputSpec`) says what it reads, as data.
* :class:`FrameFeatureDetector` (optional): models whose frames are encoded independently can
  encode once (``features``) and classify any window of those features
  (``classify_features``); the scoring path uses it to score sliding windows cheaply. A model
  without it is scored window by window through ``forward``.
* :class:`SpatialDetector` (optional): models that can say *where* in a frame the evidence is
  expose ``cam_layer()``, the module whose output is the per-frame feature map of their last
  convolutional block, ``(N, C, h, w)`` with one row per encoded frame in (clip, time) order
  (``N = B * T`` when padded frames are encoded too, ``N = lengths.sum()`` when they are
  skipped). :mod:`forensight.explain` runs Grad-CAM (Selvaraju et al., 2017) on it for any
  such model, whatever its architecture.

Nothing outside :mod:`forensight.models.registry` asks which architecture a model is: callers
use the protocol and the input spec only.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from forensight.config import InputSpec
from forensight.models.outputs import DetectorOutput

__all__ = ["DetectorOutput", "ForensicDetector", "FrameFeatureDetector", "SpatialDetector"]


@runtime_checkable
class ForensicDetector(Protocol):
    """Any detector: ``(B, T, C, H, W)`` + lengths → :class:`DetectorOutput`."""

    input_spec: InputSpec

    def __call__(self, x: Tensor, lengths: Tensor | None = None) -> DetectorOutput: ...


@runtime_checkable
class FrameFeatureDetector(ForensicDetector, Protocol):
    """A detector that can encode frames once and classify windows of the features."""

    def features(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (B, T, C, H, W)`` → ``feats (B, T, D)``, ``mask (B, T)``."""
        ...

    def classify_features(self, feats: Tensor, mask: Tensor) -> DetectorOutput:
        """``feats (B, T, D)``, ``mask (B, T)`` → :class:`DetectorOutput`."""
        ...


@runtime_checkable
class SpatialDetector(ForensicDetector, Protocol):
    """A detector whose frames pass through a convolutional block Grad-CAM can read."""

    def cam_layer(self) -> nn.Module:
        """The module whose forward output is the last convolutional block's per-frame map
        ``(N, C, h, w)``, one row per encoded frame in (clip, time) order."""
        ...

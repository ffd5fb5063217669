"""Forensight: deepfake video detection with region-based temporal attention."""

from __future__ import annotations

from forensight._version import __version__

__all__ = ["__version__", "load_detector"]


def load_detector(path, cfg=None, **overrides):
    """Load a detector from a run directory or ``model.pt``, a portable model folder, or a published
    checkpoint file such as ``lipforensics_ff.pth`` (``forensight.detect.load_detector``:
    ``device``, ``top_k``, ``batch_size``, ``local_scores`` as keywords or a ``DetectConfig``)."""
    from forensight.detect import load_detector as _load

    return _load(path, cfg, **overrides)

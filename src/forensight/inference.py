"""From uint8 clip batches to detector outputs: the one path used by train, evaluate and detect.

``prepare_batch`` normalises (and resizes when the cache's crop size differs from the model's
input size) ON the batch's device; ``forward_detector`` hides the layout difference between
the region models (B, T, C, H, W) and LipForensics (B, C, T, H, W); ``predict_loader`` runs a
model over a data loader and returns clip-level predictions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forensight.datasets.clips import normalize_batch
from forensight.models.outputs import DetectorOutput


def prepare_batch(frames: torch.Tensor, model_cfg: Any, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, T, h, w, C) → normalised float (B, T, C, S, S) with S = ``model_cfg.input_size``.

    Resizing (bilinear, antialiased) happens only when the cached crop side differs from the
    model's input side (e.g. 224-px crops into a 112-px CPU preset).
    """
    x = normalize_batch(frames, tuple(model_cfg.mean), tuple(model_cfg.std))
    size = int(model_cfg.input_size)
    if x.shape[-1] != size or x.shape[-2] != size:
        b, t = x.shape[:2]
        x = F.interpolate(x.reshape(b * t, *x.shape[2:]), size=(size, size), mode="bilinear",
                          antialias=True, align_corners=False).reshape(b, t, x.shape[2], size, size)
    if channels_last:
        b, t = x.shape[:2]
        x = x.reshape(b * t, *x.shape[2:]).contiguous(memory_format=torch.channels_last).reshape(x.shape)
    return x


def forward_detector(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> DetectorOutput:
    """Run any Forensight detector on float (B, T, C, H, W); returns logits (B,) and weights (B, T)."""
    cfg = getattr(model, "model_config", None)
    if cfg is not None and cfg.arch == "lipforensics":  # LipForensics works on (B, C, T, H, W)
        return model.forward_with_weights(x.transpose(1, 2), lengths)
    return model(x, lengths)


@dataclass
class ClipPredictions:
    """Clip-level outputs of a model over a dataset.

    ``weights[i]`` holds the valid-frame attention weights of clip i and ``frame_indices[i]``
    the source frame numbers they belong to.
    """

    video_ids: list[str] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    logits: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    frame_indices: list[np.ndarray] = field(default_factory=list)

    def extend(self, batch: dict[str, Any], out: DetectorOutput) -> None:
        logits = out.logits.detach().float().cpu().numpy()
        weights = out.weights.detach().float().cpu().numpy()
        lengths = batch["lengths"].cpu().numpy()
        idx = batch["frame_indices"].cpu().numpy()
        for b, vid in enumerate(batch["video_id"]):
            n = int(lengths[b])
            self.video_ids.append(vid)
            self.labels.append(float(batch["label"][b]))
            self.logits.append(float(logits[b]))
            self.starts.append(int(batch["start"][b]))
            self.weights.append(weights[b, :n].copy())
            self.frame_indices.append(idx[b, :n].copy())

    def video_scores(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Video-level (ids, labels, mean clip logit) — the LipForensics protocol."""
        agg: dict[str, list[float]] = {}
        lab: dict[str, float] = {}
        for vid, y, s in zip(self.video_ids, self.labels, self.logits):
            agg.setdefault(vid, []).append(s)
            lab[vid] = y
        ids = sorted(agg)
        return ids, np.array([lab[v] for v in ids]), np.array([float(np.mean(agg[v])) for v in ids])


@torch.inference_mode()
def predict_loader(model: nn.Module, loader: Iterable[dict[str, Any]], model_cfg: Any,
                   device: torch.device | str = "cpu", progress: bool = False,
                   autocast_dtype: torch.dtype | None = None) -> ClipPredictions:
    """Run ``model`` (eval mode) over every batch of ``loader``; returns clip predictions."""
    from tqdm.auto import tqdm

    device = torch.device(device)
    model.eval().to(device)
    preds = ClipPredictions()
    for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress, leave=False):
        frames = batch["frames"].to(device, non_blocking=True)
        x = prepare_batch(frames, model_cfg, channels_last=device.type == "cuda")
        lengths = batch["lengths"].to(device)
        if autocast_dtype is not None:
            with torch.autocast(device.type, dtype=autocast_dtype):
                out = forward_detector(model, x, lengths)
        else:
            out = forward_detector(model, x, lengths)
        preds.extend(batch, out)
    return preds

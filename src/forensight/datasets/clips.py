"""Clip datasets over a preprocessing cache, the one collation, and on-device batch preparation.

Items stay uint8 until they reach the device: the loader only slices memory-mapped arrays,
and :func:`prepare_batch` / :func:`augment_batch` run on whole batches where the model runs, so
the data loader never starves a GPU.

Which frames make an item is decided by :func:`forensight.planning.plan_clips` (the observed-face
span; one clip per video for region models, consecutive ``clip_len``-frame clips for clip
models); :func:`clip_item` cuts an item from a region array, for cached videos
(:class:`ClipDataset`) and for videos scored by ``detect`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from forensight.cache import Cache
from forensight.config import InputSpec
from forensight.planning import frame_step, plan_clips


@dataclass(frozen=True)
class ClipRef:
    """One model input: sampled positions ``[start, stop)`` of a cached video."""

    video_id: str
    label: int
    start: int
    stop: int


def clip_item(video_id: str, label: int, region: np.ndarray, frame_indices: np.ndarray, start: int,
              stop: int, key: str = "frames") -> dict[str, Any]:
    """One item: positions ``[start, stop)`` of a per-frame array.

    ``region`` is uint8 ``(T, h, w)`` or ``(T, h, w, c)`` crops (``key="frames"``; the item holds
    uint8 ``(stop - start, h, w, c)``) or ``(T, D)`` encoder features (``key="features"``); always
    a private copy. Also ``label`` float (1 = fake), ``length``, ``video_id``, ``start`` (position)
    and ``frame_indices`` int64 (source frame numbers).
    """
    arr = region[start:stop]
    if key == "frames" and arr.ndim == 3:
        arr = arr[..., None]
    return {key: torch.from_numpy(np.array(arr)), "label": torch.tensor(float(label)),
            "length": stop - start, "video_id": video_id, "start": start,
            "frame_indices": torch.from_numpy(np.array(frame_indices[start:stop], dtype=np.int64))}


class ClipDataset(Dataset):
    """uint8 clips of a cache's videos, planned with :func:`~forensight.planning.plan_clips`.

    With ``features`` (a :class:`forensight.features.FeatureCache`), items hold the clip's frozen
    encoder ``features`` (float32 ``(T, D)``) instead of ``frames``: the same plans, the same clips.

    Args:
        cache: the opened cache.
        video_ids: which videos (e.g. ``cache.video_ids(split="train")``).
        spec: the model's input spec (region, clip length).
        max_clips, max_frames: see :func:`~forensight.planning.plan_clips`.
        features: read precomputed encoder features instead of crops.
        min_coverage: see :func:`~forensight.planning.plan_clips` (``low_face_coverage``).

    Attributes:
        refs: one :class:`ClipRef` per item.
        records: the :class:`~forensight.records.VideoRecord` of every video (also those without clips).
        unscored: ``{video_id: "reason: message"}`` for videos with no clip (no face, too short).
    """

    def __init__(self, cache: Cache, video_ids: list[str], spec: InputSpec, max_clips: int = 0,
                 max_frames: int = 0, features: Any = None, min_coverage: float = 0.0) -> None:
        self.cache = cache
        self.features = features
        self.spec = spec
        self.region = spec.region
        self.refs: list[ClipRef] = []
        self.records: dict[str, Any] = {}
        self.unscored: dict[str, str] = {}
        self._entries: dict[str, Any] = {}
        self._feats: dict[str, np.ndarray] = {}
        step = frame_step(cache.config)
        for vid in video_ids:
            entry = cache.load(vid, regions=[self.region])
            plan = plan_clips(entry.indices, entry.observed, spec, step=step, max_frames=max_frames,
                              max_clips=max_clips, min_coverage=min_coverage)
            self.records[vid] = entry.record
            if not plan.clips:
                self.unscored[vid] = f"{plan.reason}: {plan.message}"
            label = int(entry.record.label)
            self.refs.extend(ClipRef(vid, label, a, b) for a, b in plan.clips)

    def __len__(self) -> int:
        return len(self.refs)

    def _entry(self, vid: str) -> Any:
        # opened lazily per process (memory maps must not cross a fork half-read)
        e = self._entries.get(vid)
        if e is None:
            e = self._entries[vid] = self.cache.load(vid, regions=[self.region])
        return e

    def __getitem__(self, i: int) -> dict[str, Any]:
        ref = self.refs[i]
        e = self._entry(ref.video_id)
        if self.features is not None:
            f = self._feats.get(ref.video_id)
            if f is None:  # memory-mapped once per video and process, like the crops
                f = self._feats[ref.video_id] = self.features.load(ref.video_id)
            item = clip_item(ref.video_id, ref.label, f, e.indices, ref.start, ref.stop, key="features")
            item["features"] = item["features"].float()
            return item
        return clip_item(ref.video_id, ref.label, e.regions[self.region], e.indices, ref.start, ref.stop)

    def labels(self) -> np.ndarray:
        """int (N,) labels of every item, for balanced sampling."""
        return np.asarray([r.label for r in self.refs], dtype=np.int64)


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items (``frames`` or ``features``), zero-padding to the longest clip; ``lengths``
    marks the valid frames."""
    key = "features" if "features" in items[0] else "frames"
    t_max = max(int(it["length"]) for it in items)
    first = items[0][key]
    data = torch.zeros((len(items), t_max, *first.shape[1:]), dtype=first.dtype)
    idx = torch.full((len(items), t_max), -1, dtype=torch.int64)
    for b, it in enumerate(items):
        t = int(it["length"])
        data[b, :t] = it[key]
        idx[b, :t] = it["frame_indices"]
    return {key: data, "label": torch.stack([it["label"] for it in items]),
            "lengths": torch.tensor([int(it["length"]) for it in items], dtype=torch.int64),
            "video_id": [it["video_id"] for it in items], "start": [it["start"] for it in items],
            "frame_indices": idx}


def prepare_batch(frames: torch.Tensor, spec: InputSpec, channels_last: bool = False) -> torch.Tensor:
    """uint8 ``(B, T, h, w, c)`` → the model's float input ``(B, T, C, S, S)``, on ``frames``' device.

    In this order: the spec's centre ``crop`` (LipForensics: 88 of 96 px), ``x / 255``,
    ``(x - mean) / std`` per channel, and a bilinear antialiased resize to ``S = spec.size`` only
    when the (cropped) side differs (e.g. 224-px crops into a 112-px CPU preset). The one place a
    batch becomes model input: training, validation and every scoring call use it.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    if frames.dim() != 5:
        raise ValueError(f"expected frames (B, T, h, w, c), got shape {tuple(frames.shape)}")
    c = frames.shape[-1]
    if c != spec.channels:
        raise ValueError(f"the model reads {spec.channels} channel(s), the frames have {c}")
    rows, cols = spec.crop_window(*frames.shape[2:4])
    frames = frames[:, :, rows, cols]
    x = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
    m = torch.tensor(spec.mean, device=x.device, dtype=x.dtype).view(1, 1, c, 1, 1)
    s = torch.tensor(spec.std, device=x.device, dtype=x.dtype).view(1, 1, c, 1, 1)
    x = (x - m) / s
    b, t = x.shape[:2]
    if x.shape[-1] != spec.size or x.shape[-2] != spec.size:
        x = F.interpolate(x.reshape(b * t, *x.shape[2:]), size=(spec.size, spec.size), mode="bilinear",
                          antialias=True, align_corners=False).reshape(b, t, c, spec.size, spec.size)
    if channels_last:
        x = x.reshape(b * t, *x.shape[2:]).contiguous(memory_format=torch.channels_last).reshape(x.shape)
    return x


def augment_batch(frames: torch.Tensor, generator: torch.Generator | None = None,
                  flip: bool = True, brightness: float = 0.1) -> torch.Tensor:
    """Clip-consistent augmentation of uint8 (B, T, H, W, C) on the device.

    The same horizontal flip and brightness change apply to every frame of a clip, so no
    temporal jitter is invented (that would be a fake cue for a temporal detector).
    """
    b = frames.shape[0]
    dev = frames.device
    out = frames
    if flip:
        do = torch.rand(b, generator=generator).to(dev) < 0.5
        if bool(do.any()):
            out = out.clone()
            out[do] = out[do].flip(-2)
    if brightness > 0:
        gain = 1 + (torch.rand(b, generator=generator).to(dev) * 2 - 1) * brightness
        out = (out.float() * gain.view(b, 1, 1, 1, 1)).clamp_(0, 255).to(torch.uint8)
    return out

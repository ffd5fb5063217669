"""Clip datasets over a preprocessing cache, and on-device normalisation / augmentation.

Items stay uint8 until they reach the device: the loader only slices memory-mapped arrays,
and ``normalize_batch`` / ``augment_batch`` run on whole batches where the model runs, so the
data loader never starves a GPU.

Two ways of cutting a cached video into model inputs:
  - ``clip_len=None``: one item per video = all its sampled frames (region models: 32 frames);
  - ``clip_len=25``: consecutive non-overlapping clips of ``clip_len`` frames (LipForensics);
    ``max_clips`` caps clips per video (evenly spread), ``max_frames`` caps the frames read
    from the start (110 for the FaceForensics++ protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from forensight.cache import Cache
from forensight.video import clip_starts

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LIPS_MEAN = (0.421,)
LIPS_STD = (0.165,)


@dataclass(frozen=True)
class ClipRef:
    """One model input: frames ``[start, start + length)`` of a cached video."""

    video_id: str
    label: int
    start: int
    length: int


class ClipDataset(Dataset):
    """uint8 clips from a cache.

    Each item is a dict: ``frames`` uint8 tensor (T, h, w, c), ``label`` float (1 = fake),
    ``length`` valid frames T, ``video_id`` str, ``start`` first sampled-frame position, and
    ``frame_indices`` int64 (T,) frame numbers in the source video.

    Args:
        cache: the opened cache.
        video_ids: which videos (e.g. ``cache.video_ids(split="train")``).
        region: which cached region ("full", "eyes", "mouth", "frame", "lips").
        clip_len: None = whole sequence per item, else non-overlapping clips of that length
            (videos shorter than one clip are left out and counted in ``self.too_short``).
        crop: centre-crop side in pixels applied at load time (88 for LipForensics), or None.
    """

    def __init__(self, cache: Cache, video_ids: list[str], region: str, clip_len: int | None = None,
                 max_clips: int = 0, max_frames: int = 0, crop: int | None = None) -> None:
        self.cache = cache
        self.region = region
        self.crop = crop
        self.clip_len = clip_len
        self.refs: list[ClipRef] = []
        self.too_short: list[str] = []
        self._entries: dict[str, Any] = {}
        for vid in video_ids:
            entry = cache.load(vid, regions=[region])
            n = len(entry)
            if max_frames:
                n = min(n, max_frames)
            label = int(entry.record.label)
            if clip_len is None:
                self.refs.append(ClipRef(vid, label, 0, n))
                continue
            starts = clip_starts(n, clip_len, max_clips)
            if starts.size == 0:
                self.too_short.append(vid)
            self.refs.extend(ClipRef(vid, label, int(s), clip_len) for s in starts)

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
        arr = e.regions[self.region][ref.start:ref.start + ref.length]
        if self.crop is not None:
            h, w = arr.shape[1:3]
            if self.crop > min(h, w):
                raise ValueError(f"crop {self.crop} is larger than the cached {h}x{w} {self.region} region")
            y0, x0 = (h - self.crop) // 2, (w - self.crop) // 2
            arr = arr[:, y0:y0 + self.crop, x0:x0 + self.crop]
        frames = torch.from_numpy(np.array(arr))  # a private copy of the memory-mapped slice
        return {"frames": frames, "label": torch.tensor(float(ref.label)), "length": ref.length,
                "video_id": ref.video_id, "start": ref.start,
                "frame_indices": torch.from_numpy(np.array(e.indices[ref.start:ref.start + ref.length],
                                                           dtype=np.int64))}

    def labels(self) -> np.ndarray:
        """int (N,) labels of every item, for balanced sampling."""
        return np.asarray([r.label for r in self.refs], dtype=np.int64)


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items, zero-padding to the longest clip; ``lengths`` marks the valid frames."""
    t_max = max(int(it["length"]) for it in items)
    first = items[0]["frames"]
    frames = torch.zeros((len(items), t_max, *first.shape[1:]), dtype=first.dtype)
    idx = torch.full((len(items), t_max), -1, dtype=torch.int64)
    for b, it in enumerate(items):
        t = int(it["length"])
        frames[b, :t] = it["frames"]
        idx[b, :t] = it["frame_indices"]
    return {"frames": frames, "label": torch.stack([it["label"] for it in items]),
            "lengths": torch.tensor([int(it["length"]) for it in items], dtype=torch.int64),
            "video_id": [it["video_id"] for it in items], "start": [it["start"] for it in items],
            "frame_indices": idx}


def normalize_batch(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                    channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, T, H, W, C) → float (B, T, C, H, W), scaled to [0,1] then ``(x - mean) / std``.

    Runs on whatever device ``frames`` is on (call it after the batch reaches the GPU).
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"expected uint8 frames, got {frames.dtype}")
    c = frames.shape[-1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std have {len(mean)} channels, frames have {c}")
    x = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 1, c, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 1, c, 1, 1)
    x = (x - m) / s
    if channels_last:
        b, t = x.shape[:2]
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

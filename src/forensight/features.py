"""Frozen-encoder feature cache: every cached crop encoded once per (region, encoder, weights, size).

Training the temporal model + head of a region detector on a FROZEN ImageNet encoder does not need
the encoder at every step: :func:`build_features` runs the model's encoder over every sampled frame
of every cached video once and stores float16 features beside the cache::

    <cache>/features/<region>-<encoder>-<size>px-<key>/
        meta.json            the key: preprocessing hash, region, encoder, input size and
                             normalisation, and a digest of the encoder's weights
        <entry>.npy          float16 (T, D): one row per sampled frame of that video

Files are written atomically (a killed run leaves no half file; a rerun adds what is missing) and
read memory-mapped. A feature folder whose ``meta.json`` does not match the key computed from the
cache and the model (another preprocessing, other weights, another input size) is refused.

Training, the validation threshold and ``evaluate`` of a model trained this way read the same
features through the one scoring path (``forward_batch`` classifies the features with the model's
``classify_features``). ``detect`` runs the encoder on the video's own crops; the two differ only
by float16 rounding of the features (measured in the tests; the manual, ``docs/guide/train.md``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from forensight.cache import Cache
from forensight.config import ModelConfig, stable_hash
from forensight.io import atomic_write, atomic_write_text
from forensight.models.protocol import FrameFeatureDetector

__all__ = ["FeatureCache", "FeatureStats", "build_features", "encoder_digest", "feature_key"]

FEATURES_DIR = "features"


def encoder_digest(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of the encoder's state_dict tensors: identifies the weights in use,
    wherever they came from (ImageNet file, a path, a trained run)."""
    enc = getattr(model, "encoder", None)
    if enc is None:
        raise ValueError(f"{type(model).__name__} has no `encoder`: features need a frame-feature detector")
    h = hashlib.sha256()
    for name, t in sorted(enc.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def feature_key(cache: Cache, model_cfg: ModelConfig, model: nn.Module) -> dict[str, Any]:
    """What the features depend on: the preprocessing, the region, the encoder and its weights, and
    the input the encoder sees (size, normalisation)."""
    spec = model_cfg.input_spec()
    return {"preprocess_hash": cache.config.hash, "region": spec.region, "size": spec.size,
            "channels": spec.channels, "mean": list(spec.mean), "std": list(spec.std), "crop": spec.crop,
            "encoder": getattr(model_cfg, "encoder", type(model).__name__), "weights": model_cfg.weights,
            "encoder_digest": encoder_digest(model)}


@dataclass
class FeatureStats:
    """What :func:`build_features` did: videos encoded / already there, frames, seconds."""

    encoded: int = 0
    reused: int = 0
    frames: int = 0
    seconds: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


class FeatureCache:
    """The float16 features of one (cache, region, encoder, weights, input) key."""

    def __init__(self, cache: Cache, key: dict[str, Any]) -> None:
        self.cache = cache
        self.key = dict(key)
        name = f"{key['region']}-{key['encoder']}-{key['size']}px-{stable_hash(key)}"
        self.root = cache.root / FEATURES_DIR / name

    @classmethod
    def open(cls, cache: Cache, key: dict[str, Any], create: bool = False) -> FeatureCache:
        """The feature folder of ``key``; refused when its ``meta.json`` says otherwise.
        ``create`` makes it when missing (else FileNotFoundError)."""
        fc = cls(cache, key)
        meta = fc.root / "meta.json"
        if meta.is_file():
            stored = json.loads(meta.read_text())
            if stored != json.loads(json.dumps(fc.key)):
                diff = sorted(k for k in set(stored) | set(fc.key) if stored.get(k) != fc.key.get(k))
                raise ValueError(f"feature cache {fc.root} was made for another key (differs in {diff}); "
                                 "delete it or build the features again")
        elif create:
            fc.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(meta, json.dumps(fc.key, indent=1, sort_keys=True) + "\n", what="the feature cache header")
        else:
            raise FileNotFoundError(f"no features at {fc.root}; build them with forensight.features.build_features")
        return fc

    def path(self, video_id: str) -> Path:
        return self.root / f"{self.cache.entry_dir(video_id).name}.npy"

    def has(self, video_id: str) -> bool:
        return self.path(video_id).is_file()

    def load(self, video_id: str) -> np.ndarray:
        """float16 ``(T, D)`` features of every sampled frame (memory-mapped, read-only)."""
        p = self.path(video_id)
        if not p.is_file():
            raise KeyError(f"{video_id} has no features in {self.root}; build them first")
        return np.load(p, mmap_mode="r")


@torch.inference_mode()
def build_features(cache: Cache, model_cfg: ModelConfig, model: nn.Module, video_ids: Iterable[str] | None = None,
                   device: torch.device | str = "cpu", batch_frames: int = 256,
                   progress: bool = False) -> tuple[FeatureCache, FeatureStats]:
    """Encode every sampled frame of ``video_ids`` (default: every cached video) with ``model``'s
    encoder and store the float16 features; videos already encoded are kept.

    ``model`` must follow the frame-feature protocol (``features``). Frames go through the same
    :func:`~forensight.datasets.clips.prepare_batch` as scoring, ``batch_frames`` at a time.
    """
    from tqdm.auto import tqdm

    from forensight.datasets.clips import prepare_batch

    if not isinstance(model, FrameFeatureDetector):
        raise TypeError(f"{type(model).__name__} does not encode frames independently (no `features`): "
                         "a frozen-feature cache needs a region detector")
    dev = torch.device(device)
    model = model.eval().to(dev)
    fc = FeatureCache.open(cache, feature_key(cache, model_cfg, model), create=True)
    spec = model_cfg.input_spec()
    ids = list(cache.video_ids() if video_ids is None else video_ids)
    stats = FeatureStats()
    t0 = time.perf_counter()
    for vid in tqdm(ids, desc=f"features {spec.region}", unit="video", disable=not progress, leave=False):
        if fc.has(vid):
            stats.reused += 1
            continue
        crops = cache.load(vid, regions=[spec.region]).regions[spec.region]
        if crops.ndim == 3:
            crops = crops[..., None]
        parts = []
        for a in range(0, crops.shape[0], batch_frames):
            x = prepare_batch(torch.from_numpy(np.array(crops[a:a + batch_frames]))[None].to(dev), spec,
                              channels_last=True)
            feats, _ = model.features(x)
            parts.append(feats[0].float().cpu().numpy())
        arr = np.concatenate(parts).astype(np.float16)
        atomic_write(fc.path(vid), lambda p, a=arr: _save_npy(p, a), what=f"feature file of {vid}",
                     size_hint=arr.nbytes + 128)
        stats.encoded += 1
        stats.frames += int(arr.shape[0])
    stats.seconds = time.perf_counter() - t0
    return fc, stats


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, arr)

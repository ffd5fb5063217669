"""The one scoring path: planned uint8 clips → model outputs → video scores.

The validation threshold (``train.export_run``), ``evaluate``, the study and ``detect`` all score
through this module, so a score in a report is the score that was measured:

* **clips**: planned once by :func:`forensight.planning.plan_clips` (the observed-face span,
  one clip per video or ``clip_len``-frame clips) and cut by :func:`forensight.datasets.clips.clip_item`;
* **batches**: collated by :func:`forensight.datasets.clips.collate_clips`, prepared on the device
  by :func:`forensight.datasets.clips.prepare_batch`;
* **one precision policy**: :func:`autocast_dtype` (bfloat16 autocast on any CUDA device, e.g.
  ``cuda:1``; float32 elsewhere) applied by :func:`forward_batch`, the only function that runs a
  model for scoring;
* **the model**: a loaded model file's ``scoring_model()`` (the architecture's fast eval copy,
  e.g. LipForensics with BatchNorm folded), the same object for threshold, evaluate and detect;
* **video scores**: the mean of clip logits through :func:`forensight.metrics.video_level` (a
  video whose clips disagree on the label is an error); per-frame attention through
  :func:`clip_attention_shares` (each clip's weights divided by the number of clips, so a video's
  weights sum to 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from forensight.cache import Cache
from forensight.config import InputSpec
from forensight.datasets.clips import ClipDataset, collate_clips, prepare_batch
from forensight.models.protocol import FrameFeatureDetector
from forensight.models.temporal import lengths_to_mask

if TYPE_CHECKING:
    from forensight.modelfile import LoadedModel

__all__ = [
    "BatchOutput",
    "ClipPredictions",
    "autocast_dtype",
    "clip_attention_shares",
    "forward_batch",
    "make_dataset",
    "predict",
    "resolve_device",
    "score_split",
    "video_attention",
]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" → CUDA if available, else CPU; anything else as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The precision policy of scoring: bfloat16 autocast on CUDA devices, float32 (None) elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else None


@dataclass
class BatchOutput:
    """Outputs for one batch: ``logits`` float64 ``(B,)``, per-clip valid-frame ``weights``,
    ``window_logits`` (one list per clip, for the windows asked for; empty otherwise) and, when
    explained, ``cams``: per clip the Grad-CAM maps of its valid frames, float32 ``(n, h, w)``
    (:func:`forensight.explain.grad_cam`; empty otherwise)."""

    logits: np.ndarray
    weights: list[np.ndarray]
    window_logits: list[list[float]] = field(default_factory=list)
    cams: list[np.ndarray] = field(default_factory=list)


def forward_batch(model: nn.Module, batch: dict[str, Any], device: torch.device,
                  windows: Sequence[tuple[int, int]] = (), explain: bool = False) -> BatchOutput:
    """Score one collated batch (``collate_clips``) with ``model`` in eval mode on ``device``.

    ``windows``: ``[a, b)`` position ranges scored as extra inputs cut from EVERY clip of the
    batch (sliding windows of ``detect``). Frame-feature models encode the frames once and
    classify each window from those features; other models score each window as a clip.

    ``explain``: also compute Grad-CAM maps of each clip's logit on each valid frame (the same
    forward pass, run with gradients, plus one backward pass; models following the spatial
    protocol only). Without it the batch runs under ``torch.inference_mode`` as always.
    """
    if not explain:
        with torch.inference_mode():
            return _forward_batch(model, batch, device, windows, False)
    if "features" in batch:
        raise ValueError("spatial maps need the crops: score from crops, not precomputed features")
    # cuDNN's RNN backward refuses eval mode; the explained batch runs the RNN without cuDNN
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=device.type != "cuda"):
        return _forward_batch(model, batch, device, windows, True)


def _forward_batch(model: nn.Module, batch: dict[str, Any], device: torch.device,
                   windows: Sequence[tuple[int, int]], explain: bool) -> BatchOutput:
    spec: InputSpec = model.input_spec
    lengths = batch["lengths"].to(device)
    dtype = autocast_dtype(device)
    feature_model = isinstance(model, FrameFeatureDetector)
    cams = None
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        if "features" in batch:  # precomputed frozen-encoder features (forensight.features)
            if not feature_model:
                raise TypeError(f"{type(model).__name__} cannot classify precomputed features")
            feats = batch["features"].to(device, non_blocking=True).float()
            mask = lengths_to_mask(lengths, feats.shape[0], feats.shape[1], device)
            out = model.classify_features(feats, mask)
        else:
            x = prepare_batch(batch["frames"].to(device, non_blocking=True), spec, channels_last=device.type == "cuda")
            if explain:
                from forensight.explain import grad_cam

                kept: dict[str, Any] = {}

                def run(xx: torch.Tensor, ll: torch.Tensor | None) -> Any:
                    if windows and feature_model:  # keep the features for the windows below
                        f, m = model.features(xx, ll)
                        kept["feats"] = f
                        return model.classify_features(f, m)
                    return model(xx, ll)

                out, cams = grad_cam(model, x, lengths, forward=run)
                if "feats" in kept:
                    feats = kept["feats"].detach()
            elif windows and feature_model:  # encode once, classify the clip and every window
                feats, mask = model.features(x, lengths)
                out = model.classify_features(feats, mask)
            else:
                out = model(x, lengths)
        win: list[list[float]] = []
        if windows:
            with torch.no_grad():
                if feature_model:
                    wf = torch.cat([feats[:, a:b] for a, b in windows])
                    wl = model.classify_features(wf, torch.ones(wf.shape[:2], dtype=torch.bool, device=device)).logits
                else:
                    wl = model(torch.cat([x[:, a:b] for a, b in windows]), None).logits
            win = [[float(v) for v in row] for row in wl.float().reshape(len(windows), -1).T.cpu().numpy()]
    logits = out.logits.detach().float().cpu().numpy().astype(np.float64).reshape(-1)
    weights = out.weights.detach().float().cpu().numpy().astype(np.float64)
    n = batch["lengths"].cpu().numpy()
    maps: list[np.ndarray] = []
    if cams is not None:
        c = cams.detach().float().cpu().numpy()
        maps = [c[i, :int(n[i])].copy() for i in range(len(n))]
    return BatchOutput(logits=logits, weights=[weights[i, :int(n[i])].copy() for i in range(len(n))],
                       window_logits=win, cams=maps)


@dataclass
class ClipPredictions:
    """Clip-level outputs of a model over a set of clips (in the order scored).

    ``weights[i]`` holds the valid-frame pooling weights of clip i and ``frame_indices[i]`` the
    source frame numbers they belong to; ``cams[i]`` (explained runs only, else empty) its Grad-CAM
    maps ``(n, h, w)``.
    """

    video_ids: list[str] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    logits: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    frame_indices: list[np.ndarray] = field(default_factory=list)
    cams: list[np.ndarray] = field(default_factory=list)

    def extend(self, batch: dict[str, Any], out: BatchOutput) -> None:
        """Append one batch's clips."""
        idx = batch["frame_indices"].cpu().numpy()
        for b, vid in enumerate(batch["video_id"]):
            n = out.weights[b].shape[0]
            self.video_ids.append(vid)
            self.labels.append(float(batch["label"][b]))
            self.logits.append(float(out.logits[b]))
            self.starts.append(int(batch["start"][b]))
            self.weights.append(out.weights[b])
            self.frame_indices.append(idx[b, :n].copy())
            if out.cams:
                self.cams.append(out.cams[b])

    def merge(self, other: ClipPredictions) -> None:
        """Append another set (e.g. another DDP rank's)."""
        for name in ("video_ids", "labels", "logits", "starts", "weights", "frame_indices", "cams"):
            getattr(self, name).extend(getattr(other, name))

    def video_scores(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Video level ``(ids, labels (V,), mean clip logit (V,))`` via :func:`metrics.video_level`."""
        from forensight.metrics import video_level

        ids, y, s = video_level(self.video_ids, self.logits, [int(v) for v in self.labels])
        return [str(v) for v in ids], y, s


def predict(model: nn.Module, batches: Iterable[dict[str, Any]], device: torch.device | str | None = None,
            progress: bool = False, explain: bool = False) -> ClipPredictions:
    """Run ``model`` (eval mode) over collated ``batches``; returns clip predictions (with every
    frame's Grad-CAM map when ``explain``, see :func:`forward_batch`)."""
    from tqdm.auto import tqdm

    dev = resolve_device(device)
    model.eval().to(dev)
    preds = ClipPredictions()
    for batch in tqdm(batches, desc="score", unit="batch", disable=not progress, leave=False):
        preds.extend(batch, forward_batch(model, batch, dev, explain=explain))
    return preds


def make_dataset(cache: Cache, split: str, spec: InputSpec, max_clips: int = 0, max_frames: int = 0,
                 features: Any = None, methods: Sequence[str] = (), min_coverage: float = 0.0,
                 fakes: str = "all") -> ClipDataset:
    """The planned clips of one split for a model with input ``spec``; clear errors when empty.

    ``methods``: keep the real videos and only the fakes of these manipulation methods (all when
    empty). ``fakes``: "all" (default), or keep only the dataset fakes ("real"), only the
    pseudo-fakes ("pseudo") or both (:func:`forensight.records.keep_fake`); ``methods`` restricts
    the dataset fakes, and the pseudo-fakes only when it names a ``pseudo_*`` method (so
    ``methods=("Face2Face",), fakes="both"`` = Face2Face + every pseudo-fake). ``features``: read a
    :class:`forensight.features.FeatureCache` instead of crops.
    """
    keep = set(methods)
    ids = [r["video_id"] for r in cache.rows() if r["status"] == "ok" and r["split"] == split
           and (int(r["label"]) == 0 or _keep_method(r["method"], keep, fakes))]
    if not ids:
        raise ValueError(f"the cache {cache.root} has no processed videos in split {split!r}"
                         + (f" for methods {list(methods)}" if methods else ""))
    spec.check_preprocess(cache.config)
    ds = ClipDataset(cache, ids, spec, max_clips=max_clips, max_frames=max_frames, features=features,
                     min_coverage=min_coverage)
    if len(ds) == 0:
        reasons = sorted({r.split(":")[0] for r in ds.unscored.values()})
        raise ValueError(f"split {split!r}: none of its {len(ids)} videos gives a clip ({', '.join(reasons)}"
                         + (f"; a clip is {spec.clip_len} frames" if spec.clip_len else "") + ")")
    return ds


def _keep_method(method: str, keep: set[str], fakes: str) -> bool:
    """Whether a fake of ``method`` is kept under ``methods`` = ``keep`` and ``fakes`` (see make_dataset)."""
    from forensight.records import is_pseudo, keep_fake

    if not keep_fake(1, method, fakes):
        return False
    named = {m for m in keep if is_pseudo(m) == is_pseudo(method)}
    return not named or method in named if is_pseudo(method) else not keep or method in keep


def score_split(loaded: LoadedModel, cache: Cache, split: str, *, batch_size: int = 8, max_frames: int = 0,
                max_clips: int = 0, device: torch.device | str | None = None, progress: bool = False,
                features: bool | None = None, methods: Sequence[str] = (),
                fakes: str = "all", explain: bool = False) -> tuple[ClipPredictions, ClipDataset]:
    """Score every planned clip of ``split`` with a loaded model file (threshold and evaluate).

    ``features``: None = from the model's frozen-encoder feature cache when it was trained on one
    and the cache holds it (:func:`model_features`), else from the crops; True = require it;
    False = always from the crops. ``explain``: Grad-CAM maps of every scored frame too (needs the
    crops: ``features`` must not be True).
    """
    if explain and features:
        raise ValueError("explain=True needs the crops; it cannot score from frozen-encoder features")
    if explain:
        features = False
    fc = model_features(loaded, cache, required=bool(features)) if features is not False else None
    ds = make_dataset(cache, split, loaded.input_spec, max_clips=max_clips, max_frames=max_frames, features=fc,
                      methods=methods, min_coverage=loaded.min_face_coverage, fakes=fakes)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0,
                                         collate_fn=collate_clips)
    return predict(loaded.scoring_model(), loader, device=device, progress=progress, explain=explain), ds


def model_features(loaded: LoadedModel, cache: Cache, required: bool = False) -> Any:
    """The feature cache a model file was trained on (its ``payload["features"]`` key), if this
    cache holds it and the model's encoder still gives that key; else None (or an error when
    ``required``)."""
    from forensight.features import FeatureCache, feature_key

    stored = loaded.payload.get("features")
    if not stored:
        if required:
            raise ValueError(f"{loaded.path} was not trained on frozen-encoder features")
        return None
    key = feature_key(cache, loaded.model_config, loaded.model)
    if key != stored:
        if required:
            raise ValueError(f"the features {loaded.path} was trained on do not match this cache / encoder")
        return None
    try:
        return FeatureCache.open(cache, key)
    except FileNotFoundError:
        if required:
            raise
        return None


def clip_attention_shares(weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each clip's pooling weights divided by the number of clips: a video's frames then carry
    weights that sum to 1 (the share of the video score each frame had)."""
    n = max(len(weights), 1)
    return [np.asarray(w, np.float64) / n for w in weights]


def video_attention(preds: ClipPredictions) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video: (frame numbers, attention share per frame), sorted by frame number."""
    by_vid: dict[str, list[int]] = {}
    for i, vid in enumerate(preds.video_ids):
        by_vid.setdefault(vid, []).append(i)
    out = {}
    for vid, rows in by_vid.items():
        shares = clip_attention_shares([preds.weights[i] for i in rows])
        idx = np.concatenate([preds.frame_indices[i] for i in rows])
        w = np.concatenate(shares)
        order = np.argsort(idx, kind="stable")
        out[vid] = (idx[order], w[order])
    return out

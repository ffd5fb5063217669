"""Evaluation: a trained model on a cache's TEST split → video scores → metrics → report files.

This is the only place that reads the test split. Clip logits are averaged per qualified video
id (the LipForensics protocol); the decision threshold comes from the validation split (stored
in the model file), never from the test split. A cache made with a preprocessing config other
than the model's is refused.

Outputs in ``out_dir``: ``metrics.json``, ``scores.csv`` (one row per video, with its mean
per-frame attention weights), ``clip_scores.csv``, ``roc.png``, ``confusion.png``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensight.cache import Cache
from forensight.datasets.clips import collate_clips
from forensight.inference import ClipPredictions, predict_loader
from forensight.modelfile import LoadedModel, load_model_file


@dataclass
class EvaluationResult:
    """Metrics and the files written."""

    metrics: dict[str, Any]
    out_dir: Path
    predictions: ClipPredictions


def video_attention(preds: ClipPredictions) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per video: (frame numbers, attention weight per frame), each clip's weights scaled by
    1 / number of clips so a video's weights sum to 1."""
    by_vid: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for vid, w, idx in zip(preds.video_ids, preds.weights, preds.frame_indices):
        by_vid.setdefault(vid, []).append((idx, w))
    out = {}
    for vid, parts in by_vid.items():
        idx = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1] / len(parts) for p in parts])
        order = np.argsort(idx, kind="stable")
        out[vid] = (idx[order], w[order])
    return out


def evaluate(model: str | Path | LoadedModel, cache_root: str | Path, out_dir: str | Path, split: str = "test",
             batch_size: int = 8, max_frames: int = 0, max_clips: int = 0, n_bootstrap: int = 1000,
             device: str | None = None, progress: bool = True) -> EvaluationResult:
    """Evaluate ``model`` (run dir, model.pt or loaded) on ``split`` of the cache at ``cache_root``.

    ``max_frames`` = 110 gives the FaceForensics++ LipForensics protocol (first 110 frames).
    """
    from forensight.metrics import compute_all
    from forensight.report import plot_confusion, plot_roc, write_json
    from forensight.train import make_dataset, model_clip_len

    t0 = time.perf_counter()
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    lm = model if isinstance(model, LoadedModel) else load_model_file(model, device=dev)
    cache = Cache.open(cache_root, expect_hash=lm.preprocess_hash)
    clip_len = model_clip_len(lm.model_config)
    ds = make_dataset(cache, split, lm.model_config, clip_len, max_clips=max_clips, max_frames=max_frames)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0,
                                         collate_fn=collate_clips)
    autocast = torch.bfloat16 if dev == "cuda" else None
    preds = predict_loader(lm.inference_model(), loader, lm.model_config, device=dev, progress=progress,
                           autocast_dtype=autocast)
    ids, y, s = preds.video_scores()
    if len(set(y.tolist())) < 2:
        raise ValueError(f"split {split!r} of {cache.root} has videos of one class only "
                         f"({len(ids)} videos); AUC needs real and fake videos")
    metrics = compute_all(y, s, threshold=lm.threshold, clip_y=np.asarray(preds.labels),
                          clip_s=np.asarray(preds.logits), n_boot=n_bootstrap)
    metrics.update({"split": split, "cache": str(Path(cache_root).resolve()), "model": str(lm.path),
                    "preset": lm.model_config.name, "region": lm.model_config.region,
                    "pooling": lm.model_config.pooling, "threshold_source": "validation split (stored in model)",
                    "max_frames": max_frames, "videos_too_short": ds.too_short,
                    "failed_in_preprocessing": [r["video_id"] for r in cache.rows()
                                                if r["status"] == "failed" and r["split"] == split],
                    "seconds": round(time.perf_counter() - t0, 2)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(metrics, out / "metrics.json")
    _write_scores(out / "scores.csv", ids, y, s, preds, lm.threshold)
    _write_clip_scores(out / "clip_scores.csv", preds)
    plot_roc(y, s, out / "roc.png", label=f"{lm.model_config.name} (AUC {metrics['auc']:.3f})")
    plot_confusion(np.asarray(metrics["confusion"]), out / "confusion.png")
    return EvaluationResult(metrics=metrics, out_dir=out, predictions=preds)


def _write_scores(path: Path, ids: list[str], y: np.ndarray, s: np.ndarray, preds: ClipPredictions,
                  threshold: float) -> None:
    att = video_attention(preds)
    n_clips: dict[str, int] = {}
    for v in preds.video_ids:
        n_clips[v] = n_clips.get(v, 0) + 1
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "label", "logit", "p_fake", "predicted", "n_clips", "frame_indices",
                    "attention"])
        for vid, label, logit in zip(ids, y, s):
            idx, wt = att[vid]
            w.writerow([vid, int(label), f"{logit:.6f}", f"{1 / (1 + np.exp(-logit)):.6f}",
                        int(logit >= threshold), n_clips[vid], json.dumps(idx.tolist()),
                        json.dumps([round(float(v), 5) for v in wt])])


def _write_clip_scores(path: Path, preds: ClipPredictions) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "label", "clip_start", "logit"])
        for vid, y, st, lg in zip(preds.video_ids, preds.labels, preds.starts, preds.logits):
            w.writerow([vid, int(y), st, f"{lg:.6f}"])

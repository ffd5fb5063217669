"""Detection metrics as small pure functions (scikit-learn style).

Conventions: labels ``y`` are 0 (real) / 1 (fake); scores ``s`` are logits or probabilities,
higher = more likely fake. A sample is called fake when ``s >= threshold`` (the convention of
:func:`sklearn.metrics.roc_curve`). Inputs are 1-D array-likes of equal length ``(N,)``.

Video-level scores follow the LipForensics protocol: the mean of a video's clip logits
(:func:`aggregate_video_scores`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

__all__ = [
    "THRESHOLD_RULES",
    "accuracy_at",
    "aggregate_video_labels",
    "aggregate_video_scores",
    "auc",
    "average_precision",
    "bootstrap_auc_ci",
    "choose_threshold",
    "compute_all",
    "confusion",
    "eer",
    "roc_points",
    "video_level",
]

THRESHOLD_RULES = ("eer", "youden", "accuracy")


def _check(y: Any, s: Any, *, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: ``y`` int {0,1} ``(N,)``, ``s`` float64 finite ``(N,)``."""
    y_arr = np.asarray(y)
    s_arr = np.asarray(s, dtype=np.float64)
    if y_arr.ndim != 1 or s_arr.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {y_arr.shape} and {s_arr.shape}")
    if y_arr.shape[0] != s_arr.shape[0]:
        raise ValueError(f"length mismatch: {y_arr.shape[0]} labels but {s_arr.shape[0]} scores")
    if y_arr.shape[0] == 0:
        raise ValueError("no samples: labels and scores are empty")
    if np.isnan(s_arr).any():
        raise ValueError(f"scores contain NaN ({int(np.isnan(s_arr).sum())} of {s_arr.size})")
    if not np.isfinite(s_arr).all():
        raise ValueError("scores contain +/-inf")
    if y_arr.dtype.kind == "f" and np.isnan(y_arr).any():
        raise ValueError("labels contain NaN")
    bad = set(np.unique(y_arr).tolist()) - {0, 1}
    if bad:
        raise ValueError(f"labels must be 0 (real) or 1 (fake), found {sorted(bad)[:5]}")
    y_int = y_arr.astype(np.int64)
    if both_classes and len(np.unique(y_int)) < 2:
        only = "real (0)" if y_int[0] == 0 else "fake (1)"
        raise ValueError(f"only one class present (all {only}); this metric needs both real and fake samples")
    return y_int, s_arr


def auc(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve. ``y (N,)`` in {0,1}, ``s (N,)`` scores; ties count 1/2."""
    y_arr, s_arr = _check(y, s)
    return float(roc_auc_score(y_arr, s_arr))


def average_precision(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray) -> float:
    """Average precision with fake (1) as the positive class."""
    y_arr, s_arr = _check(y, s)
    return float(average_precision_score(y_arr, s_arr))


def roc_points(
    y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the ROC curve, ``thresholds[0] = +inf`` as in scikit-learn."""
    y_arr, s_arr = _check(y, s)
    fpr, tpr, thr = roc_curve(y_arr, s_arr, drop_intermediate=False)
    return fpr, tpr, thr


def _finite_threshold(thr: float, s: np.ndarray) -> float:
    """Replace roc_curve's ``+inf`` (call nothing fake) by the next float above the max score."""
    return float(np.nextafter(s.max(), np.inf)) if not np.isfinite(thr) else float(thr)


def eer(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold.

    The EER is where the false-negative rate equals the false-positive rate, interpolated
    linearly along the ROC curve; the threshold is that of the ROC point nearest to it.

    Returns:
        ``(eer, threshold)``, eer in [0, 1], threshold in score units (finite).
    """
    y_arr, s_arr = _check(y, s)
    fpr, tpr, thr = roc_curve(y_arr, s_arr, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fnr - fpr  # starts at 1 (thr=+inf), decreases to -1 (all called fake)
    i = int(np.argmax(d <= 0))  # first point at or past the crossing (always exists: d[-1] = -1)
    if d[i] == 0 or i == 0:
        rate, j = float(fpr[i]), i
    else:
        t = d[i - 1] / (d[i - 1] - d[i])  # fraction along segment (i-1) -> i where d = 0
        rate = float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
        j = i if t >= 0.5 else i - 1
    return float(np.clip(rate, 0.0, 1.0)), _finite_threshold(thr[j], s_arr)


def accuracy_at(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray, threshold: float) -> float:
    """Fraction correct when ``s >= threshold`` is called fake. One class is allowed."""
    y_arr, s_arr = _check(y, s, both_classes=False)
    return float(np.mean((s_arr >= threshold).astype(np.int64) == y_arr))


def confusion(y: Sequence[int] | np.ndarray, s: Sequence[float] | np.ndarray, threshold: float) -> np.ndarray:
    """2x2 int matrix ``[[TN, FP], [FN, TP]]`` (rows: true real/fake, columns: predicted)."""
    y_arr, s_arr = _check(y, s, both_classes=False)
    pred = (s_arr >= threshold).astype(np.int64)
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (y_arr, pred), 1)
    return cm


def _auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUC of each row of ``y (R, N)``, ``s (R, N)`` by mid-ranks; NaN for one-class rows."""
    ranks = rankdata(s, axis=1)  # average ranks for ties
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    rank_sum = (ranks * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def bootstrap_auc_ci(
    y: Sequence[int] | np.ndarray,
    s: Sequence[float] | np.ndarray,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` confidence interval of the AUC.

    Samples (videos) are resampled with replacement ``n`` times; resamples with a single class
    are skipped. Returns ``(nan, nan)`` if every resample was single-class.
    """
    y_arr, s_arr = _check(y, s)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    size = y_arr.shape[0]
    aucs: list[np.ndarray] = []
    chunk = max(1, min(n, 4_000_000 // size))  # bound memory at ~4M indices per chunk
    for start in range(0, n, chunk):
        idx = rng.integers(0, size, size=(min(chunk, n - start), size))
        aucs.append(_auc_rows(y_arr[idx], s_arr[idx]))
    vals = np.concatenate(aucs)
    vals = vals[~np.isnan(vals)]
    if vals.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(vals, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def aggregate_video_scores(
    video_ids: Iterable[Hashable], clip_logits: Iterable[float]
) -> dict[Hashable, float]:
    """Video score = mean of its clip logits (LipForensics protocol); order of first appearance."""
    ids = list(video_ids)
    logits = np.asarray(list(clip_logits) if not isinstance(clip_logits, np.ndarray) else clip_logits,
                        dtype=np.float64).reshape(-1)
    if len(ids) != logits.shape[0]:
        raise ValueError(f"length mismatch: {len(ids)} video ids but {logits.shape[0]} clip logits")
    if np.isnan(logits).any():
        raise ValueError("clip logits contain NaN")
    sums: dict[Hashable, float] = {}
    counts: dict[Hashable, int] = {}
    for vid, v in zip(ids, logits.tolist(), strict=True):
        sums[vid] = sums.get(vid, 0.0) + v
        counts[vid] = counts.get(vid, 0) + 1
    return {vid: sums[vid] / counts[vid] for vid in sums}


def aggregate_video_labels(video_ids: Iterable[Hashable], clip_labels: Iterable[int]) -> dict[Hashable, int]:
    """Video label from its clips' labels; a video whose clips disagree is a ValueError."""
    out: dict[Hashable, int] = {}
    ids = list(video_ids)
    labels = [int(v) for v in clip_labels]
    if len(ids) != len(labels):
        raise ValueError(f"length mismatch: {len(ids)} video ids but {len(labels)} clip labels")
    for vid, lab in zip(ids, labels, strict=True):
        if out.setdefault(vid, lab) != lab:
            raise ValueError(f"video {vid!r} has clips labelled both {out[vid]} and {lab}")
    return out


def video_level(
    video_ids: Iterable[Hashable], clip_logits: Iterable[float], clip_labels: Iterable[int]
) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """Clip predictions -> aligned video arrays ``(ids, y (V,), s (V,))`` (mean logit per video)."""
    ids = list(video_ids)
    scores = aggregate_video_scores(ids, clip_logits)
    labels = aggregate_video_labels(ids, clip_labels)
    order = list(scores)
    return order, np.array([labels[v] for v in order], dtype=np.int64), np.array([scores[v] for v in order])


def choose_threshold(
    y_val: Sequence[int] | np.ndarray, s_val: Sequence[float] | np.ndarray, rule: str = "eer"
) -> float:
    """Pick a decision threshold on validation data.

    Rules: ``"eer"`` (FPR = FNR), ``"youden"`` (max TPR - FPR), ``"accuracy"`` (max accuracy;
    ties go to the lowest such threshold). Returns a finite threshold in score units.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    y_arr, s_arr = _check(y_val, s_val)
    if rule == "eer":
        return eer(y_arr, s_arr)[1]
    if rule == "youden":
        fpr, tpr, thr = roc_curve(y_arr, s_arr, drop_intermediate=False)
        return _finite_threshold(thr[int(np.argmax(tpr - fpr))], s_arr)
    # accuracy: candidates are every distinct score plus "above the max" (call nothing fake)
    cand = np.append(np.unique(s_arr), np.nextafter(s_arr.max(), np.inf))
    order = np.argsort(s_arr, kind="stable")
    s_sorted, y_sorted = s_arr[order], y_arr[order]
    below = np.searchsorted(s_sorted, cand, side="left")  # count of samples with s < candidate
    neg_below = np.concatenate([[0], np.cumsum(1 - y_sorted)])[below]
    pos_above = y_arr.sum() - np.concatenate([[0], np.cumsum(y_sorted)])[below]
    acc = (neg_below + pos_above) / y_arr.size
    return float(cand[int(np.argmax(acc))])


def compute_all(
    y: Sequence[int] | np.ndarray,
    s: Sequence[float] | np.ndarray,
    threshold: float | None = None,
    clip_y: Sequence[int] | np.ndarray | None = None,
    clip_s: Sequence[float] | np.ndarray | None = None,
    *,
    score_type: str = "logit",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Every headline metric for video-level ``y (V,)``, ``s (V,)`` (and optional clip level).

    Args:
        threshold: a decision threshold chosen on validation data (:func:`choose_threshold`);
            ``None`` leaves ``acc_at_threshold`` as None (never tuned on the data scored here).
        score_type: ``"logit"`` (P(fake)=0.5 is logit 0) or ``"prob"`` (0.5).
        n_boot, alpha, seed: bootstrap settings of ``auc_ci``.

    Returns a JSON-able dict: ``n``, ``n_real``, ``n_fake``, ``auc``, ``auc_ci`` [lo, hi],
    ``ap``, ``eer``, ``eer_threshold`` (on these data, informative), ``acc_at_0.5``,
    ``threshold``, ``acc_at_threshold``, ``confusion`` [[TN, FP], [FN, TP]] at ``threshold`` (or
    at probability 0.5 when None) with ``confusion_threshold``, ``clip_auc``, ``n_clips``.
    """
    if score_type not in ("logit", "prob"):
        raise ValueError(f"score_type must be 'logit' or 'prob', got {score_type!r}")
    y_arr, s_arr = _check(y, s)
    half = 0.0 if score_type == "logit" else 0.5
    e, e_thr = eer(y_arr, s_arr)
    lo, hi = bootstrap_auc_ci(y_arr, s_arr, n=n_boot, alpha=alpha, seed=seed)
    cm_thr = half if threshold is None else float(threshold)
    out: dict[str, Any] = {
        "n": int(y_arr.size),
        "n_real": int((y_arr == 0).sum()),
        "n_fake": int((y_arr == 1).sum()),
        "auc": auc(y_arr, s_arr),
        "auc_ci": [lo, hi],
        "ap": average_precision(y_arr, s_arr),
        "eer": e,
        "eer_threshold": e_thr,
        "acc_at_0.5": accuracy_at(y_arr, s_arr, half),
        "threshold": None if threshold is None else float(threshold),
        "acc_at_threshold": None if threshold is None else accuracy_at(y_arr, s_arr, float(threshold)),
        "confusion": confusion(y_arr, s_arr, cm_thr).tolist(),
        "confusion_threshold": cm_thr,
        "clip_auc": None,
        "n_clips": None,
    }
    if (clip_y is None) != (clip_s is None):
        raise ValueError("give both clip_y and clip_s, or neither")
    if clip_y is not None:
        cy, cs = _check(clip_y, clip_s)
        out["clip_auc"] = auc(cy, cs)
        out["n_clips"] = int(cy.size)
    return out

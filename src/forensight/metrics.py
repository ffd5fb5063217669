"""Detection metrics as small pure functions (scikit-learn style).

Conventions: labels ``y`` are 0 (real) / 1 (fake); scores ``s`` are logits or probabilities,
higher = more likely fake. A sample is called fake when ``s >= threshold`` (the convention of
:func:`sklearn.metrics.roc_curve`). Inputs are 1-D array-likes of equal length ``(N,)``.

Video-level scores follow the LipForensics protocol: the mean of a video's clip logits
(:func:`aggregate_video_scores`).

Calibration (how far P(fake) can be trusted as a probability): :func:`brier_score`,
:func:`reliability_curve` and :func:`expected_calibration_error` on probabilities ``p (N,)`` of
"fake", and temperature scaling (Guo et al., 2017): :func:`fit_temperature` on validation logits,
:func:`apply_temperature` gives ``sigmoid(logit / T)``. A temperature is monotone, so AUC, AP,
EER and every verdict at a logit threshold are unchanged by it.
"""

from __future__ import annotations

import math
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
    "apply_temperature",
    "attention_localisation",
    "auc",
    "average_precision",
    "bootstrap_auc_ci",
    "brier_score",
    "calibration_summary",
    "choose_threshold",
    "compute_all",
    "confusion",
    "eer",
    "expected_calibration_error",
    "fit_temperature",
    "mean_sd",
    "paired_auc_difference",
    "reliability_curve",
    "roc_points",
    "sigmoid",
    "summarise_localisation",
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
    return _bootstrap_auc_quantiles(y_arr, s_arr[None, :], n, alpha, seed, 4_000_000)


def _bootstrap_auc_quantiles(y_arr: np.ndarray, s_arr: np.ndarray, n: int, alpha: float, seed: int,
                             max_indices: int) -> tuple[float, float]:
    """The one bootstrap loop of the AUC intervals: ``n`` resamples of the ``V`` videos (labels
    ``y_arr (V,)``, scores ``s_arr (S, V)``, the same resample for every row), the mean over rows of
    each resample's AUC, its ``alpha/2`` and ``1 - alpha/2`` quantiles; single-class resamples are
    skipped, ``(nan, nan)`` if all are. ``max_indices`` bounds memory per chunk of resamples (it
    fixes the chunking, and so the random draws: callers keep theirs for reproducible tables)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    size = y_arr.shape[0]
    vals: list[np.ndarray] = []
    chunk = max(1, min(n, max_indices // size))
    for start in range(0, n, chunk):
        idx = rng.integers(0, size, size=(min(chunk, n - start), size))
        y_res = y_arr[idx]
        vals.append(np.mean([_auc_rows(y_res, row[idx]) for row in s_arr], axis=0))
    allv = np.concatenate(vals)
    allv = allv[~np.isnan(allv)]
    if allv.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(allv, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def seed_mean_auc_ci(
    y: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` interval of the MEAN over seeds of the AUC.

    ``y``: ``(V,)`` labels; ``scores``: ``(S, V)`` video scores, one row per training seed (``(V,)``
    = one seed). Videos are resampled with replacement (the same resample for every seed), so the
    interval covers the test-set sampling of a seed-averaged AUC; single-class resamples are
    skipped. Returns ``(nan, nan)`` if every resample was single-class.
    """
    y_in = np.asarray(y)
    y_arr, _ = _check(y_in, np.zeros(y_in.shape[0]))
    s_arr = _seed_matrix(scores, "scores", y_arr.shape[0])
    return _bootstrap_auc_quantiles(y_arr, s_arr, n, alpha, seed, 1_000_000)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(1 - alpha)`` confidence interval of a mean (e.g. a per-video score
    averaged over videos): the samples are resampled with replacement ``n`` times, as
    :func:`bootstrap_auc_ci` resamples videos. ``(nan, nan)`` for no samples."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or +/-inf")
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n, 4_000_000 // v.size))
    means = np.concatenate([v[rng.integers(0, v.size, size=(min(chunk, n - s), v.size))].mean(axis=1)
                            for s in range(0, n, chunk)])
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
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


# ------------------------------------------------------------------------------------ paired comparison

def _seed_matrix(scores: Any, name: str, n_videos: int) -> np.ndarray:
    """``scores`` ``(S, V)`` or ``(V,)`` -> finite float64 ``(S, V)``; ValueError otherwise."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (S, V) or (V,), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no seeds (shape {arr.shape})")
    if arr.shape[1] != n_videos:
        raise ValueError(f"length mismatch: {n_videos} labels but {name} scores {arr.shape[1]} videos")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN ({int(np.isnan(arr).sum())} of {arr.size})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains +/-inf")
    return arr


def _count_below(x: np.ndarray, ref_sorted: np.ndarray) -> np.ndarray:
    """For each ``x``: ``#(ref < x) + #(ref == x) / 2`` (ties count half), ``ref_sorted`` ascending."""
    left = np.searchsorted(ref_sorted, x, side="left")
    right = np.searchsorted(ref_sorted, x, side="right")
    return (left + right) / 2.0


def _swap_weights(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-video weights ``w (V,)`` with ``stat(sigma) = sigma @ w`` under paired swaps.

    ``a``, ``b`` are ``(S, V)``; ``sigma (V,)`` is +1 where a video keeps its scores and -1 where
    A's and B's scores of that video are swapped (for every seed). ``stat`` is the mean over
    seeds of ``AUC(y, b') - AUC(y, a')`` of the swapped scores.

    Why it is linear: for a fake ``i`` and a real ``j`` the pair's contribution
    ``H(b'_i - b'_j) - H(a'_i - a'_j)`` (``H`` the step with ``H(0) = 1/2``) takes the values
    ``P, Q, -Q, -P`` for (keep, keep), (keep, swap), (swap, keep), (swap, swap), which equals
    ``sigma_i (P + Q) / 2 + sigma_j (P - Q) / 2``. Summing over pairs gives one weight per video,
    computed here with sorted-array counts in ``O(S V log V)``.
    """
    pos, neg = y == 1, y == 0
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    w = np.zeros(y.shape[0], dtype=np.float64)
    for a_s, b_s in zip(a, b, strict=True):
        a_pos, b_pos, a_neg, b_neg = a_s[pos], b_s[pos], a_s[neg], b_s[neg]
        sa_pos, sb_pos, sa_neg, sb_neg = np.sort(a_pos), np.sort(b_pos), np.sort(a_neg), np.sort(b_neg)
        # fake i: sum over real j of P_ij and of Q_ij
        p_i = _count_below(b_pos, sb_neg) - _count_below(a_pos, sa_neg)
        q_i = _count_below(b_pos, sa_neg) - _count_below(a_pos, sb_neg)
        # real j: sum over fake i of P_ij and of Q_ij; #(X > x) + #(X == x)/2 = n - count_below(x, X)
        p_j = (n_pos - _count_below(b_neg, sb_pos)) - (n_pos - _count_below(a_neg, sa_pos))
        q_j = (n_pos - _count_below(a_neg, sb_pos)) - (n_pos - _count_below(b_neg, sa_pos))
        w[pos] += (p_i + q_i) / 2.0
        w[neg] += (p_j - q_j) / 2.0
    return w / (n_pos * n_neg * a.shape[0])


def paired_auc_difference(
    y: Sequence[int] | np.ndarray,
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired test of ``AUC(B) - AUC(A)`` on one shared test set, averaged over training seeds.

    Args:
        y: ``(V,)`` video labels in {0, 1} (both classes required).
        scores_a, scores_b: ``(S, V)`` video scores (logits) of models A and B, one row per
            training seed; row ``s`` of A and of B share the seed and the video order. ``(V,)``
            means ``S = 1``.
        n_boot: bootstrap resamples of the videos (same index for every seed and both models).
        n_perm: random paired swaps for the permutation test.
        seed: seed of :func:`numpy.random.default_rng` (bootstrap draws first, then swaps).

    Statistic: ``diff = mean_s (AUC(y, b_s) - AUC(y, a_s))`` in AUC units (positive: B better).
    The 95 % percentile bootstrap CI skips (and counts) single-class resamples; it is
    ``[None, None]`` if all were skipped. The two-sided permutation p-value swaps A's and B's
    scores of each video with probability 1/2 (one decision per video, shared by all seeds):
    ``p = (1 + #(|perm| >= |diff| - 1e-12)) / (1 + n_perm)``. Permuted statistics are computed
    exactly through their linear form in the swap signs (:func:`_swap_weights`).

    Returns a JSON-able dict: ``diff``, ``ci`` [lo, hi], ``p_value``, ``n_videos`` V,
    ``n_seeds`` S, ``auc_a`` and ``auc_b`` (per-seed AUCs, lists of S floats), ``n_boot``,
    ``n_perm``, ``boot_skipped`` (number of single-class resamples).
    """
    y_in = np.asarray(y)
    if y_in.ndim != 1:
        raise ValueError(f"y must be 1-D (V,), got shape {y_in.shape}")
    y_arr, _ = _check(y_in, np.zeros(y_in.shape[0]))  # labels only: 0/1, non-empty, both classes
    n_videos = y_arr.shape[0]
    a = _seed_matrix(scores_a, "scores_a", n_videos)
    b = _seed_matrix(scores_b, "scores_b", n_videos)
    if a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b must have the same shape, got {a.shape} and {b.shape}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    n_seeds = a.shape[0]
    auc_a = [auc(y_arr, row) for row in a]
    auc_b = [auc(y_arr, row) for row in b]
    diff = float(np.mean(np.subtract(auc_b, auc_a)))

    rng = np.random.default_rng(seed)
    boot: list[np.ndarray] = []
    chunk = max(1, min(n_boot, 1_000_000 // n_videos))  # ~1M indices per chunk
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n_videos, size=(min(chunk, n_boot - start), n_videos))
        y_res = y_arr[idx]
        d = np.zeros(idx.shape[0], dtype=np.float64)
        for a_s, b_s in zip(a, b, strict=True):
            d += _auc_rows(y_res, b_s[idx]) - _auc_rows(y_res, a_s[idx])
        boot.append(d / n_seeds)
    boot_all = np.concatenate(boot)
    ok = ~np.isnan(boot_all)
    skipped = int((~ok).sum())
    if ok.any():
        lo, hi = np.quantile(boot_all[ok], [0.025, 0.975])
        ci: list[float | None] = [float(lo), float(hi)]
    else:
        ci = [None, None]

    w = _swap_weights(y_arr, a, b)
    observed = float(w.sum())  # equals diff up to rounding; compared on the same footing as perms
    hits = 0
    chunk = max(1, min(n_perm, 1_000_000 // n_videos))
    for start in range(0, n_perm, chunk):
        flips = rng.random(size=(min(chunk, n_perm - start), n_videos)) < 0.5
        perm = np.where(flips, -1.0, 1.0) @ w
        hits += int((np.abs(perm) >= abs(observed) - 1e-12).sum())
    p_value = (1 + hits) / (1 + n_perm)
    return {
        "diff": diff,
        "ci": ci,
        "p_value": float(p_value),
        "n_videos": int(n_videos),
        "n_seeds": int(n_seeds),
        "auc_a": [float(v) for v in auc_a],
        "auc_b": [float(v) for v in auc_b],
        "n_boot": int(n_boot),
        "n_perm": int(n_perm),
        "boot_skipped": skipped,
    }


def mean_sd(values: Iterable[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0.0 for a single value) of ``values (N,)``.

    NaN, inf and empty input are ValueErrors.
    """
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError("mean_sd needs at least one value, got none")
    if np.isnan(arr).any():
        raise ValueError(f"values contain NaN ({int(np.isnan(arr).sum())} of {arr.size})")
    if not np.isfinite(arr).all():
        raise ValueError("values contain +/-inf")
    sd = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return float(np.mean(arr)), sd


# ------------------------------------------------------------------------------------ localisation

def attention_localisation(
    weights: Sequence[float] | np.ndarray,
    frame_indices: Sequence[int] | np.ndarray,
    manipulated_frames: Iterable[int],
) -> dict[str, Any] | None:
    """How well one fake video's temporal attention points at its manipulated frames.

    Args:
        weights: ``(T,)`` non-negative attention shares of the scored frames (normally summing
            to 1; only their ratios matter).
        frame_indices: ``(T,)`` integer source frame numbers of those weights; each entry is
            one scored frame (repeats are counted separately).
        manipulated_frames: source frame numbers the generator manipulated; those that were
            not scored are ignored.

    Returns None when ``T == 0``, else a JSON-able dict:
        ``frame_auc``: AUC of ``weights`` against "scored frame is manipulated" (0.5 for uniform
        weights; None when all or none of the scored frames are manipulated);
        ``mass_inside``: share of the attention mass on manipulated scored frames, in [0, 1];
        ``share_inside``: fraction of scored frames that are manipulated, in [0, 1];
        ``lift``: ``mass_inside / share_inside`` (1 for uniform weights; None when
        ``share_inside == 0``); ``n_frames``: T; ``n_manipulated``: manipulated scored frames.
    """
    w = np.asarray(weights, dtype=np.float64)
    idx = np.asarray(frame_indices)
    if w.ndim != 1 or idx.ndim != 1:
        raise ValueError(f"weights and frame_indices must be 1-D, got shapes {w.shape} and {idx.shape}")
    if w.shape[0] != idx.shape[0]:
        raise ValueError(f"length mismatch: {w.shape[0]} weights but {idx.shape[0]} frame indices")
    if w.shape[0] == 0:
        return None
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or +/-inf")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative, min is {float(w.min())}")
    total = float(w.sum())
    if total <= 0.0:
        raise ValueError("weights sum to 0; attention shares need positive total mass")
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind != "f" or not np.isfinite(idx).all() or (idx != np.round(idx)).any():
            raise ValueError(f"frame_indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
    manipulated = np.fromiter((int(f) for f in manipulated_frames), dtype=np.int64)
    inside = np.isin(idx, manipulated)
    n_frames, n_inside = int(w.shape[0]), int(inside.sum())
    frame_auc = None
    if 0 < n_inside < n_frames:
        frame_auc = float(_auc_rows(inside[None, :].astype(np.int64), w[None, :])[0])
    mass = float(w[inside].sum()) / total
    share = n_inside / n_frames
    return {
        "frame_auc": frame_auc,
        "mass_inside": mass,
        "share_inside": float(share),
        "lift": None if n_inside == 0 else mass / share,
        "n_frames": n_frames,
        "n_manipulated": n_inside,
    }


_LOCALISATION_KEYS = ("frame_auc", "mass_inside", "share_inside", "lift")


def summarise_localisation(rows: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Average :func:`attention_localisation` results over videos.

    For each of ``frame_auc``, ``mass_inside``, ``share_inside``, ``lift``: ``<key>_mean`` and
    ``<key>_sd`` (sample sd, :func:`mean_sd`) over the videos where it is not None (both None if
    there are none) and ``<key>_n`` that count. Also ``n_videos`` (rows that are not None) and
    ``n_skipped`` (None rows, i.e. videos without scored frames). JSON-able.
    """
    rows = list(rows)
    kept = [r for r in rows if r is not None]
    out: dict[str, Any] = {"n_videos": len(kept), "n_skipped": len(rows) - len(kept)}
    for key in _LOCALISATION_KEYS:
        vals = [float(r[key]) for r in kept if r.get(key) is not None]
        m, sd = mean_sd(vals) if vals else (None, None)
        out[f"{key}_mean"], out[f"{key}_sd"], out[f"{key}_n"] = m, sd, len(vals)
    return out


# ------------------------------------------------------------------------------------ calibration

def sigmoid(x: Any) -> np.ndarray:
    """Numerically stable logistic function of an array-like (float64, same shape)."""
    z = np.asarray(x, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _check_prob(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """``y`` int {0,1} ``(N,)`` (one class allowed), ``p`` float64 in [0, 1] ``(N,)``."""
    y_arr, p_arr = _check(y, p, both_classes=False)
    if (p_arr < 0).any() or (p_arr > 1).any():
        raise ValueError(f"probabilities must be in [0, 1], got min {p_arr.min()} and max {p_arr.max()}")
    return y_arr, p_arr


def brier_score(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Mean squared error ``mean((p - y)^2)`` of P(fake) ``p (N,)`` against labels ``y (N,)``, in [0, 1]."""
    y_arr, p_arr = _check_prob(y, p)
    return float(np.mean((p_arr - y_arr) ** 2))


def reliability_curve(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                      n_bins: int = 15) -> dict[str, np.ndarray]:
    """Reliability diagram data of P(fake) over ``n_bins`` equal-width bins of [0, 1].

    Bin ``b`` holds ``b / n <= p < (b + 1) / n`` (the last bin includes 1). Returns
    ``edges (n_bins + 1,)``, ``count (n_bins,)`` int, and per bin ``mean_p`` (mean predicted
    P(fake)) and ``frac_fake`` (observed fraction of fakes), NaN for empty bins.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y_arr, p_arr = _check_prob(y, p)
    b = np.minimum((p_arr * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    sum_p = np.bincount(b, weights=p_arr, minlength=n_bins)
    sum_y = np.bincount(b, weights=y_arr.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        frac = np.where(count > 0, sum_y / count, np.nan)
    return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count, "mean_p": mean_p, "frac_fake": frac}


def expected_calibration_error(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                               n_bins: int = 15) -> float:
    """ECE of P(fake): ``sum_b (n_b / N) |frac_fake_b - mean_p_b|`` over ``n_bins`` equal-width bins
    (:func:`reliability_curve`; 15 bins as in Guo et al. 2017). 0 = calibrated, at most 1.

    Binned on P(fake) itself (not on max(p, 1 - p)), so "P(fake) = 0.8" is checked against the
    fraction of fakes among such videos; the equal-width bins are symmetric, so binning P(real)
    gives the same value.
    """
    rc = reliability_curve(y, p, n_bins)
    n = rc["count"].sum()
    keep = rc["count"] > 0
    return float(np.sum(rc["count"][keep] / n * np.abs(rc["frac_fake"][keep] - rc["mean_p"][keep])))


def apply_temperature(logits: Sequence[float] | np.ndarray | float, temperature: float | None) -> np.ndarray:
    """P(fake) = ``sigmoid(logit / T)``; ``temperature`` None means 1 (uncalibrated)."""
    t = 1.0 if temperature is None else float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return sigmoid(np.asarray(logits, dtype=np.float64) / t)


def log_loss(y: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of labels ``y (N,)`` under ``sigmoid(logits (N,))``."""
    y_arr = np.asarray(y).reshape(-1)
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if y_arr.shape != z.shape or y_arr.size == 0:
        raise ValueError(f"log_loss needs equal, non-empty y and logits, got {y_arr.shape} and {z.shape}")
    if not np.isin(y_arr, (0, 1)).all():
        raise ValueError("log_loss labels must be 0 or 1")
    return _nll(y_arr, z, 1.0)


def _nll(y: np.ndarray, z: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of labels ``y`` under ``sigmoid(z / t)``."""
    sign = np.where(y == 1, -1.0, 1.0)
    return float(np.mean(np.logaddexp(0.0, sign * z / t)))


def fit_temperature(y: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray,
                    bounds: tuple[float, float] = (1e-4, 1e6)) -> float:
    """The temperature ``T > 0`` minimising the negative log-likelihood of ``sigmoid(logit / T)``.

    Fit it on VALIDATION scores (video logits ``(N,)``, labels ``(N,)``, both classes needed) and
    apply it elsewhere. The NLL is convex in ``w = 1 / T``, so a finite minimum exists exactly when
    neither degenerate case holds, and a bounded 1-D search over ``log T`` finds it. ValueError when
    no finite temperature fits: the scores are separated at logit 0 (every video on its side of
    P(fake) = 0.5: the likelihood keeps growing as T → 0), or they carry no usable signal
    (``sum((2y - 1) * logit) <= 0``: fakes do not score higher on average, the best is T → ∞,
    P(fake) = 0.5 everywhere), or the minimum lies outside ``bounds``.
    """
    from scipy.optimize import minimize_scalar

    y_arr, z = _check(y, logits)
    lo, hi = float(bounds[0]), float(bounds[1])
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    margin = np.where(y_arr == 1, z, -z)  # > 0: on the right side of logit 0
    if np.all(margin >= 0) and np.any(margin > 0):
        raise ValueError(f"no finite temperature fits: the {y_arr.size} scores are separated at logit 0 "
                         "(every video on the right side of P(fake) = 0.5), so the likelihood keeps growing "
                         "as T -> 0; more validation videos are needed to calibrate")
    if margin.sum() <= 0:
        raise ValueError("no finite temperature fits: the best is T -> infinity, i.e. P(fake) = 0.5 for every "
                         f"video: the scores carry no usable signal on these {y_arr.size} videos (fakes do not "
                         "score higher than reals on average)")
    res = minimize_scalar(lambda u: _nll(y_arr, z, math.exp(u)), bounds=(math.log(lo), math.log(hi)),
                          method="bounded", options={"xatol": 1e-8})
    t = math.exp(float(res.x))
    if t <= lo * 1.001 or t >= hi / 1.001:
        raise ValueError(f"the best temperature lies outside {bounds} ({t:.3g}); rescale the logits or widen bounds")
    return t


def calibration_summary(y: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray,
                        temperature: float | None = None, n_bins: int = 15) -> dict[str, Any]:
    """ECE, Brier and the reliability curve of ``sigmoid(logit / T)`` (T None = 1), JSON-able:
    ``ece``, ``brier``, ``n_bins``, ``temperature``, ``bins`` (one dict per bin: ``lo``, ``hi``,
    ``count``, ``mean_p``, ``frac_fake``; None for empty bins)."""
    p = apply_temperature(logits, temperature)
    rc = reliability_curve(y, p, n_bins)
    e = rc["edges"]
    bins = [{"lo": float(e[i]), "hi": float(e[i + 1]), "count": int(rc["count"][i]),
             "mean_p": None if rc["count"][i] == 0 else float(rc["mean_p"][i]),
             "frac_fake": None if rc["count"][i] == 0 else float(rc["frac_fake"][i])} for i in range(n_bins)]
    return {"ece": expected_calibration_error(y, p, n_bins), "brier": brier_score(y, p), "n_bins": int(n_bins),
            "temperature": None if temperature is None else float(temperature), "bins": bins}

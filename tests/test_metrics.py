"""Metrics: exact values on hand-made examples, properties with hypothesis, clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from forensight.metrics import (
    accuracy_at,
    aggregate_video_labels,
    aggregate_video_scores,
    auc,
    average_precision,
    bootstrap_auc_ci,
    choose_threshold,
    compute_all,
    confusion,
    eer,
    video_level,
)


@st.composite
def labelled_scores(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Both classes present; scores from a small integer grid (many ties) or floats."""
    n = draw(st.integers(2, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    y[0], y[1] = 0, 1
    ints = draw(st.booleans())
    elem = st.integers(-5, 5) if ints else st.floats(-10, 10, allow_nan=False, width=32)
    s = np.array(draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.float64)
    return y, s


# ------------------------------------------------------------------------------------ exact values

def test_exact_small_examples() -> None:
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert auc(y, s) == pytest.approx(0.75)
    assert average_precision(y, s) == pytest.approx((1.0 + 2 / 3) / 2)
    assert eer([0, 0, 1, 1], [1, 2, 3, 4]) == (0.0, 3.0)
    assert eer([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == (0.5, 0.6)
    assert eer([0, 0, 1, 1], [4, 3, 2, 1])[0] == 1.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5  # ties count half
    assert accuracy_at(y, s, 0.35) == 0.75  # s >= thr is fake: [0,1,1,1]
    assert accuracy_at([1, 1], [0.0, -1.0], 0.0) == 0.5  # one class is fine here
    cm = confusion(y, s, 0.35)
    assert cm.tolist() == [[1, 1], [0, 2]] and cm.dtype == np.int64
    assert confusion([0, 0, 0], [1, 2, 3], 2.5).tolist() == [[2, 1], [0, 0]]


def test_eer_interpolates_between_roc_points() -> None:
    # ROC: (0,0) (0,1/3) (1/2,1/3) (1/2,2/3) (1,2/3) (1,1); FNR - FPR changes sign inside the
    # vertical segment at fpr = 1/2 (no ROC point has FNR == FPR exactly).
    y = [0, 0, 1, 1, 1]
    s = [2, 4, 5, 3, 1]
    rate, thr = eer(y, s)
    assert 0.0 <= rate <= 1.0
    assert rate == pytest.approx(0.5)
    assert thr in (3.0, 4.0)


def test_choose_threshold_rules() -> None:
    y = [0, 0, 0, 1, 1, 1]
    s = [-2.0, -1.0, 0.5, 0.2, 1.0, 2.0]
    t_acc = choose_threshold(y, s, "accuracy")
    assert accuracy_at(y, s, t_acc) == pytest.approx(5 / 6)
    assert t_acc == 0.2
    t_y = choose_threshold(y, s, "youden")
    assert accuracy_at(y, s, t_y) == pytest.approx(5 / 6)
    t_e = choose_threshold(y, s, "eer")
    assert t_e == eer(y, s)[1]
    assert math.isfinite(choose_threshold([0, 1], [1.0, 0.0], "youden"))  # never +inf
    with pytest.raises(ValueError, match="rule"):
        choose_threshold(y, s, "median")


@given(labelled_scores())
@settings(max_examples=60, deadline=None)
def test_accuracy_rule_is_optimal(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    best = max(np.mean((s >= t) == y) for t in np.append(s, np.inf))
    assert accuracy_at(y, s, choose_threshold(y, s, "accuracy")) == pytest.approx(best)


# ------------------------------------------------------------------------------------ properties

@given(labelled_scores(), st.sampled_from(["exp", "cube", "affine", "sigmoid"]))
@settings(max_examples=80, deadline=None)
def test_auc_invariant_under_monotone_transform(data: tuple[np.ndarray, np.ndarray], kind: str) -> None:
    y, s = data
    s = np.round(s, 3)  # keep strict monotonicity exact in float64 below
    f = {"exp": lambda v: np.exp(v / 10), "cube": lambda v: v**3, "affine": lambda v: 3 * v + 7,
         "sigmoid": lambda v: 1 / (1 + np.exp(-v / 10))}[kind]
    assert auc(y, f(s)) == pytest.approx(auc(y, s), abs=1e-12)


@given(labelled_scores())
@settings(max_examples=80, deadline=None)
def test_auc_of_negated_scores(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    assert auc(y, -s) == pytest.approx(1.0 - auc(y, s), abs=1e-12)


@given(labelled_scores())
@settings(max_examples=80, deadline=None)
def test_eer_in_unit_interval_and_consistent(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    rate, thr = eer(y, s)
    assert 0.0 <= rate <= 1.0
    assert math.isfinite(thr)
    if auc(y, s) == 1.0:
        assert rate == 0.0
    ap = average_precision(y, s)
    assert 0.0 <= ap <= 1.0


@given(labelled_scores())
@settings(max_examples=40, deadline=None)
def test_confusion_counts(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, s = data
    cm = confusion(y, s, 0.0)
    assert cm.sum() == len(y) and cm[1].sum() == y.sum()
    assert accuracy_at(y, s, 0.0) == pytest.approx(np.trace(cm) / len(y))


# ------------------------------------------------------------------------------------ bootstrap

def test_bootstrap_ci_brackets_auc_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(size=200)
    lo, hi = bootstrap_auc_ci(y, s, n=500, seed=1)
    assert 0.0 <= lo < auc(y, s) < hi <= 1.0
    assert (lo, hi) == bootstrap_auc_ci(y, s, n=500, seed=1)
    assert (lo, hi) != bootstrap_auc_ci(y, s, n=500, seed=2)
    narrow = bootstrap_auc_ci(y, s, n=500, alpha=0.5, seed=1)
    assert lo <= narrow[0] <= narrow[1] <= hi


def test_bootstrap_skips_one_class_resamples() -> None:
    # 1 fake among 3: many resamples have no fake; they are skipped, not counted as nan/0.
    lo, hi = bootstrap_auc_ci([0, 0, 1], [0.1, 0.2, 0.9], n=200, seed=0)
    assert lo == hi == 1.0


def test_vectorised_bootstrap_auc_matches_sklearn() -> None:
    from forensight.metrics import _auc_rows

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (30, 25))
    s = rng.integers(0, 4, (30, 25)).astype(float)
    got = _auc_rows(y, s)
    for i in range(30):
        if len(set(y[i])) == 2:
            assert got[i] == pytest.approx(roc_auc_score(y[i], s[i]))
        else:
            assert np.isnan(got[i])


# ------------------------------------------------------------------------------------ aggregation

def test_aggregate_video_scores_mean_of_logits() -> None:
    ids = ["ff/Deepfakes/c23/000_003", "ff/Face2Face/c23/000_003",
           "ff/Deepfakes/c23/000_003", "ff/orig/c23/001"]
    agg = aggregate_video_scores(ids, np.array([1.0, -2.0, 3.0, 0.5]))
    assert agg == {"ff/Deepfakes/c23/000_003": 2.0, "ff/Face2Face/c23/000_003": -2.0, "ff/orig/c23/001": 0.5}
    assert list(agg) == ["ff/Deepfakes/c23/000_003", "ff/Face2Face/c23/000_003", "ff/orig/c23/001"]
    with pytest.raises(ValueError, match="mismatch"):
        aggregate_video_scores(["a"], [1.0, 2.0])
    vids, vy, vs = video_level(ids, [1.0, -2.0, 3.0, 0.5], [1, 1, 1, 0])
    assert vids == list(agg) and vy.tolist() == [1, 1, 0] and vs.tolist() == [2.0, -2.0, 0.5]
    with pytest.raises(ValueError, match="labelled both"):
        aggregate_video_labels(["a", "a"], [0, 1])


# ------------------------------------------------------------------------------------ compute_all

def test_compute_all() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([-2.0, -1.0, 0.5, 0.2, 1.0, 2.0])
    out = compute_all(y, s, threshold=0.2, clip_y=np.repeat(y, 2), clip_s=np.repeat(s, 2), n_boot=200)
    assert out["n"] == 6 and out["n_real"] == 3 and out["n_fake"] == 3
    assert out["auc"] == pytest.approx(8 / 9)
    assert out["acc_at_0.5"] == pytest.approx(5 / 6)  # logit 0 = probability 0.5
    assert out["acc_at_threshold"] == pytest.approx(5 / 6)
    assert out["confusion"] == [[2, 1], [0, 3]]
    assert out["clip_auc"] == pytest.approx(8 / 9) and out["n_clips"] == 12
    lo, hi = out["auc_ci"]
    assert lo <= out["auc"] <= hi
    json.dumps(out)  # JSON-able as is
    no_thr = compute_all(y, s, n_boot=50)
    assert no_thr["threshold"] is None and no_thr["acc_at_threshold"] is None and no_thr["clip_auc"] is None
    probs = 1 / (1 + np.exp(-s))
    assert compute_all(y, probs, score_type="prob", n_boot=50)["acc_at_0.5"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="both clip_y and clip_s"):
        compute_all(y, s, clip_y=y)


# ------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("fn", [auc, average_precision, eer, bootstrap_auc_ci, compute_all,
                                lambda y, s: choose_threshold(y, s, "eer")])
def test_one_class_is_an_error(fn) -> None:
    with pytest.raises(ValueError, match="one class"):
        fn([1, 1, 1], [0.1, 0.2, 0.3])


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="length mismatch"):
        auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="inf"):
        eer([0, 1], [0.1, float("inf")])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        accuracy_at([], [], 0.0)
    with pytest.raises(ValueError, match="1-D"):
        auc([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="NaN"):
        aggregate_video_scores(["a"], [float("nan")])

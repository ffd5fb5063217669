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
    _auc_rows,
    _swap_weights,
    accuracy_at,
    aggregate_video_labels,
    aggregate_video_scores,
    attention_localisation,
    auc,
    average_precision,
    bootstrap_auc_ci,
    choose_threshold,
    compute_all,
    confusion,
    eer,
    mean_sd,
    paired_auc_difference,
    summarise_localisation,
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


# ------------------------------------------------------------------------------------ paired AUC difference

def _labels(rng: np.random.Generator, v: int) -> np.ndarray:
    y = rng.integers(0, 2, v)
    y[0], y[1] = 0, 1
    return y


def test_paired_identical_models_give_zero_and_p_one() -> None:
    rng = np.random.default_rng(0)
    y = _labels(rng, 80)
    a = y[None, :] + rng.normal(size=(3, 80))
    out = paired_auc_difference(y, a, a.copy(), n_boot=500, n_perm=500)
    assert out["diff"] == 0.0
    assert out["ci"][0] <= 0.0 <= out["ci"][1]
    assert out["p_value"] == 1.0
    assert out["auc_a"] == out["auc_b"]
    assert out["n_videos"] == 80 and out["n_seeds"] == 3 and out["n_boot"] == 500 and out["n_perm"] == 500
    assert json.loads(json.dumps(out)) == out  # plain JSON types
    assert all(type(v) is float for v in out["auc_a"] + out["ci"] + [out["diff"], out["p_value"]])


def test_paired_perfect_separator_beats_chance() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 30)
    a = rng.normal(size=60)  # chance
    b = y + 0.1 * rng.normal(size=60)  # perfect: 1.1 > 0.3 gap never closed by 0.1-sd noise
    out = paired_auc_difference(y, a, b, n_boot=1000, n_perm=1000, seed=3)
    assert out["auc_b"] == [1.0]
    assert out["diff"] == pytest.approx(1.0 - auc(y, a))
    assert out["diff"] > 0.3
    assert out["ci"][0] > 0.0
    assert out["p_value"] < 0.01
    assert out["n_seeds"] == 1 and out["boot_skipped"] == 0


def test_paired_matches_brute_force_recomputation() -> None:
    """Replay the same random draws: bootstrap and permutation stats recomputed from scratch."""
    rng = np.random.default_rng(2)
    v, s_n, n_boot, n_perm = 25, 2, 300, 400
    y = _labels(rng, v)
    a = rng.integers(0, 4, (s_n, v)).astype(float)  # many ties
    b = a + rng.integers(-1, 3, (s_n, v)) * y
    out = paired_auc_difference(y, a, b, n_boot=n_boot, n_perm=n_perm, seed=11)

    rep = np.random.default_rng(11)
    idx = rep.integers(0, v, size=(n_boot, v))
    boot = np.mean([_auc_rows(y[idx], b[s][idx]) - _auc_rows(y[idx], a[s][idx]) for s in range(s_n)], axis=0)
    ok = ~np.isnan(boot)
    assert out["boot_skipped"] == int((~ok).sum())
    assert out["ci"] == pytest.approx(np.quantile(boot[ok], [0.025, 0.975]).tolist(), abs=1e-12)

    swap = rep.random(size=(n_perm, v)) < 0.5
    yy = np.tile(y, (n_perm, 1))
    perm = np.mean([_auc_rows(yy, np.where(swap, a[s], b[s])) - _auc_rows(yy, np.where(swap, b[s], a[s]))
                    for s in range(s_n)], axis=0)
    observed = np.mean([roc_auc_score(y, b[s]) - roc_auc_score(y, a[s]) for s in range(s_n)])
    assert out["diff"] == pytest.approx(observed, abs=1e-12)
    expected_p = (1 + int((np.abs(perm) >= abs(observed) - 1e-9).sum())) / (1 + n_perm)
    assert out["p_value"] == pytest.approx(expected_p)


@given(st.integers(2, 30), st.integers(0, 10_000), st.sampled_from([1, 3]))
@settings(max_examples=60, deadline=None)
def test_swap_weights_are_exact(v: int, seed: int, s_n: int) -> None:
    """The linear form of the permuted statistic equals recomputing AUCs (ties included)."""
    rng = np.random.default_rng(seed)
    y = _labels(rng, v)
    a = rng.integers(0, 3, (s_n, v)).astype(float)
    b = rng.integers(0, 3, (s_n, v)).astype(float)
    swap = rng.random(size=(20, v)) < 0.5
    yy = np.tile(y, (20, 1))
    brute = np.mean([_auc_rows(yy, np.where(swap, a[s], b[s])) - _auc_rows(yy, np.where(swap, b[s], a[s]))
                     for s in range(s_n)], axis=0)
    assert np.where(swap, -1.0, 1.0) @ _swap_weights(y, a, b) == pytest.approx(brute, abs=1e-12)


@given(st.integers(4, 30), st.integers(0, 10_000), st.sampled_from([1, 2, 3]), st.booleans())
@settings(max_examples=40, deadline=None)
def test_paired_swapping_models_mirrors_result(v: int, seed: int, s_n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = _labels(rng, v)
    if ties:
        a = rng.integers(0, 4, (s_n, v)).astype(float)
        b = rng.integers(0, 4, (s_n, v)).astype(float)
    else:
        a, b = rng.normal(size=(s_n, v)), y + rng.normal(size=(s_n, v))
    ab = paired_auc_difference(y, a, b, n_boot=200, n_perm=200, seed=seed)
    ba = paired_auc_difference(y, b, a, n_boot=200, n_perm=200, seed=seed)
    assert ba["diff"] == pytest.approx(-ab["diff"], abs=1e-12)
    assert ba["auc_a"] == ab["auc_b"] and ba["auc_b"] == ab["auc_a"]
    assert ba["boot_skipped"] == ab["boot_skipped"]
    if ab["ci"][0] is None:
        assert ba["ci"] == [None, None]
    else:
        assert ba["ci"][0] == pytest.approx(-ab["ci"][1], abs=1e-12)
        assert ba["ci"][1] == pytest.approx(-ab["ci"][0], abs=1e-12)
    assert ba["p_value"] == ab["p_value"]
    assert 1 / 201 <= ab["p_value"] <= 1.0


def test_paired_bootstrap_is_narrower_than_unpaired() -> None:
    """Strongly correlated models: pairing the resamples cancels the shared test-set noise."""
    rng = np.random.default_rng(4)
    v, n_boot = 200, 2000
    y = np.repeat([0, 1], v // 2)
    shared = 0.8 * y + rng.normal(size=v)  # what both models see
    a = shared + 0.1 * rng.normal(size=v)
    b = shared + 0.15 * y + 0.1 * rng.normal(size=v)  # small true gain
    out = paired_auc_difference(y, a, b, n_boot=n_boot, n_perm=500, seed=0)
    paired_width = out["ci"][1] - out["ci"][0]

    ind = np.random.default_rng(5)
    i_a, i_b = ind.integers(0, v, (n_boot, v)), ind.integers(0, v, (n_boot, v))
    unpaired = _auc_rows(y[i_b], b[i_b]) - _auc_rows(y[i_a], a[i_a])
    unpaired = unpaired[~np.isnan(unpaired)]
    lo, hi = np.quantile(unpaired, [0.025, 0.975])
    assert out["diff"] > 0
    assert paired_width < 0.5 * (hi - lo), (paired_width, hi - lo)
    assert out["ci"][0] > 0 > lo  # pairing detects the gain that the unpaired CI cannot


def test_paired_multi_seed_diff_is_mean_of_per_seed_differences() -> None:
    rng = np.random.default_rng(6)
    y = _labels(rng, 50)
    a = 0.5 * y + rng.normal(size=(3, 50))
    b = 1.0 * y + rng.normal(size=(3, 50))
    out = paired_auc_difference(y, a, b, n_boot=300, n_perm=300)
    per_seed = [auc(y, b[s]) - auc(y, a[s]) for s in range(3)]
    assert out["diff"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert out["auc_a"] == pytest.approx([auc(y, a[s]) for s in range(3)])
    assert out["auc_b"] == pytest.approx([auc(y, b[s]) for s in range(3)])
    assert out["ci"][0] <= out["diff"] <= out["ci"][1]
    assert out["n_seeds"] == 3
    again = paired_auc_difference(y, a, b, n_boot=300, n_perm=300)
    assert again == out  # deterministic for a given seed
    assert paired_auc_difference(y, a, b, n_boot=300, n_perm=300, seed=1)["ci"] != out["ci"]
    # a single seed given as (V,) or (1, V) is the same thing
    assert paired_auc_difference(y, a[0], b[0], n_boot=100, n_perm=100) == paired_auc_difference(
        y, a[:1], b[:1], n_boot=100, n_perm=100)


def test_paired_timing_2000_by_2000() -> None:
    import time

    rng = np.random.default_rng(7)
    y = _labels(rng, 200)
    a = 0.5 * y + rng.normal(size=(5, 200))
    b = 0.7 * y + rng.normal(size=(5, 200))
    t0 = time.perf_counter()
    out = paired_auc_difference(y, a, b, n_boot=2000, n_perm=2000)
    elapsed = time.perf_counter() - t0
    print(f"paired_auc_difference S=5 V=200 n_boot=2000 n_perm=2000: {elapsed:.3f} s")
    assert out["n_boot"] == 2000 and out["n_perm"] == 2000
    assert elapsed < 5.0


def test_paired_one_class_resamples_are_skipped_and_counted() -> None:
    y = np.array([0, 0, 0, 0, 1])  # P(resample has no fake) = 0.8**5 ~ 0.33
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.25])
    b = np.array([0.1, 0.2, 0.3, 0.4, 0.9])
    out = paired_auc_difference(y, a, b, n_boot=1000, n_perm=100)
    assert 200 < out["boot_skipped"] < 500
    assert out["diff"] == pytest.approx(1.0 - 0.5)


def test_paired_errors() -> None:
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.9, 0.2, 0.8])
    with pytest.raises(ValueError, match="same shape"):
        paired_auc_difference(y, np.tile(s, (2, 1)), np.tile(s, (3, 1)))
    with pytest.raises(ValueError, match="length mismatch"):
        paired_auc_difference(y, s[:3], s[:3])
    with pytest.raises(ValueError, match="NaN"):
        paired_auc_difference(y, s, np.array([0.1, np.nan, 0.2, 0.8]))
    with pytest.raises(ValueError, match="inf"):
        paired_auc_difference(y, np.array([0.1, np.inf, 0.2, 0.8]), s)
    with pytest.raises(ValueError, match="one class"):
        paired_auc_difference([1, 1, 1, 1], s, s)
    with pytest.raises(ValueError, match="shape \\(S, V\\)"):
        paired_auc_difference(y, s.reshape(1, 1, 4), s.reshape(1, 1, 4))
    with pytest.raises(ValueError, match="no seeds"):
        paired_auc_difference(y, np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match="1-D"):
        paired_auc_difference(y[None, :], s, s)
    with pytest.raises(ValueError, match="n_boot"):
        paired_auc_difference(y, s, s, n_boot=0)
    with pytest.raises(ValueError, match="n_perm"):
        paired_auc_difference(y, s, s, n_perm=0)


# ------------------------------------------------------------------------------------ mean_sd

def test_mean_sd() -> None:
    m, sd = mean_sd([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and sd == pytest.approx(math.sqrt(5 / 3))
    assert mean_sd([0.7]) == (0.7, 0.0)
    assert mean_sd(np.array([2.0, 2.0])) == (2.0, 0.0)
    assert mean_sd(v for v in (1.0, 3.0)) == (2.0, pytest.approx(math.sqrt(2)))
    with pytest.raises(ValueError, match="NaN"):
        mean_sd([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one"):
        mean_sd([])


# ------------------------------------------------------------------------------------ localisation

def test_uniform_attention_is_uninformative() -> None:
    t = 10
    out = attention_localisation(np.full(t, 1 / t), np.arange(t), [2, 3, 4])
    assert out is not None
    assert out["frame_auc"] == 0.5
    assert out["mass_inside"] == pytest.approx(out["share_inside"])
    assert out["share_inside"] == pytest.approx(0.3)
    assert out["lift"] == pytest.approx(1.0)
    assert out["n_frames"] == 10 and out["n_manipulated"] == 3
    json.dumps(out)


def test_concentrated_attention_localises() -> None:
    w = np.zeros(10)
    w[[2, 3, 4]] = 1 / 3
    out = attention_localisation(w, np.arange(100, 110), {102, 103, 104})
    assert out is not None
    assert out["frame_auc"] == 1.0
    assert out["mass_inside"] == pytest.approx(1.0)
    assert out["lift"] == pytest.approx(1 / out["share_inside"]) and out["lift"] == pytest.approx(10 / 3)
    # attention entirely off the manipulated frames
    off = attention_localisation(1 / 3 - w, np.arange(100, 110), [102, 103, 104])
    assert off is not None and off["frame_auc"] == 0.0 and off["mass_inside"] == 0.0 and off["lift"] == 0.0


def test_localisation_degenerate_label_sets() -> None:
    w = np.array([0.1, 0.2, 0.7])
    every = attention_localisation(w, [5, 6, 7], range(100))
    assert every is not None
    assert every["frame_auc"] is None and every["mass_inside"] == pytest.approx(1.0)
    assert every["share_inside"] == 1.0 and every["lift"] == pytest.approx(1.0)
    none = attention_localisation(w, [5, 6, 7], [])
    assert none is not None
    assert none["frame_auc"] is None and none["lift"] is None
    assert none["mass_inside"] == 0.0 and none["share_inside"] == 0.0 and none["n_manipulated"] == 0
    assert attention_localisation([], [], [1, 2]) is None


def test_localisation_ignores_unscored_manipulated_frames() -> None:
    w = np.array([0.1, 0.4, 0.1, 0.3, 0.1])
    idx = np.array([0, 2, 4, 6, 8])  # every other source frame was scored
    out = attention_localisation(w, idx, [2, 3, 5, 7])  # only frame 2 was scored
    ref = attention_localisation(w, idx, [2])
    assert out == ref
    assert out is not None
    assert out["n_manipulated"] == 1 and out["share_inside"] == pytest.approx(0.2)
    assert out["mass_inside"] == pytest.approx(0.4) and out["lift"] == pytest.approx(2.0)
    assert out["frame_auc"] == pytest.approx(roc_auc_score([0, 1, 0, 0, 0], w))
    # unnormalised weights: only ratios matter
    scaled = attention_localisation(10 * w, idx, [2])
    assert scaled is not None and scaled["mass_inside"] == pytest.approx(0.4)
    # float frame numbers that are whole numbers are accepted
    assert attention_localisation(w, idx.astype(float), [2]) == ref


def test_localisation_errors() -> None:
    with pytest.raises(ValueError, match="length mismatch"):
        attention_localisation([0.5, 0.5], [0, 1, 2], [1])
    with pytest.raises(ValueError, match="non-negative"):
        attention_localisation([1.5, -0.5], [0, 1], [1])
    with pytest.raises(ValueError, match="NaN"):
        attention_localisation([0.5, float("nan")], [0, 1], [1])
    with pytest.raises(ValueError, match="integers"):
        attention_localisation([0.5, 0.5], [0.5, 1.0], [1])
    with pytest.raises(ValueError, match="sum to 0"):
        attention_localisation([0.0, 0.0], [0, 1], [1])
    with pytest.raises(ValueError, match="1-D"):
        attention_localisation([[0.5, 0.5]], [[0, 1]], [1])


def test_summarise_localisation() -> None:
    rows = [
        attention_localisation(np.full(4, 0.25), np.arange(4), [0]),  # auc 0.5, mass 0.25, lift 1
        attention_localisation(np.array([0.7, 0.1, 0.1, 0.1]), np.arange(4), [0]),  # auc 1, mass 0.7
        attention_localisation(np.full(4, 0.25), np.arange(4), [0, 1, 2, 3]),  # auc None
        None,
    ]
    out = summarise_localisation(rows)
    assert out["n_videos"] == 3 and out["n_skipped"] == 1
    assert out["frame_auc_n"] == 2
    assert out["frame_auc_mean"] == pytest.approx(0.75)
    assert out["frame_auc_sd"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert out["mass_inside_n"] == 3 and out["mass_inside_mean"] == pytest.approx((0.25 + 0.7 + 1.0) / 3)
    assert out["share_inside_mean"] == pytest.approx((0.25 + 0.25 + 1.0) / 3)
    assert out["lift_mean"] == pytest.approx((1.0 + 2.8 + 1.0) / 3)
    json.dumps(out)
    empty = summarise_localisation([None])
    assert empty["n_videos"] == 0 and empty["frame_auc_mean"] is None and empty["lift_sd"] is None
    assert empty["lift_n"] == 0

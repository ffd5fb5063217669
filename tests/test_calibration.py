"""Calibration: ECE, Brier, reliability curve, temperature scaling; evaluate's outputs; detect uses T."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.config import PreprocessConfig
from forensight.metrics import (
    apply_temperature,
    auc,
    brier_score,
    calibration_summary,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
    sigmoid,
)
from forensight.modelfile import IncompatibleModelFile, load_model_file, save_model_file


def test_brier_and_ece_on_hand_computed_examples() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.3, 0.7, 0.9]
    assert brier_score(y, p) == pytest.approx((0.01 + 0.09 + 0.09 + 0.01) / 4)
    # 2 bins: [0, .5) holds p .1, .3 (no fake: |0 - .2|), [.5, 1] holds .7, .9 (all fake: |1 - .8|)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.2 + 0.5 * 0.2)
    rc = reliability_curve(y, p, n_bins=2)
    assert rc["count"].tolist() == [2, 2] and rc["frac_fake"].tolist() == [0.0, 1.0]
    np.testing.assert_allclose(rc["mean_p"], [0.2, 0.8])
    # p = 1 falls in the last bin; empty bins are NaN and do not count
    rc = reliability_curve([1, 0], [1.0, 0.0], n_bins=15)
    assert rc["count"][0] == 1 and rc["count"][-1] == 1 and np.isnan(rc["mean_p"][5])
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    # perfectly calibrated within each bin
    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.0
    assert expected_calibration_error([1, 1], [0.0, 0.0]) == 1.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 300), bins=st.integers(1, 30))
def test_ece_properties(seed: int, n: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < 0.5).astype(int)
    e = expected_calibration_error(y, p, bins)
    assert 0.0 <= e <= 1.0
    assert brier_score(y, p) == pytest.approx(np.mean((p - y) ** 2))
    # symmetric bins: P(real) against "is real" gives the same ECE
    assert expected_calibration_error(1 - y, 1 - p, bins) == pytest.approx(e, abs=1e-9) or np.any(
        np.isclose((p * bins) % 1, 0))  # a p exactly on an inner edge moves to the other bin when mirrored
    assert reliability_curve(y, p, bins)["count"].sum() == n


def test_bad_probabilities_and_temperatures_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="length mismatch"):
        expected_calibration_error([0, 1], [0.5])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_curve([0, 1], [0.5, 0.5], n_bins=0)
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            apply_temperature([0.0], t)


def test_sigmoid_and_temperature() -> None:
    z = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    p = sigmoid(z)
    assert np.isfinite(p).all() and p[0] == 0.0 and p[-1] == 1.0 and p[2] == 0.5
    np.testing.assert_allclose(apply_temperature(z, None), p)
    np.testing.assert_allclose(apply_temperature(z, 2.0), sigmoid(z / 2))
    assert np.all(np.diff(apply_temperature(np.sort(z), 3.0)) >= 0)  # monotone: rankings and verdicts kept


def overconfident_scores(k: float, seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a calibrated logistic model, logits multiplied by ``k`` (over-confident for k > 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < sigmoid(z)).astype(int)
    return y, k * z


@settings(max_examples=12, deadline=None)
@given(k=st.floats(2.0, 10.0), seed=st.integers(0, 10**6))
def test_temperature_scaling_lowers_ece_of_an_overconfident_model(k: float, seed: int) -> None:
    """Fitted on one half (validation), applied to the other (test): T recovers k, ECE and Brier drop."""
    y, s = overconfident_scores(k, seed)
    t = fit_temperature(y[:2000], s[:2000])
    assert t == pytest.approx(k, rel=0.15)
    before = expected_calibration_error(y[2000:], sigmoid(s[2000:]))
    after = expected_calibration_error(y[2000:], apply_temperature(s[2000:], t))
    assert after < before and after < 0.05
    assert brier_score(y[2000:], apply_temperature(s[2000:], t)) < brier_score(y[2000:], sigmoid(s[2000:]))
    assert auc(y, apply_temperature(s, t)) == pytest.approx(auc(y, s))


def test_underconfident_model_gets_t_below_one() -> None:
    y, s = overconfident_scores(0.25, seed=1)
    assert fit_temperature(y, s) == pytest.approx(0.25, rel=0.15)


def test_degenerate_fits_raise() -> None:
    with pytest.raises(ValueError, match="separated at logit 0"):
        fit_temperature([0, 0, 1, 1], [-2.0, -1.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="no usable signal"):
        fit_temperature([0, 1, 0, 1], [5.0, 1.0, 6.0, 2.0])
    with pytest.raises(ValueError, match="both real and fake"):
        fit_temperature([1, 1], [1.0, 2.0])


def test_calibration_summary_is_jsonable() -> None:
    y, s = overconfident_scores(3.0, seed=2, n=200)
    out = calibration_summary(y, s, 3.0, n_bins=15)
    json.dumps(out, allow_nan=False)
    assert len(out["bins"]) == 15 and sum(b["count"] for b in out["bins"]) == 200
    assert out["ece"] == pytest.approx(expected_calibration_error(y, sigmoid(s / 3.0)))


# ---- evaluate end to end on a tiny synthetic dataset ----------------------------------------------------

PP = PreprocessConfig(num_frames=8, size=48, regions=("mouth",), detector="dlib_hog")  # the fast detector: not under test


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """3 pairs → 12 synthetic videos (4 per split) preprocessed to 48-px mouths."""
    from forensight.datasets import read_dataset
    from forensight.preprocess import run_preprocess
    from forensight.synth import generate

    root = tmp_path_factory.mktemp("calib")
    generate(root / "data", num_pairs=3, frames=16, size=(192, 160), seed=3, workers=1, progress=False)
    s = run_preprocess(read_dataset("ffpp", root / "data"), root / "cache", PP, workers=1, progress=False)
    assert s.failed == 0, s.failures
    return {"data": root / "data", "cache": root / "cache", "root": root}


def overconfident_model(tiny: dict[str, Path], path: Path, anti: bool = False) -> Path:
    """A ``region_tiny_attention`` model made deliberately over-confident on the validation split.

    Its final linear layer maps the validation video logits affinely onto ``50 * [0.5, 1.5]``: the
    sign makes fakes score higher on average on the validation split, every validation logit is
    above 0 (not separated at 0, so a finite temperature fits), and the factor 50 makes every
    P(fake) about 1. Rankings are those of the random model: only the scale is wrong.
    ``anti``: the opposite sign (fakes score lower on average on the validation split).
    """
    from forensight.cache import Cache
    from forensight.models.registry import build_model, get_model_config
    from forensight.scoring import score_split

    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention", region="mouth", input_size=48)
    model = build_model(mc, pretrained=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model_file(path, model, mc, PP, None, 0.0, {})
    _, y, z = score_split(load_model_file(path), Cache.open(tiny["cache"]), "val")[0].video_scores()
    sign = 1.0 if np.sum((y - 0.5) * z) > 0 else -1.0
    if anti:
        sign = -sign
    lo, span = float(np.min(sign * z)), float(np.ptp(z))
    assert span > 0
    a, c = 50 * sign / span, 50 * (0.5 - lo / span)  # validation logits -> 50 * [0.5, 1.5]
    last = model.classifier[-1]
    with torch.no_grad():
        last.weight.mul_(a)
        last.bias.copy_(a * last.bias + c)
    z2 = a * z + c
    save_model_file(path, model, mc, PP, None, choose_threshold(y, z2), {})
    return path


def _scores(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_calibration_and_temperature_lowers_ece(tiny: dict[str, Path], tmp_path: Path) -> None:
    from forensight.detect import load_detector
    from forensight.evaluate import evaluate

    mp = overconfident_model(tiny, tmp_path / "run" / "model.pt")
    before = evaluate(mp, tiny["cache"], tmp_path / "before", n_bootstrap=20, progress=False)
    m = before.metrics
    assert {"ece", "brier", "calibration"} <= set(m)
    assert m["calibration"]["temperature"] is None and m["calibration"]["p_fake"].startswith("uncalibrated")
    assert m["ece"] == m["calibration"]["ece_uncalibrated"] and 0 <= m["brier"] <= 1
    assert m["ece"] > 0.3  # P(fake) ~ 1 for every video, half of them real
    assert len(m["calibration"]["bins_uncalibrated"]) == 15
    png = tmp_path / "before" / "reliability.png"
    assert png.read_bytes()[:4] == b"\x89PNG"

    after = evaluate(mp, tiny["cache"], tmp_path / "after", n_bootstrap=20, calibrate=True, progress=False)
    a = after.metrics
    t = a["calibration"]["temperature"]
    assert t is not None and t > 5  # a large temperature undoes the factor 50
    assert a["calibration"]["fitted_now"] and a["calibration"]["fit"]["fitted_on"] == "the validation split"
    assert not a["calibration"]["fitted_on_evaluated_split"]
    assert a["ece"] < m["ece"] and a["ece"] == a["calibration"]["ece_calibrated"]
    assert a["calibration"]["ece_uncalibrated"] == pytest.approx(m["ece"])
    assert a["calibration"]["fit"]["val_ece_after"] < a["calibration"]["fit"]["val_ece_before"]
    # a monotone map: the ranking metrics and every verdict are unchanged
    for k in ("auc", "ap", "eer", "acc_at_threshold", "confusion"):
        assert a[k] == m[k], k
    rb, ra = _scores(tmp_path / "before" / "scores.csv"), _scores(tmp_path / "after" / "scores.csv")
    assert [r["predicted"] for r in rb] == [r["predicted"] for r in ra]
    for r in ra:
        assert float(r["p_fake"]) == pytest.approx(float(sigmoid(float(r["logit"]) / t)), abs=2e-6)

    lm = load_model_file(mp)  # stored in the model file
    assert lm.temperature == pytest.approx(t) and lm.calibration.startswith("calibrated")
    # detect reports the calibrated P(fake), with the same verdict rule on the logit
    det = load_detector(mp, device="cpu")
    video = next((tiny["data"] / "manipulated_sequences").rglob("*.mp4"))
    res = det.predict(video)
    assert res.ok, res.message
    assert res.p_fake == pytest.approx(float(sigmoid(res.logit / t)), abs=2e-6)
    assert res.threshold_p == pytest.approx(float(sigmoid(lm.threshold / t)), abs=2e-6)
    assert res.verdict == ("fake" if res.logit >= lm.threshold else "real")
    assert res.model["calibration"].startswith("calibrated") and res.model["temperature"] == pytest.approx(t)


def test_tampered_temperature_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    from forensight.modelfile import update_model_file

    mp = overconfident_model(tiny, tmp_path / "m" / "model.pt")
    for bad in (-1.0, 0.0, "2", float("inf")):
        update_model_file(mp, temperature=bad)
        with pytest.raises(IncompatibleModelFile, match="temperature"):
            load_model_file(mp)
    with pytest.raises(ValueError, match="temperature"):
        update_model_file(mp, temperature=None)
        load_model_file(mp).store_temperature(math.nan)


def test_calibrate_refuses_a_degenerate_fit_and_stores_nothing(tiny: dict[str, Path], tmp_path: Path) -> None:
    """The same model with its sign flipped ranks fakes LOWER on the (balanced) validation split: the
    likelihood is best at T -> infinity, so no temperature fits; calibrate says so and stores nothing."""
    from forensight.cache import Cache
    from forensight.evaluate import calibrate

    mp = overconfident_model(tiny, tmp_path / "m" / "model.pt", anti=True)
    with pytest.raises(ValueError, match="no usable signal"):
        calibrate(load_model_file(mp), Cache.open(tiny["cache"]))
    assert load_model_file(mp).temperature is None and "calibration" not in load_model_file(mp).payload


def test_calibrate_writes_a_new_folder_with_temperature_and_threshold(tiny: dict[str, Path], tmp_path: Path) -> None:
    """``forensight calibrate``: the temperature of ``evaluate --calibrate`` AND a threshold, fitted on the
    validation split, go into a NEW model folder; the model it started from is never changed."""
    import dataclasses

    from forensight.cli import main as cli_main
    from forensight.evaluate import calibrate_model, evaluate
    from forensight.modelfile import ModelFileError, export_model
    from forensight.models.published import PUBLISHED, published_card

    mp = overconfident_model(tiny, tmp_path / "run" / "model.pt")
    folder = export_model(mp, tmp_path / "folder")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    out = tmp_path / "calibrated"
    assert cli_main(["calibrate", "--model", str(folder), "--cache", str(tiny["cache"]), "--out", str(out),
                     "--bootstrap", "20", "-q"]) == 0
    assert before == {p.name: p.read_bytes() for p in folder.iterdir()}  # the source folder is untouched
    cal = load_model_file(out)
    src = load_model_file(folder)
    assert cal.kind == "folder" and cal.temperature is not None and cal.temperature > 5
    assert cal.threshold_info["source"] == "calibration" and cal.threshold_info["calibrated"] is True
    assert cal.threshold_info["previous_threshold"] == pytest.approx(src.threshold)
    assert "validation videos" in cal.threshold_source and cal.calibration.startswith("calibrated")
    # the same temperature as evaluate --calibrate fits, the threshold by the training rule (eer)
    fitted = evaluate(mp, tiny["cache"], tmp_path / "ev", n_bootstrap=20, calibrate=True, progress=False)
    assert cal.temperature == pytest.approx(fitted.metrics["calibration"]["temperature"])
    _, y, s = evaluate(out, tiny["cache"], tmp_path / "ev2", split="val", n_bootstrap=20,
                       progress=False).predictions.video_scores()
    assert cal.threshold == pytest.approx(choose_threshold(y, s, rule="eer"))
    assert "## Decision threshold and calibration" in (out / "README.md").read_text()
    # never over an existing folder, and folders are not changed in place by evaluate --calibrate
    with pytest.raises(FileExistsError, match="NEW model folder"):
        calibrate_model(folder, tiny["cache"], out, progress=False)
    with pytest.raises(ModelFileError, match="never modified in place"):
        evaluate(folder, tiny["cache"], tmp_path / "ev3", calibrate=True, progress=False)
    # an imported published model: its card then says the threshold is calibrated, and by what
    entry = PUBLISHED["lipforensics_ff"]
    pub = dataclasses.replace(src, payload={**src.payload, "trained_on": published_card(entry, sha256="0" * 64,
                                                                                          file=entry.file)})
    res = calibrate_model(pub, tiny["cache"], tmp_path / "pub_cal", progress=False, n_bootstrap=20)
    card = load_model_file(res.folder).trained_on
    assert card["threshold_calibrated"] is True and "validation videos" in card["calibration"]
    assert "UNCALIBRATED" not in (res.folder / "README.md").read_text()

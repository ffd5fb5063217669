"""Transfer learning: the frozen-feature cache, training on it, the recipe, study statistics, the sweep."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_chromium

from forensight.cache import Cache
from forensight.config import PreprocessConfig, TrainConfig, get_model_config
from forensight.datasets import read_dataset
from forensight.evaluate import evaluate
from forensight.features import FeatureCache, build_features, feature_key
from forensight.modelfile import load_model_file
from forensight.models.registry import build_model
from forensight.preprocess import run_preprocess
from forensight.synth import Variant, generate
from forensight.train import lr_lambda, train

pytestmark = pytest.mark.slow

LITE = {"input_size": 64}
RECIPE = {"max_epochs": 12, "patience": 6, "batch_size": 8, "lr": 1e-3}


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 pairs → 32 synthetic videos (16 frames sampled), mouth + full crops at 64 px."""
    root = tmp_path_factory.mktemp("transfer")
    generate(root / "data", num_pairs=8, frames=32, size=(256, 208), seed=7, workers=1, progress=False)
    cfg = PreprocessConfig(num_frames=16, size=64, regions=("full", "mouth"))
    s = run_preprocess(read_dataset("ffpp", root / "data"), root / "cache", cfg, workers=1, progress=False)
    assert s.failed == 0, s.failures
    return root / "cache"


def test_feature_cache_is_built_once_keyed_and_refused_when_stale(small_cache: Path) -> None:
    cache = Cache.open(small_cache)
    mc = get_model_config("region_lite0_attention", region="mouth", **LITE)
    torch.manual_seed(0)
    model = build_model(mc)
    fc, stats = build_features(cache, mc, model)
    n = len(cache.video_ids())
    assert stats.encoded == n and stats.reused == 0 and stats.frames == 16 * n
    vid = cache.video_ids()[0]
    arr = fc.load(vid)
    assert arr.dtype == np.float16 and arr.shape == (16, 1280) and not arr.flags.writeable
    _, again = build_features(cache, mc, model)
    assert again.encoded == 0 and again.reused == n  # nothing encoded twice
    # the stored features are the encoder's output on the same prepared crops (float16 rounding only)
    from forensight.datasets.clips import prepare_batch

    crops = torch.from_numpy(np.array(cache.load(vid, regions=["mouth"]).regions["mouth"]))[None]
    with torch.inference_mode():
        want = model.eval().features(prepare_batch(crops, mc.input_spec()))[0][0].numpy()
    np.testing.assert_allclose(arr.astype(np.float32), want, rtol=2e-3, atol=2e-3)
    # another input size or other weights is another key; a tampered meta.json is refused
    other = feature_key(cache, mc.replace(input_size=32), model)
    assert other != fc.key
    (fc.root / "meta.json").write_text(json.dumps({**fc.key, "size": 999}))
    with pytest.raises(ValueError, match="another key"):
        FeatureCache.open(cache, fc.key)
    (fc.root / "meta.json").write_text(json.dumps(fc.key, indent=1, sort_keys=True) + "\n")
    with pytest.raises(FileNotFoundError, match="build"):
        FeatureCache.open(cache, other)


def test_training_on_features_and_scoring_from_them(small_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    mc = get_model_config("region_lite0_attention", region="mouth", **LITE)
    res = train(small_cache, run, mc, TrainConfig(**RECIPE), progress=False)
    lm = load_model_file(run)
    assert lm.payload["features"]["region"] == "mouth"  # trained on the frozen-feature cache
    assert res.val_metrics["scored_from"] == "frozen-encoder features"
    # the frozen encoder kept its ImageNet weights
    ref = build_model(mc).encoder.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in lm.model.encoder.state_dict().items())
    # ...so the per-epoch Lightning checkpoints leave it out (a quarter of a run's time went into
    # writing it), and resuming from them restores it from the pretrained weights
    for name in ("best.ckpt", "last.ckpt"):
        sd = torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=False)["state_dict"]
        assert sd and not any(k.startswith("model.encoder.") for k in sd), name
        assert any(k.startswith("model.temporal.") for k in sd)
    more = train(small_cache, run, mc, TrainConfig(**{**RECIPE, "max_epochs": RECIPE["max_epochs"] + 1}),
                 resume=True, progress=False)
    again = load_model_file(run)
    assert all(torch.equal(v, ref[k]) for k, v in again.model.encoder.state_dict().items())
    assert more.val_metrics["scored_from"] == "frozen-encoder features"
    lm = load_model_file(run)
    # evaluate scores from the same features by default: the threshold is its validation EER point
    from forensight.metrics import eer

    val = evaluate(run, small_cache, tmp_path / "val", split="val", n_bootstrap=10, progress=False)
    assert val.metrics["scored_from"] == "frozen-encoder features"
    _, y, s = val.predictions.video_scores()
    assert lm.threshold == pytest.approx(eer(y, s)[1], abs=1e-9)
    # from the crops (what detect does) the scores differ by the float16 rounding of the features only
    crops = evaluate(run, small_cache, tmp_path / "val2", split="val", n_bootstrap=10, features=False,
                     progress=False)
    assert crops.metrics["scored_from"] == "crops"
    diff = np.abs(crops.predictions.video_scores()[2] - s).max()
    assert diff < 5e-3, diff
    print(f"max |logit(features) - logit(crops)| = {diff:.2e}")


def test_lr_schedule_warms_up_then_decays() -> None:
    f = lr_lambda(10, 100, "cosine")
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5, abs=1e-9) and f(100) == pytest.approx(0.0)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))
    g = lr_lambda(0, 50, "constant")
    assert g(0) == 1.0 and g(49) == 1.0


def test_the_recipe_learns_in_every_seed(small_cache: Path, tmp_path: Path) -> None:
    """Frozen Lite0 features + the warm-up / cosine / min-epochs recipe: every seed learns the mouth
    manipulation (the random-init MobileNet recipe failed in about 3 of 8 seeds, stuck at chance), and
    the selected epoch is never one before min_epochs. This small set's val split has 8 videos, so
    one misordered real/fake pair costs 1/16 of AUC: "learned" is val AUC >= 0.8 here (the demo's
    data: >= 0.9, README)."""
    aucs = {}
    for head in ("control", "attention"):
        for seed in (0, 1, 2):
            mc = get_model_config(f"region_lite0_{head}", region="mouth", **LITE)
            res = train(small_cache, tmp_path / f"{head}{seed}", mc, TrainConfig(**RECIPE, seed=seed), progress=False)
            aucs[(head, seed)] = res.val_metrics["auc"]
            assert res.best_epoch >= TrainConfig().min_epochs - 1
    print(aucs)
    assert all(v >= 0.8 for v in aucs.values()), aucs


def test_evaluate_measures_attention_localisation(small_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "ctrl"
    mc = get_model_config("region_lite0_control", region="mouth", **LITE)
    train(small_cache, run, mc, TrainConfig(**{**RECIPE, "max_epochs": 4}), progress=False)
    res = evaluate(run, small_cache, tmp_path / "eval", n_bootstrap=10, progress=False)
    loc = res.metrics["localisation"]
    n_fake = sum(1 for v in Cache.open(small_cache).video_ids(split="test") if "/original/" not in v)
    assert loc["videos"] == n_fake > 0
    # a control head weights frames uniformly: mass inside = share inside, frame AUC 0.5
    assert loc["mass_inside"] == pytest.approx(loc["share_inside"], abs=1e-6)
    assert loc["frame_auc"] == pytest.approx(0.5, abs=1e-6)
    with open(tmp_path / "eval" / "localisation.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_fake and all(0 < float(r["share_inside"]) <= 1 for r in rows)


def test_study_reports_seed_statistics_and_paired_differences(small_cache: Path, tmp_path: Path) -> None:
    from forensight.study import run_study

    res = run_study(small_cache, tmp_path / "study", regions=("mouth",), family="region_lite0", seeds=(0, 1),
                    train={**RECIPE, "max_epochs": 6}, model_overrides=LITE, n_bootstrap=200, progress=False)
    assert {c["head"] for c in res.cells} == {"control", "attention"}
    for c in res.cells:
        assert c["seeds"] == 2 and len(c["test_auc_per_seed"]) == 2
        assert c["test_auc"] == pytest.approx(np.mean(c["test_auc_per_seed"]), abs=1e-4)
        assert c["test_auc_sd"] == pytest.approx(np.std(c["test_auc_per_seed"], ddof=1), abs=1e-4)
    (d,) = res.diffs
    assert d["region"] == "mouth" and d["ci_lo"] <= d["diff_attention_minus_control"] <= d["ci_hi"]
    assert 0 < d["p_value"] <= 1
    att = next(c for c in res.cells if c["head"] == "attention")
    assert "loc_frame_auc" in att and 0 <= att["loc_mass_inside"] <= 1
    with open(res.diff_csv) as f:
        assert next(csv.DictReader(f))["region"] == "mouth"
    assert res.seconds_per_run > 0


def test_sweep_runs_each_condition_on_shared_reals(tmp_path: Path) -> None:
    from forensight.sweep import Condition, run_sweep

    conds = [Condition("F_f1", 1.0), Condition("F_f0.25", 0.25)]
    generate(tmp_path / "data", num_pairs=6, frames=24, size=(192, 160), seed=2, workers=1, progress=False,
             split_shares=(0.5, 0.17, 0.33), variants=[Variant(c.name, "Face2Face", c.sparsity) for c in conds])
    cfg = PreprocessConfig(num_frames=12, size=48, regions=("mouth",))
    s = run_preprocess(read_dataset("ffpp", tmp_path / "data"), tmp_path / "cache", cfg, workers=1, progress=False)
    assert s.failed == 0, s.failures
    res = run_sweep(tmp_path / "cache", tmp_path / "sweep", conds, family="region_tiny", seeds=(0,),
                    train={"max_epochs": 2, "patience": 2, "batch_size": 4, "min_epochs": 1}, n_bootstrap=50,
                    progress=False)
    assert [r["condition"] for r in res.rows] == ["F_f1", "F_f0.25"]
    n_test = Cache.open(tmp_path / "cache").video_ids(split="test")
    reals = [v for v in n_test if "/original/" in v]
    for r in res.rows:
        assert r["n_test"] == len(reals) * 2  # the shared reals + this condition's fakes only
        assert not math.isnan(r["auc_control"]) and r["diff"] is not None
    assert res.plot.read_bytes()[:4] == b"\x89PNG" and res.csv.is_file()


def test_detect_scores_each_person_and_the_manipulated_one_highest(small_cache: Path, tmp_path: Path) -> None:
    """Two people side by side, one manipulated (``synth.generate_two_person``): a mouth model
    trained on the synthetic data scores both, the manipulated person higher, the verdict is theirs;
    the model card says it was trained on synthetic data only, and the report shows both people in
    headless Chromium."""
    import subprocess
    import tempfile

    from forensight.detect import load_detector
    from forensight.html_report import write_video_report
    from forensight.modelcard import SYNTHETIC_WARNING
    from forensight.synth import generate_two_person

    run = tmp_path / "run"
    mc = get_model_config("region_lite0_attention", region="mouth", **LITE)
    train(small_cache, run, mc, TrainConfig(**RECIPE), progress=False)
    card = load_model_file(run).trained_on
    assert card["synthetic_only"] and card["datasets"] == {"synthetic": 24}
    assert card["videos"] == {"train": {"real": 10, "fake": 10}, "val": {"real": 2, "fake": 2}} or \
        sum(c["real"] + c["fake"] for c in card["videos"].values()) == 24
    items = generate_two_person(tmp_path / "tp", 4, frames=32, size=(320, 256), seed=7)
    det = load_detector(run, device="cpu")
    assert det.describe()["warning"] == SYNTHETIC_WARNING
    page = None
    for it in items:
        r = det.predict(tmp_path / "tp" / it["path"])
        assert r.status == "ok" and len(r.people) == 2 and all(p.ok for p in r.people), r.message
        half = r.video["width"] // 2
        side = {p.person: "left" if (p.face_track.boxes[0][0] + p.face_track.boxes[0][2]) / 2 < half else "right"
                for p in r.people}
        assert sorted(side.values()) == ["left", "right"]
        fake = next(p for p in r.people if side[p.person] == it["manipulated_side"])
        real = next(p for p in r.people if p is not fake)
        assert fake.p_fake > real.p_fake, (it["path"], fake.p_fake, real.p_fake)
        assert r.person == fake.person and r.p_fake == fake.p_fake
        if page is None:
            page = write_video_report(r, tmp_path / "report")
    html = page.read_text()
    assert html.count('class="card person"') == 2 and "People in this video" in html
    assert "SYNTHETIC" in html and 'class="warn"' in html
    require_chromium()
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([*flags, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
                             check=True, capture_output=True, timeout=90, text=True).stdout
    assert dom.count('id="person-1"') == 1 and dom.count('id="person-2"') == 1  # rendered by the browser

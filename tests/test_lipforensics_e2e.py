"""LipForensics end to end: lips preprocessing → fine-tune from an official-format checkpoint →
evaluate; and the shipped pre-cropped example mouth videos."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from lipforensics_fill import fill_state_dict

from forensight.cache import Cache, CacheConfigMismatch
from forensight.config import PREPROCESS_PRESETS, PreprocessConfig
from forensight.datasets import read_dataset
from forensight.evaluate import evaluate
from forensight.modelfile import load_model_file, save_model_file
from forensight.models.registry import build_model, get_model_config
from forensight.preprocess import run_preprocess
from forensight.synth import generate
from forensight.train import TrainConfig, train

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).parent / "data" / "lipforensics"


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint in the official format ({"model": state_dict}) with deterministic weights."""
    model = build_model(get_model_config("lipforensics"))
    sd = fill_state_dict({k: v.shape for k, v in model.state_dict().items()})
    path = tmp_path_factory.mktemp("ckpt") / "lipforensics_ff.pth"
    torch.save({"model": sd}, path)
    return path


@pytest.fixture(scope="module")
def lips_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lips")
    generate(root / "data", num_pairs=4, frames=50, size=(192, 160), seed=5, workers=1, progress=False)
    cfg = PREPROCESS_PRESETS["lips"]
    s = run_preprocess(read_dataset("ffpp", root / "data"), root / "cache", cfg, workers=1, progress=False)
    assert s.failed == 0, s.failures
    return root / "cache"


def test_lips_cache_holds_aligned_mouth_clips(lips_cache: Path) -> None:
    cache = Cache.open(lips_cache)
    e = cache.load(cache.video_ids()[0])
    assert e.regions["lips"].shape == (50, 96, 96, 1) and e.indices.tolist() == list(range(50))
    # the aligned mouth sits in the middle of the 96x96 patch: the centre is darker/more textured
    # than a constant image, and consecutive frames are similar (no jitter from the pipeline)
    lips = e.regions["lips"][..., 0].astype(np.float32)
    assert lips.std() > 5
    assert np.abs(np.diff(lips, axis=0)).mean() < 25


def test_finetune_from_official_checkpoint_then_evaluate(lips_cache: Path, official_ckpt: Path,
                                                         tmp_path: Path) -> None:
    cfg = TrainConfig(max_epochs=1, patience=1, batch_size=4, lr=1e-4)
    mc = get_model_config("lipforensics_attention", weights=str(official_ckpt))
    res = train(lips_cache, tmp_path / "run", mc, cfg, progress=False)
    lm = load_model_file(tmp_path / "run")
    assert lm.model_config.arch == "lipforensics" and lm.model_config.pooling == "attention"
    # the paper's recipe: front end and trunk stay exactly the official weights
    official = torch.load(official_ckpt, weights_only=True)["model"]
    sd = lm.model.state_dict()
    assert torch.equal(sd["frontend3D.0.weight"], official["frontend3D.0.weight"])
    assert torch.equal(sd["trunk.layer4.1.conv2.weight"], official["trunk.layer4.1.conv2.weight"])
    assert torch.equal(sd["trunk.layer1.0.bn1.running_mean"], official["trunk.layer1.0.bn1.running_mean"])
    # ... while the TCN and classifier were trained (changed from the official values)
    assert not torch.equal(sd["tcn.tcn_output.weight"], official["tcn.tcn_output.weight"])
    assert res.val_metrics["n"] >= 2
    out = evaluate(tmp_path / "run", lips_cache, tmp_path / "eval", n_bootstrap=20, progress=False)
    # 50-frame videos → 2 non-overlapping 25-frame clips each; video score = mean of clip logits
    with open(tmp_path / "eval" / "clip_scores.csv") as f:
        clips = list(csv.DictReader(f))
    assert len(clips) == 2 * out.metrics["n"]
    by_vid: dict[str, list[float]] = {}
    for c in clips:
        by_vid.setdefault(c["video_id"], []).append(float(c["logit"]))
    with open(tmp_path / "eval" / "scores.csv") as f:
        for row in csv.DictReader(f):
            assert float(row["logit"]) == pytest.approx(np.mean(by_vid[row["video_id"]]), abs=1e-5)
    capped = evaluate(tmp_path / "run", lips_cache, tmp_path / "eval25", max_frames=25, n_bootstrap=20,
                      progress=False)
    assert len(capped.predictions.logits) == capped.metrics["n"]  # one clip per video under the cap


def test_unfreeze_trains_the_trunk(lips_cache: Path, official_ckpt: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_epochs=1, patience=1, batch_size=4, lr=1e-3, limit_train_batches=2)
    mc = get_model_config("lipforensics", weights=str(official_ckpt), freeze="none")
    train(lips_cache, tmp_path / "run", mc, cfg, progress=False)
    sd = load_model_file(tmp_path / "run").model.state_dict()
    official = torch.load(official_ckpt, weights_only=True)["model"]
    assert not torch.equal(sd["trunk.layer4.1.conv2.weight"], official["trunk.layer4.1.conv2.weight"])


def test_shipped_example_mouth_videos(official_ckpt: Path, tmp_path: Path) -> None:
    """The two 96x96 example clips (303 frames) go through mouth_crops preprocessing and scoring."""
    manifest = tmp_path / "examples.csv"
    manifest.write_text(f"path,label,split,name\n{EXAMPLES / 'real.avi'},0,test,real\n"
                        f"{EXAMPLES / 'fake.avi'},1,test,fake\n")
    cfg = PREPROCESS_PRESETS["mouth_crops"]
    s = run_preprocess(read_dataset("csv", manifest), tmp_path / "cache", cfg, progress=False)
    assert s.done == 2
    entry = Cache.open(tmp_path / "cache").load(Cache.open(tmp_path / "cache").video_ids()[0])
    assert entry.regions["lips"].shape == (303, 96, 96, 1) and np.isnan(entry.landmarks).all()
    model = build_model(get_model_config("lipforensics_attention"), pretrained=False)
    model.load_state_dict(fill_state_dict({k: v.shape for k, v in model.state_dict().items()}))
    mc = get_model_config("lipforensics_attention")
    save_model_file(tmp_path / "model.pt", model, mc, cfg, None, threshold=0.0, val_metrics={})
    res = evaluate(tmp_path / "model.pt", tmp_path / "cache", tmp_path / "eval", n_bootstrap=10, progress=False)
    assert len(res.predictions.logits) == 2 * 12  # 303 frames → 12 clips per video
    res110 = evaluate(tmp_path / "model.pt", tmp_path / "cache", tmp_path / "e110", max_frames=110,
                      n_bootstrap=10, progress=False)
    assert len(res110.predictions.logits) == 2 * 4  # the FF++ 110-frame protocol → 4 clips
    for w in res110.predictions.weights:
        assert w.shape == (25,) and abs(w.sum() - 1) < 1e-5
    # a model made for face videos refuses this cache (different preprocessing)
    save_model_file(tmp_path / "m2.pt", model, mc, PREPROCESS_PRESETS["lips"], None, 0.0, {})
    with pytest.raises(CacheConfigMismatch):
        evaluate(tmp_path / "m2.pt", tmp_path / "cache", tmp_path / "e2", progress=False)


def test_mouth_crops_refuses_non_crop_videos(face_video: Path, tmp_path: Path) -> None:
    from forensight.preprocess import process_video
    from forensight.records import PreprocessError, VideoRecord

    rec = VideoRecord(path=face_video, label=0, split="test", dataset="t", method="original", compression="c23",
                      name="f")
    with pytest.raises(PreprocessError, match="96x96") as e:
        process_video(rec, PREPROCESS_PRESETS["mouth_crops"])
    assert e.value.reason == "wrong_format"
    with pytest.raises(ValueError, match="only the 'lips' region"):
        PreprocessConfig(input="mouth_crops", regions=("full",))

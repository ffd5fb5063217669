"""End to end on a tiny synthetic dataset: synth → preprocess → train → evaluate → study, DDP."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from forensight.cache import Cache, CacheConfigMismatch
from forensight.config import PreprocessConfig, get_model_config
from forensight.datasets import read_dataset
from forensight.evaluate import evaluate
from forensight.modelfile import load_model_file
from forensight.preprocess import run_preprocess
from forensight.study import run_study
from forensight.synth import generate
from forensight.train import TrainConfig, train


def M(name: str, **over):
    return get_model_config(name, **over)

pytestmark = pytest.mark.slow

TINY = {"max_epochs": 2, "patience": 2, "batch_size": 4, "augment": True}


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    generate(root / "data", num_pairs=5, frames=24, size=(192, 160), seed=3, workers=1, progress=False)
    cfg = PreprocessConfig(num_frames=8, size=64, regions=("full", "mouth"))
    s = run_preprocess(read_dataset("ffpp", root / "data"), root / "cache", cfg, workers=1, progress=False)
    assert s.failed == 0, s.failures
    return root / "cache"


def test_train_writes_a_complete_run_and_selects_on_val(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = train(tiny_cache, run, M("region_tiny_attention", region="mouth"), TrainConfig(**TINY), progress=False)
    for f in ("config.yaml", "model.pt", "val_metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
              "logs/metrics.csv"):
        assert (run / f).exists(), f
    assert 0 <= res.best_epoch < 2
    assert res.val_metrics["n"] == len(Cache.open(tiny_cache).video_ids(split="val"))
    lm = load_model_file(run)
    assert lm.preprocess.hash == Cache.open(tiny_cache).config.hash
    assert lm.model_config.pooling == "attention" and lm.input_spec.region == "mouth"
    assert np.isfinite(lm.threshold)
    # the selected model is the best epoch on validation loss, never chosen on test
    logged = [r for r in (run / "logs" / "metrics.csv").read_text().splitlines()[1:] if r.split(",")[-1]]
    assert len(logged) == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_cache, run, M("region_tiny_attention"), TrainConfig(**TINY), progress=False)


def test_resume_continues_from_last_checkpoint(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_cache, run, M("region_tiny_control"), TrainConfig(**{**TINY, "max_epochs": 1}),
          progress=False)
    res = train(tiny_cache, run, M("region_tiny_control"), TrainConfig(**{**TINY, "max_epochs": 2}), resume=True, progress=False)
    assert res.val_metrics["epochs_run"] == 2
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(tiny_cache, tmp_path / "fresh", M("region_tiny_control"), resume=True, progress=False)


def test_a_lean_run_selects_the_same_epoch_and_writes_only_the_model(tiny_cache: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "max_epochs": 4, "patience": 4, "lr": 3e-2, "augment": "none"})
    model = M("region_tiny_attention", region="mouth")
    full = train(tiny_cache, tmp_path / "full", model, cfg, progress=False)
    lean = train(tiny_cache, tmp_path / "lean", model, cfg, progress=False, lean=True)
    assert sorted(p.name for p in (tmp_path / "lean").iterdir()) == ["config.yaml", "model.pt", "val_metrics.json"]
    assert lean.best_epoch == full.best_epoch
    assert {k: v for k, v in lean.val_metrics.items() if k != "device"} == \
        {k: v for k, v in full.val_metrics.items() if k != "device"}
    a, b = load_model_file(tmp_path / "full"), load_model_file(tmp_path / "lean")
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    with pytest.raises(ValueError, match="cannot be resumed"):
        train(tiny_cache, tmp_path / "lean", model, cfg, progress=False, lean=True, resume=True)


def test_the_in_memory_selection_follows_the_checkpoint_rule() -> None:
    """A lean run keeps the epoch ModelCheckpoint(monitor="val_select", mode="min", save_top_k=1)
    would write: the first epoch, then each strictly lower value; NaN never wins."""
    from types import SimpleNamespace

    from forensight.train import _BestInMemory

    sel = _BestInMemory()
    weights = torch.zeros(2)
    module = SimpleNamespace(state_dict=lambda: {"w": weights, "enc": torch.ones(1)}, _frozen_keys=lambda: ["enc"])
    for epoch, value in enumerate([float("inf"), 0.5, 0.4, float("nan"), 0.45, 0.4, 0.41]):
        weights.fill_(epoch)
        sel.on_train_epoch_end(SimpleNamespace(callback_metrics={"val_select": torch.tensor(value)},
                                               current_epoch=epoch), module)
    assert sel.epoch == 2 and sel.value == pytest.approx(0.4)
    assert set(sel.state) == {"w"} and torch.equal(sel.state["w"], torch.full((2,), 2.0))  # a copy, not a view


def test_the_epoch_hook_sees_each_epoch_and_can_stop_the_run(tiny_cache: Path, tmp_path: Path) -> None:
    from forensight.train import TrainingStopped

    seen: list[tuple[int, float]] = []

    def hook(epoch: int, best: float) -> bool:
        seen.append((epoch, best))
        return epoch == 1

    with pytest.raises(TrainingStopped) as err:
        train(tiny_cache, tmp_path / "run", M("region_tiny_control", region="mouth"),
              TrainConfig(**{**TINY, "max_epochs": 4, "patience": 4}), progress=False, lean=True, on_epoch=hook)
    assert err.value.epoch == 1 and [e for e, _ in seen] == [0, 1]
    assert seen[1][1] <= seen[0][1] and all(np.isfinite(b) for _, b in seen)  # the lowest loss so far
    assert not (tmp_path / "run" / "model.pt").exists()


def test_stored_threshold_is_evaluates_validation_eer_point(tiny_cache: Path, tmp_path: Path) -> None:
    """The threshold is chosen on the numbers `evaluate --split val` computes from model.pt."""
    from forensight.metrics import choose_threshold, eer

    run = tmp_path / "run"
    train(tiny_cache, run, M("region_tiny_attention", region="mouth"), TrainConfig(**TINY), progress=False)
    lm = load_model_file(run)
    res = evaluate(run, tiny_cache, tmp_path / "val", split="val", n_bootstrap=10, progress=False)
    ids, y, s = res.predictions.video_scores()
    assert lm.threshold == pytest.approx(choose_threshold(y, s, rule="eer"), abs=1e-9)
    assert lm.threshold == pytest.approx(eer(y, s)[1], abs=1e-9)
    stored = lm.payload["val_metrics"]
    assert stored["auc"] == pytest.approx(res.metrics["auc"], abs=1e-9)
    assert stored["eer"] == pytest.approx(res.metrics["eer"], abs=1e-9)
    assert json.loads((run / "val_metrics.json").read_text())["threshold"] == pytest.approx(lm.threshold)
    assert res.metrics["acc_at_threshold"] == pytest.approx(stored["acc_at_threshold"])


def test_predict_step_is_the_scoring_path(tiny_cache: Path, tmp_path: Path) -> None:
    """Lightning's predict loop (DataModule + predict_step) gives the scoring path's numbers."""
    import lightning as L

    from forensight.scoring import predict
    from forensight.train import ClipDataModule, DetectorModule

    mc, cfg = M("region_tiny_attention", region="mouth"), TrainConfig(**TINY)
    data = ClipDataModule(Cache.open(tiny_cache), mc, cfg)
    module = DetectorModule(mc.to_dict(), {"batch_size": 4})
    out = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                    enable_model_summary=False).predict(module, datamodule=data)
    got = np.concatenate([o.logits for o in out])
    want = predict(module.model, data.predict_dataloader(), device="cpu")
    np.testing.assert_allclose(got, np.asarray(want.logits), atol=1e-6)
    assert len(got) == len(data.val_ds)


def test_evaluate_outputs_and_refuses_other_preprocessing(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_cache, run, M("region_tiny_attention", region="mouth"), TrainConfig(**TINY), progress=False)
    res = evaluate(run, tiny_cache, tmp_path / "eval", n_bootstrap=50, progress=False)
    m = res.metrics
    test_ids = Cache.open(tiny_cache).video_ids(split="test")
    assert m["n"] == len(test_ids) and m["split"] == "test"
    assert 0 <= m["auc"] <= 1 and len(m["auc_ci"]) == 2 and 0 <= m["eer"] <= 1
    for f in ("metrics.json", "scores.csv", "clip_scores.csv", "roc.png", "confusion.png"):
        assert (tmp_path / "eval" / f).stat().st_size > 0
    with open(tmp_path / "eval" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(test_ids)
    att = json.loads(rows[0]["attention"])
    assert len(att) == len(json.loads(rows[0]["frame_indices"])) and abs(sum(att) - 1) < 1e-3
    # a cache made with another preprocessing config is refused with a clear message
    other = tmp_path / "other_cache"
    Cache.create(other, PreprocessConfig(num_frames=8, size=32, regions=("full", "mouth")))
    with pytest.raises(CacheConfigMismatch, match="preprocess the videos again"):
        evaluate(run, other, tmp_path / "eval2", progress=False)


def test_study_runs_the_matrix_and_writes_the_table(tiny_cache: Path, tmp_path: Path) -> None:
    res = run_study(tiny_cache, tmp_path / "study", regions=("full", "mouth"), heads=("control", "attention"),
                    family="region_tiny", seeds=(0,), train={**TINY, "max_epochs": 1}, n_bootstrap=50,
                    progress=False)
    assert len(res.runs) == 4 and len(res.cells) == 4
    table = res.table_md.read_text()
    for region in ("full", "mouth"):
        for head in ("control", "attention"):
            assert any(c["region"] == region and c["head"] == head for c in res.cells)
    assert "test_auc" in table and res.plot.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "study" / "study_roc.png").exists() and (tmp_path / "study" / "study.json").exists()
    # rerun reuses finished cells (resumable study)
    mtime = (tmp_path / "study" / "runs" / "full_control_s0" / "model.pt").stat().st_mtime_ns
    run_study(tiny_cache, tmp_path / "study", regions=("full",), heads=("control",), family="region_tiny",
              seeds=(0,), train={**TINY, "max_epochs": 1}, n_bootstrap=50, progress=False)
    assert (tmp_path / "study" / "runs" / "full_control_s0" / "model.pt").stat().st_mtime_ns == mtime


def test_train_rejects_missing_region(tiny_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preprocess with --regions eyes"):
        train(tiny_cache, tmp_path / "r", M("region_tiny_attention", region="eyes"), TrainConfig(**TINY),
              progress=False)


def test_ddp_two_cpu_processes(tiny_cache: Path, tmp_path: Path) -> None:
    """Lightning's DDP strategy with 2 CPU processes (gloo) trains and writes one model file."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "forensight.cli", "train", "--cache", str(tiny_cache), "--run-dir", str(run),
           "--preset", "region_tiny_attention", "--region", "mouth", "--epochs", "1", "--batch-size", "2",
           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "trained region_tiny_attention" in p.stdout
    assert (run / "model.pt").exists()
    payload = torch.load(run / "model.pt", weights_only=True)
    assert payload["train_config"]["devices"] == 2 and payload["train_config"]["strategy"] == "ddp"


def test_model_file_errors_are_specific(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="not a PyTorch zip archive"):
        load_model_file(junk)
    torch.save({"format": "something-else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a forensight model file"):
        load_model_file(tmp_path / "foreign.pt")

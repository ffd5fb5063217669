"""The recipe search: outputs, resuming, the written YAML reproduces the best trial, never the test split."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from forensight.cache import Cache
from forensight.config import PreprocessConfig, TrainConfig, merge, yaml_section
from forensight.datasets import read_dataset
from forensight.preprocess import run_preprocess
from forensight.synth import generate
from forensight.train import train
from forensight.tune import Param, load_tuned, suggest_recipe, tune

pytestmark = pytest.mark.slow

BASE = {"max_epochs": 2, "patience": 2, "batch_size": 4, "augment": "none", "min_epochs": 1}
SPACE = {"feature_norm": Param("categorical", ("none", "layernorm")), "lr": Param("log", low=3e-4, high=3e-3),
         "max_epochs": Param("categorical", (1, 2))}
ARGS = {"model": "region_tiny_attention", "region": "mouth", "seeds": (0,), "train": BASE, "space": SPACE,
        "progress": False}


@pytest.fixture(scope="module")
def tune_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tune")
    generate(root / "data", num_pairs=5, frames=16, size=(160, 128), seed=5, workers=1, progress=False)
    cfg = PreprocessConfig(num_frames=6, size=48, regions=("mouth",))
    s = run_preprocess(read_dataset("ffpp", root / "data"), root / "cache", cfg, workers=1, progress=False)
    assert s.failed == 0, s.failures
    return root / "cache"


def _poison_test_split(src: Path, dst: Path) -> int:
    """A copy of the cache whose test videos have flipped labels and noise crops."""
    shutil.copytree(src, dst)
    cache = Cache.open(dst)
    ids = cache.video_ids(split="test")
    rng = np.random.default_rng(0)
    for vid in ids:
        d = cache.entry_dir(vid)
        meta = json.loads((d / "meta.json").read_text())
        meta["record"]["label"] = 1 - int(meta["record"]["label"])
        (d / "meta.json").write_text(json.dumps(meta))
        crops = np.load(d / "mouth.npy")
        np.save(d / "mouth.npy", rng.integers(0, 256, crops.shape, dtype=np.uint8))
    cache.write_manifest()
    return len(ids)


def test_tune_writes_its_outputs_resumes_and_its_yaml_reproduces_the_best(tune_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    first = tune(tune_cache, out, n_trials=2, **ARGS)
    assert first.n_trained_now == 2 and len(first.trials) == 2
    assert first.trials[0]["base"]  # the starting recipe is trial 0
    before = [(r["trial"], r["value"], r["lr"]) for r in first.trials]
    # a search killed during trial 2 leaves it RUNNING in the storage
    import optuna

    stale = optuna.load_study(study_name="tune", storage=f"sqlite:///{out / 'tune.db'}").ask()
    stale_params = suggest_recipe(stale, SPACE)
    # a resumed search keeps its trials, runs the interrupted one again, and only the missing ones
    res = tune(tune_cache, out, n_trials=3, **ARGS)
    assert res.n_trained_now == 1 and len(res.trials) == 4
    assert [(r["trial"], r["value"], r["lr"]) for r in res.trials[:2]] == before
    assert res.trials[2]["state"] == "RUNNING" and res.trials[3]["state"] == "COMPLETE"
    assert {k: res.trials[3][k] for k in stale_params} == pytest.approx(
        {k: round(v, 6) if isinstance(v, float) else v for k, v in stale_params.items()})
    again = tune(tune_cache, out, n_trials=3, **ARGS)
    assert again.n_trained_now == 0 and again.best_trial == res.best_trial
    for f in ("best.yaml", "trials.csv", "tune.png", "tune.json", "tune.db"):
        assert (out / f).is_file(), f
    assert not (out / "trials").exists()  # trial runs are removed once read
    with open(res.trials_csv) as f:
        table = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in table] == [0, 1, 2, 3]
    best_value = min(float(r["value"]) for r in table if r["state"] == "COMPLETE")
    assert res.best_value == pytest.approx(best_value, abs=1e-6)
    # the written YAML trains to the best trial's validation score
    model, tcfg = load_tuned(res.best_yaml)
    assert model.region == "mouth" and tcfg.lr == pytest.approx(res.best_params["lr"])
    assert yaml_section(res.best_yaml, "tune")["trial"] == res.best_trial
    run = train(tune_cache, tmp_path / "repro", model, merge(TrainConfig, tcfg, {"seed": 0}), progress=False)
    assert run.val_metrics["log_loss"] == pytest.approx(res.best_value, rel=1e-6, abs=1e-9)


def test_tuning_never_reads_the_test_split(tune_cache: Path, tmp_path: Path) -> None:
    poisoned = tmp_path / "poisoned"
    assert _poison_test_split(tune_cache, poisoned) > 0
    a = tune(tune_cache, tmp_path / "a", n_trials=2, **ARGS)
    b = tune(poisoned, tmp_path / "b", n_trials=2, **ARGS)
    assert a.best_params == b.best_params
    assert [r["value"] for r in a.trials] == [r["value"] for r in b.trials]


def test_tune_refuses_bad_inputs_and_another_setup(tune_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="objective"):
        tune(tune_cache, tmp_path / "x", objective="accuracy", n_trials=1, **ARGS)
    with pytest.raises(ValueError, match="neither"):
        tune(tune_cache, tmp_path / "x", n_trials=1, **{**ARGS, "space": {"colour": Param("float", low=0, high=1)}})
    with pytest.raises(ValueError, match="low < high"):
        Param("float", low=1.0, high=0.5)
    out = tmp_path / "one"
    tune(tune_cache, out, n_trials=1, **ARGS)
    with pytest.raises(ValueError, match="another setup"):
        tune(tune_cache, out, n_trials=2, **{**ARGS, "seeds": (0, 1)})
    assert (out / "tune.db").is_file() and (out / "best.yaml").is_file()  # nothing lost


def test_study_tunes_each_cell_and_records_its_recipe(tune_cache: Path, tmp_path: Path) -> None:
    from forensight.study import compare_studies, run_study

    out = tmp_path / "study"
    res = run_study(tune_cache, out, regions=("mouth",), heads=("control",), family="region_tiny",
                    seeds=(0,), train=BASE, n_bootstrap=50, progress=False, tune_trials=2, tune_seeds=(0,))
    assert len(res.runs) == 1
    data = json.loads((out / "study.json").read_text())
    assert data["tune_trials"] == 2 and set(data["configs"]) == {"mouth/control"}
    for cell in ("control",):
        rec = data["configs"][f"mouth/{cell}"]
        assert rec["tune"]["trials"] == 2 and (out / "tune" / f"mouth_{cell}" / "best.yaml").is_file()
        assert rec["tune"]["value"] <= rec["tune"]["base_value"]  # never worse than the start on validation
        # the cell's seed trained with the chosen recipe
        from forensight.config import load_yaml

        stored = load_yaml(out / "runs" / f"mouth_{cell}_s0" / "config.yaml")
        assert stored["train"]["lr"] == pytest.approx(rec["train"]["lr"])
    with open(out / "study_configs.csv") as f:
        assert len(list(csv.DictReader(f))) == 1
    # a finished run is not silently reused under another recipe
    with pytest.raises(ValueError, match="another"):
        run_study(tune_cache, out, regions=("mouth",), heads=("control",), family="region_tiny", seeds=(0,),
                  train={**BASE, "lr": 0.0123}, n_bootstrap=50, progress=False)
    # the tuned study against the shared recipe, paired over seeds and test videos
    run_study(tune_cache, tmp_path / "shared", regions=("mouth",), heads=("control",), family="region_tiny",
              seeds=(0,), train=BASE, n_bootstrap=50, progress=False)
    (row,) = compare_studies(tmp_path / "shared", out, tmp_path / "cmp", n_bootstrap=50)
    assert (row["region"], row["head"], row["seeds"]) == ("mouth", "control", 1)
    assert row["diff_after_minus_before"] == pytest.approx(row["auc_after"] - row["auc_before"], abs=2e-4)
    assert row["ci_lo"] <= row["diff_after_minus_before"] <= row["ci_hi"]
    assert (tmp_path / "cmp" / "compare.csv").is_file()
    (same,) = compare_studies(tmp_path / "shared", tmp_path / "shared", n_bootstrap=50)
    assert same["diff_after_minus_before"] == 0.0 and same["p_value"] == 1.0
    with pytest.raises(FileNotFoundError, match="study.json"):
        compare_studies(out, tmp_path / "nothing")



PRUNE_SPACE = {"lr": Param("categorical", (3e-3, 1e-7)), "feature_norm": Param("categorical", ("none", "layernorm"))}


def test_trials_stop_on_their_learning_curve_and_workers_do_not_change_the_search(tune_cache: Path,
                                                                                   tmp_path: Path) -> None:
    args = {**ARGS, "seeds": (0, 1), "space": PRUNE_SPACE, "train": {**BASE, "max_epochs": 4, "patience": 4},
            "prune_warmup": 1, "sampler_seed": 3}
    seq = tune(tune_cache, tmp_path / "seq", n_trials=7, workers=1, **args)
    par = tune(tune_cache, tmp_path / "par", n_trials=7, workers=2, **args)
    states = [r["state"] for r in seq.trials]
    assert "PRUNED" in states and states[:3] == ["COMPLETE"] * 3  # pruning starts after 3 finished trials
    keys = ("trial", "state", "pruned_after_epoch", "lr", "feature_norm")
    assert [{k: r[k] for k in keys} for r in par.trials] == [{k: r[k] for k in keys} for r in seq.trials]
    assert [r["value"] for r in par.trials] == pytest.approx([r["value"] for r in seq.trials], rel=1e-5)
    import optuna

    stored = optuna.load_study(study_name="tune", storage=f"sqlite:///{tmp_path / 'seq' / 'tune.db'}")
    for t, row in zip(stored.trials, seq.trials, strict=True):
        curve = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        assert curve == sorted(curve, reverse=True)  # the first seed's lowest validation loss so far
        if row["state"] == "PRUNED":  # reported up to the epoch it fell behind (after the warm-up), no further
            e = row["pruned_after_epoch"]
            assert 1 <= e <= 3 and sorted(t.intermediate_values) == list(range(e + 1))
        else:
            assert sorted(t.intermediate_values) == [0, 1, 2, 3]
    assert seq.n_pruned == states.count("PRUNED") and not (tmp_path / "par" / "trials").exists()


def test_a_seed_run_stops_at_the_first_epoch_end_after_stop_appears(tune_cache: Path, tmp_path: Path) -> None:
    from forensight.config import get_model_config
    from forensight.tune import _seed_run

    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    (trial_dir / "STOP").touch()
    model = get_model_config("region_tiny_attention", region="mouth")
    value, info = _seed_run(tune_cache, trial_dir, 0, model, merge(TrainConfig, BASE), 1, "log_loss", False, False)
    assert value is None and info == {"stopped_after_epoch": 0} and not (trial_dir / "s1").exists()


def test_an_unguarded_script_gets_a_clear_error_not_a_hang(tune_cache: Path, tmp_path: Path) -> None:
    """Worker processes are spawned and import the calling script: without a __main__ guard the
    script would run again in every worker; the search stops with an error that says so."""
    import os
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text("from forensight.tune import tune, Param\n"
                      f"tune({str(tune_cache)!r}, {str(tmp_path / 'out')!r}, 'region_tiny_attention', region='mouth',"
                      " n_trials=1, seeds=(0, 1), workers=2, progress=False,"
                      " train={'max_epochs': 1, 'batch_size': 4, 'augment': 'none', 'min_epochs': 1},"
                      " space={'lr': Param('log', low=1e-3, high=2e-3)})\n")
    proc = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    assert 'if __name__ == "__main__"' in proc.stderr and "workers=1" in proc.stderr

"""End to end on tiny data: synth (3 manipulations) → preprocess with pseudo-fakes → train --fakes →
the generalisation study's tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from forensight.config import PreprocessConfig, get_model_config
from forensight.datasets import read_dataset
from forensight.generalisation import run_generalisation
from forensight.metrics import seed_mean_auc_ci
from forensight.modelfile import load_model_file
from forensight.preprocess import run_preprocess
from forensight.pseudofake import PseudoFakeConfig
from forensight.synth import generate
from forensight.train import TrainConfig, train

pytestmark = pytest.mark.slow

TINY = {"max_epochs": 1, "patience": 1, "batch_size": 4, "min_epochs": 1}


@pytest.fixture(scope="module")
def gen_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen")
    generate(root / "data", num_pairs=3, frames=16, size=(192, 160), seed=3, workers=1, progress=False,
             methods=("Face2Face", "FaceSwap", "EyeBlink"))  # one pair per split
    cfg = PreprocessConfig(num_frames=8, size=32, regions=("full", "mouth"))
    s = run_preprocess(read_dataset("ffpp", root / "data"), root / "cache", cfg, workers=1, progress=False,
                       pseudo=PseudoFakeConfig(per_video=1))
    assert s.failed == 0 and s.pseudo_done == 6, str(s)
    return root / "cache"


def test_train_on_pseudo_fakes_only_and_the_card_says_so(gen_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(gen_cache, run, get_model_config("region_tiny_attention", region="mouth"),
          TrainConfig(**TINY, fakes="pseudo"), progress=False)
    card = load_model_file(run).trained_on
    assert card["fakes"]["mode"] == "pseudo" and card["fakes"]["dataset"] == 0 and card["fakes"]["pseudo"] > 0
    assert card["fakes"]["settings"] == PseudoFakeConfig(per_video=1).to_dict()  # the cache's record, carried on
    assert set(card["methods"]) <= {"original", "pseudo_sbi", "pseudo_vb"}
    assert card["synthetic_only"]  # pseudo-fakes of synth reals are still synthetic data


def test_fakes_choice_without_such_fakes_is_a_clear_error(tmp_path: Path, gen_cache: Path) -> None:
    with pytest.raises(ValueError, match="fakes must be real, pseudo or both"):
        TrainConfig(fakes="fake")  # not a choice
    import shutil

    # a cache with dataset fakes but no pseudo-fakes: --fakes pseudo names what to do
    plain = tmp_path / "plain"
    shutil.copytree(gen_cache, plain)
    for d in (plain / "entries").glob("*pseudo_*"):
        shutil.rmtree(d)
    with pytest.raises(ValueError, match="no pseudo-fakes"):
        train(plain, tmp_path / "run", get_model_config("region_tiny_control", region="mouth"),
              TrainConfig(**TINY, fakes="pseudo"), progress=False)


def test_generalisation_study_tables(gen_cache: Path, tmp_path: Path) -> None:
    res = run_generalisation(gen_cache, tmp_path / "g", regions=("mouth",), heads=("attention",), seeds=(0, 1),
                             family="region_tiny", train=TINY, n_bootstrap=100, progress=False)
    for f in ("generalisation.csv", "generalisation.md", "generalisation.png", "generalisation_diff.csv",
              "generalisation_loc.csv", "generalisation.json"):
        assert (tmp_path / "g" / f).is_file(), f
    assert len(res.cells) == 3 * 3  # trainings x test manipulations (one head)
    assert {c["test"] for c in res.cells} == {"Face2Face", "FaceSwap", "EyeBlink"}
    assert all(c["ci_lo"] <= c["auc"] + 1e-9 or np.isnan(c["ci_lo"]) for c in res.cells)
    assert {d["comparison"] for d in res.diffs} == {"pseudo - supervised_f2f", "both - supervised_f2f"}
    locs = {r["test_fakes"] for r in res.localisation}
    assert {"Face2Face", "EyeBlink"} <= locs and any(m.startswith("pseudo_") for m in locs)
    # each row selected on its own kind of validation fakes
    with open(tmp_path / "g" / "generalisation_runs.csv") as f:
        names = [r["name"] for r in csv.DictReader(f)]
    card = load_model_file(tmp_path / "g" / "runs" / names[0]).trained_on
    assert card["fakes"]["mode"] == "real" and "Face2Face" in card["methods"] and "FaceSwap" not in card["methods"]
    # resume: a second call trains nothing
    again = run_generalisation(gen_cache, tmp_path / "g", regions=("mouth",), heads=("attention",), seeds=(0, 1),
                               family="region_tiny", train=TINY, n_bootstrap=100, progress=False)
    assert again.seconds_per_run == 0.0 and again.cells == res.cells


def test_study_cli_passes_a_recipe_yaml_to_every_run(gen_cache: Path, tmp_path: Path) -> None:
    import json

    from forensight.cli import main as cli_main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model:\n  feature_norm: layernorm\n  feature_dropout: 0.3\n"
                      "train:\n  weight_decay: 0.01\n  max_epochs: 1\n  patience: 1\n  min_epochs: 1\n")
    out = tmp_path / "g"
    rc = cli_main(["study", "--generalisation", "--cache", str(gen_cache), "--out", str(out), "--config", str(recipe),
                   "--regions", "mouth", "--heads", "control", "--seeds", "0", "--family", "region_tiny",
                   "--batch-size", "4", "--bootstrap", "50", "-q"])
    assert rc == 0
    meta = json.loads((out / "generalisation.json").read_text())
    assert meta["model_overrides"]["feature_norm"] == "layernorm" and meta["model_overrides"]["feature_dropout"] == 0.3
    assert meta["train"]["weight_decay"] == 0.01 and meta["train"]["batch_size"] == 4  # the flag over the YAML
    for run in (out / "runs").iterdir():  # every row's model was built with the recipe
        lm = load_model_file(run)
        assert lm.model_config.feature_norm == "layernorm" and lm.model_config.feature_dropout == 0.3, run.name


def test_seed_mean_auc_ci_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30), np.ones(30)].astype(int)
    s = rng.normal(size=(3, 60)) + y
    lo, hi = seed_mean_auc_ci(y, s, n=300)
    from forensight.metrics import auc

    m = float(np.mean([auc(y, r) for r in s]))
    assert lo < m < hi and 0 <= lo and hi <= 1
    with pytest.raises(ValueError):
        seed_mean_auc_ci(y, s[:, :10])

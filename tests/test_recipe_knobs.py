"""The recipe knobs of the region detector: feature LayerNorm / dropout (off by default), log loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forensight.config import TrainConfig, get_model_config, merge
from forensight.metrics import log_loss
from forensight.models.registry import create_model


def test_defaults_add_nothing_so_existing_model_files_load() -> None:
    torch.manual_seed(0)
    plain = create_model("region_tiny_attention")
    assert isinstance(plain.feature_norm, nn.Identity) and isinstance(plain.feature_dropout, nn.Identity)
    torch.manual_seed(0)
    tuned = create_model("region_tiny_attention", feature_norm="layernorm", feature_dropout=0.3)
    extra = set(tuned.state_dict()) - set(plain.state_dict())
    assert extra == {"feature_norm.weight", "feature_norm.bias"}
    assert tuned.feature_dropout.p == 0.3
    tuned.load_state_dict(plain.state_dict(), strict=False)  # an old file's keys all fit
    cfg = get_model_config("region_lite0_control")
    assert cfg.feature_norm == "none" and cfg.feature_dropout == 0.0  # today's recipe is the default
    assert TrainConfig().weight_decay == 1e-4


@pytest.mark.parametrize("bad", [{"feature_norm": "batchnorm"}, {"feature_dropout": 1.0}, {"feature_dropout": -0.1}])
def test_bad_knobs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="feature_"):
        get_model_config("region_tiny_attention", **bad)


@settings(max_examples=10, deadline=None)
@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3), pooling=st.sampled_from(["control", "attention"]))
def test_padding_cannot_change_the_output_with_layernorm(lengths: list[int], pooling: str) -> None:
    torch.manual_seed(0)
    model = create_model(f"region_tiny_{pooling}", feature_norm="layernorm", feature_dropout=0.2).eval()
    feats = torch.randn(len(lengths), 5, int(model.encoder.out_dim))
    mask = torch.arange(5)[None] < torch.tensor(lengths)[:, None]
    with torch.no_grad():
        out = model.classify_features(feats, mask)
        noisy = feats.clone()
        noisy[~mask] = 100.0
        out2 = model.classify_features(noisy, mask)
        for i, n in enumerate(lengths):
            alone = model.classify_features(feats[i:i + 1, :n], torch.ones(1, n, dtype=torch.bool))
            assert torch.allclose(out.logits[i], alone.logits[0], atol=1e-5)
    assert torch.equal(out.logits, out2.logits)
    assert torch.equal(out.weights[~mask], torch.zeros(int((~mask).sum())))


def test_log_loss_is_mean_bce() -> None:
    y, z = np.array([0, 1, 1, 0]), np.array([-2.0, 0.5, 3.0, 1.0])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y, dtype=torch.float64))
    assert log_loss(y, z) == pytest.approx(float(ref), rel=1e-12)
    assert log_loss([1], [0.0]) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="equal"):
        log_loss([0, 1], [0.0])
    with pytest.raises(ValueError, match="0 or 1"):
        log_loss([2], [0.0])


def test_train_config_layers_the_recipe() -> None:
    cfg = merge(TrainConfig, {"weight_decay": 1e-2, "max_epochs": 60, "schedule": "constant"})
    assert (cfg.weight_decay, cfg.max_epochs, cfg.schedule) == (1e-2, 60, "constant")


def test_a_study_recipe_yaml_gives_model_knobs_and_train_fields(tmp_path) -> None:
    from pathlib import Path

    from forensight.config import study_recipe

    shipped = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "recipe_alt.yaml"
    model, train = study_recipe(shipped)
    assert model == {"feature_norm": "layernorm", "feature_dropout": 0.3}
    assert train["weight_decay"] == 0.01 and train["max_epochs"] == 60 and train["patience"] == 15
    m = get_model_config("region_lite0_attention", **model, region="mouth")  # applies to any cell's preset
    assert m.feature_norm == "layernorm" and m.pooling == "attention" and m.region == "mouth"
    assert merge(TrainConfig, train, {"seed": 3}).weight_decay == 0.01
    assert study_recipe(None) == ({}, {})


@pytest.mark.parametrize("text, named", [
    ("model:\n  region: mouth\n", r"sets \['region'\]"),  # the study sets it per cell
    ("model:\n  name: region_lite0_control\n  pooling: mean\n", r"sets \['name', 'pooling'\]"),
    ("train:\n  seed: 4\n", r"sets \['seed'\]"),
    ("train:\n  fakes: pseudo\n", r"sets \['fakes'\]"),
    ("model:\n  feature_nrom: layernorm\n", r"unknown model fields \['feature_nrom'\]"),
    ("train:\n  epochs: 3\n", r"unknown train fields \['epochs'\]"),
    ("feature_norm: layernorm\n", "needs a `model:` and/or `train:` section"),
    ("model: [1, 2]\n", "must be a mapping"),
])
def test_a_bad_study_recipe_is_refused_naming_the_keys(tmp_path, text: str, named: str) -> None:
    from forensight.config import study_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=named):
        study_recipe(path)


def test_the_region_study_cli_layers_recipe_then_flags(tmp_path, monkeypatch) -> None:
    from forensight import study
    from forensight.cli import main as cli_main

    seen: dict = {}

    class Done(Exception):
        pass

    def fake_run_study(cache, out, **kw):  # stands in for the training: only the arguments matter here
        seen.update(kw)
        raise Done

    monkeypatch.setattr(study, "run_study", fake_run_study)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  feature_norm: layernorm\ntrain:\n  weight_decay: 0.01\n  lr: 0.002\n")
    with pytest.raises(Done):
        cli_main(["study", "--cache", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(recipe),
                  "--lr", "0.0005", "--input-size", "96"])
    assert seen["model_overrides"] == {"feature_norm": "layernorm", "input_size": 96}
    assert seen["train"]["weight_decay"] == 0.01 and seen["train"]["lr"] == 0.0005  # the flag wins

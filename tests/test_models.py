"""Detectors, encoders, pooling and the model registry (CPU, random init, no downloads)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v3_small

from forensight.metrics import auc
from forensight.models import (
    AttentionPooling,
    Detector,
    DetectorOutput,
    MeanPooling,
    build_encoder,
    build_model,
    create_model,
    get_model_config,
    list_models,
    model_config_from_dict,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = [
    "region_b1_control", "region_b1_attention", "region_mobile_control", "region_mobile_attention",
    "region_tiny_control", "region_tiny_attention", "lipforensics", "lipforensics_attention",
    "region_lite0_control", "region_lite0_attention",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these models are tiny, and on a shared 2-core machine several
    OpenMP threads spin against other processes and run 10-20x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def hub_dir(tmp_path: Path):
    """Point the torch hub cache at an empty temporary folder for one test."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def _tiny(pooling: str = "attention", **kw) -> Detector:
    torch.manual_seed(0)
    return create_model(f"region_tiny_{'attention' if pooling == 'attention' else 'control'}", **kw).eval()


# ----------------------------------------------------------------------------- registry / presets

def test_presets_registered() -> None:
    assert set(PRESETS) <= set(list_models())
    assert list_models("tiny") == ["region_tiny_attention", "region_tiny_control"]
    b1 = get_model_config("region_b1_attention")
    assert (b1.encoder, b1.input_size, b1.pooling, b1.temporal) == ("efficientnet_b1", 224, "attention", "bilstm")
    assert b1.input_spec().clip_len is None  # one clip = all sampled frames (32 by the preprocessing)
    lf = get_model_config("lipforensics_attention")
    spec = lf.input_spec()
    assert (lf.arch, spec.size, spec.clip_len, spec.channels, spec.region, spec.crop, lf.pooling) == (
        "lipforensics", 88, 25, 1, "lips", 88, "attention")
    assert get_model_config("lipforensics").pooling == "mean"
    assert get_model_config("region_mobile_control").input_size == 112


@pytest.mark.parametrize("name", [p for p in PRESETS if "tiny" not in p])
def test_yaml_files_match_presets(name: str) -> None:
    from forensight.models import load_model_config

    path = CONFIGS / f"{name}.yaml"
    assert path.is_file(), path
    assert load_model_config(path) == get_model_config(name)


@pytest.mark.parametrize("name", ["region_tiny_control", "region_tiny_attention",
                                  "region_mobile_control", "region_mobile_attention"])
def test_preset_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert isinstance(model, Detector)
    b, t, s = 2, 3, model.input_spec.size if "tiny" in name else 64
    with torch.no_grad():
        out = model(torch.randn(b, t, 3, s, s))
    assert isinstance(out, DetectorOutput)
    assert out.logits.shape == (b,) and out.weights.shape == (b, t)
    assert torch.allclose(out.weights.sum(1), torch.ones(b))
    assert model.input_spec.channels == 3 and model.input_spec.region == "full"
    assert model.input_spec == get_model_config(name).input_spec()


def test_b1_builds_and_runs() -> None:
    model = create_model("region_b1_attention").eval()
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    assert 6.3e6 < n_enc < 6.7e6, n_enc
    assert model.encoder.out_dim == 1280 and model.temporal.out_dim == 256
    assert model.input_spec.size == 224
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 64, 64))
    assert out.logits.shape == (1,) and out.weights.shape == (1, 2)
    assert torch.isfinite(out.logits).all()


def test_registry_round_trip_via_dict() -> None:
    cfg = get_model_config("region_tiny_attention", lstm_hidden=8)
    model = _tiny("attention", lstm_hidden=8)
    d = json.loads(json.dumps(cfg.to_dict()))  # as stored in a checkpoint
    assert model_config_from_dict(d) == cfg
    rebuilt = build_model(d, pretrained=False).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 5, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, rebuilt(x).logits)


def test_legacy_model_config_dicts_load() -> None:
    """forensight-model-v1 files stored informative fields (num_frames, options, ...)."""
    old_region = {**get_model_config("region_tiny_attention").to_dict(), "num_frames": 8, "options": {}}
    assert model_config_from_dict(old_region) == get_model_config("region_tiny_attention")
    old_lips = {"name": "lipforensics", "arch": "lipforensics", "encoder": "resnet18_3d", "temporal": "mstcn",
                "pooling": "mean", "input_size": 88, "num_frames": 25, "region": "lips", "in_channels": 1,
                "dropout": 0.2, "hidden": 64, "lstm_hidden": 128, "attn_dim": 128, "weights": None,
                "mean": [0.421], "std": [0.165], "channels_last": False, "options": {"freeze": "none"}}
    lf = model_config_from_dict(old_lips)
    assert lf == get_model_config("lipforensics", freeze="none")


def test_legacy_attention_keys_load() -> None:
    """Region files written before the pooling rename (score.0 / score.2) load unchanged."""
    model = _tiny("attention")
    sd = model.state_dict()
    old = {k.replace("pooling.proj.", "pooling.score.0.").replace("pooling.score.weight", "pooling.score.2.weight")
           .replace("pooling.score.bias", "pooling.score.2.bias"): v for k, v in sd.items()}
    assert "pooling.score.0.weight" in old and "pooling.proj.weight" not in old
    fresh = create_model("region_tiny_attention")
    fresh.load_state_dict(old, strict=True)
    for k, v in sd.items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_create_model_from_yaml_and_overrides(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("model:\n  name: region_tiny_control\n  lstm_hidden: 6\n")
    m = create_model(p, region="mouth")
    assert isinstance(m.pooling, MeanPooling)
    assert (m.temporal.out_dim, m.input_spec.region, m.input_spec.size) == (12, "mouth", 64)
    m2 = create_model(str(CONFIGS / "region_mobile_attention.yaml"))
    assert isinstance(m2.pooling, AttentionPooling) and m2.input_spec.size == 112
    with pytest.raises(ValueError, match="unknown"):
        create_model("region_tiny_control", not_a_field=1)
    with pytest.raises(KeyError, match="unknown model"):
        create_model("no_such_model")
    with pytest.raises(ValueError, match="pooling"):
        create_model("region_tiny_control", pooling="max")
    with pytest.raises(ValueError, match="unknown"):
        create_model("region_tiny_control", options={"freeze": "none"})
    with pytest.raises(ValueError, match="unknown encoder"):
        create_model("region_tiny_control", encoder="resnet_9000")


def test_lipforensics_import_is_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "forensight.models.lipforensics", None)  # simulate a missing module
    with pytest.raises(ImportError):
        create_model("lipforensics_attention")
    assert isinstance(create_model("region_tiny_attention"), Detector)  # others unaffected


def test_lipforensics_presets_build_if_available() -> None:
    try:
        import forensight.models.lipforensics  # noqa: F401
    except ImportError:
        pytest.skip("forensight.models.lipforensics not available yet")
    for name in ("lipforensics", "lipforensics_attention"):
        m = create_model(name)
        assert isinstance(m, nn.Module)
        assert m.input_spec == get_model_config(name).input_spec()
        assert m.pooling_kind == ("mean" if name == "lipforensics" else "attention")


# ----------------------------------------------------------------------------- heads and masking

@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_padding_is_masked(pooling: str) -> None:
    model = _tiny(pooling)
    torch.manual_seed(1)
    x = torch.randn(3, 6, 3, 32, 32)
    lengths = torch.tensor([6, 4, 1])
    with torch.no_grad():
        out = model(x, lengths)
        x2 = x.clone()
        x2[1, 4:] = 50 * torch.randn(2, 3, 32, 32)
        x2[2, 1:] = -7.0
        out2 = model(x2, lengths)
        alone = model(x[1:2, :4])  # the same clip, unpadded
    assert torch.equal(out.weights[1, 4:], torch.zeros(2)) and torch.equal(out.weights[2, 1:], torch.zeros(5))
    assert torch.equal(out.logits, out2.logits)
    assert torch.allclose(out.logits[1], alone.logits[0], atol=1e-5)
    assert torch.allclose(out.weights.sum(1), torch.ones(3), atol=1e-6)
    assert out.weights[2, 0] == 1.0
    if pooling == "mean":
        assert torch.allclose(out.weights[1, :4], torch.full((4,), 0.25))
        assert torch.allclose(out.weights[0], torch.full((6,), 1 / 6))
    with torch.no_grad():
        full = model(x)
        assert torch.allclose(full.logits, model(x, [6, 6, 6]).logits)


def test_attention_pooling_masked_softmax() -> None:
    pool = AttentionPooling(4, 8)
    h = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    pooled, w = pool(h, mask)
    assert pooled.shape == (2, 4) and w.shape == (2, 5)
    assert torch.equal(w[0, 3:], torch.zeros(2))
    assert torch.allclose(w.sum(1), torch.ones(2))
    assert torch.allclose(pooled, (w.unsqueeze(-1) * h).sum(1), atol=1e-6)
    mpool, _ = MeanPooling()(h, mask)
    assert torch.allclose(mpool[0], h[0, :3].mean(0), atol=1e-6)


def test_heads_share_classifier_and_no_extra_norm() -> None:
    ctrl, att = _tiny("mean"), _tiny("attention")
    def arch(m: Detector) -> list[tuple[str, tuple[int, ...]]]:
        return [(type(mod).__name__, tuple(p.shape for p in mod.parameters())) for mod in m.classifier]
    assert arch(ctrl) == arch(att)
    assert [type(m).__name__ for m in ctrl.classifier] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert ctrl.classifier[2].p == 0.5 and ctrl.classifier[0].out_features == 64
    norm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    for m in (ctrl, att):
        for part in (m.temporal, m.pooling, m.classifier):
            assert not any(isinstance(mod, norm) for mod in part.modules())
    extra = {k for k in att.state_dict()} - {k for k in ctrl.state_dict()}
    assert extra == {"pooling.proj.weight", "pooling.proj.bias", "pooling.score.weight", "pooling.score.bias"}
    assert not list(ctrl.pooling.parameters())


def test_identity_temporal_and_input_errors() -> None:
    model = _tiny("attention", temporal="none")
    assert model.temporal.out_dim == model.encoder.out_dim
    with torch.no_grad():
        out = model(torch.randn(2, 4, 3, 32, 32), [4, 2])
    assert torch.equal(out.weights[1, 2:], torch.zeros(2))
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 2, 1, 32, 32))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(1, 2, 3, 32, 32), [0])
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(1, 2, 3, 32, 32), [3])
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(torch.randn(2, 3, 32, 32))


def test_channels_last_and_chunking_match() -> None:
    ref = _tiny("attention")
    cl = _tiny("attention", channels_last=True)
    cl.load_state_dict(ref.state_dict())
    cl.encoder_chunk = 3
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ref(x, [4, 3]).logits, cl(x, [4, 3]).logits, atol=1e-5)


def test_prepare_batch_normalises_crops_and_resizes() -> None:
    from forensight.config import InputSpec
    from forensight.datasets.clips import prepare_batch

    spec = InputSpec(region="full", size=8)
    x = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8)
    y = prepare_batch(x, spec)
    assert y.shape == (2, 3, 3, 8, 8) and y.dtype == torch.float32
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
    expect = (x.permute(0, 1, 4, 2, 3).float() / 255 - mean) / std
    assert torch.allclose(y, expect, atol=1e-5)
    lips = InputSpec(region="lips", size=4, channels=1, mean=(0.5,), std=(0.25,), clip_len=2, crop=4)
    g = torch.zeros((1, 2, 6, 6, 1), dtype=torch.uint8)
    g[:, :, 1:5, 1:5] = 255  # the 4x4 centre
    out = prepare_batch(g, lips)
    assert out.shape == (1, 2, 1, 4, 4) and torch.allclose(out, torch.full_like(out, 2.0))
    assert prepare_batch(x, InputSpec(region="full", size=4)).shape == (2, 3, 3, 4, 4)  # resized
    with pytest.raises(TypeError, match="uint8"):
        prepare_batch(x.float(), spec)
    with pytest.raises(ValueError, match="channel"):
        prepare_batch(g, spec)
    model = _tiny("mean")
    with torch.no_grad():
        assert model(y).logits.shape == (2,)


# ----------------------------------------------------------------------------- pretrained weights

@pytest.mark.parametrize(("name", "fname"), [
    ("region_b1_attention", "efficientnet_b1_rwightman-bac287d4.pth"),
    ("region_mobile_control", "mobilenet_v3_small-047dcff4.pth"),
])
def test_imagenet_weights_missing_is_clear(hub_dir: Path, name: str, fname: str) -> None:
    with pytest.raises(FileNotFoundError) as err:
        create_model(name, weights="imagenet")
    msg = str(err.value)
    assert fname in msg and str(hub_dir / "checkpoints") in msg


def test_imagenet_weights_from_hub_cache(hub_dir: Path) -> None:
    torch.manual_seed(3)
    ref = mobilenet_v3_small(weights=None)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(ref.state_dict(), hub_dir / "checkpoints" / "mobilenet_v3_small-047dcff4.pth")
    model = create_model("region_mobile_attention", weights="imagenet")
    assert torch.equal(model.encoder.features[0][0].weight, ref.features[0][0].weight)
    # a checkpoint rebuild does not need the file
    (hub_dir / "checkpoints" / "mobilenet_v3_small-047dcff4.pth").unlink()
    build_model(get_model_config("region_mobile_attention", weights="imagenet").to_dict(), pretrained=False)


def test_weights_from_explicit_file(tmp_path: Path) -> None:
    torch.manual_seed(4)
    ref = mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3.pth"
    torch.save(ref.state_dict(), path)
    enc = build_encoder("mobilenet_v3_small", weights=path)
    for k, v in ref.features.state_dict().items():
        assert torch.equal(enc.features.state_dict()[k], v), k
    gray = build_encoder("mobilenet_v3_small", weights=str(path), in_channels=1)
    assert torch.allclose(gray.features[0][0].weight, ref.features[0][0].weight.sum(1, keepdim=True))
    model = create_model("region_mobile_control", weights=str(path))
    assert torch.equal(model.encoder.features[0][0].weight, ref.features[0][0].weight)
    # the tiny encoder's own state_dict round-trips too
    tiny = build_encoder("tiny")
    torch.save(tiny.state_dict(), tmp_path / "tiny.pt")
    assert torch.equal(build_encoder("tiny", weights=tmp_path / "tiny.pt").features[0][0].weight,
                       tiny.features[0][0].weight)


def test_bad_weight_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        build_encoder("tiny", weights=tmp_path / "missing.pt")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="does not fit"):
        build_encoder("tiny", weights=tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_encoder("tiny", weights="imagenet")


# ----------------------------------------------------------------------------- learning

def _synthetic(n: int, seed: int, t: int = 8, s: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips ``(n, t, 3, s, s)``: noise with a per-clip brightness offset; fakes (odd index) carry a
    bright 10x10 square in 2 random frames. Returns x, labels ``(n,)``, marked frames ``(n, t)``."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(n, t, 3, s, s, generator=g) + 0.5 * torch.randn(n, 1, 1, 1, 1, generator=g)
    y = torch.arange(n) % 2
    marked = torch.zeros(n, t, dtype=torch.bool)
    for i in range(n):
        if y[i]:
            frames = torch.randperm(t, generator=g)[:2]
            r, c = torch.randint(0, s - 10, (2,), generator=g).tolist()
            x[i, frames, :, r : r + 10, c : c + 10] += 3.0
            marked[i, frames] = True
    return x, y.float(), marked


def test_tiny_attention_learns_synthetic_set() -> None:
    torch.manual_seed(0)
    xtr, ytr, _ = _synthetic(64, seed=0)
    xte, yte, marked = _synthetic(64, seed=1)
    model = create_model("region_tiny_attention")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    best = 0.0
    for _ in range(40):
        model.train()
        for i in range(0, 64, 16):
            out = model(xtr[i : i + 16])
            loss = nn.functional.binary_cross_entropy_with_logits(out.logits, ytr[i : i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(xte)
        best = auc(yte.numpy(), out.logits.numpy())
        if best > 0.98:
            break
    assert best > 0.95
    fake = yte == 1
    attention_on_marked = (out.weights[fake] * marked[fake]).sum(1).mean().item()
    assert attention_on_marked > 0.5  # uniform would give 2/8 = 0.25


def test_features_then_head_equals_forward_and_windows() -> None:
    """Encoding once and scoring windows from the features == separate forwards (detect relies on it)."""
    from forensight.models.registry import create_model

    torch.manual_seed(0)
    m = create_model("region_tiny_attention").eval()
    x = torch.randn(1, 8, 3, 64, 64)
    with torch.no_grad():
        feats, mask = m.features(x)
        whole = m.classify_features(feats, mask)
        ref = m(x)
        torch.testing.assert_close(whole.logits, ref.logits)
        torch.testing.assert_close(whole.weights, ref.weights)
        win = m.classify_features(feats[:, 2:6], torch.ones(1, 4, dtype=torch.bool))
        torch.testing.assert_close(win.logits, m(x[:, 2:6]).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset,pretrained", [("region_lite0_attention", True), ("region_b1_control", False)])
def test_scoring_copy_folds_every_batchnorm_and_scores_the_same(preset: str, pretrained: bool) -> None:
    """registry.inference_model: BatchNorms folded into the convolutions (fused.fold_batchnorm),
    channels-last; the logits and attention equal the trained model's up to float rounding."""
    from forensight.models.registry import build_model, get_model_config, inference_model

    mc = get_model_config(preset, input_size=64)
    torch.manual_seed(0)
    model = build_model(mc, pretrained=pretrained).eval()
    if not pretrained:  # give every BatchNorm non-trivial statistics, so folding is really tested
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder.modules())
    fast = inference_model(model, mc)
    assert n_bn > 30 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.encoder.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder.modules())  # the model is untouched
    x = torch.randn(2, 5, 3, 64, 64)
    with torch.inference_mode():
        a, b = model(x, [5, 4]), fast(x, [5, 4])
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.weights, a.weights, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="eval mode"):
        from forensight.models.fused import fold_batchnorm

        fold_batchnorm(build_model(mc, pretrained=False).train())

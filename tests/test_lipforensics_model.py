"""LipForensics model: checkpoint format, parity with the official model, heads, loading, freezing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.models.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    load_official_lipforensics,
    load_state_dict_checked,
    save_lipforensics,
)
from forensight.models.fused import optimize_for_inference
from forensight.models.lipforensics import LipForensics, lipforensics
from forensight.models.outputs import DetectorOutput
from forensight.models.pooling import AttentionPooling
from forensight.models.temporal import lengths_to_mask

sys.path.insert(0, str(Path(__file__).parent))
from lipforensics_fill import fill_state_dict, reference_input

DATA = Path(__file__).parent / "data" / "lipforensics"
TOL = 1e-4
ATTENTION_KEYS = ["attention.proj.weight", "attention.proj.bias", "attention.score.weight",
                  "attention.score.bias"]

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def _spec() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    rows = []
    for line in (DATA / "state_dict_spec.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        dims = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
        rows.append((key, dims, _DTYPES[dtype]))
    return rows


def _filled(model: LipForensics) -> LipForensics:
    model.load_state_dict(fill_state_dict({k: v.shape for k, v in model.state_dict().items()}))
    return model.eval()


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((DATA / "reference_logits.json").read_text())


@pytest.fixture(scope="module")
def filled_model() -> LipForensics:
    torch.manual_seed(0)
    return _filled(LipForensics(pooling="mean"))


@pytest.fixture(scope="module")
def official_sd(filled_model: LipForensics) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in filled_model.state_dict().items()}


@pytest.fixture(scope="module")
def official_ckpt(tmp_path_factory: pytest.TempPathFactory, official_sd: dict) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "lipforensics_ff.pth"
    torch.save({"model": official_sd}, path)
    return path


@pytest.fixture(scope="module")
def activations(filled_model: LipForensics) -> dict[str, torch.Tensor]:
    """One pass through the stages on the reference input, plus one end-to-end call with lengths."""
    x = reference_input()
    with torch.inference_mode():
        front = filled_model.frontend3D(x)
        trunk = filled_model.encode(x)  # (B, 512, T)
        tcn = filled_model.tcn(trunk)  # (B, 768, T)
        pooled, weights = filled_model.pool(tcn)
        out = DetectorOutput(filled_model.classify(pooled), weights)
        with_lengths = filled_model.forward_official(x, torch.tensor([20, 25]))
    return {"front": front, "trunk": trunk, "tcn": tcn, "out": out, "with_lengths": with_lengths}


# ---------------------------------------------------------------------------------------------
# Checkpoint format
# ---------------------------------------------------------------------------------------------
def test_state_dict_matches_official_spec_exactly() -> None:
    spec = _spec()
    sd = LipForensics(pooling="mean").state_dict()
    assert len(spec) == 343
    assert [k for k, _, _ in spec] == list(sd), "keys or key order differ from the official checkpoint"
    for key, shape, dtype in spec:
        assert tuple(sd[key].shape) == shape, key
        assert sd[key].dtype == dtype, key


def test_parameter_count() -> None:
    model = LipForensics(pooling="mean")
    assert sum(p.numel() for p in model.parameters()) == 35_990_785
    att = LipForensics(pooling="attention")
    extra = sum(p.numel() for n, p in att.named_parameters() if n.startswith("attention."))
    assert extra == 768 * 128 + 128 + 128 + 1
    assert sorted(k for k in att.state_dict() if k.startswith("attention.")) == sorted(ATTENTION_KEYS)
    assert [k for k in att.state_dict() if not k.startswith("attention.")] == list(model.state_dict())


# ---------------------------------------------------------------------------------------------
# Parity with the official implementation (reference_logits.json)
# ---------------------------------------------------------------------------------------------
def test_reference_shapes(reference: dict, activations: dict) -> None:
    assert list(activations["front"].shape) == reference["frontend3D_out_shape"] == [2, 64, 25, 22, 22]
    assert activations["trunk"].shape == (2, 512, 25)
    assert activations["tcn"].shape == (2, 768, 25)
    assert activations["out"].logits.shape == (2,)
    assert activations["out"].weights.shape == (2, 25)


def test_parity_logits(reference: dict, activations: dict) -> None:
    got = activations["out"].logits
    torch.testing.assert_close(got, torch.tensor(reference["logits"]), atol=TOL, rtol=0)


def test_parity_logits_with_lengths(reference: dict, activations: dict) -> None:
    got = activations["with_lengths"].logits
    torch.testing.assert_close(got, torch.tensor(reference["logits_with_lengths_20_25"]), atol=TOL, rtol=0)
    w = activations["with_lengths"].weights
    torch.testing.assert_close(w[0, :20], torch.full((20,), 1 / 20))
    assert torch.all(w[0, 20:] == 0)
    torch.testing.assert_close(w[1], torch.full((25,), 1 / 25))


def test_parity_trunk_output(reference: dict, activations: dict) -> None:
    # trunk output row 0 of (B*T, 512) = sample 0, frame 0
    got = activations["trunk"][0, :8, 0]
    torch.testing.assert_close(got, torch.tensor(reference["trunk_out_sample0_frame0_first8"]), atol=TOL, rtol=0)


def test_parity_tcn_output(reference: dict, activations: dict) -> None:
    # MS-TCN output before averaging, (B, 768, T): sample 0, channels 0-3, frames 0-4
    got = activations["tcn"][0, :4, :5]
    want = torch.tensor(reference["mb_ms_tcn_out_sample0_channels0to3_frames0to4"])
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_optimized_inference_matches_reference(reference: dict, filled_model: LipForensics) -> None:
    fast = optimize_for_inference(filled_model)
    assert fast.frontend.prelu_after_pool  # filler slopes are positive
    with torch.inference_mode():
        out = fast.forward_official(reference_input(), [20, 25])
        feats = fast.temporal_features(reference_input())
    torch.testing.assert_close(out.logits, torch.tensor(reference["logits_with_lengths_20_25"]),
                               atol=TOL, rtol=0)
    want = torch.tensor(reference["mb_ms_tcn_out_sample0_channels0to3_frames0to4"])
    torch.testing.assert_close(feats[0, :4, :5], want, atol=TOL, rtol=0)
    assert not filled_model.training and all(p.requires_grad for p in filled_model.parameters())
    with pytest.raises(RuntimeError, match="eval-only"):
        fast.train()


def test_optimized_inference_negative_prelu_slopes() -> None:
    """With a negative stem slope the PReLU must stay before the pool (non-monotone)."""
    torch.manual_seed(1)
    model = LipForensics(pooling="attention").eval()
    with torch.no_grad():
        model.frontend3D[2].weight.uniform_(-0.5, 0.5)
        model.frontend3D[1].running_var.uniform_(0.5, 1.5)
        model.frontend3D[1].running_mean.uniform_(-0.2, 0.2)
    fast = optimize_for_inference(model)
    assert not fast.frontend.prelu_after_pool
    x = torch.randn(2, 1, 6, 32, 32)
    with torch.inference_mode():
        want = model.forward_official(x, [6, 4])
        got = fast.forward_official(x, [6, 4])
    torch.testing.assert_close(got.logits, want.logits, atol=TOL, rtol=0)
    torch.testing.assert_close(got.weights, want.weights, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------
def test_attention_head_weights() -> None:
    torch.manual_seed(2)
    model = LipForensics(pooling="attention").eval()
    x = torch.randn(3, 1, 7, 32, 32)
    lengths = torch.tensor([7, 4, 1])
    with torch.no_grad():
        out = model.forward_official(x, lengths)
        out2 = model.forward_official(x.flip(2), lengths)
        plain = model(x.transpose(1, 2), lengths)  # the protocol layout (B, T, 1, H, W)
    assert out.logits.shape == (3,) and out.weights.shape == (3, 7)
    torch.testing.assert_close(plain.logits, out.logits)
    torch.testing.assert_close(plain.weights, out.weights)
    torch.testing.assert_close(out.weights.sum(1), torch.ones(3))
    mask = lengths_to_mask(lengths, 3, 7)
    assert torch.all(out.weights[~mask] == 0), "padded steps must get exactly zero weight"
    assert torch.all(out.weights[mask] > 0)
    assert out.weights[2, 0] == 1
    assert not torch.allclose(out.weights[0], torch.full((7,), 1 / 7)), "attention is not uniform"
    assert not torch.allclose(out.weights[:2], out2.weights[:2]), "weights must depend on the input"


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_attention_pooling_masked_softmax(lengths: list[int], seed: int) -> None:
    torch.manual_seed(seed)
    pool = AttentionPooling(16, 8)
    b, t = len(lengths), 9
    feats = torch.randn(b, t, 16) * 5
    mask = lengths_to_mask(lengths, b, t)
    pooled, w = pool(feats, mask)
    assert pooled.shape == (b, 16)
    assert torch.all(w[~mask] == 0)
    torch.testing.assert_close(w.sum(1), torch.ones(b))
    # changing padded features changes nothing
    noisy = feats + (~mask).unsqueeze(2) * torch.randn_like(feats) * 100
    pooled2, w2 = pool(noisy, mask)
    torch.testing.assert_close(pooled2, pooled)
    torch.testing.assert_close(w2, w)


def test_lengths_validation() -> None:
    assert lengths_to_mask(None, 2, 3).all()
    with pytest.raises(ValueError, match="lengths must be in"):
        lengths_to_mask([0, 3], 2, 3)
    with pytest.raises(ValueError, match="lengths must be in"):
        lengths_to_mask([4, 3], 2, 3)
    with pytest.raises(ValueError, match="lengths"):
        lengths_to_mask([3], 2, 3)
    with pytest.raises(TypeError):
        lengths_to_mask(torch.tensor([1.0, 2.0]), 2, 3)
    with pytest.raises(ValueError, match="pooling"):
        LipForensics(pooling="max")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Checkpoint loading
# ---------------------------------------------------------------------------------------------
def test_official_checkpoint_loads_into_mean_model(official_ckpt: Path, official_sd: dict) -> None:
    model = LipForensics(pooling="mean")
    report = load_official_lipforensics(model, official_ckpt)
    assert report.missing_allowed == [] and report.loaded == 343
    for k, v in model.state_dict().items():
        assert torch.equal(v, official_sd[k]), k


def test_official_checkpoint_loads_into_attention_model(official_ckpt: Path, official_sd: dict) -> None:
    model = lipforensics(official_ckpt, pooling="attention", freeze="none")
    for k, v in official_sd.items():
        assert torch.equal(model.state_dict()[k], v), k
    report = load_official_lipforensics(LipForensics(pooling="attention"), official_ckpt)
    assert sorted(report.missing_allowed) == sorted(ATTENTION_KEYS)


def test_own_attention_checkpoint_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    src = LipForensics(pooling="attention")
    path = save_lipforensics(src, tmp_path / "run" / "att.pth", extra={"epoch": 3, "head": "attention"})
    dst = LipForensics(pooling="attention")
    report = load_official_lipforensics(dst, path)
    assert report.missing_allowed == []
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values(),
                                                  strict=True))
    # an attention checkpoint has keys a mean model does not
    with pytest.raises(CheckpointMismatchError, match=r"4 unexpected") as err:
        load_official_lipforensics(LipForensics(pooling="mean"), path)
    assert sorted(err.value.unexpected) == sorted(ATTENTION_KEYS)


def test_raw_and_dataparallel_state_dicts(tmp_path: Path, official_sd: dict) -> None:
    raw = tmp_path / "raw.pth"
    torch.save(official_sd, raw)
    load_official_lipforensics(LipForensics(), raw)
    dp = tmp_path / "dp.pth"
    torch.save({"model": {f"module.{k}": v for k, v in official_sd.items()}}, dp)
    load_official_lipforensics(LipForensics(), dp)


def test_wrong_keys_are_listed(tmp_path: Path, official_sd: dict) -> None:
    sd = dict(official_sd)
    sd["tcn.tcn_output.weight"] = torch.zeros(2, 768)
    del sd["trunk.layer1.0.conv1.weight"]
    sd["tcn.extra.bias"] = torch.zeros(3)
    bad = tmp_path / "bad.pth"
    torch.save({"model": sd}, bad)
    model = LipForensics(pooling="attention")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_lipforensics(model, bad)
    msg = str(err.value)
    assert "1 missing, 1 unexpected, 1 shape mismatches" in msg
    assert "trunk.layer1.0.conv1.weight" in msg and "tcn.extra.bias" in msg
    assert "tcn.tcn_output.weight: (2, 768) vs (1, 768)" in msg
    assert "attention." not in msg  # the attention keys are allowed to be missing
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "nothing copied on error"


def test_many_wrong_keys_are_truncated() -> None:
    sd = {f"junk.{i}": torch.zeros(1) for i in range(50)}
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_checked(LipForensics(), sd)
    msg = str(err.value)
    assert "343 missing, 50 unexpected" in msg
    assert "... and 30 more" in msg and "... and 323 more" in msg
    assert len(err.value.missing) == 343


def test_pickled_object_is_refused(tmp_path: Path, official_sd: dict) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": {"trunk.layer1.0.conv1.weight": official_sd["trunk.layer1.0.conv1.weight"]},
                "args": Path("/not/a/tensor")}, path)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load.*needs code execution"):
        load_official_lipforensics(LipForensics(), path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_official_lipforensics(LipForensics(), garbage)
    nontensor = tmp_path / "nontensor.pth"
    torch.save({"model": {"a": 1}}, nontensor)
    with pytest.raises(CheckpointError, match="non-tensor"):
        load_official_lipforensics(LipForensics(), nontensor)


def test_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "lipforensics_ff.pth"
    with pytest.raises(FileNotFoundError, match="lipforensics_ff.pth") as err:
        lipforensics(missing)
    assert str(missing) in str(err.value) and "--init" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Fine-tuning recipe
# ---------------------------------------------------------------------------------------------
def test_freeze_frontend_trunk() -> None:
    model = lipforensics(pooling="attention", freeze="frontend_trunk")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(("tcn.", "attention."))}
    assert {"tcn.tcn_output.weight", "tcn.tcn_output.bias", *ATTENTION_KEYS} <= trainable
    model.train()
    assert model.training and model.tcn.training and model.attention.training
    assert not any(m.training for m in model.frontend3D.modules())
    assert not any(m.training for m in model.trunk.modules())
    assert model.frozen_module_names == ("frontend3D", "trunk")
    assert model.frozen_modules() == [model.frontend3D, model.trunk]
    # BatchNorm statistics of the frozen part do not move in a training step
    before = model.trunk.layer1[0].bn1.running_mean.clone()
    loss = model(torch.randn(2, 5, 1, 32, 32)).logits.sum()
    loss.backward()
    assert torch.equal(model.trunk.layer1[0].bn1.running_mean, before)
    assert model.trunk.layer1[0].conv1.weight.grad is None
    assert model.tcn.tcn_output.weight.grad is not None

    model.set_freeze("none")
    assert all(p.requires_grad for p in model.parameters())
    assert model.trunk.training
    with pytest.raises(ValueError, match="freeze"):
        model.set_freeze("all")  # type: ignore[arg-type]

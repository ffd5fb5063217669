"""Robust training augmentation: clip-consistent, each operation as defined; train's policy switch."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.augment import ClipAugment, RobustAugment, augment_clips, draw_clip_params, gaussian_kernel1d
from forensight.config import PreprocessConfig, TrainConfig


def clips(b: int = 3, t: int = 4, h: int = 40, w: int = 48, c: int = 3, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (b, 1, h // 4, w // 4, c), dtype=np.uint8)
    up = np.stack([cv2.resize(x[0], (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, c) for x in base])
    frames = np.repeat(up[:, None], t, axis=1)
    frames = np.clip(frames.astype(int) + np.arange(t).reshape(1, t, 1, 1, 1) * 5, 0, 255).astype(np.uint8)
    return torch.from_numpy(frames)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), channels=st.sampled_from([1, 3]))
def test_augmentation_is_clip_consistent(seed: int, channels: int) -> None:
    """Frames that are identical before stay identical after: one draw per clip, no temporal jitter."""
    same = clips(b=4, t=5, c=channels, seed=seed)[:, :1].repeat(1, 5, 1, 1, 1)
    out = augment_clips(same, torch.Generator().manual_seed(seed))
    assert out.dtype == torch.uint8 and out.shape == same.shape
    assert torch.equal(out, out[:, :1].expand_as(out))


def test_each_operation_matches_its_definition() -> None:
    x = clips(b=1, t=2)
    np_x = x[0].numpy()
    flip = augment_clips(x, params=[ClipAugment(flip=True)])
    assert torch.equal(flip, x.flip(-2))
    for k in (3, 5, 7):
        blur = augment_clips(x, params=[ClipAugment(blur=k)])[0].numpy()
        want = np.stack([cv2.GaussianBlur(f, (k, k), 0) for f in np_x])  # sigma 0: OpenCV's rule for k
        assert np.abs(blur.astype(int) - want).max() <= 1
        g = cv2.getGaussianKernel(k, 0).ravel()
        np.testing.assert_allclose(gaussian_kernel1d(k).numpy(), g, atol=1e-6)
    q = 55
    jpeg = augment_clips(x, params=[ClipAugment(jpeg=q)])[0].numpy()
    for f, got in zip(np_x, jpeg):
        _, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        assert np.array_equal(got, cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    assert torch.equal(augment_clips(x, params=[ClipAugment(color=(1.0, 1.0, 1.0))]), x)
    bright = augment_clips(x, params=[ClipAugment(color=(1.1, 1.0, 1.0))])
    assert torch.equal(bright, (x.float() * 1.1).round().clamp(0, 255).to(torch.uint8))
    grey = augment_clips(x, params=[ClipAugment(color=(1.0, 1.0, 0.0))])[0].float()
    assert (grey.max(-1).values - grey.min(-1).values).max() <= 1  # saturation 0: R = G = B
    low = augment_clips(x, params=[ClipAugment(resize=(0.5, "area", "bilinear"))])
    assert low.shape == x.shape and 0 < (low.float() - x.float()).abs().mean() < 20
    assert torch.equal(augment_clips(x, params=[ClipAugment()]), x)


def test_draws_follow_the_policy() -> None:
    pol = RobustAugment()
    draws = draw_clip_params(3000, torch.Generator().manual_seed(0), pol)
    freq = {k: np.mean([bool(getattr(d, k)) for d in draws]) for k in ("flip", "resize", "blur", "color", "jpeg")}
    for k, p in (("flip", pol.flip_p), ("resize", pol.resize_p), ("blur", pol.blur_p), ("color", pol.color_p),
                 ("jpeg", pol.jpeg_p)):
        assert freq[k] == pytest.approx(p, abs=0.04), k
    assert {d.blur for d in draws if d.blur} == {3, 5, 7}
    qs = [d.jpeg for d in draws if d.jpeg]
    assert min(qs) >= 40 and max(qs) <= 100 and min(qs) < 45 and max(qs) > 95
    for d in draws:
        if d.color:
            assert all(0.9 <= v <= 1.1 for v in d.color)
        if d.resize:
            assert 0.5 <= d.resize[0] < 1.0
    again = draw_clip_params(50, torch.Generator().manual_seed(0), pol)
    assert again == draws[:50]  # seeded


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="uint8"):
        augment_clips(torch.zeros(1, 2, 8, 8, 3))
    with pytest.raises(ValueError, match="channels"):
        augment_clips(torch.zeros(1, 2, 8, 8, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="probability"):
        RobustAugment(flip_p=1.5)
    with pytest.raises(ValueError, match="odd"):
        RobustAugment(blur_kernels=(4,))


def test_train_config_policies() -> None:
    assert TrainConfig(augment=True).augment == "basic" and TrainConfig(augment=False).augment == "none"
    assert TrainConfig().augment == "basic" and TrainConfig(augment="robust").augment == "robust"
    with pytest.raises(ValueError, match="augment must be one of"):
        TrainConfig(augment="heavy")


@pytest.mark.slow
def test_robust_augmentation_trains_a_frozen_encoder_on_crops(tmp_path: Path) -> None:
    """With a frozen pretrained encoder, augment='robust' trains on augmented crops (no feature cache):
    the encoder keeps its ImageNet weights and the model file is scored from crops."""
    from forensight.datasets import read_dataset
    from forensight.modelfile import load_model_file
    from forensight.models.registry import build_model, get_model_config
    from forensight.preprocess import run_preprocess
    from forensight.synth import generate
    from forensight.train import train

    generate(tmp_path / "data", num_pairs=3, frames=16, size=(192, 160), seed=5, workers=1, progress=False)
    pp = PreprocessConfig(num_frames=8, size=48, regions=("mouth",), detector="dlib_hog")
    s = run_preprocess(read_dataset("ffpp", tmp_path / "data"), tmp_path / "cache", pp, workers=1, progress=False)
    assert s.failed == 0, s.failures
    mc = get_model_config("region_lite0_attention", region="mouth", input_size=48)
    res = train(tmp_path / "cache", tmp_path / "run", mc,
                TrainConfig(max_epochs=2, min_epochs=1, patience=2, batch_size=4, augment="robust"), progress=False)
    assert res.val_metrics["scored_from"] == "crops"
    lm = load_model_file(tmp_path / "run")
    assert "features" not in lm.payload and lm.payload["train_config"]["augment"] == "robust"
    assert not (tmp_path / "cache" / "features").exists() or not any((tmp_path / "cache" / "features").iterdir())
    ref = build_model(mc).encoder.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in lm.model.encoder.state_dict().items())

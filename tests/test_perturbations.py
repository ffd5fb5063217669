"""The DeeperForensics-1.0 perturbation suite: each type against its definition, determinism, videos."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.config import PreprocessConfig
from forensight.perturbations import (
    EXTENSIONS,
    REFERENCE_TYPES,
    TYPES,
    Perturbation,
    block_positions,
    block_wise,
    color_contrast,
    color_saturation,
    gaussian_blur,
    gaussian_noise_color,
    jpeg_reencode,
    parse_spec,
    perturb_frames,
    perturb_video,
    pixelation,
    resolve_type,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from forensight.records import PreprocessError
from forensight.video import index_video, read_frames


def colourful(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth, saturated RGB test frame (uint8 (h, w, 3))."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    f = np.stack([127 + 120 * np.sin(xx / 9 + rng.uniform(0, 6)), 127 + 120 * np.cos(yy / 7),
                  127 + 120 * np.sin((xx + yy) / 13)], -1)
    return np.clip(f, 0, 255).astype(np.uint8)


def decode_all(path: Path) -> np.ndarray:
    idx = index_video(path)
    return read_frames(path, np.arange(idx.info.num_frames), index=idx).frames


def test_level_table_is_the_reference_one() -> None:
    """The constants of DeeperForensics-1.0's get_distortion_parameter, level 1 to 5."""
    want = {"CS": (0.4, 0.3, 0.2, 0.1, 0.0), "CC": (0.85, 0.725, 0.6, 0.475, 0.35), "BW": (16, 32, 48, 64, 80),
            "GNC": (0.001, 0.002, 0.005, 0.01, 0.05), "GB": (7, 9, 13, 17, 21), "JPEG": (2, 3, 4, 5, 6),
            "VC": (30, 32, 35, 38, 40)}
    assert [TYPES[t].code for t in REFERENCE_TYPES] == list(want)
    for code, params in want.items():
        name = resolve_type(code)
        assert TYPES[name].params == params and not TYPES[name].extension
        assert [Perturbation(code, lvl).param for lvl in range(1, 6)] == list(params)
    assert set(EXTENSIONS) == {"ext_jpeg", "ext_rescale"} and all(TYPES[t].extension for t in EXTENSIONS)


def test_reference_ycbcr() -> None:
    grey = np.full((2, 2, 3), 128, np.uint8)
    ycc = rgb_to_ycbcr(grey)
    np.testing.assert_allclose(ycc[..., 1:], 128 / 255, atol=1e-6)  # OpenCV float offset 0.5 -> (224*0.5+16)/255
    np.testing.assert_allclose(ycc[..., 0], (128 * 219 + 16) / 255, rtol=1e-6)
    f = colourful()
    # OpenCV's forward and inverse coefficients (0.713 / 1.403 ...) are rounded: not an exact inverse
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(f)), f, atol=0.1)


def test_saturation_zero_gives_neutral_chroma_and_keeps_luma() -> None:
    f = colourful()
    out = color_saturation(f, 0.0)  # level 5
    assert out.dtype == np.uint8 and out.shape == f.shape
    ycrcb = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb).astype(int)  # standard 8-bit YCbCr
    assert np.abs(ycrcb[..., 1:] - 128).max() <= 1  # Cr = Cb = neutral (to the uint8 truncation)
    # the reference's own C' (its chroma on a 0-255-like scale): within a grey level of its neutral 0.5
    assert np.abs(rgb_to_ycbcr(out)[..., 1:] - 0.5).max() < 1.0
    y_in = cv2.cvtColor(f, cv2.COLOR_RGB2YCrCb)[..., 0].astype(int)
    assert np.abs(ycrcb[..., 0] - y_in).max() <= 2  # luma kept
    assert np.array_equal(Perturbation("CS", 5).apply(f, "v", 0), out)


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_saturation_scales_chroma_around_the_reference_neutral(level: int) -> None:
    f = colourful()
    factor = TYPES["saturation"].param(level)
    out = Perturbation("saturation", level).apply(f, "v", 0)
    c_in, c_out = rgb_to_ycbcr(f)[..., 1:], rgb_to_ycbcr(out)[..., 1:]
    # C' is on the reference's 0-255-like scale; the uint8 truncation moves it by about a grey level
    np.testing.assert_allclose(c_out - 0.5, factor * (c_in - 0.5), atol=1.2)
    assert np.abs(c_in - 0.5).max() > 50  # a saturated frame: the check has something to scale


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_contrast_is_truncated_product(level: int) -> None:
    f = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=-1)
    factor = TYPES["contrast"].param(level)
    out = Perturbation("CC", level).apply(f, "v", 0)
    want = np.floor(f.astype(np.float32) * np.float32(factor)).astype(np.uint8)
    assert np.array_equal(out, want)
    assert out.max() == math.floor(255 * factor)


@settings(max_examples=30, deadline=None)
@given(factor=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_contrast_property(factor: float, seed: int) -> None:
    f = np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = color_contrast(f, factor)
    assert np.array_equal(out, (f.astype(np.float32) * np.float32(factor)).astype(np.uint8))


@pytest.mark.parametrize("h, w, mult", [(256, 320, 1), (512, 600, 2), (768, 800, 3)])
def test_block_count_size_and_value(h: int, w: int, mult: int) -> None:
    f = np.zeros((h, w, 3), np.uint8)
    for level, param in enumerate(TYPES["block"].params, 1):
        pos = block_positions(h, w, param, np.random.default_rng(level))
        assert pos.shape == (param * mult, 2)  # level x (min(H, W) // 256) blocks
        assert (pos[:, 0] >= 0).all() and (pos[:, 0] <= h - 9).all()
        assert (pos[:, 1] >= 0).all() and (pos[:, 1] <= w - 9).all()
        out = block_wise(f, param, np.random.default_rng(level))
        mask = np.zeros((h, w), bool)
        for y, x in pos:
            mask[y:y + 8, x:x + 8] = True  # each block is 8x8
        assert (out[mask] == 128).all() and (out[~mask] == 0).all()
        assert int(mask.sum()) <= 64 * len(pos) and int(mask.sum()) >= 64  # overlaps allowed, as in the reference


def test_block_count_is_zero_below_256_px_like_the_reference() -> None:
    f = colourful(200, 400)
    assert block_positions(200, 400, 80, np.random.default_rng(0)).shape == (0, 2)
    assert np.array_equal(Perturbation("BW", 5).apply(f, "v", 0), f)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(256, 700), w=st.integers(256, 700), level=st.integers(1, 5), seed=st.integers(0, 999))
def test_block_positions_property(h: int, w: int, level: int, seed: int) -> None:
    count = TYPES["block"].param(level)
    pos = block_positions(h, w, count, np.random.default_rng(seed))
    assert len(pos) == count * (min(h, w) // 256)
    assert pos[:, 0].max() <= h - 9 and pos[:, 1].max() <= w - 9 and pos.min() >= 0


@pytest.mark.parametrize("level", [1, 2])
def test_noise_variance_on_ycbcr(level: int) -> None:
    """Mid-grey frame (no clipping at these variances): the added YCbCr/255 noise has the level's variance."""
    var = TYPES["noise"].param(level)
    f = np.full((256, 256, 3), 128, np.uint8)
    out = gaussian_noise_color(f, var, np.random.default_rng(level))
    assert (out > 0).all() and (out < 255).all()  # nothing clipped
    diff = (rgb_to_ycbcr(out) - rgb_to_ycbcr(f)) / 255.0
    for c in range(3):  # independent noise on Y', Cb', Cr'
        assert diff[..., c].var() == pytest.approx(var, rel=0.05)
        assert abs(diff[..., c].mean()) < 0.003  # truncation biases by < 1 grey level
    corr = np.corrcoef(diff.reshape(-1, 3).T)
    assert np.abs(corr[np.triu_indices(3, 1)]).max() < 0.05


def test_noise_grows_with_level() -> None:
    f = np.full((128, 128, 3), 128, np.uint8)
    spread = [Perturbation("GNC", lvl).apply(f, "v", 0).astype(float).std() for lvl in range(1, 6)]
    assert spread == sorted(spread) and spread[0] > 5


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_blur_kernel_is_gaussian_with_sigma_k_over_6(level: int) -> None:
    k = TYPES["blur"].param(level)
    f = np.zeros((61, 61, 3), np.uint8)
    f[30, 30] = 255
    out = Perturbation("GB", level).apply(f, "v", 0).astype(float)
    x = np.arange(k) - k // 2
    g = np.exp(-x ** 2 / (2 * (k / 6) ** 2))
    g /= g.sum()
    want = 255 * np.outer(g, g)
    r = k // 2
    assert np.abs(out[30 - r:31 + r, 30 - r:31 + r, 0] - want).max() <= 1.0
    outside = out[..., 0].copy()
    outside[30 - r:31 + r, 30 - r:31 + r] = 0
    assert outside.max() == 0  # support of the kernel is k x k
    assert np.array_equal(out[..., 0], out[..., 2])
    with pytest.raises(ValueError, match="odd"):
        gaussian_blur(f, 8)


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_pixelation_factor(level: int) -> None:
    factor = TYPES["pixelation"].param(level)
    f = colourful(120, 150, seed=level)
    out = pixelation(f, factor)
    h, w = f.shape[:2]
    small = cv2.resize(f, (w // factor, h // factor), interpolation=cv2.INTER_LINEAR)
    assert small.shape[:2] == (h // factor, w // factor)
    assert np.array_equal(out, cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    # bilinear (not area) downscaling, as in the reference: an even factor averages pixel pairs, so a
    # one-pixel checkerboard turns flat grey; an odd factor picks single pixels (aliasing)
    board = ((np.indices((h, w)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    if factor % 2 == 0:
        assert pixelation(board, factor).std() < 1.0


def test_pixelation_removes_more_detail_at_higher_levels() -> None:
    f = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    grad = [np.abs(np.diff(Perturbation("pixelation", lvl).apply(f, "v", 0).astype(float), axis=1)).mean()
            for lvl in range(1, 6)]
    assert max(grad) < 0.3 * np.abs(np.diff(f.astype(float), axis=1)).mean()
    assert grad[0] > grad[2] > grad[4]  # factors 2 > 4 > 6 (odd factors alias, see above)


def test_extensions() -> None:
    f = colourful(64, 80)
    errs = [np.abs(jpeg_reencode(f, q).astype(int) - f).mean() for q in TYPES["ext_jpeg"].params]
    assert errs == sorted(errs) and errs[0] > 0  # lower quality, larger error
    out = Perturbation("ext_rescale", 3).apply(f, "v", 0)
    assert out.shape == (32, 40, 3)  # scale 0.5, kept small
    assert Perturbation("ext_rescale", 3).output_size(64, 80, "v") == (32, 40)


def test_mixed_draws_two_to_four_distinct_reference_types() -> None:
    seen_n, seen_types = set(), set()
    for i in range(60):
        steps = Perturbation("mixed", 3, seed=1).steps(f"video{i}")
        types = [t for t, _ in steps]
        assert 2 <= len(types) <= 4 and len(set(types)) == len(types)
        assert set(types) <= set(REFERENCE_TYPES) and all(lvl == 3 for _, lvl in steps)
        if "compression" in types:
            assert types[-1] == "compression"  # the re-encode comes last
        assert steps == Perturbation("mixed", 3, seed=1).steps(f"video{i}")  # deterministic
        seen_n.add(len(types))
        seen_types.update(types)
    assert seen_n == {2, 3, 4} and seen_types == set(REFERENCE_TYPES)
    assert any(Perturbation("mixed", 3, seed=2).steps(f"video{i}") != Perturbation("mixed", 3, seed=1).steps(f"video{i}")
               for i in range(10))


@settings(max_examples=20, deadline=None)
@given(type_=st.sampled_from(["block", "noise", "mixed", "saturation"]), level=st.integers(1, 5),
       frame=st.integers(0, 10**6), seed=st.integers(0, 100))
def test_frames_are_deterministic_in_seed_key_and_frame_number(type_: str, level: int, frame: int, seed: int) -> None:
    f = colourful(256, 272, seed=3)
    p = Perturbation(type_, level, seed)
    a, b = p.apply(f, "synthetic/x/c23/001", frame), p.apply(f, "synthetic/x/c23/001", frame)
    assert np.array_equal(a, b)


def test_random_types_differ_across_seeds_frames_and_videos() -> None:
    f = colourful(256, 272)
    p = Perturbation("noise", 2, seed=0)
    base = p.apply(f, "a", 0)
    assert not np.array_equal(base, Perturbation("noise", 2, seed=1).apply(f, "a", 0))
    assert not np.array_equal(base, p.apply(f, "a", 1))
    assert not np.array_equal(base, p.apply(f, "b", 0))
    # levels share their draws: level 2's blocks include level 1's
    lvl1, lvl2 = (Perturbation("block", lvl).apply(np.zeros((256, 300, 3), np.uint8), "a", 5) for lvl in (1, 2))
    assert ((lvl1 == 128) <= (lvl2 == 128)).all()


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown perturbation type 'fog'.*saturation \\(CS\\)"):
        Perturbation("fog", 1)
    with pytest.raises(ValueError, match="pixelation.*ext_jpeg"):
        resolve_type("jpeg")
    for bad in (0, 6, 2.5, True, "3"):
        with pytest.raises(ValueError, match="level must be an integer in 1-5"):
            Perturbation("blur", bad)
    with pytest.raises(ValueError, match="seed"):
        Perturbation("blur", 1, seed=-1)
    with pytest.raises(ValueError, match="type:level"):
        parse_spec("blur")
    with pytest.raises(ValueError, match="uint8"):
        Perturbation("blur", 1).apply(np.zeros((8, 8, 3), np.float32), "v", 0)
    with pytest.raises(ValueError, match="RGB frame"):
        Perturbation("blur", 1).apply(np.zeros((8, 8), np.uint8), "v", 0)
    with pytest.raises(ValueError, match="empty video"):
        list(perturb_frames([], Perturbation("noise", 1), "v"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(PreprocessError) as e:
        perturb_video(empty, tmp_path / "out", Perturbation("blur", 1))
    assert e.value.reason == "empty_file"
    assert not list(tmp_path.glob("out*"))  # nothing half-written


def test_spec_round_trip_and_config_hash() -> None:
    for t in TYPES:
        p = Perturbation(t, 4, seed=7)
        assert parse_spec(p.spec) == p and parse_spec(TYPES[t].code + ":4:seed=7") == p
    base = PreprocessConfig(size=112)
    assert PreprocessConfig(size=112, detector="dlib_hog").hash == "320dc17bf8f3"  # the demo caches: unchanged
    pert = PreprocessConfig(size=112, perturbation="blur:3:seed=0")
    assert pert.hash != base.hash and pert.without_perturbation().hash == base.hash
    assert PreprocessConfig.from_dict(pert.to_dict()).hash == pert.hash
    with pytest.raises(ValueError, match="canonical"):
        PreprocessConfig(perturbation="GB:3")
    with pytest.raises(ValueError, match="unknown perturbation type"):
        PreprocessConfig(perturbation="fog:3:seed=0")


# ---- videos -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["noise:2:seed=3", "block:5:seed=3", "saturation:1:seed=3"])
def test_same_seed_same_video_lossless(face_video: Path, tmp_path: Path, spec: str) -> None:
    p = parse_spec(spec)
    a = perturb_video(face_video, tmp_path / "a", p, video_key="k")
    b = perturb_video(face_video, tmp_path / "b", p, video_key="k")
    assert a.path.suffix == ".avi" and a.codec == "utvideo"
    fa, fb = decode_all(a.path), decode_all(b.path)
    assert np.array_equal(fa, fb)
    # lossless: the decoded frames are exactly the perturbed source frames, nothing else added
    src = decode_all(face_video)
    assert len(fa) == len(src) == a.num_frames
    want = np.stack([p.apply(fr, "k", i) for i, fr in enumerate(src)])
    assert np.array_equal(fa, want)
    info, src_info = index_video(a.path).info, index_video(face_video).info
    assert (info.fps, info.width, info.height) == (src_info.fps, src_info.width, src_info.height)
    if TYPES[p.type].random:
        c = perturb_video(face_video, tmp_path / "c", Perturbation(p.type, p.level, seed=4), video_key="k")
        assert not np.array_equal(decode_all(c.path), fa)


def test_only_sampled_frames_are_perturbed_on_request(face_video: Path, tmp_path: Path) -> None:
    p = Perturbation("noise", 3)
    wanted = np.array([0, 7, 13, 39])
    full = decode_all(perturb_video(face_video, tmp_path / "full", p, video_key="k").path)
    part = perturb_video(face_video, tmp_path / "part", p, video_key="k", frames=lambda n: wanted)
    assert part.perturbed_frames == 4 and part.num_frames == len(full)
    got = decode_all(part.path)
    assert np.array_equal(got[wanted], full[wanted])
    others = np.setdiff1d(np.arange(len(full)), wanted)
    assert (got[others] == 128).all()  # flat grey placeholders nobody reads


@pytest.mark.parametrize("level", [1, 5])
def test_compression_reencodes_h264_at_the_crf(face_video: Path, tmp_path: Path, level: int) -> None:
    p = Perturbation("VC", level)
    res = perturb_video(face_video, tmp_path / f"vc{level}.avi", p, frames=[0])  # frames ignored: VC encodes all
    assert res.path.suffix == ".mp4" and res.codec == "libx264" and res.perturbed_frames == res.num_frames
    info, src_info = index_video(res.path).info, index_video(face_video).info
    assert info.codec == "h264" and info.num_frames == src_info.num_frames  # the same frame count
    assert (info.width, info.height, info.fps) == (src_info.width, src_info.height, src_info.fps)
    dec, src = decode_all(res.path), decode_all(face_video)
    assert dec.shape == src.shape and 0 < np.abs(dec.astype(int) - src).mean() < 20


def test_higher_crf_compresses_more(face_video: Path, tmp_path: Path) -> None:
    sizes = [perturb_video(face_video, tmp_path / f"vc{lvl}", Perturbation("VC", lvl)).path.stat().st_size
             for lvl in (1, 5)]
    assert sizes[1] < sizes[0]

"""Synthetic deepfake dataset: layout, determinism, localised manipulations, decodable, faces found."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.datasets import read_dataset, read_ffpp
from forensight.synth import (
    _MIRROR,
    METHODS,
    SynthSummary,
    _bursts,
    generate,
    load_footage,
    read_metadata,
)
from forensight.video import index_video, read_frames

ALL_METHODS = tuple(METHODS)
TINY = {"num_pairs": 3, "methods": ALL_METHODS, "frames": 24, "size": (320, 256), "seed": 7, "progress": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    root = tmp_path_factory.mktemp("synth") / "a"
    return root, generate(root, **TINY)


def decode_all(path: Path) -> np.ndarray:
    n = index_video(path).info.num_frames
    return read_frames(path, np.arange(n)).frames


def test_layout_readable_by_ffpp_reader(tiny: tuple[Path, SynthSummary]) -> None:
    root, summary = tiny
    assert summary.num_videos == 6 + 6 * len(ALL_METHODS)
    assert summary.by_label == {"real": 6, "fake": 18}
    assert "synthetic dataset" in str(summary) and "Face2Face 6" in str(summary)
    for split in ("train", "val", "test"):
        pairs = json.loads((root / "splits" / f"{split}.json").read_text())
        assert pairs and all(isinstance(p, list) and len(p) == 2 for p in pairs)
    recs = read_ffpp(root)
    assert len(recs) == summary.num_videos  # every video belongs to a split
    assert {r.dataset for r in recs} == {"synthetic"}
    assert {r.compression for r in recs} == {"c23"}
    for split in ("train", "val", "test"):
        in_split = [r for r in recs if r.split == split]
        assert {r.label for r in in_split} == {0, 1}
    assert all(r.label == (r.method != "original") for r in recs)
    split_of = {r.name: r.split for r in recs if r.method == "original"}
    for r in recs:
        if r.label:
            t, s = r.name.split("_")
            assert r.split == split_of[t] == split_of[s]
    assert len(read_dataset("auto", root)) == len(recs)
    meta = read_metadata(root)
    assert meta["name"] == "synthetic" and meta["seed"] == 7
    assert set(meta["videos"]) == {f"{r.method}/{r.name}" for r in recs}


def test_every_video_decodes(tiny: tuple[Path, SynthSummary]) -> None:
    root, _ = tiny
    for v in read_metadata(root)["videos"].values():
        info = index_video(root / v["path"]).info
        assert (info.width, info.height, info.num_frames, info.codec) == (320, 256, 24, "h264")
        assert info.fps == pytest.approx(25.0)
        assert read_frames(root / v["path"], np.array([0, 23])).frames.shape == (2, 256, 320, 3)


def test_deterministic_for_a_seed(tiny: tuple[Path, SynthSummary], tmp_path: Path) -> None:
    root, _ = tiny
    other = tmp_path / "b"
    generate(other, **{**TINY, "workers": 2})  # same seed, other process layout
    a, b = read_metadata(root), read_metadata(other)
    assert a == b
    for key in ("original/000", "original/001"):
        fa, fb = decode_all(root / a["videos"][key]["path"]), decode_all(other / b["videos"][key]["path"])
        assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 1.0
    fake = next(k for k in a["videos"] if k.startswith("FaceSwap/"))
    fa, fb = decode_all(root / a["videos"][fake]["path"]), decode_all(other / b["videos"][fake]["path"])
    assert np.abs(fa.astype(int) - fb.astype(int)).mean() < 1.0


def test_other_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "s8", **{**TINY, "seed": 8, "methods": ("Face2Face",), "frames": 8})
    generate(tmp_path / "s9", **{**TINY, "seed": 9, "methods": ("Face2Face",), "frames": 8})
    assert read_metadata(tmp_path / "s8")["videos"] != read_metadata(tmp_path / "s9")["videos"]


def test_fakes_differ_only_in_region_and_frames(tiny: tuple[Path, SynthSummary]) -> None:
    root, _ = tiny
    meta = read_metadata(root)
    decoded: dict[str, np.ndarray] = {}

    def frames_of(key: str) -> np.ndarray:
        if key not in decoded:
            decoded[key] = decode_all(root / meta["videos"][key]["path"]).astype(np.float32)
        return decoded[key]

    for key, v in meta["videos"].items():
        if not v["label"]:
            continue
        manip = v["manipulated_frames"]
        assert manip and len(v["boxes"]) == len(manip)
        diff = np.abs(frames_of(key) - frames_of(f"original/{v['target']}")).mean(-1)  # (T, H, W)
        inside, outside = [], []
        for k, (x0, y0, x1, y1) in zip(manip, v["boxes"]):
            m = np.zeros(diff.shape[1:], bool)
            m[y0:y1, x0:x1] = True
            inside.append(diff[k][m].mean())
            outside.append(diff[k][~m].mean())
        inside_m, outside_m = float(np.mean(inside)), float(np.mean(outside))
        assert inside_m > 2.5 and inside_m > 2.5 * outside_m, (key, inside_m, outside_m)
        clean = [k for k in range(diff.shape[0]) if k not in set(manip)]
        if METHODS[v["method"]][1] == "sparse":
            assert len(manip) == 12  # sparsity 0.5 of 24 frames
            assert clean
            assert float(diff[clean].mean()) < 2.0 and inside_m > 2 * float(diff[clean].mean()), key
        else:
            assert not clean


def test_real_faces_found_by_dlib_hog(tiny: tuple[Path, SynthSummary]) -> None:
    from forensight.faces.detectors import get_detector

    root, _ = tiny
    det = get_detector("dlib_hog")
    hits = []
    for key, v in read_metadata(root)["videos"].items():
        if key.startswith("original/"):
            for f in read_frames(root / v["path"], np.arange(0, 24, 4)).frames:
                hits.append(len(det.detect(f)[0]) > 0)
    assert np.mean(hits) >= 0.8


def test_still_face_is_animated(tiny: tuple[Path, SynthSummary]) -> None:
    root, _ = tiny
    v = read_metadata(root)["videos"]["original/001"]
    assert v["render"]["footage"] == "astronaut"
    frames = decode_all(root / v["path"]).astype(np.float32)
    assert min(np.abs(frames[i + 1] - frames[i]).mean() for i in range(len(frames) - 1)) > 0.3


def test_mirror_permutation_matches_dlib_on_a_flipped_face() -> None:
    from forensight.faces.landmarks import get_landmark_predictor

    assert (_MIRROR[_MIRROR] == np.arange(68)).all()
    fo = load_footage("astronaut")
    img, lm = fo.frames[0], fo.landmarks[0]
    w = img.shape[1]
    flipped = np.ascontiguousarray(img[:, ::-1])
    x0, y0, x1, y1 = lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()
    box = [w - x1 - 1, y0 - 0.25 * (y1 - y0), w - x0, y1]
    found = get_landmark_predictor()(flipped, box)
    expect = lm.copy()
    expect[:, 0] = w - 1 - expect[:, 0]
    assert np.abs(found - expect[_MIRROR]).mean() < 2.0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(8, 120), sparsity=st.floats(0.01, 1.0), seed=st.integers(0, 10_000))
def test_bursts_cover_the_sparsity_share(n: int, sparsity: float, seed: int) -> None:
    bursts = _bursts(n, sparsity, np.random.default_rng(seed))
    frames = [k for a, b in bursts for k in range(a, b)]
    assert len(frames) == len(set(frames)) == min(n, max(1, round(sparsity * n)))
    assert all(0 <= k < n for k in frames)
    assert 1 <= len(bursts) <= 3
    assert all(b - a >= min(4, len(frames)) for a, b in bursts)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(bursts))  # separate runs


def test_bad_parameters(tmp_path: Path, tiny: tuple[Path, SynthSummary]) -> None:
    with pytest.raises(ValueError, match="num_pairs"):
        generate(tmp_path / "x", num_pairs=2, progress=False)
    with pytest.raises(ValueError, match="Deepfakes"):
        generate(tmp_path / "x", methods=("Deepfakes",), progress=False)
    with pytest.raises(ValueError, match="sparsity"):
        generate(tmp_path / "x", sparsity=0.0, progress=False)
    with pytest.raises(ValueError, match="size"):
        generate(tmp_path / "x", size=(321, 256), progress=False)
    with pytest.raises(FileExistsError, match="dataset.json"):
        generate(tiny[0], **TINY)


def test_overwrite_replaces_only_listed_files(tmp_path: Path) -> None:
    root = tmp_path / "o"
    small = {**TINY, "methods": ("EyeBlink",), "frames": 8}
    generate(root, **{**small, "num_pairs": 4})
    keep = root / "notes.txt"
    keep.write_text("mine")
    generate(root, **small, overwrite=True)
    recs = read_ffpp(root, include_unsplit=True)
    assert len(recs) == 12 and all(r.split for r in recs)  # no stale videos of the 4-pair run
    assert keep.read_text() == "mine"

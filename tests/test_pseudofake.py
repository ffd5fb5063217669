"""Pseudo-fakes: generator properties, preprocessing integration (one decode), --fakes, bad input."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.pseudofake import (
    KINDS,
    PseudoFakeConfig,
    make_pseudofake,
    plan_pseudofake,
    pseudo_records,
    truth_areas,
)
from forensight.records import PreprocessError, VideoRecord, keep_fake


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    """16 rendered real frames (320x256) with their exact landmarks (forensight.synth)."""
    from forensight.synth import _real_spec, render_real

    return render_real(_real_spec(0, 0, "000", 25.0), 16, (320, 256), 25.0)


def _outside_hull_distance(mask: np.ndarray, hulls: list[np.ndarray]) -> float:
    """Largest distance (px) from the union of the hulls to a pixel where ``mask`` > 1e-3."""
    inside = np.zeros(mask.shape, np.uint8)
    for pts in hulls:
        cv2.fillConvexPoly(inside, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    dist = cv2.distanceTransform((1 - inside).astype(np.uint8), cv2.DIST_L2, 5)
    on = mask > 1e-3
    return float(dist[on].max()) if on.any() else 0.0


@settings(max_examples=12, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), region=st.sampled_from(["face", "eyes", "mouth"]),
       seed=st.integers(0, 2**16), i=st.integers(0, 15))
def test_mask_lies_inside_the_landmark_hull_plus_its_feather(clip, kind, region, seed, i) -> None:
    frames, lms = clip
    plan = plan_pseudofake(kind, region, lms, frames.shape[1:], np.random.default_rng(seed), sparsity=1.0)
    out = plan.apply(i, frames[i])
    changed = np.abs(out.astype(int) - frames[i]).max(-1).astype(np.float32)
    assert changed.max() > 0  # sparsity 1: every frame is manipulated
    assert _outside_hull_distance(changed, plan.hulls(i)) <= plan.reach(i) + 1.5
    if kind == "sbi":
        mask, (x0, y0, x1, y1) = plan.sbi_mask(i, frames.shape[1:])
        full = np.zeros(frames.shape[1:3], np.float32)
        full[y0:y1, x0:x1] = mask
        assert _outside_hull_distance(full, plan.hulls(i)) <= plan.reach(i)
    x0, y0, x1, y1 = plan.boxes[i]  # where the blend weight > 1 %: a change above 1 % of 255 lies inside
    ys, xs = np.nonzero(changed > 3)
    assert x0 <= xs.min() and xs.max() < x1 + 1 and y0 <= ys.min() and ys.max() < y1 + 1


def test_sbi_parameters_are_constant_over_a_clip_unless_per_frame(clip) -> None:
    frames, lms = clip
    once = plan_pseudofake("sbi", "face", lms, frames.shape[1:], np.random.default_rng(1))
    assert all(p is once.sbi[0] for p in once.sbi)
    per = plan_pseudofake("sbi", "face", lms, frames.shape[1:], np.random.default_rng(1), per_frame=True)
    assert len({float(p["ratio"]) * 1000 + float(p["scale"]) for p in per.sbi}) > 1
    _, gt = make_pseudofake(frames, lms, "sbi", "face", seed=1)
    assert gt["params"]["per_frame"] is False and "ratio" in gt["params"]


def test_video_level_drift_varies_between_frames(clip) -> None:
    frames, lms = clip
    plan = plan_pseudofake("vb", "face", lms, frames.shape[1:], np.random.default_rng(2), sparsity=1.0)
    assert plan.vb is not None and plan.vb.shape == (16, 4, 4)  # frames x parts x (angle, scale, dx, dy)
    steps = np.abs(np.diff(plan.vb, axis=0)).max(axis=(1, 2))
    assert (steps > 1e-3).all()  # a new similarity every frame
    # and the pixels follow: the difference to the real frame changes from frame to frame
    out = np.stack([plan.apply(i, f) for i, f in enumerate(frames)]).astype(np.float32)
    d = out - frames
    assert all(np.abs(d[k + 1] - d[k]).mean() > 0.05 for k in range(len(d) - 1))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_frames_outside_the_bursts_are_untouched_and_ground_truth_is_complete(clip, kind) -> None:
    frames, lms = clip
    nums = np.arange(16) * 3 + 5
    out, gt = make_pseudofake(frames, lms, kind, "mouth", seed=4, sparsity=0.5, frame_numbers=nums)
    pos = set(gt["positions"])
    assert len(pos) == 8 and gt["manipulated_frames"] == [int(nums[k]) for k in sorted(pos)]
    for k in range(16):
        same = np.array_equal(out[k], frames[k])
        assert same == (k not in pos), k
    assert len(gt["boxes"]) == 8 and all(b is not None and b[2] > b[0] and b[3] > b[1] for b in gt["boxes"])
    covered = {k for a, b in gt["bursts"] for k in range(a, b)}
    assert covered == pos
    json.dumps(gt)  # storable as is


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stored_truth_becomes_per_frame_areas_in_native_frame_pixels(clip, kind) -> None:
    """``truth_areas``: the boxes stored per manipulated SAMPLE are keyed by the source FRAME number
    of that sample, and each box holds every pixel the blend changed in that frame (native pixels)."""
    frames, lms = clip
    nums = np.arange(16) * 3 + 5  # sample k is frame 3k + 5: positions and frame numbers differ
    out, gt = make_pseudofake(frames, lms, kind, "face", seed=11, sparsity=0.5, frame_numbers=nums)
    stored = json.loads(json.dumps(gt))  # as it comes back from a cache entry's meta.json
    areas = truth_areas(stored, nums)
    assert sorted(areas) == [int(nums[k]) for k in stored["positions"]]
    for k, box in zip(stored["positions"], stored["boxes"]):
        assert areas[int(nums[k])] == [float(v) for v in box]
        x0, y0, x1, y1 = (int(v) for v in areas[int(nums[k])])
        changed = np.abs(out[k].astype(int) - frames[k]).max(-1) > 3
        assert changed.any() and not changed[:y0].any() and not changed[y1:].any()
        assert not changed[:, :x0].any() and not changed[:, x1:].any()
    # an empty box (nothing blended above 1 %) or a missing one is left out; no truth gives {}
    holes = {**stored, "boxes": [None, [7, 7, 7, 9]] + stored["boxes"][2:]}
    assert sorted(truth_areas(holes, nums)) == sorted(areas)[2:]
    assert truth_areas({}) == {} and truth_areas({"manipulated_frames": [], "boxes": []}, nums) == {}
    # inconsistent truth is a clear error
    with pytest.raises(ValueError, match="8 manipulated frames but 7 boxes"):
        truth_areas({**stored, "boxes": stored["boxes"][:-1]})
    with pytest.raises(ValueError, match="does not sample frame"):
        truth_areas(stored, nums + 1)
    with pytest.raises(ValueError, match="not 4"):
        truth_areas({**stored, "boxes": [[1, 2, 3]] + stored["boxes"][1:]})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_same_seed_same_bytes(clip, kind) -> None:
    frames, lms = clip
    a, ga = make_pseudofake(frames, lms, kind, "any", seed=7)
    b, gb = make_pseudofake(frames, lms, kind, "any", seed=7)
    c, _ = make_pseudofake(frames, lms, kind, "any", seed=8)
    assert a.tobytes() == b.tobytes() and ga == gb
    assert a.tobytes() != c.tobytes()


def test_bad_landmarks_and_short_clips_get_named_reasons(clip) -> None:
    frames, lms = clip
    off = lms.copy()
    off[5, 48:68, 1] += 200  # the mouth below the frame edge
    with pytest.raises(PreprocessError) as e:
        plan_pseudofake("sbi", "mouth", off, frames.shape[1:], np.random.default_rng(0))
    assert e.value.reason == "landmarks_off_frame"
    # the eyes are still inside: an eye pseudo-fake can be made
    plan_pseudofake("vb", "eyes", off, frames.shape[1:], np.random.default_rng(0))
    nan = lms.copy()
    nan[2] = np.nan
    with pytest.raises(PreprocessError, match="landmarks_off_frame"):
        plan_pseudofake("vb", "face", nan, frames.shape[1:], np.random.default_rng(0))
    with pytest.raises(PreprocessError) as e:
        plan_pseudofake("sbi", "face", lms[:3], frames.shape[1:], np.random.default_rng(0))
    assert e.value.reason == "too_few_frames"
    with pytest.raises(ValueError, match="region"):
        plan_pseudofake("sbi", "nose", lms, frames.shape[1:], np.random.default_rng(0))
    with pytest.raises(ValueError, match="kinds"):
        PseudoFakeConfig(kinds=("sbi", "deepfake"))


def test_pseudo_records_keep_the_source_split_and_alternate_kinds() -> None:
    cfg = PseudoFakeConfig(per_video=2)
    recs = [VideoRecord(Path(f"/v/{i}.mp4"), 0, s, "mine", "original", "raw", f"v{i}")
            for i, s in enumerate(["train", "val", "test", "train"])]
    for r in recs:
        out = pseudo_records(r, cfg)
        assert sorted(k for _, k in out) == ["sbi", "vb"]  # K = 2: one of each
        assert all(p.split == r.split and p.label == 1 and p.path == r.path and p.dataset == r.dataset for p, _ in out)
    one = [pseudo_records(r, PseudoFakeConfig())[0][1] for r in recs]
    assert len(one) == 4
    fake = VideoRecord(Path("/v/f.mp4"), 1, "train", "mine", "Face2Face", "raw", "f")
    assert pseudo_records(fake, cfg) == []
    assert keep_fake(1, "pseudo_sbi", "pseudo") and not keep_fake(1, "Face2Face", "pseudo")
    assert keep_fake(1, "Face2Face", "real") and not keep_fake(1, "pseudo_vb", "real")
    assert keep_fake(0, "original", "pseudo") and keep_fake(1, "pseudo_vb", "both")


# --------------------------------------------------------------------------- preprocessing


@pytest.fixture(scope="module")
def real_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real videos only (real/train, real/val, real/test), rendered by synth."""
    from forensight.synth import _real_spec, render_real
    from forensight.video import write_video

    root = tmp_path_factory.mktemp("realonly")
    for i, split in enumerate(["train", "train", "val", "test"]):
        frames, _ = render_real(_real_spec(5, i, f"{i:03d}", 25.0), 20, (192, 160), 25.0)
        write_video(root / "real" / split / f"{i:03d}.mp4", frames, fps=25)
    return root


def _entry_bytes(cache_root: Path) -> dict[str, str]:
    out = {}
    for d in sorted((cache_root / "entries").iterdir()):
        h = hashlib.sha256()
        for f in sorted(d.glob("*.npy")):
            h.update(f.read_bytes())
        out[d.name] = h.hexdigest()
    return out


def test_preprocess_writes_pseudofakes_in_the_source_split_and_reruns_bit_identically(real_only, tmp_path) -> None:
    from dataclasses import replace

    from forensight.cache import Cache, PseudoFakeSettingsMismatch
    from forensight.config import PreprocessConfig
    from forensight.datasets import read_dataset
    from forensight.preprocess import run_preprocess

    records = read_dataset("folder", real_only)
    assert {r.label for r in records} == {0}
    cfg = PreprocessConfig(num_frames=8, regions=("frame", "full", "mouth", "lips"), size=48)
    pcfg = PseudoFakeConfig(per_video=2, region="any")
    s = run_preprocess(records, tmp_path / "c1", cfg, progress=False, pseudo=pcfg)
    assert s.done == 4 and s.pseudo_done == 8 and not s.pseudo_failures, str(s)
    cache = Cache.open(tmp_path / "c1")
    rows = {r["video_id"]: r for r in cache.rows()}
    for vid, r in rows.items():
        if r["method"].startswith("pseudo_"):
            e = cache.load(vid)
            src = e.meta["pseudo"]["source"]
            assert r["split"] == rows[src]["split"] and int(r["label"]) == 1  # no leakage across splits
            real = cache.load(src)
            pos = e.meta["pseudo"]["positions"]
            assert list(e.record.manipulated_frames) == [int(real.indices[k]) for k in pos]
            for reg in ("frame", "full", "mouth", "lips"):
                for k in range(len(e)):
                    same = np.array_equal(e.regions[reg][k], real.regions[reg][k])
                    if k not in pos:
                        assert same, (vid, reg, k)
            assert not np.array_equal(e.regions["full"], real.regions["full"])
            assert np.array_equal(e.landmarks, real.landmarks)
    # a rerun into a new cache gives the same bytes; a rerun into the same cache does nothing
    run_preprocess(records, tmp_path / "c2", cfg, progress=False, pseudo=pcfg)
    assert _entry_bytes(tmp_path / "c1") == _entry_bytes(tmp_path / "c2")
    again = run_preprocess(records, tmp_path / "c1", cfg, progress=False, pseudo=pcfg)
    assert again.skipped == 4 and again.pseudo_done == 0
    # the cache says how its pseudo-fakes were made; a rerun with other settings is refused, naming
    # the difference, before anything is written (no cache mixes pseudo-fakes made two ways)
    assert Cache.open(tmp_path / "c1").pseudo_fakes == json.loads(json.dumps(pcfg.to_dict()))
    before = _entry_bytes(tmp_path / "c1")
    for other, named in ((replace(pcfg, seed=1), "seed: 0 != 1"), (replace(pcfg, kinds=("sbi",)), "kinds"),
                         (replace(pcfg, per_frame=True), "per_frame: False != True")):
        with pytest.raises(PseudoFakeSettingsMismatch, match=re.escape(named)):
            run_preprocess(records, tmp_path / "c1", cfg, progress=False, pseudo=other)
    assert _entry_bytes(tmp_path / "c1") == before
    assert Cache.open(tmp_path / "c1").pseudo_fakes == json.loads(json.dumps(pcfg.to_dict()))


def test_preprocess_bad_inputs(real_only, tmp_path, noface_video, short_video) -> None:
    from forensight.cache import Cache
    from forensight.config import PreprocessConfig
    from forensight.preprocess import run_preprocess

    cfg = PreprocessConfig(num_frames=8, regions=("full",), size=32)
    fakes_only = [VideoRecord(real_only / "real/train/000.mp4", 1, "train", "x", "fake", "raw", "a")]
    with pytest.raises(ValueError, match="none of the 1 input videos is real"):
        run_preprocess(fakes_only, tmp_path / "c0", cfg, progress=False, pseudo=PseudoFakeConfig())
    assert not (tmp_path / "c0").exists()  # refused before anything is written
    recs = [VideoRecord(noface_video, 0, "train", "x", "original", "raw", "noface"),
            VideoRecord(short_video, 0, "train", "x", "original", "raw", "short")]
    s = run_preprocess(recs, tmp_path / "c1", cfg, progress=False, pseudo=PseudoFakeConfig())
    assert s.failed == 2 and s.pseudo_done == 0
    reasons = {vid.split("/")[-1]: r for vid, (r, _) in s.pseudo_failures.items()}
    assert reasons == {"noface_p0": "no_face", "short_p0": "too_short"}  # the source's reason, named
    rows = Cache.open(tmp_path / "c1").rows()
    assert {r["status"] for r in rows} == {"failed"} and len(rows) == 4


def test_real_only_folder_layout(tmp_path) -> None:
    from forensight.datasets import read_dataset

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.mp4").write_bytes(b"x")
    assert [r.label for r in read_dataset("folder", tmp_path)] == [0]
    only_fake = tmp_path / "f"
    (only_fake / "fake").mkdir(parents=True)
    (only_fake / "fake" / "b.mp4").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="real"):
        read_dataset("folder", only_fake)


def test_model_card_fakes_and_synthetic_warning() -> None:
    from forensight.modelcard import SYNTHETIC_WARNING, card_lines, card_warning, training_card

    def rec(ds: str, label: int, method: str, name: str) -> VideoRecord:
        return VideoRecord(Path("/v.mp4"), label, "train", ds, method, "raw", name)

    mine = [rec("mine", 0, "original", "a"), rec("mine", 1, "pseudo_sbi", "a_p0")]
    card = training_card({"train": mine, "val": mine}, fakes="pseudo")
    assert card["fakes"] == {"mode": "pseudo", "dataset": 0, "pseudo": 2}
    assert card_warning(card) is None and any("pseudo" in line for line in card_lines(card))
    settings = PseudoFakeConfig(kinds=("vb",), per_video=2, region="mouth", seed=4).to_dict()
    card = training_card({"train": mine}, fakes="both", pseudo_settings=settings)
    assert card["fakes"]["settings"] == settings  # how the pseudo-fakes were made (the cache's record)
    assert "pseudo-fakes: vb, 2 per real video, region mouth, sparsity 0.5, per-video parameters, seed 4" in card_lines(card)
    assert "settings" not in training_card({"train": mine[:1]}, fakes="real", pseudo_settings=settings)["fakes"]
    synth = [rec("synthetic", 0, "original", "a"), rec("synthetic", 1, "pseudo_vb", "a_p0")]
    assert card_warning(training_card({"train": synth}, fakes="pseudo")) == SYNTHETIC_WARNING


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_full_frame_mask_covers_the_change_and_the_contact_sheet(clip, kind, tmp_path) -> None:
    from forensight.report import pseudofake_sheet

    frames, lms = clip
    plan = plan_pseudofake(kind, "face", lms, frames.shape[1:], np.random.default_rng(3), sparsity=0.5)
    for i, f in enumerate(frames):
        out = plan.apply(i, f)
        m = plan.mask(i, f.shape)
        if out is f:
            assert not m.any()
        else:
            changed = np.abs(out.astype(int) - f).max(-1) > 3
            assert changed.any() and (m[changed] > 0.01).all()
    path = pseudofake_sheet(frames[:8], lms[:8], tmp_path / "sheet.png", shown=4, cell=48)
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] == 7 * 52 + 4  # real + 2 kinds x 3 regions

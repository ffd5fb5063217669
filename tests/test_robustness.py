"""``forensight robustness`` end to end on a tiny synthetic dataset; caches, resume, shards, the table."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.perturbations import Perturbation, perturb_video
from forensight.robustness import _level_table, format_table, robustness_table, run_robustness
from forensight.video import sample_indices

PP = PreprocessConfig(num_frames=8, size=48, regions=("mouth",), detector="dlib_hog")  # the fast detector: not under test


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """3 synthetic pairs at 320x256 (so block-wise draws blocks: min side // 256 = 1) and a random
    ``region_tiny_attention`` model file for 8-frame 48-px mouths (threshold 0)."""
    from forensight.modelfile import save_model_file
    from forensight.models.registry import build_model, get_model_config
    from forensight.synth import generate

    root = tmp_path_factory.mktemp("robust")
    generate(root / "data", num_pairs=3, frames=16, size=(320, 256), seed=4, workers=1, progress=False)
    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention", region="mouth", input_size=48)
    (root / "run").mkdir()
    save_model_file(root / "run" / "model.pt", build_model(mc, pretrained=False), mc, PP, None, 0.0, {})
    return {"data": root / "data", "model": root / "run", "root": root}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_robustness_end_to_end_then_resume_through_the_cli(tiny: dict[str, Path], tmp_path: Path) -> None:
    from forensight.cli import main as cli_main
    from forensight.datasets import read_dataset

    out = tmp_path / "out"
    res = run_robustness(tiny["model"], tiny["data"], out, types=("BW", "compression"), levels=(1, 5),
                         n_bootstrap=50, progress=False)
    assert res.scored
    for key in ("csv", "scores", "table_md", "table_csv", "plot", "json"):
        assert res.files[key].is_file(), key
    assert res.files["plot"].read_bytes()[:4] == b"\x89PNG"
    test_ids = {r.video_id for r in read_dataset("ffpp", tiny["data"]) if r.split == "test"}
    rows = _rows(res.files["csv"])
    assert [(r["type"], r["level"]) for r in rows] == [("clean", "0"), ("block", "1"), ("block", "5"),
                                                      ("compression", "1"), ("compression", "5")]
    model_hash = PP.hash
    hashes = set()
    for r in rows:
        cache = Cache.open(r["cache"])
        hashes.add(cache.config.hash)
        assert cache.config.without_perturbation().hash == model_hash
        assert cache.config.perturbation == r["perturbation"]
        assert {x["video_id"] for x in cache.rows()} == test_ids  # every test video, real and fake, once
        assert int(r["n"]) + int(r["failed"]) + int(r["not_scored"]) == len(test_ids)
        if r["auc"]:
            lo, a, hi = float(r["auc_lo"]), float(r["auc"]), float(r["auc_hi"])
            assert 0 <= lo <= a <= hi <= 1 and r["ap"] and r["eer"] and r["acc_at_threshold"] and r["ece"]
    assert Cache.open(rows[0]["cache"]).config.hash == model_hash  # the clean cache is the model's own config
    assert len(hashes) == 5  # every variant its own cache
    assert rows[1]["perturbation"] == "block:1:seed=0" and float(rows[3]["param"]) == 30
    # the perturbed files were transient
    assert not [p for p in (out / "videos").rglob("*") if p.is_file()]
    # per-video scores: one row per scored video and variant, with the model's P(fake)
    scores = _rows(res.files["scores"])
    assert len(scores) == sum(int(r["n"]) for r in rows)
    for s in scores[:3]:
        assert float(s["p_fake"]) == pytest.approx(1 / (1 + np.exp(-float(s["logit"]))), abs=1e-6)
    # the table: clean, each type averaged over its levels, avg over the reference types, drop
    (t,) = res.table
    aucs = {(r["type"], int(r["level"])): float(r["auc"]) for r in rows if r["auc"]}
    if ("block", 1) in aucs and ("block", 5) in aucs:
        assert t["block"] == pytest.approx((aucs[("block", 1)] + aucs[("block", 5)]) / 2)
    assert t["drop"] == pytest.approx(t["clean"] - t["avg"])
    md = res.files["table_md"].read_text()
    assert "block (BW)" in md and "compression (VC)" in md and "level 5" in md
    info = json.loads(res.files["json"].read_text())
    assert info["config"]["types"] == ["block", "compression"] and info["videos"] == len(test_ids)

    # a rerun resumes: nothing is perturbed or preprocessed again, and the numbers are the same
    stamps = {p: p.stat().st_mtime_ns for p in (out / "caches").rglob("meta.json")}
    code = cli_main(["robustness", "--model", str(tiny["model"]), "--data", str(tiny["data"]), "--out", str(out),
                     "--types", "block,VC", "--levels", "1,5", "--bootstrap", "50", "--workers", "1", "-q"])
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "caches").rglob("meta.json")} == stamps
    again = _rows(out / "robustness.csv")
    assert [(r["type"], r["level"], r["auc"], r["n"]) for r in again] == [
        (r["type"], r["level"], r["auc"], r["n"]) for r in rows]


def test_shards_prepare_and_an_unsharded_run_scores(tiny: dict[str, Path], tmp_path: Path) -> None:
    kw = {"types": ("noise",), "levels": (2,), "n_bootstrap": 20, "progress": False, "cache_dir": tmp_path / "caches"}
    a = run_robustness(tiny["model"], tiny["data"], tmp_path / "s0", shard=(0, 2), **kw)
    assert not a.scored and not a.rows
    done = {k: len(Cache.open(v).rows()) for k, v in a.caches.items()}
    assert all(0 < n < 4 for n in done.values())  # half of the 4 test videos each
    run_robustness(tiny["model"], tiny["data"], tmp_path / "s1", shard=(1, 2), **kw)
    final = run_robustness(tiny["model"], tiny["data"], tmp_path / "all", **kw)
    assert final.scored and [r["n"] + r["failed"] + r["not_scored"] for r in final.rows] == [4, 4]
    # the same seed gives the same perturbed videos: a second, separate preparation scores the same
    other = run_robustness(tiny["model"], tiny["data"], tmp_path / "fresh", **{**kw, "cache_dir": tmp_path / "c2"})
    assert [r.get("auc") for r in other.rows] == [r.get("auc") for r in final.rows]
    s1, s2 = _rows(final.files["scores"]), _rows(other.files["scores"])
    assert [(r["video_id"], r["logit"]) for r in s1] == [(r["video_id"], r["logit"]) for r in s2]


def test_sampled_frames_only_give_the_same_crops_as_the_full_perturbed_video(tiny: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    """The transient videos perturb only the frames the preprocessing samples: crops are bit-identical."""
    from forensight.datasets import read_dataset
    from forensight.preprocess import process_video

    rec = next(r for r in read_dataset("ffpp", tiny["data"]) if r.label == 1)
    p = Perturbation("block", 4, seed=2)
    full = perturb_video(rec.path, tmp_path / "full", p, video_key=rec.video_id)
    part = perturb_video(rec.path, tmp_path / "part", p, video_key=rec.video_id,
                         frames=lambda n: sample_indices(n, PP))
    assert part.perturbed_frames == PP.num_frames < full.perturbed_frames
    a = process_video(dataclasses.replace(rec, path=full.path), PP)
    b = process_video(dataclasses.replace(rec, path=part.path), PP)
    assert np.array_equal(a.frames_idx, b.frames_idx)
    assert np.array_equal(a.regions["mouth"], b.regions["mouth"])
    np.testing.assert_array_equal(a.track.boxes, b.track.boxes)


def test_table_arithmetic_and_extensions_left_out_of_the_average() -> None:
    rows = [{"model": "m", "type": "clean", "level": 0, "auc": 0.9},
            {"model": "m", "type": "blur", "level": 1, "auc": 0.8}, {"model": "m", "type": "blur", "level": 2, "auc": 0.6},
            {"model": "m", "type": "noise", "level": 1, "auc": 0.5}, {"model": "m", "type": "noise", "level": 2, "auc": None},
            {"model": "m", "type": "ext_jpeg", "level": 1, "auc": 0.1}]
    (t,) = robustness_table(rows)
    assert t["blur"] == pytest.approx(0.7) and t["noise"] == pytest.approx(0.5) and t["ext_jpeg"] == pytest.approx(0.1)
    assert t["avg"] == pytest.approx(0.6) and t["drop"] == pytest.approx(0.3)
    (only_ext,) = robustness_table([rows[0], rows[-1]])
    assert only_ext["avg"] == pytest.approx(0.1)


def test_levels_with_unscored_videos_stay_out_of_the_type_mean() -> None:
    """Strong noise: 2 of 16 videos keep a face, AUC 1.0 on those two must not raise the mean."""
    rows = [{"model": "m", "type": "clean", "level": 0, "auc": 0.9, "n": 16, "failed": 0},
            {"model": "m", "type": "noise", "level": 1, "auc": 0.8, "n": 16, "failed": 0},
            {"model": "m", "type": "noise", "level": 2, "auc": 0.7, "n": 16, "failed": 0},
            {"model": "m", "type": "noise", "level": 3, "auc": 1.0, "n": 2, "failed": 14},
            {"model": "m", "type": "noise", "level": 4, "auc": None, "n": 0, "failed": 16},
            {"model": "m", "type": "blur", "level": 1, "auc": 0.6, "n": 16, "failed": 0}]
    (t,) = robustness_table(rows)
    assert t["noise"] == pytest.approx(0.75) and t["levels"]["noise"] == (2, 4) and t["levels"]["blur"] == (1, 1)
    assert t["avg"] == pytest.approx((0.75 + 0.6) / 2)
    md = format_table([t], _level_table(rows))
    assert "0.750 (2/4)" in md and "1.000 (2/16 videos)" in md and "- (0/16 videos)" in md
    assert "| 0.600 |" in md  # complete types print as plain numbers
    # a video preprocessed but left unscored (too little face) makes the level incomplete too
    rows.append({"model": "m", "type": "blur", "level": 2, "auc": 0.9, "n": 15, "failed": 0, "not_scored": 1})
    (t2,) = robustness_table(rows)
    assert t2["blur"] == pytest.approx(0.6) and t2["levels"]["blur"] == (1, 2)
    assert "0.900 (15/16 videos)" in format_table([t2], _level_table(rows))


def test_bad_requests(tiny: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown perturbation type"):
        run_robustness(tiny["model"], tiny["data"], tmp_path, types=("fog",), progress=False)
    with pytest.raises(ValueError, match="levels must be"):
        run_robustness(tiny["model"], tiny["data"], tmp_path, levels=(0, 6), progress=False)
    with pytest.raises(ValueError, match="no videos in split"):
        run_robustness(tiny["model"], tiny["data"], tmp_path, split="holdout", types=("blur",), progress=False)


def test_a_model_folder_scores_like_its_run(tiny: dict[str, Path], tmp_path: Path) -> None:
    """``robustness --model DIR`` takes a portable model folder (forensight export) beside the run it
    came from: same perturbed videos, same scores; the folder is named by its directory."""
    from forensight.modelfile import export_model

    folder = export_model(tiny["model"], tmp_path / "shared_tiny")
    res = run_robustness([tiny["model"], folder], tiny["data"], tmp_path / "out", types=("noise",), levels=(2,),
                         n_bootstrap=20, progress=False)
    scores = _rows(res.files["scores"])
    by_model: dict[str, list[tuple[str, str, str]]] = {}
    for r in scores:
        by_model.setdefault(r["model"], []).append((r["variant"], r["video_id"], r["logit"]))
    assert set(by_model) == {"run", "shared_tiny"} and by_model["run"] == by_model["shared_tiny"]
    info = json.loads(res.files["json"].read_text())
    assert info["threshold_source"]["shared_tiny"] == info["threshold_source"]["run"]

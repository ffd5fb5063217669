"""Protocols from the CLI (DFDC test list, metadata formats, missing videos), the face-coverage
minimum, and LipForensics training that would freeze a random trunk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_face_frames

from forensight.cache import Cache
from forensight.cli import main as cli_main
from forensight.config import InputSpec, PreprocessConfig, TrainConfig, get_model_config
from forensight.datasets.dfdc import load_lipforensics_dfdc_test
from forensight.planning import plan_clips
from forensight.video import write_video


def _manifest(cache: Path) -> dict[str, dict[str, str]]:
    with open(cache / "manifest.csv") as f:
        return {r["video_id"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dfdc_src") / "face.mp4"
    write_video(path, moving_face_frames(12), fps=25)
    return path


def _dfdc(root: Path, face_clip: Path, entries: dict[str, dict], absent: tuple[str, ...] = ()) -> Path:
    root.mkdir(parents=True)
    for name in entries:
        if name not in absent:
            (root / name).write_bytes(face_clip.read_bytes())
    (root / "metadata.json").write_text(json.dumps(entries))
    return root


PP_FLAGS = ["--regions", "full", "--frames", "8", "--size", "64", "--workers", "1", "-q"]


@pytest.mark.slow
def test_dfdc_cli_lipforensics_list_is_the_default_with_both_metadata_formats(tmp_path: Path,
                                                                              face_clip: Path) -> None:
    listed = load_lipforensics_dfdc_test()[:3]
    # the LipForensics DFDC test folder: {"name.mp4": {"is_fake": 0/1}}, no split
    entries = {f"{listed[0]}.mp4": {"is_fake": 1}, f"{listed[1]}.mp4": {"is_fake": 0},
               f"{listed[2]}.mp4": {"is_fake": True}, "notlisted.mp4": {"is_fake": 0}}
    root = _dfdc(tmp_path / "lf", face_clip, entries, absent=(f"{listed[2]}.mp4",))
    rc = cli_main(["preprocess", str(root), "--out", str(tmp_path / "c1"), "--layout", "dfdc", *PP_FLAGS])
    assert rc == 2  # 3,212 listed videos are missing: a clear error, nothing written
    assert not (tmp_path / "c1" / "manifest.csv").exists()
    rc = cli_main(["preprocess", str(root), "--out", str(tmp_path / "c2"), "--layout", "dfdc", "--allow-missing",
                   *PP_FLAGS])
    assert rc == 0
    rows = _manifest(tmp_path / "c2")
    by_name = {r["video_id"].rsplit("/", 1)[-1]: r for r in rows.values()}
    assert set(by_name) == set(listed)  # the test split is exactly the list; "notlisted" is dropped
    assert {n: (by_name[n]["label"], by_name[n]["split"]) for n in listed} == {
        listed[0]: ("1", "test"), listed[1]: ("0", "test"), listed[2]: ("1", "test")}
    assert by_name[listed[2]]["status"] == "failed" and by_name[listed[2]]["reason"] == "not_found"
    assert by_name[listed[0]]["status"] == "ok"
    # the challenge's own format with --test-list all: the metadata's splits
    entries = {"a.mp4": {"label": "FAKE", "split": "train"}, "b.mp4": {"label": "REAL", "split": "train"}}
    root2 = _dfdc(tmp_path / "train", face_clip, entries)
    assert cli_main(["preprocess", str(root2), "--out", str(tmp_path / "c3"), "--layout", "dfdc", "--test-list",
                     "all", *PP_FLAGS]) == 0
    assert {r["split"] for r in _manifest(tmp_path / "c3").values()} == {"train"}
    # a test list from a file
    lst = tmp_path / "list.txt"
    lst.write_text("a\n")
    assert cli_main(["preprocess", str(root2), "--out", str(tmp_path / "c4"), "--layout", "dfdc", "--test-list",
                     str(lst), *PP_FLAGS]) == 0
    splits = {r["video_id"].rsplit("/", 1)[-1]: r["split"] for r in _manifest(tmp_path / "c4").values()}
    assert splits == {"a": "test", "b": "train"}  # the listed video is the test split; the others keep theirs
    # DFDC-only flags on another layout are refused
    (tmp_path / "folder" / "real").mkdir(parents=True)
    assert cli_main(["preprocess", str(tmp_path / "folder"), "--out", str(tmp_path / "c5"), "--layout", "folder",
                     "--allow-missing", *PP_FLAGS]) == 2


def test_one_stray_detection_is_low_face_coverage() -> None:
    idx = np.arange(32)
    obs = np.zeros(32, bool)
    obs[17] = True  # one detection: interpolation would hold its box over every frame
    spec = InputSpec(region="full", size=64)
    assert plan_clips(idx, obs, spec).clips == [(17, 18)]  # no minimum: one frame is scored
    p = plan_clips(idx, obs, spec, min_coverage=0.25)
    assert p.clips == [] and p.reason == "low_face_coverage" and "1 of 32" in p.message
    obs[:8] = True  # 9 of 32 = 28 %
    assert plan_clips(idx, obs, spec, min_coverage=0.25).clips == [(0, 18)]
    assert TrainConfig().min_face_coverage == 0.25
    with pytest.raises(ValueError, match="min_face_coverage"):
        TrainConfig(min_face_coverage=1.5)


@pytest.mark.slow
def test_low_coverage_videos_are_left_out_of_evaluation_and_refused_by_detect(tmp_path: Path) -> None:
    import torch

    from forensight.datasets import read_dataset
    from forensight.detect import load_detector
    from forensight.evaluate import evaluate
    from forensight.modelfile import save_model_file
    from forensight.models.registry import build_model
    from forensight.preprocess import run_preprocess

    yy, xx = np.mgrid[0:256, 0:320]
    blank = [np.stack([(xx + 3 * i) % 256, (yy * 2) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
             for i in range(16)]
    faces = moving_face_frames(16, seed=3)
    rows = ["path,label,split,name"]
    for k, (label, frames) in enumerate([(0, faces), (1, faces), (1, blank[:15] + faces[15:])]):
        write_video(tmp_path / f"v{k}.mp4", frames, fps=25)
        rows.append(f"{tmp_path / f'v{k}.mp4'},{label},test,v{k}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    pp = PreprocessConfig(num_frames=16, regions=("full",), size=64)
    s = run_preprocess(read_dataset("csv", tmp_path / "m.csv"), tmp_path / "cache", pp, workers=1, progress=False)
    assert s.failed == 0
    entry = Cache.open(tmp_path / "cache").load(next(v for v in Cache.open(tmp_path / "cache").video_ids()
                                                     if v.endswith("v2")))
    assert entry.observed.sum() <= 2  # the face only at the end
    mc = get_model_config("region_tiny_attention")
    torch.manual_seed(0)
    mf = save_model_file(tmp_path / "model.pt", build_model(mc, pretrained=False), mc, pp, TrainConfig(), 0.0, {})
    res = evaluate(mf, tmp_path / "cache", tmp_path / "eval", n_bootstrap=10, progress=False)
    assert res.metrics["n"] == 2 and any("low_face_coverage" in v for v in res.metrics["not_scored"].values())
    r = load_detector(mf, device="cpu").predict(tmp_path / "v2.mp4")
    assert r.status == "failed" and r.reason == "low_face_coverage" and "25%" in r.message
    assert load_detector(mf, device="cpu").predict(tmp_path / "v0.mp4").ok


def test_lipforensics_refuses_to_freeze_a_random_trunk(tmp_path: Path) -> None:
    from forensight.train import train

    with pytest.raises(ValueError, match="would stay random"):
        train(tmp_path / "no_cache_needed", tmp_path / "run", get_model_config("lipforensics"), TrainConfig())
    assert not (tmp_path / "run").exists()
    rc = cli_main(["train", "--cache", str(tmp_path / "c"), "--run-dir", str(tmp_path / "r"), "--preset",
                   "lipforensics_attention"])
    assert rc == 2

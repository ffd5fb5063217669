"""Dataset layout readers: labels, official splits, qualified ids and errors that name paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forensight.datasets import (
    detect_layout,
    load_lipforensics_dfdc_test,
    load_official_splits,
    read_dataset,
    read_dfdc,
    read_ffpp,
    summarize,
)
from forensight.datasets.celebdf import read_celebdf_test_list
from forensight.records import VideoRecord


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# --------------------------------------------------------------------------- FaceForensics++

def make_ffpp(root: Path, comp: str = "c23", methods: tuple[str, ...] = ("Deepfakes", "Face2Face"),
              reals: tuple[str, ...] = ("720", "672", "000", "003", "001", "1234"),
              fakes: tuple[str, ...] = ("720_672", "672_720", "000_003", "1234_1235")) -> Path:
    for r in reals:
        touch(root / "original_sequences" / "youtube" / comp / "videos" / f"{r}.mp4")
    for m in methods:
        for f in fakes:
            touch(root / "manipulated_sequences" / m / comp / "videos" / f"{f}.mp4")
    return root


def by_id(records: list) -> dict:
    return {r.video_id: r for r in records}


def test_ffpp_official_split_membership(tmp_path: Path) -> None:
    recs = by_id(read_ffpp(make_ffpp(tmp_path)))
    # pair ["720", "672"] is in the official val split
    assert recs["FaceForensics++/original/c23/720"].split == "val"
    assert recs["FaceForensics++/original/c23/672"].split == "val"
    assert recs["FaceForensics++/Face2Face/c23/720_672"].split == "val"
    assert recs["FaceForensics++/Face2Face/c23/672_720"].split == "val"
    # pair ["000", "003"] is in test; 001 is in train
    assert recs["FaceForensics++/Deepfakes/c23/000_003"].split == "test"
    assert recs["FaceForensics++/original/c23/000"].split == "test"
    assert recs["FaceForensics++/original/c23/001"].split == "train"
    # labels: originals real, methods fake
    assert recs["FaceForensics++/original/c23/720"].label == 0
    assert recs["FaceForensics++/Deepfakes/c23/720_672"].label == 1
    assert recs["FaceForensics++/Deepfakes/c23/720_672"].method == "Deepfakes"
    # 1234 / 1234_1235 belong to no official pair: excluded by default
    assert not any("1234" in k for k in recs)


def test_ffpp_official_split_files_are_complete_and_disjoint() -> None:
    pairs = load_official_splits()
    assert {k: len(v) for k, v in pairs.items()} == {"train": 360, "val": 70, "test": 70}
    ids = [i for v in pairs.values() for p in v for i in p]
    assert len(ids) == len(set(ids)) == 1000


def test_ffpp_qualified_ids_differ_between_methods(tmp_path: Path) -> None:
    recs = read_ffpp(make_ffpp(tmp_path))
    same_name = [r for r in recs if r.name == "720_672"]
    assert {r.method for r in same_name} == {"Deepfakes", "Face2Face"}
    assert len({r.video_id for r in same_name}) == 2
    assert len({r.video_id for r in recs}) == len(recs)


def test_ffpp_options(tmp_path: Path) -> None:
    make_ffpp(tmp_path)
    make_ffpp(tmp_path, comp="c40", methods=("FaceSwap",))
    recs = read_ffpp(tmp_path, include_unsplit=True)
    unsplit = [r for r in recs if r.split == ""]
    assert {r.name for r in unsplit} == {"1234", "1234_1235"}
    only = read_ffpp(tmp_path, methods=["Face2Face"])
    assert {r.method for r in only} == {"original", "Face2Face"}
    assert {r.method for r in read_ffpp(tmp_path, methods=[])} == {"original"}
    c40 = read_ffpp(tmp_path, compression="c40")
    assert {r.method for r in c40} == {"original", "FaceSwap"}  # methods without c40 are skipped
    assert all(r.compression == "c40" and "/c40/" in r.video_id for r in c40)
    with pytest.raises(ValueError, match="compression"):
        read_ffpp(tmp_path, compression="c99")


def test_ffpp_custom_and_root_splits(tmp_path: Path) -> None:
    make_ffpp(tmp_path, methods=("EyeBlink",), reals=("000", "001", "002", "003"),
              fakes=("000_001", "001_000", "002_003", "003_002"))
    custom = {"train": [["000", "001"]], "val": [], "test": [["003", "002"]]}
    recs = by_id(read_ffpp(tmp_path, splits=custom))
    assert recs["FaceForensics++/EyeBlink/c23/001_000"].split == "train"
    assert recs["FaceForensics++/EyeBlink/c23/002_003"].split == "test"
    # a root with its own splits/ and dataset.json (the synthetic dataset) uses them
    (tmp_path / "splits").mkdir()
    for split, pairs in custom.items():
        (tmp_path / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "synthetic"}))
    recs = by_id(read_ffpp(tmp_path))
    assert recs["synthetic/original/c23/002"].split == "test"
    assert recs["synthetic/EyeBlink/c23/000_001"].split == "train"
    # ... unless the official split is asked for explicitly (000/003 official test, 001/002 train)
    official = by_id(read_ffpp(tmp_path, splits="official", include_unsplit=True))
    assert official["synthetic/original/c23/001"].split == "train"
    assert official["synthetic/original/c23/003"].split == "test"


def test_ffpp_errors_name_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_ffpp(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"original_sequences/youtube/c23/videos"):
        read_ffpp(tmp_path)
    make_ffpp(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"manipulated_sequences/NeuralTextures/c23/videos"):
        read_ffpp(tmp_path, methods=["NeuralTextures"])
    (tmp_path / "splits").mkdir()
    with pytest.raises(FileNotFoundError, match=r"splits/train.json"):
        read_ffpp(tmp_path, splits=tmp_path / "splits")


def test_ffpp_synthetic_fakes_carry_manipulated_frames(tmp_path: Path) -> None:
    from forensight.synth import generate, read_metadata

    root = tmp_path / "synth"
    frames = 16
    generate(root, num_pairs=3, frames=frames, size=(192, 160), workers=1, progress=False)
    meta = read_metadata(root)["videos"]
    recs = read_dataset("ffpp", root)
    assert len(recs) == 12 and {r.method for r in recs} == {"original", "Face2Face"}
    for r in recs:
        if r.label == 0:
            assert r.manipulated_frames is None
        else:
            listed = meta[f"{r.method}/{r.name}"]["manipulated_frames"]
            assert r.manipulated_frames == tuple(listed)
            assert r.manipulated_frames and all(0 <= k < frames for k in r.manipulated_frames)
        d = r.to_dict()
        assert d["manipulated_frames"] == (None if r.manipulated_frames is None else list(r.manipulated_frames))
        assert VideoRecord.from_dict(json.loads(json.dumps(d))) == r
        del d["manipulated_frames"]  # a cache entry written before the field existed
        assert VideoRecord.from_dict(d).manipulated_frames is None
    # the same reader on a real FaceForensics++ tree (no dataset.json): unknown
    assert all(r.manipulated_frames is None for r in read_ffpp(make_ffpp(tmp_path / "ff")))


def test_ffpp_manipulated_frames_from_dataset_json(tmp_path: Path) -> None:
    make_ffpp(tmp_path, methods=("EyeBlink",), reals=("000", "001"), fakes=("000_001", "001_000"))
    custom = {"train": [["000", "001"]], "val": [], "test": []}
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "synthetic", "videos": {
        "EyeBlink/000_001": {"manipulated_frames": [5, 2, 3]},
        "EyeBlink/001_000": {"manipulated_frames": []}}}))
    recs = by_id(read_ffpp(tmp_path, splits=custom))
    assert recs["synthetic/EyeBlink/c23/000_001"].manipulated_frames == (2, 3, 5)  # sorted
    assert recs["synthetic/EyeBlink/c23/001_000"].manipulated_frames == ()  # listed, none manipulated
    assert recs["synthetic/original/c23/000"].manipulated_frames is None
    (tmp_path / "dataset.json").write_text(json.dumps({"videos": {"EyeBlink/000_001": {"manipulated_frames": [-1]}}}))
    with pytest.raises(ValueError, match=r"dataset.json.*EyeBlink/000_001"):
        read_ffpp(tmp_path, splits=custom)


def test_record_manipulated_frames_validation() -> None:
    base = {"path": "a.mp4", "label": 1, "split": "test", "dataset": "d", "method": "m", "compression": "c23",
            "name": "n"}
    old = VideoRecord(**base)  # every existing constructor call keeps working
    assert old.manipulated_frames is None and old.to_dict()["manipulated_frames"] is None
    r = VideoRecord(**base, manipulated_frames=[7, 1, 7, 3])
    assert r.manipulated_frames == (1, 3, 7)
    assert r == VideoRecord(**base, manipulated_frames=(1, 3, 7)) and hash(r) == hash(VideoRecord.from_dict(r.to_dict()))
    with pytest.raises(ValueError, match=">= 0"):
        VideoRecord(**base, manipulated_frames=[0, -2])
    for bad in ([1.5], [True], "123", 4):
        with pytest.raises(TypeError, match="manipulated_frames"):
            VideoRecord(**base, manipulated_frames=bad)


def test_ffpp_split_id_in_two_splits_is_an_error(tmp_path: Path) -> None:
    make_ffpp(tmp_path)
    with pytest.raises(ValueError, match="'720'"):
        read_ffpp(tmp_path, splits={"train": [["720", "1"]], "val": [["720", "2"]], "test": []})


# --------------------------------------------------------------------------- Celeb-DF-v2

def make_celebdf(root: Path, nested: bool = False) -> Path:
    sub = "videos/" if nested else ""
    for rel in ("Celeb-real/id0_0000", "Celeb-real/id0_0001", "Celeb-real/id1_0000", "Celeb-real/id2_0000",
                "Celeb-real/id3_0000", "YouTube-real/00000", "YouTube-real/00170",
                "Celeb-synthesis/id0_id1_0000", "Celeb-synthesis/id1_id0_0007", "Celeb-synthesis/id2_id3_0001",
                "Celeb-synthesis/id3_id0_0002"):
        folder, name = rel.split("/")
        touch(root / folder / f"{sub}{name}.mp4")
    # in this file 1 = REAL and 0 = FAKE
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n0 Celeb-synthesis/id1_id0_0007.mp4\n1 Celeb-real/id0_0000.mp4\n\n")
    return root


@pytest.mark.parametrize("nested", [False, True])
def test_celebdf_labels_inverted_and_test_split(tmp_path: Path, nested: bool) -> None:
    recs = by_id(read_celebdf_root := read_dataset("celebdf", make_celebdf(tmp_path, nested)))
    assert len(read_celebdf_root) == 11
    assert recs["Celeb-DF-v2/original/raw/00170"].label == 0  # list label 1 = real → our 0
    assert recs["Celeb-DF-v2/original/raw/00170"].split == "test"
    assert recs["Celeb-DF-v2/Celeb-synthesis/raw/id1_id0_0007"].label == 1  # list label 0 = fake → our 1
    assert recs["Celeb-DF-v2/Celeb-synthesis/raw/id1_id0_0007"].split == "test"
    assert recs["Celeb-DF-v2/original/raw/id0_0001"].split == "train"
    assert recs["Celeb-DF-v2/Celeb-synthesis/raw/id0_id1_0000"].split == "train"
    assert {r.split for r in read_celebdf_root} == {"train", "test"}  # no val by default


def test_celebdf_test_list_parser_inverts(tmp_path: Path) -> None:
    make_celebdf(tmp_path)
    parsed = read_celebdf_test_list(tmp_path / "List_of_testing_videos.txt")
    assert parsed[("YouTube-real", "00170.mp4")] == 0
    assert parsed[("Celeb-synthesis", "id1_id0_0007.mp4")] == 1


def test_celebdf_label_contradiction_and_missing(tmp_path: Path) -> None:
    make_celebdf(tmp_path)
    lst = tmp_path / "List_of_testing_videos.txt"
    lst.write_text("0 Celeb-real/id0_0000.mp4\n")  # says fake, but lies in Celeb-real
    with pytest.raises(ValueError, match="Celeb-real/id0_0000.mp4"):
        read_dataset("celebdf", tmp_path)
    lst.write_text("1 Celeb-real/id9_0000.mp4\n1 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(ValueError, match=r"1 of 2 .*id9_0000"):
        read_dataset("celebdf", tmp_path)
    recs = read_dataset("celebdf", tmp_path, allow_missing=True)
    assert sum(r.split == "test" for r in recs) == 1
    lst.write_text("real Celeb-real/id0_0000.mp4\n")
    with pytest.raises(ValueError, match=r"List_of_testing_videos.txt:1"):
        read_dataset("celebdf", tmp_path)


def test_celebdf_missing_folder_or_list(tmp_path: Path) -> None:
    make_celebdf(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").unlink()
    with pytest.raises(FileNotFoundError, match="List_of_testing_videos.txt"):
        read_dataset("celebdf", tmp_path)
    make_celebdf(tmp_path)
    for p in (tmp_path / "YouTube-real").iterdir():
        p.unlink()
    (tmp_path / "YouTube-real").rmdir()
    with pytest.raises(FileNotFoundError, match="YouTube-real"):
        read_dataset("celebdf", tmp_path)
    recs = read_dataset("celebdf", tmp_path, folders=["Celeb-real", "Celeb-synthesis"])
    assert all("YouTube" not in str(r.path) for r in recs)


def test_celebdf_val_split_is_identity_disjoint_and_deterministic(tmp_path: Path) -> None:
    from forensight.datasets.celebdf import celebdf_identity

    make_celebdf(tmp_path)
    a = read_dataset("celebdf", tmp_path, val_fraction=0.3, seed=1)
    b = read_dataset("celebdf", tmp_path, val_fraction=0.3, seed=1)
    assert [r.split for r in a] == [r.split for r in b]
    assert {r.split for r in a} == {"train", "val", "test"}
    folder = {r.name: r.path.parent.name for r in a}

    def ident(r: VideoRecord) -> str:
        return celebdf_identity(folder[r.name], r.name)

    train_ids = {ident(r) for r in a if r.split == "train"}
    val_ids = {ident(r) for r in a if r.split == "val"}
    assert val_ids and not (train_ids & val_ids)
    test_before = {r.video_id for r in read_dataset("celebdf", tmp_path) if r.split == "test"}
    assert {r.video_id for r in a if r.split == "test"} == test_before
    n_pool = sum(r.split in ("train", "val") for r in a)
    assert sum(r.split == "val" for r in a) >= 0.3 * n_pool


# --------------------------------------------------------------------------- DFDC

def make_dfdc(root: Path) -> Path:
    parts = {
        "dfdc_train_part_0": {"aaaaaaaaaa.mp4": ("REAL", "train"), "bbbbbbbbbb.mp4": ("FAKE", "train")},
        "dfdc_train_part_1": {"cccccccccc.mp4": ("FAKE", "train"), "dddddddddd.mp4": ("REAL", "train")},
        "test": {"aalscayrfi.mp4": ("FAKE", "test"), "aaoqanfmgd.mp4": ("REAL", "test"),
                 "zzzzzzzzzz.mp4": ("REAL", "test")},
    }
    for part, entries in parts.items():
        meta = {}
        for name, (label, split) in entries.items():
            touch(root / part / name)
            meta[name] = {"label": label, "split": split, "original": None}
        (root / part / "metadata.json").write_text(json.dumps(meta))
    return root


def test_dfdc_metadata_labels_and_splits(tmp_path: Path) -> None:
    recs = by_id(read_dataset("dfdc", make_dfdc(tmp_path)))
    assert len(recs) == 7
    assert recs["DFDC/fake/raw/bbbbbbbbbb"].label == 1
    assert recs["DFDC/original/raw/aaaaaaaaaa"].label == 0
    assert recs["DFDC/original/raw/dddddddddd"].split == "train"
    assert recs["DFDC/fake/raw/aalscayrfi"].split == "test"


def test_dfdc_lipforensics_list_is_enforced(tmp_path: Path) -> None:
    names = load_lipforensics_dfdc_test()
    assert len(names) == 3215 and len(set(names)) == 3215
    assert names[0] == "aalscayrfi" and all("." not in n for n in names)
    make_dfdc(tmp_path)
    with pytest.raises(ValueError, match=r"3213 of 3215 .*missing: aaqkmjtoby"):
        read_dfdc(tmp_path, test_list="lipforensics")
    with pytest.warns(UserWarning, match="3213 of 3215"):
        recs = read_dfdc(tmp_path, test_list="lipforensics", allow_missing=True)
    # the test split is exactly the listed videos that exist; zzzzzzzzzz (metadata "test") is dropped
    assert {r.name for r in recs if r.split == "test"} == {"aalscayrfi", "aaoqanfmgd"}
    assert "zzzzzzzzzz" not in {r.name for r in recs}
    with pytest.warns(UserWarning):
        kept = read_dfdc(tmp_path, test_list="lipforensics", allow_missing=True, include_unsplit=True)
    assert by_id(kept)["DFDC/original/raw/zzzzzzzzzz"].split == ""


def test_dfdc_custom_list_moves_train_video_to_test(tmp_path: Path) -> None:
    make_dfdc(tmp_path)
    lst = tmp_path / "my_test.txt"
    lst.write_text("bbbbbbbbbb.mp4\naalscayrfi\n")
    recs = by_id(read_dfdc(tmp_path, test_list=lst))
    assert recs["DFDC/fake/raw/bbbbbbbbbb"].split == "test"
    assert {r.name for r in recs.values() if r.split == "test"} == {"bbbbbbbbbb", "aalscayrfi"}


def test_dfdc_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"metadata.json.*dfdc_train_part_\*"):
        read_dfdc(tmp_path)
    make_dfdc(tmp_path)
    (tmp_path / "test" / "zzzzzzzzzz.mp4").unlink()
    with pytest.raises(ValueError, match="zzzzzzzzzz"):
        read_dfdc(tmp_path)
    (tmp_path / "dfdc_train_part_0" / "metadata.json").write_text(json.dumps({"x.mp4": {"label": "MAYBE"}}))
    with pytest.raises(ValueError, match="x.mp4"):
        read_dfdc(tmp_path, allow_missing=True)


# --------------------------------------------------------------------------- folder

def test_folder_layout_flat_and_split(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    touch(flat / "real" / "a.mp4")
    touch(flat / "real" / "sub" / "b.MOV")
    touch(flat / "fake" / "a.mp4")
    touch(flat / "fake" / "notes.txt")
    recs = by_id(read_dataset("folder", flat))
    assert set(recs) == {"flat/original/raw/a", "flat/original/raw/sub__b", "flat/fake/raw/a"}
    assert all(r.split == "" for r in recs.values())
    assert recs["flat/fake/raw/a"].label == 1

    split = tmp_path / "split"
    touch(split / "real" / "train" / "a.mp4")
    touch(split / "real" / "test" / "a.mp4")
    touch(split / "fake" / "val" / "x.avi")
    recs = by_id(read_dataset("folder", split, dataset="mine"))
    assert recs["mine/original/raw/train__a"].split == "train"
    assert recs["mine/original/raw/test__a"].split == "test"
    assert recs["mine/fake/raw/val__x"].split == "val"

    first = tmp_path / "splitfirst"
    touch(first / "train" / "real" / "a.mp4")
    touch(first / "test" / "fake" / "b.mp4")
    recs = read_dataset("folder", first)
    assert {(r.split, r.label) for r in recs} == {("train", 0), ("test", 1)}


def test_folder_errors(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.mp4")
    # real/ alone is valid (real videos only: pseudo-fakes are made from them); fake/ alone is not
    assert [r.label for r in read_dataset("folder", tmp_path)] == [0]
    touch(tmp_path / "only_fake" / "fake" / "b.mp4")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "only_fake" / "real")):
        read_dataset("folder", tmp_path / "only_fake")
    (tmp_path / "fake").mkdir()
    (tmp_path / "real" / "a.mp4").unlink()
    with pytest.raises(ValueError, match="no video files"):
        read_dataset("folder", tmp_path)


# --------------------------------------------------------------------------- csv

def test_csv_manifest(tmp_path: Path) -> None:
    touch(tmp_path / "v" / "a.mp4")
    touch(tmp_path / "v" / "b.mp4")
    absolute = touch(tmp_path / "elsewhere" / "c.mp4")
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,split,method\n"
                        "v/a.mp4,real,train,\n"
                        "v/b.mp4,FAKE,validation,Face2Face\n"
                        f"{absolute},1,,\n"
                        "\n")
    recs = read_dataset("csv", manifest)
    assert [(r.label, r.split, r.method) for r in recs] == [(0, "train", "original"), (1, "val", "Face2Face"),
                                                            (1, "", "fake")]
    assert recs[0].path == tmp_path / "v" / "a.mp4" and recs[0].video_id == "list/original/raw/v__a"
    assert detect_layout(manifest) == "csv"
    assert read_dataset("auto", tmp_path)[0].path == recs[0].path  # folder with a single CSV


@pytest.mark.parametrize(("body", "match"), [
    ("path,label\nv/a.mp4,maybe\n", r"list.csv:2: label"),
    ("path,label\nv/a.mp4,0\nv/missing.mp4,1\n", r"list.csv:3: video .*missing.mp4"),
    ("path,label,split\nv/a.mp4,0,holdout\n", r"list.csv:2: unknown split"),
    ("path,label\nv/a.mp4,0\nv/a.mp4,0\n", r"list.csv:3: .*repeats line 2"),
    ("file,label\nv/a.mp4,0\n", r"list.csv:1: missing column"),
    ("path,label\n,0\n", r"list.csv:2: empty path"),
])
def test_csv_bad_rows_name_the_line(tmp_path: Path, body: str, match: str) -> None:
    touch(tmp_path / "v" / "a.mp4")
    (tmp_path / "list.csv").write_text(body)
    with pytest.raises(ValueError, match=match):
        read_dataset("csv", tmp_path / "list.csv")


# --------------------------------------------------------------------------- registry

def test_detect_layout_and_registry(tmp_path: Path) -> None:
    assert detect_layout(make_ffpp(tmp_path / "ff")) == "ffpp"
    assert detect_layout(make_celebdf(tmp_path / "cdf")) == "celebdf"
    assert detect_layout(make_dfdc(tmp_path / "dfdc")) == "dfdc"
    touch(tmp_path / "fo" / "real" / "a.mp4")
    touch(tmp_path / "fo" / "fake" / "a.mp4")
    assert detect_layout(tmp_path / "fo") == "folder"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="original_sequences"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing_root"):
        detect_layout(tmp_path / "missing_root")
    assert len(read_dataset("auto", tmp_path / "ff")) == len(read_ffpp(tmp_path / "ff"))
    with pytest.raises(ValueError, match="choose one of"):
        read_dataset("kinetics", tmp_path / "ff")
    with pytest.raises(ValueError, match="val_fraction"):
        read_dataset("ffpp", tmp_path / "ff", val_fraction=0.1)
    counts = summarize(read_dataset("ffpp", tmp_path / "ff"))
    assert counts["label"] == {"real": 5, "fake": 6}

"""Cache: atomic entries, memory-mapped reads, manifest, config guarding."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from forensight.cache import Cache, CacheConfigMismatch
from forensight.config import PreprocessConfig
from forensight.records import VideoRecord


def _record(name: str = "000", label: int = 0, method: str = "original") -> VideoRecord:
    return VideoRecord(path=Path(f"/data/{name}.mp4"), label=label, split="train", dataset="synthetic",
                       method=method, compression="c23", name=name)


def _arrays(t: int = 4) -> dict[str, np.ndarray]:
    return {"indices": np.arange(t), "timestamps": np.arange(t) / 25.0, "boxes": np.ones((t, 4), np.float32),
            "landmarks": np.zeros((t, 68, 2), np.float32), "observed": np.ones(t, bool)}


def test_write_and_mmap_read(tmp_path: Path) -> None:
    cfg = PreprocessConfig(regions=("full", "mouth"), size=32)
    cache = Cache.create(tmp_path / "c", cfg)
    crops = {"full": np.full((4, 32, 32, 3), 7, np.uint8), "mouth": np.full((4, 32, 32, 3), 9, np.uint8)}
    cache.write_entry(_record(), _arrays(), crops, {"num_frames": 4, "coverage": 1.0})
    entry = Cache.open(tmp_path / "c", expect_hash=cfg.hash).load("synthetic/original/c23/000")
    assert isinstance(entry.regions["full"], np.memmap)
    assert entry.regions["mouth"].shape == (4, 32, 32, 3) and int(entry.regions["mouth"][2, 0, 0, 0]) == 9
    assert len(entry) == 4 and entry.record.label == 0
    with pytest.raises(KeyError, match="not cached"):
        cache.load("synthetic/original/c23/000", regions=["eyes"])


def test_same_name_in_two_methods_never_merges(tmp_path: Path) -> None:
    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    for m in ("Deepfakes", "Face2Face"):
        cache.write_entry(_record("000_003", 1, m), _arrays(), {"full": np.zeros((4, 8, 8, 3), np.uint8)}, {})
    ids = cache.video_ids()
    assert ids == ["synthetic/Deepfakes/c23/000_003", "synthetic/Face2Face/c23/000_003"]


def test_config_mismatch_is_refused(tmp_path: Path) -> None:
    Cache.create(tmp_path, PreprocessConfig(size=224))
    with pytest.raises(CacheConfigMismatch, match="size: 224 != 112"):
        Cache.create(tmp_path, PreprocessConfig(size=112))
    with pytest.raises(CacheConfigMismatch, match="preprocess the videos again"):
        Cache.open(tmp_path, expect_hash=PreprocessConfig(size=112).hash)


def test_refuses_foreign_nonempty_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a forensight cache"):
        Cache.create(tmp_path, PreprocessConfig())
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_open_missing_cache_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="forensight preprocess"):
        Cache.open(tmp_path)


def test_failed_write_leaves_no_partial_entry(tmp_path: Path) -> None:
    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    with pytest.raises(ValueError, match="uint8"):
        cache.write_entry(_record(), _arrays(), {"full": np.zeros((4, 8, 8, 3), np.float32)}, {})
    assert not cache.is_done("synthetic/original/c23/000")
    assert list((tmp_path / "entries").iterdir()) == []


def test_leftover_tmp_dirs_are_cleaned_and_ignored(tmp_path: Path) -> None:
    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    junk = tmp_path / "entries" / ".tmp-synthetic__original__c23__000-abc"
    junk.mkdir()
    (junk / "indices.npy").write_bytes(b"half")
    assert cache.rows() == []
    assert cache.clean_partial() == 1 and not junk.exists()


def test_manifest_rows_and_failure_then_success(tmp_path: Path) -> None:
    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    rec = _record("001", 1, "Face2Face")
    cache.write_failure(rec, "no_face", "no face found in 32 frames")
    cache.write_manifest()
    text = (tmp_path / "manifest.csv").read_text()
    assert "failed,no_face" in text and "synthetic/Face2Face/c23/001" in text
    assert "no_face" in (tmp_path / "preprocess.log").read_text()
    with pytest.raises(KeyError, match="no face found"):
        cache.load(rec.video_id)
    cache.write_entry(rec, _arrays(), {"full": np.zeros((4, 8, 8, 3), np.uint8)}, {"num_frames": 4})
    rows = cache.rows()
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["label"] == 1
    assert not cache.is_failed(rec.video_id)
    meta = json.loads((tmp_path / "cache.json").read_text())
    assert meta["config_hash"] == cache.config.hash


def test_config_hash_is_stable_and_sensitive() -> None:
    a, b = PreprocessConfig(), PreprocessConfig()
    assert a.hash == b.hash and len(a.hash) == 12
    assert PreprocessConfig(regions=("full",)).hash != a.hash
    assert PreprocessConfig.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="unknown PreprocessConfig field"):
        PreprocessConfig.from_dict({"sizee": 3})
    with pytest.raises(ValueError, match="regions"):
        PreprocessConfig(regions=("nose",))


# ---- integrity: entry names, stored ids, owned temporary directories, old formats -------------------

def test_ids_that_differ_only_in_unsafe_characters_get_their_own_entries(tmp_path: Path) -> None:
    from forensight.records import safe_name

    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    names = ["clip 1", "clip-1", "视频1", "影片1"]
    for i, name in enumerate(names):
        crops = {"full": np.full((4, 8, 8, 3), i, np.uint8)}
        cache.write_entry(_record(name, label=i % 2), _arrays(), crops, {})
    ids = [f"synthetic/original/c23/{n}" for n in names]
    assert len({safe_name(v) for v in ids}) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{10}", safe_name(v)) for v in ids)
    assert safe_name("synthetic/original/c23/000").startswith("synthetic__original__c23__000-")
    assert sorted(cache.video_ids()) == sorted(ids)
    for i, vid in enumerate(ids):
        e = cache.load(vid)
        assert e.record.video_id == vid and e.record.label == i % 2
        assert int(e.regions["full"][0, 0, 0, 0]) == i


def test_load_refuses_an_entry_holding_another_id(tmp_path: Path) -> None:
    from forensight.cache import CacheEntryMismatch

    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    cache.write_entry(_record("a"), _arrays(), {"full": np.zeros((4, 8, 8, 3), np.uint8)}, {})
    a, b = "synthetic/original/c23/a", "synthetic/original/c23/b"
    cache.entry_dir(a).rename(cache.entry_dir(b))  # b's entry directory now holds a's data
    with pytest.raises(CacheEntryMismatch, match="holds video 'synthetic/original/c23/a', not the requested"):
        cache.load(b)
    with pytest.raises(CacheEntryMismatch):
        cache.is_done(b)


def test_clean_partial_keeps_live_owners_and_removes_dead_ones(tmp_path: Path) -> None:
    import subprocess
    import sys

    from forensight.cache import temp_dir_prefix

    cache = Cache.create(tmp_path, PreprocessConfig(regions=("full",), size=8))
    mine = temp_dir_prefix()
    assert mine.startswith(f".tmp-{os.getpid()}-")
    dead_proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_proc.wait()
    dead = mine.replace(f"-{os.getpid()}-", f"-{dead_proc.pid}-", 1)
    entries = tmp_path / "entries"
    live_dir, dead_dir = entries / f"{mine}abc123", entries / f"{dead}def456"
    foreign_new, foreign_old = entries / ".tmp-1234-other-host-x1", entries / ".tmp-1234-other-host-x2"
    for d in (live_dir, dead_dir, foreign_new, foreign_old):
        d.mkdir()
        (d / "indices.npy").write_bytes(b"half")
    two_days_ago = time.time() - 2 * 86400
    for p in (foreign_old / "indices.npy", foreign_old):
        os.utime(p, (two_days_ago, two_days_ago))
    assert cache.clean_partial() == 2
    assert live_dir.exists() and foreign_new.exists()  # someone is (or may be) writing them
    assert not dead_dir.exists() and not foreign_old.exists()
    os.utime(live_dir / "indices.npy", (two_days_ago, two_days_ago))
    os.utime(live_dir, (two_days_ago, two_days_ago))
    assert cache.clean_partial(max_age_s=86400) == 1 and not live_dir.exists()  # a day without change: stale


def test_cache_of_an_older_format_is_refused_with_advice(tmp_path: Path) -> None:
    from forensight.cache import FORMAT_VERSION, CacheFormatError

    cfg = PreprocessConfig(regions=("full",), size=8)
    Cache.create(tmp_path, cfg)
    meta = json.loads((tmp_path / "cache.json").read_text())
    assert meta["format"] == FORMAT_VERSION >= 2
    (tmp_path / "cache.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(CacheFormatError, match=r"older cache format \(1.*preprocess the videos again"):
        Cache.open(tmp_path)
    with pytest.raises(CacheFormatError, match="older cache format"):
        Cache.create(tmp_path, cfg)


# ---- pseudo-fake settings (provenance) ---------------------------------------------------------

_PSEUDO = {"kinds": ["sbi", "vb"], "per_video": 1, "region": "any", "sparsity": 0.5, "per_frame": False, "seed": 0}


def _pseudo_entry(cache: Cache, name: str, settings: dict) -> None:
    cache.write_entry(_record(name, 1, "pseudo_sbi"), _arrays(), {"full": np.zeros((4, 8, 8, 3), np.uint8)},
                      {"pseudo": {"source": "synthetic/original/c23/000", "config": settings}})


def test_pseudo_fake_settings_are_recorded_and_a_different_rerun_is_refused(tmp_path: Path) -> None:
    from forensight.cache import PseudoFakeSettingsMismatch

    cfg = PreprocessConfig(regions=("full",), size=8)
    cache = Cache.create(tmp_path, cfg, pseudo_fakes={**_PSEUDO, "kinds": ("sbi", "vb")})  # tuples stored as lists
    header = json.loads((tmp_path / "cache.json").read_text())
    assert header["pseudo_fakes"] == _PSEUDO and header["config_hash"] == cfg.hash  # provenance, not in the hash
    assert Cache.open(tmp_path, expect_hash=cfg.hash).pseudo_fakes == _PSEUDO == cache.pseudo_fakes
    Cache.create(tmp_path, cfg, pseudo_fakes=_PSEUDO)  # the same settings: a resume, fine
    Cache.create(tmp_path, cfg)  # no pseudo-fakes asked (real videos only): fine, settings kept
    for change, named in (({"seed": 1}, "seed: 0 != 1"), ({"per_video": 2}, "per_video: 1 != 2"),
                          ({"kinds": ["vb"]}, "kinds: ['sbi', 'vb'] != ['vb']"), ({"region": "mouth"}, "region"),
                          ({"sparsity": 0.25}, "sparsity"), ({"per_frame": True}, "per_frame")):
        with pytest.raises(PseudoFakeSettingsMismatch, match=re.escape(named)):
            Cache.create(tmp_path, cfg, pseudo_fakes={**_PSEUDO, **change})
        assert json.loads((tmp_path / "cache.json").read_text()) == header  # nothing written
    with pytest.raises(CacheConfigMismatch):  # it is a config mismatch, so callers that catch those catch it
        Cache.create(tmp_path, cfg, pseudo_fakes={**_PSEUDO, "seed": 3})


def test_an_older_cache_without_the_settings_stays_readable_and_is_checked_from_its_entries(tmp_path: Path) -> None:
    from forensight.cache import PseudoFakeSettingsMismatch

    cfg = PreprocessConfig(regions=("full",), size=8)
    cache = Cache.create(tmp_path / "old", cfg)  # as written before the settings were recorded
    _pseudo_entry(cache, "000_p0", _PSEUDO)
    header = json.loads((tmp_path / "old" / "cache.json").read_text())
    assert "pseudo_fakes" not in header
    old = Cache.open(tmp_path / "old")
    assert old.pseudo_fakes is None and len(old.video_ids()) == 1
    with pytest.raises(PseudoFakeSettingsMismatch, match=re.escape("seed: 0 != 7")):
        Cache.create(tmp_path / "old", cfg, pseudo_fakes={**_PSEUDO, "seed": 7})
    assert json.loads((tmp_path / "old" / "cache.json").read_text()) == header
    Cache.create(tmp_path / "old", cfg, pseudo_fakes=_PSEUDO)  # agrees with its entries: recorded now
    assert Cache.open(tmp_path / "old").pseudo_fakes == _PSEUDO
    # an older cache whose entries already disagree cannot record one
    mixed = Cache.create(tmp_path / "mixed", cfg)
    _pseudo_entry(mixed, "000_p0", _PSEUDO)
    _pseudo_entry(mixed, "001_p0", {**_PSEUDO, "seed": 2})
    with pytest.raises(PseudoFakeSettingsMismatch, match="2 different settings"):
        Cache.create(tmp_path / "mixed", cfg, pseudo_fakes=_PSEUDO)
    # a cache with no pseudo-fakes yet takes the first settings asked
    plain = Cache.create(tmp_path / "plain", cfg)
    plain.write_entry(_record(), _arrays(), {"full": np.zeros((4, 8, 8, 3), np.uint8)}, {})
    assert Cache.create(tmp_path / "plain", cfg, pseudo_fakes=_PSEUDO).pseudo_fakes == _PSEUDO

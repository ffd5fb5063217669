"""A full disk: every writer meets ENOSPC on a real, size-limited file system (a tmpfs mounted here;
the tests run as root, as in CI) and leaves nothing half-written, says what it was writing and how
much room it needed, and a rerun after space is freed finishes with the result of a run that
never failed.

Covered: the atomic write itself and a model file (training exports), preprocessing into a cache,
the frozen-feature cache, ``detect --report`` and the web app's uploads and jobs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import moving_face_frames

from forensight.cache import Cache
from forensight.config import PreprocessConfig, get_model_config
from forensight.io import DiskFullError, atomic_write_bytes, free_bytes
from forensight.modelfile import load_model_file, save_model_file
from forensight.models.registry import build_model
from forensight.preprocess import run_preprocess
from forensight.records import VideoRecord
from forensight.video import write_video

PP = PreprocessConfig(num_frames=8, regions=("full",), size=64)
PAGE = 4096


class SmallDisk:
    """A tmpfs of ``size`` bytes mounted at ``root``; :meth:`leave_free` fills it with a ballast file
    so that only so many bytes stay free, :meth:`free_up` deletes the ballast (space is freed)."""

    def __init__(self, root: Path, size: int) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(root)],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            pytest.fail(f"these tests mount a small tmpfs and need root (as in CI): mount said {r.stderr.strip()}")
        self.ballast = root / f".ballast-{uuid.uuid4().hex}"

    def leave_free(self, nbytes: int) -> None:
        self.free_up()
        fill = (free_bytes(self.root) or 0) - nbytes
        if fill > 0:
            with open(self.ballast, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, fill)
        assert abs((free_bytes(self.root) or 0) - nbytes) <= 2 * PAGE

    def free_up(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True, check=False)


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    d = SmallDisk(tmp_path / "small", 16 * 2**20)
    try:
        yield d
    finally:
        d.close()


def _leftovers(root: Path) -> list[str]:
    """Temporary files and folders of interrupted writes anywhere under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith(".tmp") or p.name.startswith(".tmp-") or p.name.endswith(".part"))


# ---- the atomic write, and a model file -------------------------------------------------------

def test_a_full_disk_keeps_the_previous_file_and_says_what_and_how_much(disk: SmallDisk, tmp_path: Path) -> None:
    target = disk.root / "scores.bin"
    atomic_write_bytes(target, b"previous")
    disk.leave_free(64 * 1024)
    with pytest.raises(DiskFullError) as err:
        atomic_write_bytes(target, b"x" * 300_000, what="score file")
    e = err.value
    assert e.errno == 28 and e.needed_bytes == 300_000 and e.free_bytes is not None and e.free_bytes < 300_000
    msg = str(e)
    assert "could not write score file" in msg and str(target) in msg and "it needs 293.0 KiB" in msg
    assert "free on its file system" in msg and "Free at least" in msg
    assert target.read_bytes() == b"previous" and _leftovers(disk.root) == []

    # a model file (what training exports): torch.save reports no errno; still a DiskFullError
    mc = get_model_config("region_tiny_attention")
    torch.manual_seed(0)
    model = build_model(mc, pretrained=False)
    ref = save_model_file(tmp_path / "model.pt", model, mc, PP, train_cfg=None, threshold=0.25,
                          val_metrics={"auc": 0.5})
    disk.leave_free(ref.stat().st_size // 3)
    out = disk.root / "run" / "model.pt"
    out.parent.mkdir()
    with pytest.raises(DiskFullError, match=r"could not write .*model\.pt: it needs more than"):
        save_model_file(out, model, mc, PP, train_cfg=None, threshold=0.25, val_metrics={"auc": 0.5})
    assert list(out.parent.iterdir()) == []  # no model file, no temporary file
    disk.free_up()
    save_model_file(out, model, mc, PP, train_cfg=None, threshold=0.25, val_metrics={"auc": 0.5})
    a, b = load_model_file(ref), load_model_file(out)
    assert a.threshold == b.threshold and a.preprocess.hash == b.preprocess.hash
    assert all(torch.equal(a.payload["state_dict"][k], v) for k, v in b.payload["state_dict"].items())


# ---- preprocessing and the feature cache ------------------------------------------------------

def _videos(folder: Path, n: int) -> list[VideoRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        path = folder / f"v{i}.mp4"
        write_video(path, moving_face_frames(16, size=(160, 128), seed=i), fps=25)
        recs.append(VideoRecord(path=path, label=i % 2, split="train", dataset="t", method="m",
                                compression="raw", name=f"v{i}"))
    return recs


def _entry_size(entry: Path) -> int:
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in entry.iterdir())


@pytest.mark.slow
def test_preprocessing_and_features_stop_on_a_full_disk_and_resume_to_the_same_result(
        disk: SmallDisk, tmp_path: Path) -> None:
    recs = _videos(tmp_path / "videos", n=2)
    ref = run_preprocess(recs, tmp_path / "ref-cache", PP, progress=False)
    assert ref.done == 2
    ref_cache = Cache.open(tmp_path / "ref-cache")
    entry = _entry_size(ref_cache.entry_dir(recs[0].video_id))

    root = disk.root / "cache"
    Cache.create(root, PP)
    disk.leave_free(int(1.5 * entry))  # room for one entry, not two
    with pytest.raises(DiskFullError) as err:
        run_preprocess(recs, root, PP, progress=False)
    msg = str(err.value)
    assert "could not write cache entry for t/m/raw/v1" in msg and "it needs" in msg and "free" in msg
    cache = Cache.open(root)
    assert [r["video_id"] for r in cache.rows()] == ["t/m/raw/v0"]  # the finished one, nothing else
    assert not any(cache.failed_dir.iterdir())  # the victim is NOT recorded as failed: the rerun takes it
    assert _leftovers(root) == []

    disk.free_up()
    again = run_preprocess(recs, root, PP, progress=False)
    assert (again.done, again.skipped, again.failed) == (1, 1, 0)
    for r in recs:
        a, b = ref_cache.load(r.video_id), cache.load(r.video_id)
        for k in ("indices", "timestamps", "boxes", "landmarks", "observed"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        np.testing.assert_array_equal(a.regions["full"], b.regions["full"])

    # the frozen-feature cache beside it: the same story
    from forensight.features import build_features

    mc = get_model_config("region_lite0_attention", region="full", input_size=64)
    torch.manual_seed(0)
    model = build_model(mc)
    fc_ref, _ = build_features(ref_cache, mc, model)
    one = fc_ref.path(recs[0].video_id).stat().st_size
    disk.leave_free(int(1.5 * -(-one // PAGE) * PAGE) + 2 * PAGE)
    with pytest.raises(DiskFullError, match=r"could not write feature file of t/m/raw/v1 .*it needs"):
        build_features(cache, mc, model)
    assert _leftovers(root) == []
    disk.free_up()
    fc, stats = build_features(cache, mc, model)
    assert (stats.reused, stats.encoded) == (1, 1)
    for r in recs:
        np.testing.assert_array_equal(fc.load(r.video_id), fc_ref.load(r.video_id))


# ---- detect --report ------------------------------------------------------------------------

@pytest.mark.slow
def test_detect_report_on_a_full_disk_stops_cleanly_and_the_rerun_writes_the_same(
        disk: SmallDisk, tmp_path: Path) -> None:
    from forensight.cli import main as cli_main

    recs = _videos(tmp_path / "videos", n=1)
    mc = get_model_config("region_tiny_attention")
    torch.manual_seed(0)
    model_path = save_model_file(tmp_path / "model.pt", build_model(mc, pretrained=False), mc, PP, train_cfg=None,
                                 threshold=0.0, val_metrics={"auc": 0.5})
    videos = [str(r.path) for r in recs]
    assert cli_main(["detect", "--model", str(model_path), *videos, "--report", str(tmp_path / "ref"), "-q"]) == 0
    out = disk.root / "report"
    disk.leave_free(48 * 1024)  # less than one page with its pictures
    code = cli_main(["detect", "--model", str(model_path), *videos, "--report", str(out), "-q"])
    assert code == 3
    assert _leftovers(disk.root) == [] and not (out / "index.html").exists()
    disk.free_up()
    assert cli_main(["detect", "--model", str(model_path), *videos, "--report", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "ref").iterdir())
    for page in (tmp_path / "ref").glob("*.json"):
        a, b = json.loads(page.read_text()), json.loads((out / page.name).read_text())
        assert (a["p_fake"], a["logit"], a["verdict"]) == (b["p_fake"], b["logit"], b["verdict"])


def test_the_cli_says_what_was_written_on_a_full_disk(disk: SmallDisk, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The message a user sees (exit status 3) for a full disk at the very first write of a cache."""
    from forensight.cli import main as cli_main

    for label in ("real", "fake"):
        write_video(tmp_path / "videos" / label / "a.mp4", moving_face_frames(4, size=(64, 64)), fps=25)
    disk.leave_free(0)
    code = cli_main(["preprocess", str(tmp_path / "videos"), "--layout", "folder",
                     "--out", str(disk.root / "cache"), "-q"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "disk full: could not write the cache header" in err and "free on its file system" in err
    assert "Traceback" not in err


# ---- the web app --------------------------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("free", "says"), [(128 * 1024, "the upload could not be stored"),
                                            (0, "the job table could not be written")])
def test_an_upload_meeting_a_full_disk_is_refused_with_507_and_nothing_kept(disk: SmallDisk, tmp_path: Path,
                                                                            free: int, says: str) -> None:
    """The upload's own bytes fill the disk (128 KiB free, a 200 KB video), or the job table cannot
    be written at all (0 free): both answer 507 ``disk_full``, keep nothing, and work once freed."""
    from fastapi.testclient import TestClient
    from serve_load import make_face_video, make_tiny_model

    from forensight.serve import ServeConfig, create_app
    from forensight.serve.models import load_models

    model = make_tiny_model(tmp_path / "m" / "model.pt")
    video = make_face_video(tmp_path / "face.mp4", num_frames=120)
    body = video.read_bytes()
    entries = load_models([model])
    cfg = ServeConfig(models=[str(model)], data_dir=disk.root / "data", workers=0, queue_size=4)
    with TestClient(create_app(cfg, models=entries), base_url="http://127.0.0.1:8000",
                    raise_server_exceptions=False) as c:
        assert len(body) > free + 32 * 1024
        disk.leave_free(free)
        r = c.post("/api/jobs", files={"file": ("face.mp4", body, "video/mp4")})
        assert r.status_code == 507, r.text
        err = r.json()["error"]
        assert err["reason"] == "disk_full" and "disk is full" in err["message"] and "MiB" in err["message"]
        assert says in err["message"]
        assert str(disk.root) not in err["message"]  # server paths stay on the server
        assert list((disk.root / "data" / "incoming").iterdir()) == []
        assert list((disk.root / "data" / "jobs").iterdir()) == []
        disk.free_up()
        assert c.get("/api/jobs").json()["jobs"] == []  # no job was half-created
        r = c.post("/api/jobs", files={"file": ("face.mp4", body, "video/mp4")})
        assert r.status_code == 202, r.text
        assert [j["id"] for j in c.get("/api/jobs").json()["jobs"]] == [r.json()["id"]]


def test_a_job_whose_report_meets_a_full_disk_fails_disk_full_with_nothing_half_written(
        disk: SmallDisk, tmp_path: Path) -> None:
    """A worker scoring a job on a full disk: the job fails with ``disk_full`` (what, how much), and
    the job folder keeps neither a partial report nor a result; the upload stays for a retry."""
    from serve_load import make_face_video, make_tiny_model

    from forensight.serve.layout import DataDir
    from forensight.serve.store import JobStore, new_job_id
    from forensight.serve.worker import JobRunner, WorkerSpec

    model = make_tiny_model(tmp_path / "m" / "model.pt")
    layout = DataDir(disk.root / "data").create()
    store = JobStore(layout.db)
    job_id = new_job_id()
    layout.job_dir(job_id).mkdir()
    make_face_video(tmp_path / "face.mp4", num_frames=32)  # its report page is about 450 KB
    layout.video(job_id).write_bytes((tmp_path / "face.mp4").read_bytes())
    store.create(job_id, "face.mp4", "tiny", layout.video(job_id).stat().st_size, queue_size=4)
    job = store.claim_next(os.getpid())
    assert job is not None
    runner = JobRunner(WorkerSpec(slot=0, data_dir=str(layout.root), models={"tiny": str(model)}), store, layout)
    disk.leave_free(160 * 1024)  # room for the job table's writes, not for the report page
    runner.run(job)
    done = store.get(job_id)
    assert done is not None and (done.status, done.reason) == ("failed", "disk_full")
    assert "the server's disk is full: could not write report file" in done.message and "MiB free" in done.message
    assert not layout.report_dir(job_id).exists() and not layout.result(job_id).exists()
    assert layout.video(job_id).is_file() and _leftovers(layout.root) == []

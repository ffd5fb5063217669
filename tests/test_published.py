"""Published checkpoints as detectors and portable model folders.

A file in the official LipForensics format (``{"model": state_dict}``, the real-size model filled
by the deterministic filler of ``tests/lipforensics_fill.py``) imports as a ready detector whose
logits are the official architecture's on the same input (the parity reference of
``tests/data/lipforensics/reference_logits.json``, and the official model run on the crops
``detect`` and ``serve`` cut); wrong keys / shapes and pickled files are refused; model folders
round-trip a training run with identical scores and never execute code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.cli import main as cli_main
from forensight.config import LIPFORENSICS_MEAN, LIPFORENSICS_STD, DetectConfig
from forensight.detect import DetectionResult, ForensightDetector, ModelLoadError, load_detector
from forensight.html_report import write_index, write_video_report
from forensight.modelfile import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    IncompatibleModelFile,
    LoadedModel,
    ModelFileNotFound,
    NotAModelFile,
    UnsafeModelFile,
    export_model,
    file_sha256,
    import_published,
    load_model_file,
    save_model_file,
)
from forensight.models.lipforensics import LipForensics
from forensight.models.published import PUBLISHED
from forensight.result import format_results

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lipforensics_fill import fill_state_dict, reference_input
from serve_load import make_tiny_model

DATA = Path(__file__).parent / "data" / "lipforensics"
DOCS = Path(__file__).resolve().parents[1] / "docs"
TOL = 1e-4


class _Evil:
    """Unpickling this would create a marker file: proves a refused file never ran code."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def official() -> LipForensics:
    """The official architecture (mean pooling, as published) with the filler's weights."""
    model = LipForensics(pooling="mean")
    model.load_state_dict(fill_state_dict({k: v.shape for k, v in model.state_dict().items()}))
    return model.eval()


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory, official: LipForensics) -> Path:
    path = tmp_path_factory.mktemp("published") / "lipforensics_ff.pth"
    torch.save({"model": official.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def imported_dir(tmp_path_factory: pytest.TempPathFactory, official_file: Path) -> Path:
    out = tmp_path_factory.mktemp("models") / "lipforensics_ff"
    rc = cli_main(["import", str(official_file), "--out", str(out)])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def imported(imported_dir: Path) -> ForensightDetector:
    return load_detector(imported_dir, device="cpu")


def _official_logit(model: LipForensics, mouths: np.ndarray) -> float:
    """The official model on 88-px mouth crops ``(25, 88, 88, 1)`` uint8: ``x / 255`` normalised
    with the LipForensics mean / std, as ``(1, 1, T, 88, 88)``."""
    x = mouths[..., 0].astype(np.float32) / 255.0
    x = (x - LIPFORENSICS_MEAN[0]) / LIPFORENSICS_STD[0]
    with torch.inference_mode():
        return float(model.forward_official(torch.from_numpy(x)[None, None]).logits[0])


# ---- import: parity, card, threshold --------------------------------------------------------

@pytest.fixture(scope="module")
def face_result(imported: ForensightDetector, face_video: Path) -> DetectionResult:
    """The imported detector on a 40-frame face video (one 25-frame clip), keeping the 88-px crops
    the model read for every scored frame (``top_k`` = all frames)."""
    det = ForensightDetector(imported.loaded, DetectConfig(device="cpu", top_k=40))
    res = det.predict(face_video, name="face.mp4")
    assert res.status == "ok", res.message
    return res


def test_import_scores_like_the_official_architecture(imported: ForensightDetector, official_file: Path,
                                                      official: LipForensics) -> None:
    ref = json.loads((DATA / "reference_logits.json").read_text())
    with torch.inference_mode():
        out = imported.model.forward_official(reference_input(), [20, 25])
    torch.testing.assert_close(out.logits, torch.tensor(ref["logits_with_lengths_20_25"]), atol=TOL, rtol=0)
    # detect --model lipforensics_ff.pth imports in memory: the same weights as the folder
    in_memory = load_model_file(official_file)
    assert in_memory.kind == "imported" and in_memory.source == imported.loaded.source
    folder_sd = imported.loaded.model.state_dict()
    assert all(torch.equal(v, folder_sd[k]) for k, v in in_memory.model.state_dict().items())
    # the detector's own scoring path (crop, normalisation, batching) on 96-px mouths
    lips = np.random.default_rng(0).integers(0, 256, (25, 96, 96, 1), dtype=np.uint8)
    logits, _, _, _ = imported._run(lips, np.arange(25), [(0, 25)])
    assert logits[0] == pytest.approx(_official_logit(official, lips[:, 4:92, 4:92]), abs=TOL)


def test_imported_model_card_threshold_and_hash(imported: ForensightDetector, imported_dir: Path,
                                                official_file: Path) -> None:
    lm = imported.loaded
    assert lm.kind == "folder" and lm.threshold == 0.0 and lm.temperature is None
    assert lm.threshold_info["calibrated"] is False and lm.threshold_source.startswith("UNCALIBRATED")
    assert lm.preprocess.sampling == "all" and lm.preprocess.lips_smooth_mode == "forward"
    assert lm.input_spec.clip_len == 25 and lm.input_spec.size == 88
    sha = file_sha256(official_file)
    assert lm.source == {"kind": "published", "name": "lipforensics_ff", "file": "lipforensics_ff.pth", "sha256": sha}
    card = lm.trained_on
    assert card["reported"] == {"Celeb-DF-v2": 82.4, "DFDC": 73.5, "FaceShifter": 97.1, "DeeperForensics": 97.6}
    assert "not trained by this installation" in card["trained_by"] and "Lips Don't Lie" in card["citation"]
    assert card["methods"] == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    assert card["compression"] == "c23" and card["sha256"] == sha and card["sha256_verified"] is False
    assert lm.payload["evaluate_options"] == {"max_frames": 110}
    cfg = json.loads((imported_dir / CONFIG_FILE).read_text())
    assert cfg["weights_sha256"] == file_sha256(imported_dir / WEIGHTS_FILE)
    readme = (imported_dir / "README.md").read_text()
    for words in ("not trained by this installation", "UNCALIBRATED", "| Celeb-DF-v2 | 82.4 |", sha,
                  "## Intended use", "## Limitations"):
        assert words in readme, words


def test_what_a_user_sees_names_source_and_uncalibrated_threshold(face_result: DetectionResult,
                                                                   official: LipForensics, tmp_path: Path) -> None:
    res = face_result
    # detect's clip logit = the official model on the crops detect cut (every scored frame's crop)
    crops = res.artifacts["crops"]
    for c in res.clips:
        clip = np.stack([crops[i] for i in range(c.start_frame, c.end_frame + 1)])
        assert c.logit == pytest.approx(_official_logit(official, clip), abs=TOL)
    table = format_results([res])
    assert "published checkpoint lipforensics_ff" in table and "UNCALIBRATED" in table
    assert "not trained by this installation" in table
    doc = res.to_dict()
    assert doc["model"]["source"]["kind"] == "published" and doc["model"]["threshold_calibrated"] is False
    assert "UNCALIBRATED" in doc["model"]["warning"]
    page = write_video_report(res, tmp_path / "rep")
    index = write_index([res], tmp_path / "rep")
    html = page.read_text()
    assert "published checkpoint lipforensics_ff" in html and "UNCALIBRATED" in html
    assert "not trained by this installation" in html and "UNCALIBRATED" in index.read_text()
    _screenshot(page)


def _screenshot(page: Path) -> None:
    """docs/published_report.png (only with FORENSIGHT_WRITE_DOCS=1 and chromium installed)."""
    import os
    import tempfile

    if os.environ.get("FORENSIGHT_WRITE_DOCS") != "1" or shutil.which("chromium") is None:
        return
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={DOCS / 'published_report.png'}",
                        "--window-size=1280,1700", page.resolve().as_uri()], check=True, capture_output=True,
                       timeout=90)


def test_serve_scores_an_imported_folder_like_detect(imported_dir: Path, face_result: DetectionResult,
                                                     face_video: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from serve_load import wait_for

    from forensight.serve import ServeConfig, create_app
    from forensight.serve.models import load_models

    entries = load_models([imported_dir])
    assert entries[0].id == "lipforensics_ff"
    label = entries[0].label()
    assert "published weights" in label and "UNCALIBRATED" in label
    cfg = ServeConfig(models=[str(entries[0].path)], data_dir=tmp_path / "data", workers=1)
    with TestClient(create_app(cfg, models=entries), base_url="http://127.0.0.1:8000") as c:
        api = c.get("/api/models").json()["models"][0]
        assert api["source"]["kind"] == "published" and api["threshold_calibrated"] is False
        assert "published weights" in c.get("/").text
        r = c.post("/api/jobs", files={"file": ("face.mp4", face_video.read_bytes(), "video/mp4")})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        job = wait_for(lambda: (j := c.get(f"/api/jobs/{job_id}").json())["status"] in ("done", "failed") and j,
                       what="the job", timeout_s=240)
        assert job["status"] == "done", job
        res = job["result"]
        report = c.get(job["links"]["report"]).text
    direct = face_result
    assert res["logit"] == pytest.approx(direct.logit, abs=1e-5)
    assert [c["logit"] for c in res["clips"]] == pytest.approx([c.logit for c in direct.clips], abs=1e-5)
    assert "UNCALIBRATED" in report and "published checkpoint" in report


# ---- refusals ------------------------------------------------------------------------------

def test_wrong_keys_and_shapes_are_refused_with_the_list(official: LipForensics, tmp_path: Path) -> None:
    sd = dict(official.state_dict())
    sd["tcn.tcn_output.weight"] = torch.zeros(2, 768)
    del sd["trunk.layer1.0.conv1.weight"]
    sd["tcn.extra.bias"] = torch.zeros(3)
    bad = tmp_path / "lipforensics_ff.pth"
    torch.save({"model": sd}, bad)
    for call in (lambda: import_published(bad), lambda: load_detector(bad)):
        with pytest.raises(IncompatibleModelFile) as err:
            call()
        msg = str(err.value)
        assert "1 missing, 1 unexpected, 1 shape mismatches" in msg
        assert "trunk.layer1.0.conv1.weight" in msg and "tcn.extra.bias" in msg
        assert "tcn.tcn_output.weight: (2, 768) vs (1, 768)" in msg
    out = tmp_path / "out"
    assert cli_main(["import", str(bad), "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.glob(".*tmpdir"))


def test_pickled_files_are_refused_never_run(official: LipForensics, imported_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    _Evil.marker = str(marker)
    evil = tmp_path / "lipforensics_ff.pth"
    torch.save({"model": {"frontend3D.0.weight": official.state_dict()["frontend3D.0.weight"]}, "x": _Evil()}, evil)
    with pytest.raises(UnsafeModelFile, match="refusing"):
        import_published(evil)
    with pytest.raises(UnsafeModelFile, match="refusing"):
        load_detector(evil)
    # a folder whose weights are a pickle (renamed .safetensors, or named model.pt in config.json)
    folder = tmp_path / "folder"
    shutil.copytree(imported_dir, folder)
    torch.save({"x": _Evil()}, folder / WEIGHTS_FILE)
    with pytest.raises(UnsafeModelFile, match="pickled"):
        load_detector(folder)
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    cfg["weights"] = "model.pt"
    (folder / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(UnsafeModelFile, match="must be a .safetensors"):
        load_detector(folder)
    assert not marker.exists()


def test_folder_tampering_and_overwrite_are_refused(imported_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(imported_dir, folder)
    with open(folder / WEIGHTS_FILE, "r+b") as fh:  # flip one byte of a tensor
        fh.seek(-5, 2)
        b = fh.read(1)
        fh.seek(-5, 2)
        fh.write(bytes([b[0] ^ 1]))
    with pytest.raises(IncompatibleModelFile, match="SHA-256 differs"):
        load_model_file(folder)
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(NotAModelFile, match="not readable JSON"):
        load_model_file(folder)
    before = {p.name: p.read_bytes() for p in imported_dir.iterdir() if p.name != WEIGHTS_FILE}
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_model(imported_dir, imported_dir)
    assert before == {p.name: p.read_bytes() for p in imported_dir.iterdir() if p.name != WEIGHTS_FILE}


def test_missing_published_file_says_where_to_get_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     face_video: Path) -> None:
    missing = tmp_path / "lipforensics_ff.pth"
    with pytest.raises(ModelFileNotFound, match="github.com/ahaliassos/LipForensics"):
        import_published(missing)
    assert cli_main(["detect", str(face_video), "--model", str(missing), "-q"]) == 2
    assert "github.com/ahaliassos/LipForensics" in capsys.readouterr().err
    assert cli_main(["models", "--published"]) == 0
    out = capsys.readouterr().out
    entry = PUBLISHED["lipforensics_ff"]
    assert "lipforensics_ff.pth" in out and "Lips Don't Lie" in out and entry.url in out
    assert "sha256:   unknown" in out and "Nothing is downloaded" in out


# ---- portable folders from a training run ----------------------------------------------------

def test_run_to_folder_round_trip_gives_identical_scores(tmp_path: Path, face_video: Path) -> None:
    from forensight.modelcard import SYNTHETIC_WARNING

    run = make_tiny_model(tmp_path / "run" / "model.pt").parent
    # give it a synthetic-only card and a temperature, as train / evaluate --calibrate write them
    payload = torch.load(run / "model.pt", weights_only=True)
    lm = load_model_file(run)
    card = {"datasets": {"synthetic": 8}, "methods": {"Face2Face": 4, "original": 4},
            "videos": {"train": {"real": 2, "fake": 2}, "val": {"real": 2, "fake": 2}}, "synthetic_only": True,
            "trained_at": "2026-12-07T00:00:00Z", "cache": "c", "preprocess_hash": lm.preprocess_hash}
    save_model_file(run / "model.pt", lm.model, lm.model_config, lm.preprocess, None, 0.125,
                    {"auc": 0.75, "auc_ci": [0.5, 1.0], "n": 4, "n_real": 2, "n_fake": 2},
                    extra={"trained_on": card, "temperature": 2.5, "calibration": {"fitted_on": "the validation split",
                                                                                  "videos": 4}})
    assert payload["format"] == "forensight-model-v1"
    out = tmp_path / "shared" / "tiny"
    assert cli_main(["export", "--model", str(run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / CONFIG_FILE).read_text())
    assert cfg["threshold"] == 0.125 and cfg["temperature"] == 2.5
    assert cfg["model_config"]["arch"] == "region" and cfg["input_spec"]["region"] == "full"
    assert cfg["preprocess"]["num_frames"] == 8 and cfg["preprocess_hash"] == lm.preprocess_hash
    readme = (out / "README.md").read_text()
    assert SYNTHETIC_WARNING in readme and "0.750" in readme and "0.500–1.000" in readme
    a = load_detector(run, device="cpu").predict(face_video).to_dict()
    b = load_detector(out, device="cpu").predict(face_video).to_dict()
    assert a["status"] == b["status"] == "ok"
    for key in ("logit", "p_fake", "verdict", "clips", "frames", "threshold", "threshold_p"):
        assert a[key] == b[key], key
    assert b["model"]["kind"] == "folder" and b["model"]["warning"] == SYNTHETIC_WARNING
    # and folder → folder again is byte-identical weights
    export_model(out, tmp_path / "again")
    assert file_sha256(tmp_path / "again" / WEIGHTS_FILE) == file_sha256(out / WEIGHTS_FILE)


def test_foreign_files_are_not_mistaken_for_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "foreign.pt"
    torch.save({"format": "something-else", "n": 3}, junk)
    with pytest.raises(NotAModelFile, match="not a forensight model file"):
        load_model_file(junk)
    with pytest.raises(ModelLoadError, match="neither a finished training run"):
        load_detector(tmp_path)


@pytest.fixture(scope="module")
def tiny_loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model_file(make_tiny_model(tmp_path_factory.mktemp("tiny") / "run" / "model.pt"))


@settings(max_examples=12, deadline=None)
@given(threshold=st.floats(-50, 50, allow_nan=False), temperature=st.one_of(st.none(), st.floats(0.05, 50)),
       logit=st.floats(-30, 30, allow_nan=False))
def test_folder_keeps_threshold_and_temperature_exactly(tiny_loaded: LoadedModel,
                                                        tmp_path_factory: pytest.TempPathFactory,
                                                        threshold: float, temperature: float | None,
                                                        logit: float) -> None:
    from forensight.modelfile import save_model_folder

    out = tmp_path_factory.mktemp("prop") / "m"
    save_model_folder(tiny_loaded, out, threshold=threshold, temperature=temperature)
    back = load_model_file(out)
    assert back.threshold == threshold and back.temperature == temperature
    assert back.p_fake(logit) == pytest.approx(
        float(torch.sigmoid(torch.tensor(logit / (temperature or 1.0), dtype=torch.float64))), abs=1e-12)
    if logit >= threshold:  # monotone (not strictly, in floating point): a fake verdict never has a lower P
        assert back.p_fake(logit) >= back.p_fake(threshold)
    assert back.preprocess.hash == tiny_loaded.preprocess.hash and back.model_config == tiny_loaded.model_config


def test_legacy_format_official_file_imports(official: LipForensics, tmp_path: Path) -> None:
    """A checkpoint saved by torch < 1.6 (not a zip archive) is read too, still without running code."""
    path = tmp_path / "lipforensics_ff.pth"
    torch.save({"model": official.state_dict()}, path, _use_new_zipfile_serialization=False)
    lm = load_model_file(path)
    assert lm.kind == "imported" and lm.source["sha256"] == file_sha256(path)
    assert all(torch.equal(v, official.state_dict()[k]) for k, v in lm.model.state_dict().items())

"""Spatial evidence maps (Grad-CAM through the model protocol): shapes, one scoring path, mapping
back to frame pixels, the randomised-weights sanity check, detect/JSON, bad inputs."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from conftest import moving_face_frames, require_chromium
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forensight import explain, scoring
from forensight.config import DetectConfig, PreprocessConfig, get_model_config
from forensight.datasets.clips import clip_item, collate_clips
from forensight.detect import ForensightDetector, load_detector
from forensight.explain import (
    area_mask,
    area_scores,
    grad_cam,
    map_to_frame,
    overlay,
    resize_map,
    summarise_area_scores,
    unit_square_affine,
    video_area_scores,
    video_maps,
)
from forensight.modelfile import save_model_file
from forensight.models import SpatialDetector
from forensight.models.registry import build_model, create_model, inference_model
from forensight.records import FaceTrack
from forensight.regions import (
    align_lips,
    crop_box,
    crop_to_frame,
    region_box,
    smooth_lips_landmarks,
    snap_box,
)
from forensight.result import DetectionResult

TINY_PP = PreprocessConfig(num_frames=8, regions=("full",), size=64)


def _input(model: nn.Module, b: int, t: int) -> torch.Tensor:
    spec = model.input_spec
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, t, spec.channels, spec.size, spec.size, generator=g)


# ---- the protocol: every registered architecture, one code path ---------------------------------

@pytest.mark.parametrize("name", ["region_tiny_attention", "region_tiny_control", "region_mobile_attention",
                                  "region_lite0_control", "region_b1_attention", "lipforensics",
                                  "lipforensics_attention"])
def test_every_preset_follows_the_spatial_protocol(name: str) -> None:
    model = create_model(name, pretrained=False)
    fast = inference_model(model, get_model_config(name))
    for m in (model, fast):
        assert isinstance(m, SpatialDetector)
        assert isinstance(explain.cam_layer(m), nn.Module)


@pytest.mark.parametrize("name, overrides, t", [
    ("region_tiny_attention", {"input_size": 48}, 6),
    ("region_lite0_attention", {"input_size": 64}, 3),
    ("lipforensics_attention", {}, 5),
])
def test_grad_cam_shapes_padding_and_logits(name: str, overrides: dict, t: int) -> None:
    """Region and LipForensics models (the fast eval copy too) through the same function: maps
    ``(B, T, h, w)`` >= 0, exactly 0 on padded frames, logits equal to the plain forward's."""
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, **overrides).eval()
    fast = inference_model(model, get_model_config(name))
    x = _input(model, 2, t)
    lengths = torch.tensor([t, t - 2])
    for m in (model, fast):
        out, maps = grad_cam(m, x, lengths)
        with torch.inference_mode():
            ref = m(x, lengths)
        assert maps.shape[:2] == (2, t) and maps.dim() == 4
        assert (maps >= 0).all() and float(maps[0].sum()) > 0
        assert float(maps[1, t - 2:].abs().sum()) == 0.0
        torch.testing.assert_close(out.logits, ref.logits, rtol=1e-5, atol=1e-5)
    if name.startswith("lipforensics"):
        assert maps.shape[2:] == (3, 3)  # ResNet stage 4 on 88 px


def test_forward_batch_explain_is_the_same_scoring_path() -> None:
    torch.manual_seed(0)
    model = create_model("region_tiny_attention", pretrained=False, input_size=32).eval()
    rng = np.random.default_rng(0)
    region = rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    idx = np.arange(10)
    batch = collate_clips([clip_item("v", 1, region, idx, 0, 10), clip_item("v2", 0, region, idx, 2, 8)])
    dev = torch.device("cpu")
    plain = scoring.forward_batch(model, batch, dev, windows=[(0, 4), (2, 6)])
    ex = scoring.forward_batch(model, batch, dev, windows=[(0, 4), (2, 6)], explain=True)
    np.testing.assert_allclose(ex.logits, plain.logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ex.window_logits, plain.window_logits, rtol=1e-6, atol=1e-6)
    assert plain.cams == [] and [c.shape[0] for c in ex.cams] == [10, 6]
    assert all(c.dtype == np.float32 and (c >= 0).all() for c in ex.cams)


def test_scoring_without_explain_stays_in_inference_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain scoring never builds a graph nor calls Grad-CAM: it is as fast as before explanations."""
    seen: list[tuple[bool, bool]] = []

    class Spy(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner, self.input_spec = inner, inner.input_spec

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None):
            seen.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
            return self.inner(x, lengths)

    def boom(*a, **k):
        raise AssertionError("grad_cam called without explain")

    monkeypatch.setattr(explain, "grad_cam", boom)
    model = Spy(create_model("region_tiny_attention", pretrained=False, input_size=32).eval())
    region = np.zeros((4, 32, 32, 3), np.uint8)
    out = scoring.forward_batch(model, collate_clips([clip_item("v", 1, region, np.arange(4), 0, 4)]),
                                torch.device("cpu"))
    assert seen == [(True, False)] and out.cams == []


# ---- mapping back to frame pixels ---------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(x0=st.floats(-20, 200), y0=st.floats(-20, 150), side=st.floats(12, 120), size=st.sampled_from([32, 64]),
       cell=st.tuples(st.integers(0, 13), st.integers(0, 13)))
def test_map_cell_lands_where_the_affine_says(x0: float, y0: float, side: float, size: int,
                                              cell: tuple[int, int]) -> None:
    """A map that is 1 in one cell, rendered into the frame, peaks at the affine image of that cell's
    centre; a box region's affine is its snapped crop box scaled to [0, 1]."""
    ix0, iy0, ix1, iy1 = snap_box(np.array([x0, y0, x0 + side, y0 + side]))
    a = np.array([[(ix1 - ix0) / size, 0.0, ix0], [0.0, (iy1 - iy0) / size, iy0]])
    unit = unit_square_affine(a, (slice(0, size), slice(0, size)), size)
    np.testing.assert_allclose(unit @ [0, 0, 1], [ix0, iy0]), np.testing.assert_allclose(unit @ [1, 1, 1], [ix1, iy1])
    small = np.zeros((14, 14), np.float32)
    i, j = cell
    small[i, j] = 1.0
    frame = map_to_frame(small, unit, (300, 400))
    cx, cy = unit @ [(j + 0.5) / 14, (i + 0.5) / 14, 1.0]
    if 1 <= cx < 399 and 1 <= cy < 299 and side / 14 > 2:
        yy, xx = np.unravel_index(int(frame.argmax()), frame.shape)
        assert abs(xx + 0.5 - cx) <= side / 14 / 2 + 1 and abs(yy + 0.5 - cy) <= side / 14 / 2 + 1
    inside = area_mask([ix0, iy0, ix1, iy1], unit)
    assert inside.all()
    assert not area_mask([ix1 + 1, iy1 + 1, ix1 + 50, iy1 + 50], unit).any()


def _gradient_frame(h: int = 240, w: int = 320) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([xx * 255 / w, yy * 255 / h, np.full_like(xx, 128)], -1).astype(np.uint8)


def test_crop_to_frame_matches_how_crops_are_cut() -> None:
    """Reading the frame at the affine image of a crop pixel gives that crop pixel (box regions and the
    aligned lips), so a map drawn over a crop lands on the same face pixels in the frame."""
    from skimage.data import astronaut  # noqa: F401  (same fixtures family as conftest)

    frame = _gradient_frame()
    lm = np.load(__import__("importlib.resources", fromlist=["files"]).files("forensight.resources")
                 .joinpath("20words_mean_face.npy").open("rb")).astype(np.float64)
    lm = lm - lm.mean(0) + [160, 120]
    track = FaceTrack(boxes=np.array([[110, 60, 210, 180]] * 3, np.float32),
                      landmarks=np.repeat(lm[None].astype(np.float32), 3, 0), observed=np.ones(3, bool))
    cfg = PreprocessConfig(regions=("full", "mouth", "lips"), size=64)
    for region in ("full", "mouth"):
        a = crop_to_frame(region, track, frame.shape, cfg)[0]
        crop = crop_box(frame, region_box(region, lm, track.boxes[0], frame.shape, cfg), cfg.size)
        for u, v in [(5, 7), (32, 32), (60, 50)]:
            x, y = a @ [u + 0.5, v + 0.5, 1.0]
            assert np.abs(crop[v, u, :2].astype(float) - frame[int(y), int(x), :2]).max() <= 3.0
    a = crop_to_frame("lips", track, frame.shape, cfg, np.arange(3))[0]
    smoothed = smooth_lips_landmarks(lm[None].repeat(3, 0), cfg.lips_smooth_window, np.arange(3),
                                     mode=cfg.lips_smooth_mode)
    lips = align_lips(frame, smoothed[0], cfg.lips_size, center_landmarks=lm)
    gray = (frame.astype(float) @ [0.299, 0.587, 0.114])
    for u, v in [(10, 10), (48, 48), (80, 30)]:
        x, y = a @ [u + 0.5, v + 0.5, 1.0]
        assert abs(float(lips[v, u]) - gray[int(y), int(x)]) <= 3.0


# ---- the sanity check: a trained model's maps are not a random model's --------------------------

PATCH = (20, 32)  # rows / columns of the evidence in the toy clips


def _toy_batches(n: int, size: int, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise clips; fakes carry a bright 12x12 patch at ``PATCH`` in every frame."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, 3, size, size, generator=g) * 0.5
    y = (torch.arange(n) % 2).float()
    x[y == 1, :, :, PATCH[0]:PATCH[1], PATCH[0]:PATCH[1]] += 2.0
    return x, y


def test_trained_maps_point_at_the_evidence_and_randomised_weights_do_not() -> None:
    """Adebayo et al.'s (2018) model-randomisation test: after training, Grad-CAM puts the energy on
    the patch that makes a clip fake; the same architecture with randomised weights gives maps that
    do not (and differ from the trained model's), so the maps are not just edges of the input."""
    torch.manual_seed(0)
    size, t = 48, 2
    model = create_model("region_tiny_control", pretrained=False, input_size=size)
    x, y = _toy_batches(64, size, t, 0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(30):
        i = torch.arange(16) + 16 * (step % 4)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x[i]).logits, y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = _toy_batches(8, size, t, 1)
    fakes = xt[yt == 1]
    with torch.no_grad():
        assert float(torch.sigmoid(model(fakes).logits).mean()) > 0.8  # it learned the patch
    _, trained = grad_cam(model, fakes, None)
    random_model = create_model("region_tiny_control", pretrained=False, input_size=size).eval()
    torch.manual_seed(123)
    for p in random_model.parameters():
        nn.init.normal_(p, std=0.1)
    _, randomised = grad_cam(random_model, fakes, None)
    unit = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) * [[size], [size]]  # map → crop pixels
    patch = [PATCH[0], PATCH[0], PATCH[1], PATCH[1]]

    def energy(maps: torch.Tensor) -> float:
        rows = [area_scores(resize_map(m.numpy()), area_mask(patch, unit)) for m in maps.reshape(-1, *maps.shape[2:])]
        return float(np.mean([r["energy_inside"] or 0.0 for r in rows]))

    share = float(area_mask(patch, unit).mean())
    assert energy(trained) > 2.5 * share
    assert energy(randomised) < energy(trained) / 2
    a, b = trained.flatten(), randomised.flatten()
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert not np.isfinite(corr) or corr < 0.5


# ---- measuring maps against a known area ---------------------------------------------------------

def test_area_scores_and_summary() -> None:
    unit = np.array([[100.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    small = np.zeros((14, 14))
    small[10:14, 4:10] = 1.0  # bottom middle ("mouth")
    mouth = [30, 70, 72, 100]
    s = area_scores(small, area_mask(mouth, unit))
    assert s["pointing_hit"] == 1 and s["energy_inside"] > 0.5 and 0 < s["area_share"] < 0.2
    eyes = np.zeros((100, 100), bool)
    eyes[10:30, 10:90] = True
    s2 = area_scores(small, area_mask(eyes, unit))  # a mask works like a box
    assert s2["pointing_hit"] == 0 and s2["energy_inside"] == 0.0
    assert area_scores(np.zeros((14, 14)), area_mask(mouth, unit))["energy_inside"] is None
    v = video_area_scores([small, small * 0], [unit, unit], [mouth, mouth])
    assert v["n_frames"] == 2 and v["n_zero_maps"] == 1 and v["lift"] == pytest.approx(v["energy_inside"] / v["area_share"])
    summ = summarise_area_scores([v, v, {**v, "energy_inside": 0.1}], n_boot=200)
    lo, hi = summ["energy_inside_ci"]
    assert summ["videos"] == 3 and lo <= summ["energy_inside"] <= hi
    scaled, peak = video_maps([np.ones((2, 3, 3)), 2 * np.ones((1, 3, 3))])
    assert peak == pytest.approx(1.0) and float(scaled[1].max()) == pytest.approx(1.0)
    img = overlay(np.zeros((40, 40), np.uint8), small)
    assert img.shape == (40, 40, 3) and img.dtype == np.uint8


def test_bad_inputs_give_clear_errors() -> None:
    unit = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    with pytest.raises(ValueError, match="4 numbers"):
        area_mask([1, 2, 3], unit)
    with pytest.raises(ValueError, match="differ in shape"):
        area_scores(np.zeros((14, 14)), np.zeros((7, 7), bool))
    with pytest.raises(ValueError, match=">= 0"):
        area_scores(-np.ones((3, 3)), np.ones((3, 3), bool))
    with pytest.raises(TypeError, match="cam_layer"):
        grad_cam(nn.Linear(2, 2), torch.zeros(1, 1, 1, 2, 2), None)
    model = create_model("region_tiny_attention", pretrained=False, input_size=32).eval()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="needs gradients"):
        grad_cam(model, torch.zeros(1, 2, 3, 32, 32), None)
    with pytest.raises(ValueError, match="explain must be"):
        DetectConfig(explain="everything")
    batch = {"features": torch.zeros(1, 2, 64), "lengths": torch.tensor([2])}
    with pytest.raises(ValueError, match="need the crops"):
        scoring.forward_batch(model, batch, torch.device("cpu"), explain=True)


# ---- detect: JSON, modes, old records ------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory: pytest.TempPathFactory) -> ForensightDetector:
    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention")
    path = tmp_path_factory.mktemp("explain_model") / "model.pt"
    save_model_file(path, build_model(mc, pretrained=False), mc, TINY_PP, train_cfg=None, threshold=0.0,
                    val_metrics={"auc": 0.75})
    return load_detector(path, device="cpu", top_k=3)


def test_detect_explain_modes_json_and_old_records(tiny_detector: ForensightDetector) -> None:
    frames = np.stack(moving_face_frames(24))
    plain = tiny_detector.predict_frames(frames)
    top = tiny_detector.predict_frames(frames, explain=True)
    every = tiny_detector.predict_frames(frames, explain="all")
    assert plain.evidence_maps == [] and plain.evidence is None
    assert top.logit == plain.logit and every.logit == plain.logit
    assert [m.frame_index for m in top.evidence_maps] == [t.frame_index for t in top.top_frames]
    assert len(every.evidence_maps) == every.face_track.num_scored
    e = top.evidence_maps[0]
    assert np.asarray(e.map).shape == (14, 14) and 0 <= np.min(e.map) and np.max(e.map) <= 1
    assert 0.5 < max(float(np.max(m.map)) for m in every.evidence_maps) <= 1.0  # 1 = strongest cell (native grid)
    assert top.evidence["layer"] == "encoder.features" and "how_to_read" in top.evidence
    # the map's corners are the crop's corners in the frame: the "full" box of that frame
    _, _, x1, y1 = e.box
    assert np.allclose(np.asarray(e.crop_to_frame) @ [1, 1, 1], [x1, y1], atol=0.1)
    d = json.loads(json.dumps(top.to_dict()))
    assert d["schema"] == "forensight-detect-v3" and d["evidence_maps"][0]["grid"] == e.grid
    back = DetectionResult.from_dict(d)
    assert back.evidence_maps == top.evidence_maps and back.people[0].evidence_maps == top.evidence_maps
    old = {k: v for k, v in plain.to_dict().items() if k not in ("evidence_maps", "evidence")}
    old["schema"] = "forensight-detect-v2"
    for p in old["people"]:
        p.pop("evidence_maps"), p.pop("evidence")
    assert DetectionResult.from_dict(old).evidence_maps == []
    with pytest.raises(ValueError, match="explain must be"):
        tiny_detector.predict_frames(frames, explain="bogus")


# ---- shown where people look: the HTML report and the web app ------------------------------------

def test_report_shows_overlays_and_renders_in_chromium(tiny_detector: ForensightDetector, tmp_path) -> None:
    import subprocess
    import tempfile

    from forensight.html_report import write_video_report

    res = tiny_detector.predict_frames(np.stack(moving_face_frames(24)), explain=True, name="explained")
    page = write_video_report(res, tmp_path / "rep")
    text = page.read_text()
    assert text.count('class="crop evidence"') == len(res.top_frames) == 3
    assert "evidence-legend" in text and "Grad-CAM" in text and 'class="cscale"' in text
    plain = write_video_report(tiny_detector.predict_frames(np.stack(moving_face_frames(24)), name="plain"),
                               tmp_path / "rep").read_text()
    assert "crop evidence" not in plain and "evidence-legend" not in plain
    require_chromium()
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,1600",
                        page.resolve().as_uri()], check=True, capture_output=True, timeout=60)
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1600, 1280) and float(img.std()) > 10


def test_web_app_takes_the_explain_choice_and_upgrades_old_job_databases(tmp_path, face_video) -> None:
    import sqlite3

    from fastapi.testclient import TestClient

    from forensight.serve import ServeConfig, create_app
    from forensight.serve.models import load_models
    from forensight.serve.store import JobStore

    model = tmp_path / "m" / "model.pt"
    model.parent.mkdir()
    mc = get_model_config("region_tiny_attention")
    save_model_file(model, build_model(mc, pretrained=False), mc, TINY_PP, train_cfg=None, threshold=0.0,
                    val_metrics={})
    entries = load_models([model])
    cfg = ServeConfig(models=[str(model)], data_dir=tmp_path / "data", workers=0, queue_size=4)
    body = face_video.read_bytes()
    with TestClient(create_app(cfg, models=entries), base_url="http://127.0.0.1:8000") as c:
        assert 'id="explain-check"' in c.get("/").text
        r = c.post("/api/jobs", files={"file": ("a.mp4", body, "video/mp4")}, data={"explain": "top"})
        assert r.status_code == 202, r.text
        assert c.get(f"/api/jobs/{r.json()['id']}").json()["explain"] == "top"
        r2 = c.post("/api/jobs", files={"file": ("b.mp4", body, "video/mp4")})
        assert c.get(f"/api/jobs/{r2.json()['id']}").json()["explain"] == ""
        bad = c.post("/api/jobs", files={"file": ("c.mp4", body, "video/mp4")}, data={"explain": "maybe"})
        assert bad.status_code == 400 and "explain" in bad.text
    # a v1 database (no explain column) is upgraded in place, its jobs kept
    db_path = tmp_path / "old.sqlite"
    with sqlite3.connect(db_path) as db:
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES ('schema', '1');")
        db.executescript(__import__("forensight.serve.store", fromlist=["_SCHEMA"])._SCHEMA
                         .replace(",\n    explain TEXT NOT NULL DEFAULT ''", ""))
        db.execute("INSERT INTO jobs (id, name, model, size_bytes, status, created_at, updated_at) "
                   "VALUES ('j1', 'old.mp4', 'm', 1, 'done', 0, 0)")
    store = JobStore(db_path)
    job = store.get("j1")
    assert job is not None and job.explain == "" and job.name == "old.mp4"


# ---- evaluate --explain end to end on small synthetic data ----------------------------------------

@pytest.mark.slow
def test_evaluate_explain_writes_explain_csv(tmp_path) -> None:
    """Synthetic Face2Face / EyeBlink / FaceSwap fakes (their areas known) → preprocess → a model file →
    ``evaluate(explain=True)``: one explain.csv row per test fake, scores in range, a summary per method."""
    from forensight.datasets import read_dataset
    from forensight.preprocess import run_preprocess
    from forensight.synth import generate, manipulated_areas

    pp = PreprocessConfig(num_frames=8, regions=("full",), size=48)
    generate(tmp_path / "data", num_pairs=3, frames=16, size=(192, 160), seed=3, workers=1, progress=False,
             methods=["Face2Face", "EyeBlink", "FaceSwap"])
    s = run_preprocess(read_dataset("ffpp", tmp_path / "data"), tmp_path / "cache", pp, workers=1, progress=False)
    assert s.failed == 0, s.failures
    fake = next((tmp_path / "data" / "manipulated_sequences" / "EyeBlink").rglob("*.mp4"))
    areas = manipulated_areas(fake)
    assert areas and all(len(b) == 4 for b in areas.values())
    assert manipulated_areas(next((tmp_path / "data" / "original_sequences").rglob("*.mp4"))) is None
    res, rows = _explain_untrained(tmp_path, pp, n_bootstrap=50)
    ex = res.metrics["explain"]
    n_fakes = sum(1 for vid, y in zip(*res.predictions.video_scores()[:2]) if y == 1)
    assert len(rows) == ex["videos"] == n_fakes > 0
    assert set(ex["by_method"]) == {"Face2Face", "EyeBlink", "FaceSwap"}
    for r in rows:
        assert 0 < float(r["area_share"]) <= 1 and int(r["n_frames"]) >= 1
        if r["energy_inside"]:
            assert 0 <= float(r["energy_inside"]) <= 1
    lo, hi = ex["area_share_ci"]
    assert lo <= ex["area_share"] <= hi
    # the face swap covers more of the face crop than a mouth or the eyes
    by = ex["by_method"]
    assert by["FaceSwap"]["area_share"] > max(by["Face2Face"]["area_share"], by["EyeBlink"]["area_share"])
    from forensight.evaluate import evaluate

    with pytest.raises(ValueError, match="needs the crops"):
        evaluate(tmp_path / "model.pt", tmp_path / "cache", tmp_path / "eval2", explain=True, features=True,
                 device="cpu", progress=False)


@pytest.mark.slow
def test_evaluate_explain_scores_pseudo_fakes_against_their_stored_truth(tmp_path, face_video) -> None:
    """A real video → preprocess with pseudo-fakes (2 self-blends, 2 part drifts) → a model file →
    ``evaluate(explain=True)``: the pseudo-fakes get explain.csv rows (method pseudo_sbi / pseudo_vb)
    with finite scores; one whose stored truth was emptied is skipped and named, not a crash."""
    from forensight.cache import Cache
    from forensight.evaluate import known_areas
    from forensight.preprocess import run_preprocess
    from forensight.pseudofake import PseudoFakeConfig
    from forensight.records import VideoRecord

    pp = PreprocessConfig(num_frames=8, regions=("full",), size=48)
    real = VideoRecord(face_video, 0, "test", "x", "original", "raw", "a")
    s = run_preprocess([real], tmp_path / "cache", pp, workers=1, progress=False,
                       pseudo=PseudoFakeConfig(per_video=4, region="face"))
    assert s.done == 1 and s.pseudo_done == 4, str(s)
    cache = Cache.open(tmp_path / "cache")
    pseudo = sorted(r["video_id"] for r in cache.rows() if r["method"].startswith("pseudo_"))
    assert known_areas(cache.load(real.video_id)) is None
    entry = cache.load(pseudo[0])
    areas = known_areas(entry)
    truth = entry.meta["pseudo"]
    assert sorted(areas) == [int(entry.indices[k]) for k in truth["positions"]] == truth["manipulated_frames"]
    # emptied truth (as a generator that blended nothing would leave it): skipped, named
    meta_path = cache.entry_dir(pseudo[-1]) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["pseudo"].update(positions=[], manipulated_frames=[], boxes=[], weights=[])
    meta_path.write_text(json.dumps(meta))
    assert known_areas(cache.load(pseudo[-1])) == {}

    res, rows = _explain_untrained(tmp_path, pp, n_bootstrap=20)
    ex = res.metrics["explain"]
    assert sorted(r["video_id"] for r in rows) == pseudo[:-1] and ex["videos"] == 3
    assert set(ex["skipped"]) == {pseudo[-1]} and "no manipulated area" in ex["skipped"][pseudo[-1]]
    assert {r["method"] for r in rows} == {"pseudo_sbi", "pseudo_vb"} == set(ex["by_method"])
    for r in rows:
        assert int(r["n_frames"]) == 4 and 0 < float(r["area_share"]) < 1  # the face parts, not the whole crop
        assert 0 <= float(r["energy_inside"]) <= 1 and 0 <= float(r["pointing_hit"]) <= 1
    for key in ("energy_inside", "area_share", "pointing_hit"):
        lo, hi = ex[key + "_ci"]
        assert np.isfinite([ex[key], lo, hi]).all() and lo <= ex[key] <= hi


def _explain_untrained(tmp_path, pp: PreprocessConfig, n_bootstrap: int) -> tuple[object, list[dict[str, str]]]:
    """``evaluate --explain`` of a seeded untrained tiny attention model on ``tmp_path/cache``:
    the result and the rows of its ``explain.csv``."""
    import csv

    from forensight.evaluate import evaluate

    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention", input_size=48)
    model = save_model_file(tmp_path / "model.pt", build_model(mc, pretrained=False), mc, pp, None, threshold=0.0,
                            val_metrics={})
    res = evaluate(model, tmp_path / "cache", tmp_path / "eval", explain=True, n_bootstrap=n_bootstrap, device="cpu",
                   progress=False)
    with (tmp_path / "eval" / "explain.csv").open() as f:
        return res, list(csv.DictReader(f))

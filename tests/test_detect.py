"""``forensight detect``: API, hard cases, batch robustness, JSON/CSV/HTML outputs, model-file safety."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import tempfile
from contextlib import redirect_stdout
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from conftest import moving_face_frames, require_chromium
from hypothesis import given, settings
from hypothesis import strategies as st

from forensight.cli import main as cli_main
from forensight.config import PreprocessConfig
from forensight.detect import (
    DetectionResult,
    ForensightDetector,
    ModelLoadError,
    expand_inputs,
    load_detector,
)
from forensight.html_report import report_key, write_index, write_report, write_video_report
from forensight.modelfile import save_model_file
from forensight.models.registry import build_model, get_model_config
from forensight.video import write_video

TINY_PP = PreprocessConfig(num_frames=8, regions=("full",), size=64)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ``region_tiny_attention`` model file (64 px, 8 linear frames)."""
    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention")
    model = build_model(mc, pretrained=False)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model_file(path, model, mc, TINY_PP, train_cfg=None, threshold=0.0, val_metrics={"auc": 0.75})
    return path


@pytest.fixture(scope="session")
def detector(model_file: Path) -> ForensightDetector:
    return load_detector(model_file, device="cpu")


@pytest.fixture(scope="session")
def face_result(detector: ForensightDetector, face_video: Path) -> DetectionResult:
    return detector.predict(face_video)


def _gradient(n: int, h: int = 256, w: int = 320) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.stack([(xx + 5 * i) % 256, (yy * 2) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
            for i in range(n)]


def _run_cli(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = cli_main(argv)
    return rc, buf.getvalue()


# ---- the API ---------------------------------------------------------------------------------

def test_face_video_is_scored(face_result: DetectionResult, face_video: Path, model_file: Path) -> None:
    r = face_result
    assert r.status == "ok" and r.reason == ""
    assert 0.0 <= r.p_fake <= 1.0
    assert r.p_fake == pytest.approx(1 / (1 + math.exp(-r.logit)), abs=1e-5)
    assert r.verdict == ("fake" if r.logit >= r.threshold else "real")
    assert r.threshold == 0.0 and r.threshold_p == pytest.approx(0.5)
    # one clip of the 8 linearly sampled frames (the stored preprocessing, not a default)
    assert len(r.frames) == 8 and len(r.clips) == 1
    assert r.clips[0].num_frames == sum(f.scored for f in r.frames)
    assert r.logit == pytest.approx(r.clips[0].logit, abs=1e-5)  # video = mean of clip logits
    scored = [f for f in r.frames if f.scored]
    assert sum(f.attention for f in scored) == pytest.approx(1.0, abs=1e-5)
    assert all(f.attention is None for f in r.frames if not f.scored)
    idx = [f.frame_index for f in r.frames]
    assert idx == sorted(idx) and idx[0] == 0 and idx[-1] == 39
    for f in r.frames:  # timestamps are presentation times: frame number / 25 fps here
        assert f.timestamp_s == pytest.approx(f.frame_index / 25.0, abs=1e-6)
    assert r.video["fps"] == pytest.approx(25.0) and r.video["num_frames"] == 40
    assert (r.video["width"], r.video["height"]) == (320, 256)
    ft = r.face_track
    assert ft is not None and len(ft.boxes) == len(r.frames) and 0.5 <= ft.coverage <= 1.0
    assert ft.num_other_tracks == 0
    # top frames: rank order by attention, each with a box and 68 landmarks
    assert 1 <= len(r.top_frames) <= 6
    weights = [t.attention for t in r.top_frames]
    assert weights == sorted(weights, reverse=True)
    assert all(len(t.landmarks) == 68 and len(t.box) == 4 for t in r.top_frames)
    assert r.model["name"] == "region_tiny_attention" and r.model["preprocess_hash"] == TINY_PP.hash
    assert r.model["path"] == str(model_file)
    assert {"decode", "detect", "model", "total"} <= set(r.timings_s)
    assert r.local_scores and all(0 <= s.p_fake <= 1 for s in r.local_scores)
    # in-memory crops for the report are what the model read (64-px full-face crops)
    crops = r.artifacts["crops"]
    assert set(crops) == {t.frame_index for t in r.top_frames}
    assert all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in crops.values())


def test_to_dict_is_json_and_round_trips(face_result: DetectionResult) -> None:
    d = face_result.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(DetectionResult)}
    text = json.dumps(d, allow_nan=False)
    back = DetectionResult.from_dict(json.loads(text))
    assert back.to_dict() == d


def test_no_face_gives_no_score(detector: ForensightDetector, noface_video: Path) -> None:
    r = detector.predict(noface_video)
    assert r.status == "failed" and r.reason == "no_face"
    assert r.message.startswith("no face found")
    assert r.p_fake is None and r.logit is None and r.verdict is None and r.clips == []
    assert r.video is not None and r.video["num_frames"] == 40  # still says what the file is
    assert r.skipped and r.skipped[0]["what"] == "the whole video"


def test_shorter_than_one_clip_is_a_clear_message(detector: ForensightDetector, short_video: Path) -> None:
    r = detector.predict(short_video)  # 5 frames, the model samples 8
    assert r.status == "failed" and r.reason == "too_short"
    assert "too short for this model" in r.message and "8" in r.message
    assert r.p_fake is None


def test_predict_reports_progress_stages(detector: ForensightDetector, face_video: Path) -> None:
    seen: list[tuple[str, float | None]] = []
    r = detector.predict(face_video, progress=lambda stage, frac: seen.append((stage, frac)))
    assert r.status == "ok"
    stages = [s for s, _ in seen]
    assert stages[0] == "decoding" and stages[-1] == "scoring"
    faces = [f for s, f in seen if s == "faces"]
    assert len(faces) == len(r.frames) and faces[-1] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(faces))
    assert detector.predict(face_video).logit == r.logit  # the callback changes nothing


@pytest.fixture(scope="session")
def detector32(tmp_path_factory: pytest.TempPathFactory) -> ForensightDetector:
    """The tiny region model with the published sampling: 32 linearly spaced frames."""
    torch.manual_seed(0)
    mc = get_model_config("region_tiny_attention")
    path = tmp_path_factory.mktemp("model32") / "model.pt"
    save_model_file(path, build_model(mc, pretrained=False), mc, dataclasses.replace(TINY_PP, num_frames=32),
                    train_cfg=None, threshold=0.0, val_metrics={})
    return load_detector(path, device="cpu")


def test_short_clip_is_scored_with_the_frames_it_has(detector32: ForensightDetector, tmp_path: Path) -> None:
    """A 20-frame clip under a 32-frame model: every frame is scored, with a note; its score is
    the model on exactly those frames (the same as a model that samples 20)."""
    clip = tmp_path / "clip20.mp4"
    write_video(clip, moving_face_frames(20), fps=25)
    r = detector32.predict(clip)
    assert r.status == "ok", r.message
    assert [f.frame_index for f in r.frames] == list(range(20))
    assert any("short video: scored its 20 frames (the model samples 32" in n for n in r.notes)
    assert "short video" in r.short_notes()
    twenty = ForensightDetector(detector32.loaded, detector32.cfg)
    twenty.preprocess = dataclasses.replace(detector32.preprocess, num_frames=20)
    same = twenty.predict(clip)
    assert same.logit == pytest.approx(r.logit, abs=1e-6) and not same.notes
    # below the documented minimum: a clear message, nothing scored
    tiny = tmp_path / "clip6.mp4"
    write_video(tiny, moving_face_frames(6), fps=25)
    bad = detector32.predict(tiny)
    assert bad.status == "failed" and bad.reason == "too_short" and bad.p_fake is None
    assert "6 frames" in bad.message and "at least 8" in bad.message
    strict = ForensightDetector(detector32.loaded, dataclasses.replace(detector32.cfg, min_frames=32))
    refused = strict.predict(clip)
    assert refused.reason == "too_short" and "20 frames, fewer than the 32" in refused.message


def test_batch_continues_past_bad_files(detector: ForensightDetector, face_video: Path,
                                        bad_files: dict[str, Path]) -> None:
    paths = [bad_files["empty_file"], face_video, *[p for k, p in bad_files.items() if k != "empty_file"]]
    results = detector.predict_many(paths, progress=False)
    assert len(results) == len(paths)
    by_path = {r.path: r for r in results}
    assert by_path[str(face_video)].status == "ok"
    expect = {"empty_file": {"empty_file"}, "unreadable": {"unreadable"}, "no_video_stream": {"no_video_stream"},
              "not_found": {"not_found"}, "directory": {"no_videos"},
              "truncated": {"truncated", "decode_error", "unreadable", "too_short"}}
    for kind, p in bad_files.items():
        r = by_path[str(p)]
        assert r.status == "failed", kind
        assert r.reason in expect[kind], (kind, r.reason, r.message)
        assert r.message and r.p_fake is None


def test_partial_face_scores_only_the_face_span(detector: ForensightDetector) -> None:
    frames = np.stack(_gradient(12) + moving_face_frames(16) + _gradient(12))  # face in frames 12..27
    r = detector.predict_frames(frames, fps=10.0, name="partial")
    assert r.status == "ok"
    ft = r.face_track
    assert 0 < ft.coverage < 1 and ft.num_scored < ft.num_sampled
    assert 12 <= ft.first_observed_frame <= ft.last_observed_frame <= 27
    scored = [f for f in r.frames if f.scored]
    assert all(ft.first_observed_frame <= f.frame_index <= ft.last_observed_frame for f in scored)
    assert sum(f.attention for f in scored) == pytest.approx(1.0, abs=1e-5)
    whys = " ".join(s["why"] for s in r.skipped)
    assert "before the face was first detected" in whys and "after the face was last detected" in whys
    for f in r.frames:
        assert f.timestamp_s == pytest.approx(f.frame_index / 10.0)


def test_several_people_main_track_and_others_reported(detector: ForensightDetector) -> None:
    import cv2
    from skimage.data import astronaut

    second = cv2.resize(astronaut()[0:260, 110:370], (150, 150))
    frames = []
    for f in moving_face_frames(16):
        big = np.zeros((256, 480, 3), np.uint8)
        big[:, :320] = f
        big[60:210, 326:476] = second
        frames.append(big)
    r = detector.predict_frames(np.stack(frames), name="two people")
    assert r.status == "ok"
    assert r.face_track.num_other_tracks >= 1
    assert len(r.people) == 2 and [p.person for p in r.people] == [1, 2] and all(p.ok for p in r.people)
    # person 1 is the main (larger) face, on the left; person 2 the smaller one on the right
    assert r.people[0].face_track.boxes[0][0] < 320 <= r.people[1].face_track.boxes[0][0]
    best = max(r.people, key=lambda p: p.logit)
    assert r.person == best.person and r.logit == best.logit and r.verdict == best.verdict
    assert r.frames == best.frames and r.top_frames == best.top_frames
    for p in r.people:  # each person has their own view (per-person report pages and plots)
        v = r.person_view(p.person)
        assert v.logit == p.logit and v.face_track == p.face_track and v.artifacts["crops"]
    assert "2 people" in r.short_notes() and "2 people scored" in r.message
    again = DetectionResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.to_dict() == r.to_dict()
    # the main face alone when asked
    main_only = ForensightDetector(detector.loaded, dataclasses.replace(detector.cfg, people=False))
    r1 = main_only.predict_frames(np.stack(frames), name="two people")
    assert len(r1.people) == 1 and r1.logit == r.people[0].logit
    assert any("other face track" in s["what"] and "people=False" in s["why"] for s in r1.skipped)


def test_a_false_face_is_never_a_person(detector: ForensightDetector) -> None:
    """The benchmark video's flag star (libfd: a "face" in every frame) is reported, not scored."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from preprocess import talking_head_frames

    frames = np.stack(list(talking_head_frames(0, indices=np.linspace(0, 299, 8).round().astype(int))))
    r = detector.predict_frames(frames, fps=30.0, name="benchmark")
    assert r.status == "ok" and len(r.people) == 1 and r.person == 1
    assert r.face_track.num_other_tracks == 0
    false = [s for s in r.skipped if s["why"].startswith("not a face: ")]
    assert len(false) == 1 and "skin" in false[0]["why"] and "face track at" in false[0]["what"]
    again = DetectionResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.skipped == r.skipped


def test_predict_frames_in_memory(detector: ForensightDetector, face_result: DetectionResult) -> None:
    frames = np.stack(moving_face_frames(40))
    r = detector.predict_frames(frames, fps=25.0)
    assert r.status == "ok" and r.path == "" and r.video["codec"] == "in-memory"
    assert [f.frame_index for f in r.frames] == [f.frame_index for f in face_result.frames]
    assert 0 <= r.p_fake <= 1
    assert set(r.artifacts["frames"]) == {t.frame_index for t in r.top_frames}
    assert detector.predict_frames(frames[:3]).reason == "too_short"
    with pytest.raises(ValueError):
        detector.predict_frames(frames[..., 0])
    with pytest.raises(TypeError):
        detector.predict_frames(frames.astype(np.float32))


def _write_vfr(path: Path, pts_ms: list[int]) -> None:
    import av

    frames = moving_face_frames(len(pts_ms))
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 320, 256, "yuv420p"
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        for p, rgb in zip(pts_ms, frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts, vf.time_base = p, Fraction(1, 1000)
            for pkt in s.encode(vf):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def test_variable_frame_rate_timestamps_follow_the_file(detector: ForensightDetector, tmp_path: Path) -> None:
    pts = [0]
    for i in range(1, 24):
        pts.append(pts[-1] + (20 if i % 3 else 100))  # irregular spacing
    path = tmp_path / "vfr.mp4"
    _write_vfr(path, pts)
    r = detector.predict(path)
    assert r.status == "ok", r.message
    for f in r.frames:
        assert f.timestamp_s == pytest.approx(pts[f.frame_index] / 1000.0, abs=1e-3)


def test_expand_inputs_recursive(tmp_path: Path, face_video: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    shutil.copy(face_video, tmp_path / "a" / "x.mp4")
    shutil.copy(face_video, tmp_path / "a" / "b" / "y.MOV")
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / ".hidden.mp4").write_bytes(b"")
    got = expand_inputs([tmp_path / "a", tmp_path / "empty", tmp_path / "a" / "x.mp4", tmp_path / "odd.bin"])
    assert [n for _, n in got] == ["b/y.MOV", "x.mp4", "empty", "odd.bin"]


# ---- model-file safety -----------------------------------------------------------------------

class _Evil:
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_tampered_or_foreign_model_files_are_refused(tmp_path: Path, model_file: Path, face_video: Path) -> None:
    rand = tmp_path / "random.pt"
    rand.write_bytes(np.random.default_rng(0).bytes(4096))
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "PWNED"
    _Evil.marker = str(marker)
    torch.save({"format": "forensight-model-v1", "x": _Evil()}, evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    payload = torch.load(model_file, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = torch.zeros(3)
    shapes = tmp_path / "shapes.pt"
    torch.save(payload, shapes)
    for bad, words in [(rand, "not a PyTorch zip archive"), (evil, "refusing"), (foreign, "not a forensight model"),
                       (shapes, "tampered"), (tmp_path / "missing.pt", "not found"),
                       (tmp_path, "model.pt is missing")]:
        with pytest.raises(ModelLoadError, match=words):
            load_detector(bad)
        rc, _ = _run_cli(["detect", str(face_video), "--model", str(bad), "-q"])
        assert rc == 2
    assert not marker.exists()


# ---- CLI: table, JSON, CSV -------------------------------------------------------------------

def test_cli_json_matches_api(model_file: Path, face_video: Path, noface_video: Path,
                              face_result: DetectionResult) -> None:
    rc, out = _run_cli(["detect", str(face_video), str(noface_video), "--model", str(model_file), "--json", "-q"])
    assert rc == 1  # one video failed
    doc = json.loads(out)
    assert doc["model"]["name"] == "region_tiny_attention"
    res = doc["results"]
    assert [r["status"] for r in res] == ["ok", "failed"]
    api = face_result.to_dict()
    assert set(res[0]) == set(api) == set(res[1])
    assert res[0]["p_fake"] == pytest.approx(api["p_fake"], abs=1e-4)
    assert res[0]["verdict"] == api["verdict"]
    assert [f["frame_index"] for f in res[0]["frames"]] == [f["frame_index"] for f in api["frames"]]
    assert res[1]["reason"] == "no_face" and res[1]["p_fake"] is None


def test_cli_table_csv_and_exit_codes(model_file: Path, face_video: Path, tmp_path: Path,
                                      bad_files: dict[str, Path]) -> None:
    out_csv = tmp_path / "scores.csv"
    rc, out = _run_cli(["detect", str(face_video), "--model", str(model_file), "--csv", str(out_csv), "-q"])
    assert rc == 0
    assert "face.mp4" in out and "P(FAKE)" in out and "1 video(s)" in out
    listing = tmp_path / "batch.txt"
    listing.write_text(f"# a batch list\n{bad_files['unreadable']}\n\n{bad_files['empty_file']}\n")
    rc, out = _run_cli(["detect", str(face_video), "--list", str(listing), "--model", str(model_file),
                        "--csv", str(out_csv), "-q"])
    assert rc == 1
    assert "FAILED" in out and "unreadable" in out and "empty_file" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 3
    assert [r["status"] for r in rows] == ["ok", "failed", "failed"]
    assert 0 <= float(rows[0]["p_fake"]) <= 1 and rows[0]["verdict"] in ("fake", "real")
    assert rows[1]["reason"] == "unreadable" and rows[2]["reason"] == "empty_file"
    assert _run_cli(["detect", "--model", str(model_file)])[0] == 2  # nothing to score


# ---- HTML report -----------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Well-formedness: every non-void element is closed in order; collects links and image sources."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "a":
            self.links.append(a.get("href") or "")
        for k in ("src", "href"):
            v = a.get(k) or ""
            if v.startswith(("http:", "https:", "//")) or (tag in ("script", "link") and v):
                self.external.append(v)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check_html(path: Path) -> _Checker:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    c = _Checker()
    c.feed(text)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed: {c.stack}"
    assert not c.external, c.external
    return c


def test_report_pages_are_self_contained(model_file: Path, face_video: Path, noface_video: Path,
                                         tmp_path: Path) -> None:
    rep = tmp_path / "report"
    rc, _ = _run_cli(["detect", str(face_video), str(noface_video), "--model", str(model_file),
                      "--report", str(rep), "-q"])
    assert rc == 1
    files = sorted(p.name for p in rep.iterdir())
    assert "index.html" in files
    pages = [rep / f for f in files if f.endswith(".html") and f != "index.html"]
    assert len(pages) == 2
    idx = _check_html(rep / "index.html")
    assert sorted(idx.links) == sorted(p.name for p in pages)
    index_text = " ".join(idx.text)
    assert "face.mp4" in index_text and "noface.mp4" in index_text and "NOT SCORED" in index_text
    ok_page = next(p for p in pages if p.name.startswith("face-"))
    c = _check_html(ok_page)
    text = " ".join(c.text)
    assert ("FAKE" in text) or ("REAL" in text)
    assert "Most-attended frames" in text and "Score over time" in text
    assert len(c.imgs) >= 4 and all(s.startswith("data:image/") for s in c.imgs)  # plots + thumbnails + crops
    for png in ("_score.png", "_attention.png"):
        f = rep / ok_page.name.replace(".html", png)
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(ok_page.read_text().split('id="forensight-result">')[1].split("</script>")[0])
    assert data["status"] == "ok"
    bad_page = next(p for p in pages if p.name.startswith("noface-"))
    assert "no face found" in " ".join(_check_html(bad_page).text)


def test_report_never_writes_outside_its_folder(detector: ForensightDetector, tmp_path: Path) -> None:
    frames = np.stack(moving_face_frames(12))
    res = [detector.predict_frames(frames, name=n) for n in
           ("../../escape.mp4", "/etc/passwd", "..", "a/<b>bold</b>\"'.mp4", "..\\..\\win.mp4")]
    res.append(detector.predict_frames(frames[:2], name="../../short.mp4"))  # failed page too
    outer = tmp_path / "outer"
    rep = outer / "inner" / "report"
    index = write_report(res, rep)
    assert index == rep / "index.html"
    written = [p for p in outer.rglob("*") if p.is_file()]
    assert written and all(p.parent == rep for p in written)
    assert not (tmp_path / "escape.mp4").exists()
    keys = {report_key(r) for r in res}
    assert len(keys) == len(res)
    for r in res:
        page = rep / f"{report_key(r)}.html"
        c = _check_html(page)
        assert r.name in " ".join(c.text)  # shown, escaped
    raw = (rep / f"{report_key(res[3])}.html").read_text()
    assert "<b>bold</b>" not in raw and "&lt;b&gt;bold&lt;/b&gt;" in raw


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=80), st.text(min_size=0, max_size=40))
def test_report_key_is_always_a_plain_file_name(name: str, path: str) -> None:
    key = report_key(DetectionResult(path=path, name=name, status="failed"))
    assert key and "/" not in key and "\\" not in key and not key.startswith(".")
    assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in key)


def test_report_from_saved_json_without_artifacts(face_result: DetectionResult, tmp_path: Path) -> None:
    res = DetectionResult.from_dict(json.loads(json.dumps(face_result.to_dict())))
    assert res.artifacts is None
    page = write_video_report(res, tmp_path)  # frames re-decoded from the file; no crops in memory
    c = _check_html(page)
    assert sum(s.startswith("data:image/jpeg") for s in c.imgs) == len(res.top_frames)
    write_index([res], tmp_path)
    _check_html(tmp_path / "index.html")


def test_report_renders_in_headless_chromium(face_result: DetectionResult, tmp_path: Path) -> None:
    require_chromium()
    page = write_video_report(face_result, tmp_path / "rep")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,1600",
             page.resolve().as_uri()],
            check=True, capture_output=True, timeout=60)
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1600, 1280)
    assert float(img.std()) > 10  # something was drawn, not a blank page


# ---- LipForensics: consecutive 25-frame clips of the 88-px centre crop -----------------------

@pytest.fixture(scope="session")
def lips_detector(tmp_path_factory: pytest.TempPathFactory) -> ForensightDetector:
    from forensight.config import PREPROCESS_PRESETS

    torch.manual_seed(0)
    mc = get_model_config("lipforensics_attention")
    path = tmp_path_factory.mktemp("lips") / "model.pt"
    save_model_file(path, build_model(mc, pretrained=False), mc, PREPROCESS_PRESETS["lips"], None, 0.25, {})
    return load_detector(path.parent)  # a run directory works too


def test_lipforensics_clips(lips_detector: ForensightDetector, face_video: Path, short_video: Path) -> None:
    r = lips_detector.predict(face_video)  # 40 frames, every frame sampled
    assert r.status == "ok", r.message
    assert len(r.frames) == 40 and r.model["region"] == "lips"
    assert r.clips and all(c.num_frames == 25 for c in r.clips)
    for c in r.clips:
        assert c.end_frame - c.start_frame == 24  # consecutive frames
        assert r.face_track.first_observed_frame <= c.start_frame
    scored = [f for f in r.frames if f.scored]
    assert len(scored) == 25 * len(r.clips)
    assert sum(f.attention for f in scored) == pytest.approx(1.0, abs=1e-5)
    assert r.logit == pytest.approx(float(np.mean([c.logit for c in r.clips])), abs=1e-5)
    assert r.verdict == ("fake" if r.logit >= 0.25 else "real")
    assert any("25-frame clip" in s["why"] for s in r.skipped)  # the frames left over
    assert r.local_scores == []
    assert all(c.shape == (88, 88, 1) for c in r.artifacts["crops"].values())  # the centre crop it read
    short = lips_detector.predict(short_video)
    assert short.status == "failed" and short.reason == "too_short" and "25-frame clip" in short.message


def test_model_region_missing_from_its_preprocessing(tmp_path: Path) -> None:
    mc = get_model_config("region_tiny_attention", region="eyes")
    path = save_model_file(tmp_path / "model.pt", build_model(mc, pretrained=False), mc, TINY_PP, None, 0.0, {})
    with pytest.raises(ModelLoadError, match="region 'eyes'"):
        load_detector(path)


def test_detect_names_what_a_non_video_file_is(detector: ForensightDetector, tmp_path: Path) -> None:
    """A still image saved as .mp4 and a named pipe are told apart and reported, never opened as videos
    (a named pipe would block the decoder forever)."""
    import cv2

    png = tmp_path / "photo.mp4"
    ok, buf = cv2.imencode(".png", np.zeros((64, 80, 3), np.uint8))
    assert ok
    png.write_bytes(buf.tobytes())
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    link = tmp_path / "gone.mp4"
    link.symlink_to(tmp_path / "nothing.mp4")
    got = {r.name: (r.status, r.reason) for r in detector.predict_many([png, fifo, link], progress=False)}
    assert got == {"photo.mp4": ("failed", "not_a_video"), "pipe.mp4": ("failed", "not_regular_file"),
                   "gone.mp4": ("failed", "dangling_link")}

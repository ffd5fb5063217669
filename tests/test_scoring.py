"""The one scoring path: clip planning, detect == evaluate, one forward, one protocol, no arch strings."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from conftest import moving_face_frames
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from forensight import scoring
from forensight.config import InputSpec, ModelConfig, PreprocessConfig, TrainConfig, get_model_config
from forensight.datasets import read_dataset
from forensight.detect import load_detector
from forensight.evaluate import evaluate
from forensight.modelfile import load_model_file, save_model_file
from forensight.models.outputs import DetectorOutput
from forensight.models.pooling import build_pooling
from forensight.models.registry import Architecture, architectures, build_model, register_architecture
from forensight.planning import plan_clips
from forensight.preprocess import run_preprocess
from forensight.video import write_video

SRC = Path(__file__).resolve().parents[1] / "src" / "forensight"
REGION = InputSpec(region="mouth", size=64)
CLIP = InputSpec(region="lips", size=88, channels=1, mean=(0.4,), std=(0.2,), clip_len=5, crop=88)


# ---- planning --------------------------------------------------------------------------------

def test_plan_trims_to_the_observed_span() -> None:
    idx = np.arange(12)
    obs = np.array([0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0], bool)
    region = plan_clips(idx, obs, REGION)
    assert region.clips == [(2, 10)] and region.span == (2, 9)
    clips = plan_clips(idx, obs, CLIP, step=1)
    assert clips.clips == [(2, 7)]  # 8 frames in the span → one 5-frame clip, 3 left over
    notes = " ".join(s["why"] for s in clips.skipped(idx, idx / 25.0, obs, 5))
    assert "before the face was first detected" in notes and "after the face was last detected" in notes
    assert "5-frame clip" in notes and "interpolated" in notes
    assert plan_clips(idx, np.zeros(12, bool), REGION).reason == "no_face"
    assert plan_clips(idx[:4], np.ones(4, bool), CLIP, step=1).reason == "too_short"


def test_plan_clips_never_cross_a_gap_and_respect_caps() -> None:
    idx = np.array(list(range(7)) + list(range(100, 112)))  # two runs of consecutive frames
    obs = np.ones(idx.size, bool)
    p = plan_clips(idx, obs, CLIP, step=1)
    assert p.clips == [(0, 5), (7, 12), (12, 17)]
    assert all(idx[b - 1] - idx[a] == 4 for a, b in p.clips)
    assert plan_clips(idx, obs, CLIP, step=None).clips == [(0, 5), (5, 10), (10, 15)]  # linear: no step
    assert plan_clips(idx, obs, CLIP, step=1, max_clips=2).clips == [(0, 5), (12, 17)]
    assert plan_clips(idx, obs, CLIP, step=1, max_frames=100).clips == [(0, 5)]
    assert plan_clips(idx, obs, REGION, max_frames=100).clips == [(0, 7)]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 60), clip=st.one_of(st.none(), st.integers(1, 12)), seed=st.integers(0, 10_000),
       max_clips=st.integers(0, 4), max_frames=st.integers(0, 70))
def test_plan_properties(n: int, clip: int | None, seed: int, max_clips: int, max_frames: int) -> None:
    rng = np.random.default_rng(seed)
    idx = np.cumsum(rng.choice([1, 1, 1, 2], size=n))
    obs = rng.random(n) < 0.7
    spec = InputSpec(region="full", size=8, clip_len=clip)
    p = plan_clips(idx, obs, spec, step=1, max_clips=max_clips, max_frames=max_frames)
    limit = int(np.searchsorted(idx, max_frames)) if max_frames else n
    seen = np.nonzero(obs[:limit])[0]
    if seen.size == 0:
        assert p.clips == [] and p.reason == "no_face"
        return
    lo, hi = seen[0], seen[-1]
    for a, b in p.clips:
        assert lo <= a < b <= hi + 1  # inside the observed span
        if clip is not None:
            assert b - a == clip and np.all(np.diff(idx[a:b]) == 1)  # consecutive source frames
    starts = [a for a, _ in p.clips]
    assert starts == sorted(starts) and all(b <= a2 for (_, b), (a2, _) in zip(p.clips, p.clips[1:]))
    if clip is None:
        assert p.clips == [(lo, hi + 1)]
    elif max_clips:
        assert len(p.clips) <= max_clips


# ---- a small cache with a face missing at both ends of one video -----------------------------

PP = PreprocessConfig(sampling="all", regions=("mouth", "lips"), size=64, smooth_window=1)


def _gradient(h: int = 256, w: int = 320, i: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx + 5 * i) % 256, (yy * 2) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def parity_cache(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """8 face videos (40 frames, every frame sampled); ``gap`` has no face in frames 0-3 and 36-39."""
    root = tmp_path_factory.mktemp("parity")
    rows = ["path,label,split,name"]
    splits = [("train", 0), ("train", 1), ("val", 0), ("val", 1), ("test", 0), ("test", 1), ("test", 0),
              ("test", 1)]
    for k, (split, label) in enumerate(splits):
        frames = moving_face_frames(40, seed=10 + k)
        if label:  # a crude "manipulation": a brighter lower face in some frames
            for i in range(10, 30):
                frames[i] = frames[i].copy()
                frames[i][140:, :] = np.clip(frames[i][140:, :].astype(int) + 40, 0, 255).astype(np.uint8)
        name = "gap" if k == 7 else f"v{k}"
        if name == "gap":
            for i in (0, 1, 2, 3, 36, 37, 38, 39):
                frames[i] = _gradient(i=i)
        write_video(root / f"{name}.mp4", frames, fps=25)
        rows.append(f"{root / f'{name}.mp4'},{label},{split},{name}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    s = run_preprocess(read_dataset("csv", root / "manifest.csv"), root / "cache", PP, workers=1, progress=False)
    assert s.failed == 0, s.failures
    return {"root": root, "cache": root / "cache"}


def _model_file(path: Path, mc: ModelConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_model_file(path, build_model(mc, pretrained=False), mc, PP, None, threshold=0.1, val_metrics={})


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["region_tiny_attention", "lipforensics_attention"])
def test_detect_and_evaluate_give_the_same_video_scores(parity_cache: dict[str, Path], tmp_path: Path,
                                                        preset: str) -> None:
    over = {"region": "mouth"} if preset.startswith("region") else {}
    mf = _model_file(tmp_path / "model.pt", get_model_config(preset, **over))
    res = evaluate(mf, parity_cache["cache"], tmp_path / "eval", n_bootstrap=10, device="cpu", progress=False)
    ids, _, scores = res.predictions.video_scores()
    by_name = {vid.rsplit("/", 1)[-1]: float(s) for vid, s in zip(ids, scores)}
    assert set(by_name) == {"v4", "v5", "v6", "gap"}
    det = load_detector(mf, device="cpu")
    for name, want in by_name.items():
        r = det.predict(parity_cache["root"] / f"{name}.mp4")
        assert r.ok, r.message
        assert abs(r.logit - want) < 1e-5, (name, r.logit, want)
        if name == "gap":  # the face is missing at both ends: both paths skip exactly those frames
            scored = [f.frame_index for f in r.frames if f.scored]
            assert scored[0] == 4 and r.face_track.first_observed_frame == 4
            assert r.face_track.last_observed_frame == 35
            whys = {s["why"] for s in r.skipped}
            assert {"before the face was first detected", "after the face was last detected"} <= whys
            k = ids.index(next(v for v in ids if v.endswith("/gap")))
            rows = [i for i, v in enumerate(res.predictions.video_ids) if v == ids[k]]
            assert res.predictions.frame_indices[rows[0]][0] == 4


@pytest.mark.slow
def test_every_scoring_caller_goes_through_forward_batch(parity_cache: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Shift every logit forward_batch returns: evaluate and detect both move by exactly that much,
    so neither has a second way of running the model."""
    mf = _model_file(tmp_path / "model.pt", get_model_config("region_tiny_control", region="mouth"))
    base = evaluate(mf, parity_cache["cache"], tmp_path / "e0", n_bootstrap=10, device="cpu", progress=False)
    base_detect = load_detector(mf, device="cpu").predict(parity_cache["root"] / "v4.mp4").logit
    real = scoring.forward_batch

    def shifted(*args, **kwargs):
        out = real(*args, **kwargs)
        out.logits = out.logits + 100.0
        return out

    monkeypatch.setattr(scoring, "forward_batch", shifted)
    moved = evaluate(mf, parity_cache["cache"], tmp_path / "e1", n_bootstrap=10, device="cpu", progress=False)
    np.testing.assert_allclose(moved.predictions.video_scores()[2], base.predictions.video_scores()[2] + 100.0)
    assert load_detector(mf, device="cpu").predict(parity_cache["root"] / "v4.mp4").logit == pytest.approx(
        base_detect + 100.0, abs=1e-5)


def test_precision_policy_is_per_device_type() -> None:
    assert scoring.autocast_dtype(torch.device("cpu")) is None
    assert scoring.autocast_dtype(torch.device("cuda:1")) is torch.bfloat16  # any CUDA index, not just "cuda"
    assert scoring.resolve_device("cpu").type == "cpu"


def test_video_scores_refuse_disagreeing_labels() -> None:
    p = scoring.ClipPredictions(video_ids=["a", "a"], labels=[0.0, 1.0], logits=[0.1, 0.2])
    with pytest.raises(ValueError, match="labelled both"):
        p.video_scores()


# ---- a third architecture: one module, one registration --------------------------------------

@dataclass(frozen=True)
class MeanColourConfig(ModelConfig):
    """Toy architecture: per-frame mean colour → linear → mean/attention pooling → logit."""

    arch: ClassVar[str] = "toy_mean_colour"
    region: str = "mouth"
    input_size: int = 16

    def input_spec(self) -> InputSpec:
        return InputSpec(region=self.region, size=self.input_size)


class MeanColour(nn.Module):
    def __init__(self, cfg: MeanColourConfig) -> None:
        super().__init__()
        self.input_spec = cfg.input_spec()
        self.proj = nn.Linear(3, 8)
        self.pool = build_pooling(cfg.pooling, 8, 4)
        self.out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> DetectorOutput:
        from forensight.models.temporal import lengths_to_mask

        h = torch.tanh(self.proj(x.mean((3, 4))))  # (B, T, 8)
        pooled, w = self.pool(h, lengths_to_mask(lengths, x.shape[0], x.shape[1], x.device))
        return DetectorOutput(logits=self.out(pooled).squeeze(-1), weights=w)


def _register_toy() -> None:
    if "toy_mean_colour" not in architectures():
        register_architecture(Architecture("toy_mean_colour", MeanColourConfig, lambda cfg, _pre: MeanColour(cfg)))


@pytest.mark.slow
def test_a_third_architecture_needs_one_registration(parity_cache: dict[str, Path], tmp_path: Path) -> None:
    from forensight.train import train

    _register_toy()
    mc = MeanColourConfig(name="toy", pooling="attention")
    res = train(parity_cache["cache"], tmp_path / "run", mc, TrainConfig(max_epochs=2, patience=2, batch_size=2),
                progress=False)
    lm = load_model_file(tmp_path / "run")
    assert isinstance(lm.model_config, MeanColourConfig) and lm.threshold == res.val_metrics["threshold"]
    ev = evaluate(tmp_path / "run", parity_cache["cache"], tmp_path / "eval", n_bootstrap=10, progress=False)
    r = load_detector(tmp_path / "run", device="cpu").predict(parity_cache["root"] / "v5.mp4")
    assert r.ok and r.model["arch"] == "toy_mean_colour"
    assert r.local_scores  # no frame-feature protocol: the windows are scored through forward
    ids, _, s = ev.predictions.video_scores()
    assert r.logit == pytest.approx(float(s[[i for i, v in enumerate(ids) if v.endswith("/v5")][0]]), abs=1e-5)


def test_no_architecture_name_branches_outside_the_registry() -> None:
    """No comparison of a model / config / arch value with an architecture name (or of anything
    `arch` with a string literal) anywhere in the package but models/registry.py. (The DFDC test
    list called "lipforensics" is a file name, not an architecture, and is not flagged.)"""
    names = set(architectures())
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).as_posix() == "models/registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            consts = set()
            for op in operands:
                elts = op.elts if isinstance(op, (ast.Tuple, ast.List, ast.Set)) else [op]
                consts |= {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            text = " ".join(ast.unparse(op) for op in operands if not isinstance(op, ast.Constant))
            about_models = any(w in text for w in ("arch", "model", "cfg", "config", "spec"))
            if consts and about_models and (consts & names or "arch" in text):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == [], offenders


def test_reports_render_from_saved_json_without_torch(tmp_path: Path) -> None:
    """result + html_report are torch-free: a report re-renders from saved JSON in a fresh process."""
    from forensight.result import DetectionResult

    r = DetectionResult(path="x.mp4", name="x.mp4", status="failed", reason="no_face", message="no face found")
    (tmp_path / "r.json").write_text(json.dumps(r.to_dict()))
    code = ("import json, sys; from pathlib import Path; "
            "from forensight.result import DetectionResult; from forensight.html_report import write_video_report; "
            f"d = json.loads(Path({str(tmp_path / 'r.json')!r}).read_text()); "
            f"p = write_video_report(DetectionResult.from_dict(d), {str(tmp_path / 'out')!r}); "
            "assert 'torch' not in sys.modules, 'torch was imported'; print(p)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip()).read_text().count("no face found") >= 1


def test_scoring_callers_do_not_import_training_code() -> None:
    """evaluate and detect score through scoring.py and never import train (and so Lightning)."""
    code = ("import sys; import forensight.evaluate, forensight.detect, forensight.scoring; "
            "bad = [m for m in ('forensight.train', 'lightning', 'lightning.pytorch') if m in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]

"""Score any video with a trained model: P(fake), verdict, per-clip scores and *when* the evidence is.

The path from a file to a score is the one evaluation measured:

1. the preprocessing config stored in the model file (never a default) samples frames, tracks
   the face and cuts the model's region (:func:`forensight.preprocess.process_video`);
2. partial face: only the sampled frames between the first and the last frame where the face was
   *observed* are scored; frames before / after are reported as skipped, with the coverage;
3. clips: region models read ONE clip made of all scored sampled frames (the config's linear
   sampling, e.g. 32 frames); LipForensics (region ``"lips"``) reads consecutive non-overlapping
   ``num_frames``-frame clips (25) of the ``input_size`` (88) centre crop of the 96-px lips;
4. video logit = mean of the clip logits (the LipForensics protocol used by ``evaluate``);
   P(fake) = sigmoid(logit); verdict "fake" when ``logit >= threshold``, the threshold chosen on
   the validation split and stored in the model file (logit scale);
5. per-frame attention: each clip's pooling weights divided by the number of clips, so they sum
   to 1 over the scored frames (a mean/control head gives uniform weights).

Bad input never raises out of :meth:`ForensightDetector.predict`: it returns a result with
``status="failed"``, a machine ``reason`` (``not_found``, ``empty_file``, ``unreadable``,
``no_video_stream``, ``truncated``, ``decode_error``, ``too_large``, ``too_short``, ``no_face``,
``no_videos``, ``error``) and a readable ``message``, so a batch continues past it.

Usage::

    det = forensight.load_detector("runs/lips_attention")      # run dir or model.pt
    res = det.predict("clip.mp4")
    print(res.verdict, res.p_fake, res.to_dict()["frames"][:3])
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forensight import __version__
from forensight.config import PreprocessConfig
from forensight.modelfile import LoadedModel, load_model_file, resolve_model_path
from forensight.records import FaceTrack, PreprocessError, SampledFrames, VideoInfo, VideoRecord

log = logging.getLogger(__name__)

__all__ = [
    "SCHEMA",
    "VIDEO_EXTENSIONS",
    "ClipScore",
    "DetectionResult",
    "FaceTrackSummary",
    "ForensightDetector",
    "FrameScore",
    "LocalScore",
    "ModelLoadError",
    "TopFrame",
    "expand_inputs",
    "format_results",
    "load_detector",
]

SCHEMA = "forensight-detect-v1"

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
    ".ts", ".mts", ".m2ts", ".ogv", ".mxf",
})


class ModelLoadError(ValueError):
    """The model file could not be used: missing, tampered, foreign, or inconsistent."""


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


# ---- typed result ---------------------------------------------------------------------------

@dataclass
class ClipScore:
    """One model input and its score.

    ``start_frame``/``end_frame`` are source frame numbers (inclusive, 0-based);
    ``start_s``/``end_s`` their presentation times in seconds; ``num_frames`` sampled frames.
    """

    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    num_frames: int
    logit: float
    p_fake: float


@dataclass
class FrameScore:
    """One sampled frame.

    ``attention``: pooling weight (sums to 1 over scored frames), None when not scored.
    ``observed``: the face was detected in this frame (else its position is interpolated).
    ``clip``: index into ``clips`` of the clip that read this frame, None when not scored.
    """

    frame_index: int
    timestamp_s: float
    attention: float | None
    observed: bool
    scored: bool
    clip: int | None


@dataclass
class LocalScore:
    """P(fake) of a sliding window of sampled frames (region models; indicative only).

    The verdict always uses the whole-video score; local scores show where in time a window of
    ``num_frames`` sampled frames looks fake on its own.
    """

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    num_frames: int
    logit: float
    p_fake: float


@dataclass
class FaceTrackSummary:
    """The followed face.

    Attributes:
        coverage: fraction of sampled frames in which the face was detected.
        scored_coverage: the same over the scored frames only.
        num_sampled, num_observed, num_scored: frame counts.
        first_observed_frame, last_observed_frame: source frame numbers of the scored span.
        num_other_tracks: other people seen and ignored (the score is about the main track:
            the largest face present longest).
        boxes: ``(x0, y0, x1, y1)`` native pixels per sampled frame, in the order of ``frames``.
    """

    coverage: float
    scored_coverage: float
    num_sampled: int
    num_observed: int
    num_scored: int
    first_observed_frame: int
    last_observed_frame: int
    num_other_tracks: int
    boxes: list[list[float]]


@dataclass
class TopFrame:
    """One of the most-attended frames: rank 1 = highest weight; box and 68 landmarks in native pixels."""

    rank: int
    frame_index: int
    timestamp_s: float
    attention: float
    box: list[float]
    landmarks: list[list[float]]


@dataclass
class DetectionResult:
    """What ``detect`` says about one video; :meth:`to_dict` is the ``--json`` schema.

    Attributes:
        path: the input file ("" for in-memory frames).
        name: display name (path relative to the input folder, or the file name).
        status: "ok" (scored) or "failed" (not scored; see ``reason`` / ``message``).
        reason: machine code of a failure ("" when ok).
        message: one readable sentence.
        p_fake: sigmoid(logit), None when not scored.
        logit: mean clip logit (the video score), None when not scored.
        verdict: "fake" if ``logit >= threshold`` else "real"; None when not scored.
        threshold: decision threshold on the logit scale (chosen on the validation split).
        threshold_p: the same threshold as a probability.
        clips: per-clip scores, in time order.
        frames: every sampled frame, in time order.
        local_scores: sliding-window scores (region models; [] otherwise).
        face_track: the followed face (None when no face was found / nothing was decoded).
        top_frames: the most-attended frames (rank order).
        video: probed metadata (width, height, fps, num_frames, duration_s, rotation, codec).
        model: which model scored it (name, arch, region, pooling, path, preprocess hash, ...).
        skipped: what was not scored and why, as ``{"what": ..., "why": ...}`` items.
        timings_s: seconds per stage (index, decode, detect, landmarks, track, crop, model, total).
        schema, version: format id and forensight version.
    """

    path: str
    name: str
    status: str
    reason: str = ""
    message: str = ""
    p_fake: float | None = None
    logit: float | None = None
    verdict: str | None = None
    threshold: float = 0.0
    threshold_p: float = 0.5
    clips: list[ClipScore] = field(default_factory=list)
    frames: list[FrameScore] = field(default_factory=list)
    local_scores: list[LocalScore] = field(default_factory=list)
    face_track: FaceTrackSummary | None = None
    top_frames: list[TopFrame] = field(default_factory=list)
    video: dict[str, Any] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    schema: str = SCHEMA
    version: str = __version__

    def __post_init__(self) -> None:
        self._artifacts: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def artifacts(self) -> dict[str, Any] | None:
        """In-memory extras for the HTML report (NOT part of the JSON): ``crops`` maps a top
        frame number → the uint8 (h, w, c) region crop the model read; ``frames`` (in-memory
        input only) maps a frame number → the uint8 (H, W, 3) frame. None after
        :meth:`drop_artifacts` or for failed results."""
        return self._artifacts

    def drop_artifacts(self) -> None:
        """Free the in-memory crops (batches keep only the JSON-able part)."""
        self._artifacts = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: exactly the dataclass fields (the ``--json`` schema)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
            elif isinstance(v, list):
                v = [dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x for x in v]
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectionResult:
        """Inverse of :meth:`to_dict` (e.g. to rebuild reports from saved JSON)."""
        d = dict(d)
        ft = d.get("face_track")
        return cls(
            **{k: v for k, v in d.items() if k not in ("clips", "frames", "local_scores", "face_track",
                                                        "top_frames")},
            clips=[ClipScore(**c) for c in d.get("clips", [])],
            frames=[FrameScore(**c) for c in d.get("frames", [])],
            local_scores=[LocalScore(**c) for c in d.get("local_scores", [])],
            face_track=FaceTrackSummary(**ft) if ft else None,
            top_frames=[TopFrame(**c) for c in d.get("top_frames", [])],
        )

    def short_notes(self) -> str:
        """A few words on what limits the score (for tables): scored span, ignored faces, misses."""
        if not self.ok:
            return f"{self.reason}: {self.message}"
        ft = self.face_track
        notes = []
        if ft and ft.num_scored < ft.num_sampled and self.clips:
            dur = (self.video or {}).get("duration_s")
            notes.append(f"scored {self.clips[0].start_s:.2f}-{self.clips[-1].end_s:.2f} s"
                         + (f" of {dur:.2f} s" if isinstance(dur, (int, float)) else ""))
        if ft and ft.num_other_tracks:
            notes.append(f"{ft.num_other_tracks} other face(s) ignored")
        missed = sum(f.scored and not f.observed for f in self.frames)
        if missed:
            notes.append(f"face missed in {missed} scored frame(s)")
        return "; ".join(notes)

    def summary_row(self) -> dict[str, Any]:
        """One flat row for tables / CSV (one row per video)."""
        ft = self.face_track
        v = self.video or {}
        top = self.top_frames[0] if self.top_frames else None
        return {
            "name": self.name, "path": self.path, "status": self.status, "reason": self.reason,
            "verdict": self.verdict or "", "p_fake": self.p_fake, "logit": self.logit,
            "threshold": self.threshold, "threshold_p": self.threshold_p, "num_clips": len(self.clips),
            "num_frames_scored": ft.num_scored if ft else 0,
            "coverage": ft.coverage if ft else None,
            "num_other_tracks": ft.num_other_tracks if ft else None,
            "duration_s": v.get("duration_s"), "fps": v.get("fps"),
            "width": v.get("width"), "height": v.get("height"),
            "top_frame_index": top.frame_index if top else None,
            "top_frame_time_s": top.timestamp_s if top else None,
            "model": self.model.get("name", ""), "message": self.message,
        }


# ---- inputs ---------------------------------------------------------------------------------

def expand_inputs(paths: Iterable[str | Path],
                  extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[tuple[Path, str]]:
    """Input files and folders → ``(path, display name)`` per video, in a stable order.

    Folders are searched recursively (symlinked folders are not followed; hidden entries are
    skipped) for files with a video extension; names are relative to the folder. A file given
    explicitly is kept whatever its extension (and whether or not it exists: scoring reports
    why it failed). An empty folder is kept as itself, so the batch can say nothing was in it.
    Duplicates (same resolved path) are kept once.
    """
    exts = {e.lower() for e in extensions}
    out: list[tuple[Path, str]] = []
    seen: set[str] = set()

    def add(p: Path, name: str) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append((p, name))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / f for f in sorted(files)
                             if not f.startswith(".") and Path(f).suffix.lower() in exts)
            if not found:
                add(p, p.name or str(p))
            for f in sorted(found, key=lambda q: q.relative_to(p).as_posix()):
                add(f, f.relative_to(p).as_posix())
        else:
            add(p, p.name or str(p))
    return out


# ---- the detector ---------------------------------------------------------------------------

def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_detector(path: str | Path, device: str | torch.device | None = None, top_k: int = 6,
                  batch_size: int = 8) -> ForensightDetector:
    """Load a trained model (a run directory or its ``model.pt``) for scoring videos.

    The file is read with ``torch.load(weights_only=True)``: nothing in it can execute code.
    Raises :class:`ModelLoadError` (a ValueError) for a missing, tampered, foreign or
    inconsistent file, with a message saying which.
    """
    dev = _device(device)
    try:
        f = resolve_model_path(path)
    except FileNotFoundError as e:
        raise ModelLoadError(str(e)) from e
    if f.is_file() and not zipfile.is_zipfile(f):
        raise ModelLoadError(f"{f} is not a forensight model file: not a PyTorch zip archive (damaged, truncated "
                             "or another kind of file)")
    try:
        lm = load_model_file(f, device=dev)
    except ModelLoadError:
        raise
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as e:
        detail = e.args[0] if isinstance(e, KeyError) and e.args else e
        if isinstance(e, ValueError) and str(e).startswith(("refusing", "cannot read", str(f))):
            raise ModelLoadError(str(e)) from e
        raise ModelLoadError(f"{f} is not a usable forensight model file (tampered, damaged or from another "
                             f"version): {type(e).__name__}: {_oneline(str(detail))}") from e
    return ForensightDetector(lm, device=dev, top_k=top_k, batch_size=batch_size)


class ForensightDetector:
    """A loaded model + its preprocessing, scoring files or in-memory frames.

    Args:
        loaded: the model file's content (:func:`forensight.modelfile.load_model_file`).
        device: where the model runs (default: CUDA if available, else CPU).
        top_k: how many most-attended frames each result lists.
        batch_size: clips per forward pass.
        local_scores: compute sliding-window scores for region models (one extra pass over
            overlapping windows of the scored frames; indicative, never used for the verdict).
    """

    def __init__(self, loaded: LoadedModel, device: str | torch.device | None = None, top_k: int = 6,
                 batch_size: int = 8, local_scores: bool = True) -> None:
        self.loaded = loaded
        self.device = _device(device)
        self.model = loaded.inference_model().eval().to(self.device)  # fused LipForensics on eval
        self.model_config = loaded.model_config
        self.preprocess: PreprocessConfig = loaded.preprocess
        self.threshold = float(loaded.threshold)
        self.top_k = int(top_k)
        self.batch_size = max(1, int(batch_size))
        self.local_scores = bool(local_scores)
        mc = self.model_config
        if mc.region not in self.preprocess.regions:
            raise ModelLoadError(f"{loaded.path}: the model reads region {mc.region!r} but its stored "
                                 f"preprocessing makes only {list(self.preprocess.regions)}")
        self.is_clip_model = mc.arch == "lipforensics"
        self.crop = int(mc.input_size) if mc.region == "lips" else None
        if self.crop is not None and self.crop > self.preprocess.lips_size:
            raise ModelLoadError(f"{loaded.path}: model input {self.crop} px exceeds the stored "
                                 f"{self.preprocess.lips_size}-px lips crop")
        self.clip_len = int(mc.num_frames) if self.is_clip_model else None

    # -- description -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Model facts recorded in every result (``result.model``)."""
        mc, pp = self.model_config, self.preprocess
        vm = self.loaded.payload.get("val_metrics", {}) or {}
        clip = (f"clips of {self.clip_len} consecutive frames" if self.is_clip_model
                else f"one clip of the sampled frames ({pp.sampling}"
                + (f", {pp.num_frames} frames)" if pp.sampling == "linear" else ")"))
        return {
            "name": mc.name, "arch": mc.arch, "region": mc.region, "pooling": mc.pooling,
            "input_size": int(mc.input_size), "clips": clip, "path": str(self.loaded.path),
            "preprocess_hash": pp.hash, "sampling": pp.sampling, "detector": pp.detector,
            "threshold_source": "validation split (stored in the model file)",
            "val_auc": vm.get("auc") if isinstance(vm.get("auc"), (int, float)) else None,
            "device": str(self.device),
        }

    def __repr__(self) -> str:
        mc = self.model_config
        return (f"ForensightDetector({mc.name}, region={mc.region}, pooling={mc.pooling}, "
                f"threshold={self.threshold:.4f}, device={self.device})")

    # -- public API ------------------------------------------------------------------------------
    def predict(self, video_path: str | Path, name: str | None = None) -> DetectionResult:
        """Score one video file; never raises for bad input (see ``status`` / ``reason``)."""
        from forensight.preprocess import process_video

        path = Path(video_path)
        name = name or path.name or str(path)
        t0 = time.perf_counter()
        base = self._base(str(path), name)
        try:
            if path.is_dir():
                if expand_inputs([path]) != [(path, path.name or str(path))]:
                    raise PreprocessError("unreadable", f"{path} is a folder; score the videos in it with "
                                                        "predict_many (or pass it to `forensight detect`)")
                raise PreprocessError("no_videos", f"{path} is a folder with no video files "
                                                   f"({', '.join(sorted(VIDEO_EXTENSIONS)[:6])}, ...)")
            record = VideoRecord(path=path, label=0, split="", dataset="detect", method="input",
                                 compression="raw", name=path.stem or "video")
            pv = process_video(record, self.preprocess)
        except PreprocessError as e:
            if e.reason in ("no_face", "too_short", "truncated", "decode_error", "too_large"):
                base.video = _probe_dict(path)  # the file is a video: say what it is
            return self._failed(base, e.reason, e.message, t0)
        except MemoryError:
            return self._failed(base, "too_large", "ran out of memory while decoding", t0)
        except Exception as e:  # a batch must continue; the failure is reported loudly
            log.warning("detect: unexpected error on %s", path, exc_info=True)
            return self._failed(base, "error", f"{type(e).__name__}: {e}", t0)
        info = pv.index.info
        return self._score(base, info, pv.frames_idx, pv.timestamps, pv.track, pv.regions,
                           dict(pv.timings), t0, frames=None)

    def predict_frames(self, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25.0,
                       name: str = "frames") -> DetectionResult:
        """Score in-memory RGB frames: uint8 ``(T, H, W, 3)`` (or a list of ``(H, W, 3)``).

        Frames are sampled with the model's preprocessing exactly as a file of ``T`` frames at
        ``fps`` frames per second would be; timestamps are ``frame_index / fps`` seconds.
        """
        from forensight.preprocess import process_frames
        from forensight.video import sample_indices

        t0 = time.perf_counter()
        base = self._base("", name)
        arr = np.stack(list(frames)) if not isinstance(frames, np.ndarray) else frames
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"expected RGB frames of shape (T, H, W, 3), got {arr.shape}")
        if arr.dtype != np.uint8:
            raise TypeError(f"expected uint8 frames (0..255), got {arr.dtype}")
        if not fps or fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        t_len, h, w = arr.shape[:3]
        info = VideoInfo(width=int(w), height=int(h), fps=float(fps), num_frames=int(t_len),
                         duration_s=float(t_len / fps), rotation=0, codec="in-memory")
        base.video = dataclasses.asdict(info)
        timings: dict[str, float] = {}
        try:
            if max(h, w) > self.preprocess.max_side:
                raise PreprocessError("too_large", f"{w}x{h} exceeds the {self.preprocess.max_side}-pixel limit")
            idx = sample_indices(t_len, self.preprocess)
            sampled = SampledFrames(indices=idx, timestamps=idx.astype(np.float64) / float(fps),
                                    frames=arr[idx])
            t1 = time.perf_counter()
            track, regions = process_frames(sampled, self.preprocess)
            timings["preprocess"] = time.perf_counter() - t1
        except PreprocessError as e:
            return self._failed(base, e.reason, e.message, t0)
        return self._score(base, info, sampled.indices, sampled.timestamps, track, regions, timings, t0,
                           frames=arr)

    def iter_predict(self, paths: Iterable[str | Path], progress: bool = False) -> Iterator[DetectionResult]:
        """Score every video under ``paths`` (files and folders, see :func:`expand_inputs`), lazily."""
        from tqdm.auto import tqdm

        items = expand_inputs(paths)
        bar = tqdm(items, desc="detect", unit="video", disable=not progress, dynamic_ncols=True)
        n_failed = 0
        for p, name in bar:
            res = self.predict(p, name=name)
            n_failed += not res.ok
            bar.set_postfix(failed=n_failed, refresh=False)
            yield res

    def predict_many(self, paths: Iterable[str | Path], progress: bool = True) -> list[DetectionResult]:
        """Score a batch; bad files give failed results and the batch continues."""
        return list(self.iter_predict(paths, progress=progress))

    # -- internals -------------------------------------------------------------------------------
    def _base(self, path: str, name: str) -> DetectionResult:
        return DetectionResult(path=path, name=name, status="ok", threshold=_r(self.threshold),
                               threshold_p=_r(_sigmoid(self.threshold)), model=self.describe())

    def _failed(self, res: DetectionResult, reason: str, message: str, t0: float) -> DetectionResult:
        res.status = "failed"
        res.reason = reason
        lead = {
            "no_face": "no face found",
            "too_short": f"too short for this model ({self._needs()})",
        }.get(reason)
        res.message = f"{lead}: {message}" if lead else message
        res.skipped.append({"what": "the whole video", "why": res.message})
        res.timings_s["total"] = _r(time.perf_counter() - t0, 4)
        return res

    def _needs(self) -> str:
        pp = self.preprocess
        if self.is_clip_model:
            return f"it needs at least one {self.clip_len}-frame clip with the face visible"
        if pp.sampling == "linear":
            return f"it samples {pp.num_frames} distinct frames"
        return f"it needs at least {pp.min_frames} sampled frame(s)"

    def _clips(self, idx: np.ndarray, lo: int, hi: int) -> list[tuple[int, int]]:
        """Clips as ``(first, last+1)`` positions in the sampled arrays, within ``[lo, hi]``."""
        if not self.is_clip_model:
            return [(lo, hi + 1)]
        n = int(self.clip_len or 1)
        out: list[tuple[int, int]] = []
        if self.preprocess.sampling in ("all", "clips"):
            # consecutive source frames only: cut each run of consecutive frame numbers
            run_start = lo
            for p in range(lo, hi + 2):
                if p == hi + 1 or (p > run_start and idx[p] != idx[p - 1] + 1):
                    for s in range(run_start, p - n + 1, n):
                        out.append((s, s + n))
                    run_start = p
        else:  # as the clip dataset does on cached sequences: chunks of the sampled positions
            out = [(s, s + n) for s in range(lo, hi + 2 - n, n)]
        return out

    def _region_array(self, regions: dict[str, np.ndarray]) -> np.ndarray:
        arr = regions[self.model_config.region]
        if arr.ndim == 3:
            arr = arr[..., None]
        if self.crop is not None:
            h, w = arr.shape[1:3]
            y0, x0 = (h - self.crop) // 2, (w - self.crop) // 2
            arr = arr[:, y0:y0 + self.crop, x0:x0 + self.crop]
        return arr

    @torch.inference_mode()
    def _forward(self, clips: list[np.ndarray]) -> tuple[list[float], list[np.ndarray]]:
        """uint8 clips, each (T_i, h, w, c) → logits and valid-frame weights per clip."""
        from forensight.inference import prepare_batch

        logits: list[float] = []
        weights: list[np.ndarray] = []
        dev = self.device
        for b0 in range(0, len(clips), self.batch_size):
            chunk = clips[b0:b0 + self.batch_size]
            t_max = max(c.shape[0] for c in chunk)
            batch = np.zeros((len(chunk), t_max, *chunk[0].shape[1:]), np.uint8)
            for i, c in enumerate(chunk):
                batch[i, :c.shape[0]] = c
            lengths = torch.tensor([c.shape[0] for c in chunk], dtype=torch.int64, device=dev)
            x = prepare_batch(torch.from_numpy(batch).to(dev), self.model_config,
                              channels_last=dev.type == "cuda")
            if dev.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):  # as evaluate does
                    out = self._call(x, lengths)
            else:
                out = self._call(x, lengths)
            lg = out.logits.detach().float().cpu().numpy().reshape(-1)
            wt = out.weights.detach().float().cpu().numpy()
            for i, c in enumerate(chunk):
                logits.append(float(lg[i]))
                weights.append(wt[i, :c.shape[0]].astype(np.float64))
        return logits, weights

    def _call(self, x: torch.Tensor, lengths: torch.Tensor) -> Any:
        from forensight.inference import forward_detector

        return forward_detector(self.model, x, lengths)

    @torch.inference_mode()
    def _forward_with_windows(self, clip: np.ndarray, windows: list[tuple[int, int]]
                              ) -> tuple[list[float], list[np.ndarray], list[float]]:
        """Region models: encode the clip's frames ONCE, then score the whole clip and each
        window ``[a, b)`` of it from those features (the encoder is ~all of the cost)."""
        from forensight.inference import prepare_batch

        dev = self.device
        x = prepare_batch(torch.from_numpy(np.ascontiguousarray(clip[None])).to(dev), self.model_config,
                          channels_last=dev.type == "cuda")
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            feats, mask = self.model.features(x)
            out = self.model.head(feats, mask)
            wf = torch.cat([feats[:, a:b] for a, b in windows])
            local = self.model.head(wf, torch.ones(wf.shape[:2], dtype=torch.bool, device=dev)).logits
        return ([float(out.logits.float().reshape(-1)[0])], [out.weights[0].float().cpu().numpy().astype(np.float64)],
                [float(v) for v in local.float().cpu().numpy().reshape(-1)])

    def _local_windows(self, n: int) -> list[tuple[int, int]]:
        if self.is_clip_model or not self.local_scores:
            return []
        w = max(4, n // 4)
        if n <= w:
            return []
        step = max(1, w // 2)
        starts = list(range(0, n - w + 1, step))
        if starts[-1] != n - w:
            starts.append(n - w)
        return [(s, s + w) for s in starts]

    def _score(self, res: DetectionResult, info: VideoInfo, idx: np.ndarray, ts: np.ndarray, track: FaceTrack,
               regions: dict[str, np.ndarray], timings: dict[str, float], t0: float,
               frames: np.ndarray | None) -> DetectionResult:
        res.video = {"width": info.width, "height": info.height, "fps": _r(info.fps, 4),
                     "num_frames": info.num_frames, "duration_s": _r(info.duration_s, 4),
                     "rotation": info.rotation, "codec": info.codec}
        idx = np.asarray(idx, np.int64)
        ts = np.asarray(ts, np.float64)
        obs = np.asarray(track.observed, bool)
        t_len = int(idx.size)
        where = np.nonzero(obs)[0]
        if where.size == 0:  # build_track raises no_face first; kept for safety
            return self._failed(res, "no_face", f"no face detected in any of the {t_len} sampled frames", t0)
        lo, hi = int(where[0]), int(where[-1])

        def span(a: int, b: int) -> str:
            return (f"frames {int(idx[a])}-{int(idx[b])} ({ts[a]:.2f}-{ts[b]:.2f} s, "
                    f"{b - a + 1} sampled)")

        if lo > 0:
            res.skipped.append({"what": span(0, lo - 1), "why": "before the face was first detected"})
        if hi < t_len - 1:
            res.skipped.append({"what": span(hi + 1, t_len - 1), "why": "after the face was last detected"})
        clip_pos = self._clips(idx, lo, hi)
        if not clip_pos:
            visible = f"{int(idx[hi]) - int(idx[lo]) + 1} frames ({ts[hi] - ts[lo]:.2f} s)"
            return self._failed(res, "too_short", f"the face is visible over only {visible}", t0)
        covered = np.zeros(t_len, bool)
        for a, b in clip_pos:
            covered[a:b] = True
        in_span = np.zeros(t_len, bool)
        in_span[lo:hi + 1] = True
        left = np.nonzero(in_span & ~covered)[0]
        if left.size:
            res.skipped.append({"what": f"{left.size} sampled frame(s) with the face "
                                        f"({', '.join(_runs(idx[left]))})",
                                "why": f"not part of a whole {self.clip_len}-frame clip of consecutive frames"})
        unobserved = int((covered & ~obs).sum())
        if unobserved:
            res.skipped.append({"what": f"face detection in {unobserved} of {int(covered.sum())} scored frames",
                                "why": "no face detected there; the crop uses the face position interpolated "
                                       "from neighbouring frames"})
        if track.num_other_tracks:
            res.skipped.append({"what": f"{track.num_other_tracks} other face track(s)",
                                "why": "several people: only the main face (largest, present longest) is scored"})

        region = self._region_array(regions)
        t1 = time.perf_counter()
        local = self._local_windows(hi - lo + 1)
        local_logits: list[float] = []
        if local and len(clip_pos) == 1 and clip_pos[0][0] == lo and hasattr(self.model, "head"):
            a0, b0 = clip_pos[0]
            logits, weights, local_logits = self._forward_with_windows(region[a0:b0], local)
        else:
            logits, weights = self._forward([region[a:b] for a, b in clip_pos])
            if local:
                local_logits, _ = self._forward([region[lo + a:lo + b] for a, b in local])
        timings["model"] = time.perf_counter() - t1

        video_logit = float(np.mean(logits))
        res.logit = _r(video_logit)
        res.p_fake = _r(_sigmoid(video_logit))
        res.verdict = "fake" if video_logit >= self.threshold else "real"
        n_clips = len(clip_pos)
        att = np.full(t_len, np.nan)
        clip_of = np.full(t_len, -1)
        for k, ((a, b), w) in enumerate(zip(clip_pos, weights)):
            att[a:b] = w / n_clips
            clip_of[a:b] = k
            res.clips.append(ClipScore(index=k, start_frame=int(idx[a]), end_frame=int(idx[b - 1]),
                                       start_s=_r(ts[a]), end_s=_r(ts[b - 1]), num_frames=b - a,
                                       logit=_r(logits[k]), p_fake=_r(_sigmoid(logits[k]))))
        for (a, b), lg in zip(local, local_logits):
            res.local_scores.append(LocalScore(start_frame=int(idx[lo + a]), end_frame=int(idx[lo + b - 1]),
                                               start_s=_r(ts[lo + a]), end_s=_r(ts[lo + b - 1]), num_frames=b - a,
                                               logit=_r(lg), p_fake=_r(_sigmoid(lg))))
        for i in range(t_len):
            sc = bool(covered[i])
            res.frames.append(FrameScore(frame_index=int(idx[i]), timestamp_s=_r(ts[i]),
                                         attention=_r(att[i], 8) if sc else None, observed=bool(obs[i]),
                                         scored=sc, clip=int(clip_of[i]) if sc else None))
        n_scored = int(covered.sum())
        res.face_track = FaceTrackSummary(
            coverage=_r(float(obs.mean()), 4), scored_coverage=_r(float(obs[covered].mean()), 4),
            num_sampled=t_len, num_observed=int(obs.sum()), num_scored=n_scored,
            first_observed_frame=int(idx[lo]), last_observed_frame=int(idx[hi]),
            num_other_tracks=int(track.num_other_tracks),
            boxes=[[round(float(v), 1) for v in b] for b in np.asarray(track.boxes)])

        order = [int(i) for i in np.argsort(-np.nan_to_num(att, nan=-1.0), kind="stable") if covered[i]]
        top = order[:max(0, self.top_k)]
        crops: dict[int, np.ndarray] = {}
        src_frames: dict[int, np.ndarray] = {}
        for rank, i in enumerate(top, 1):
            fi = int(idx[i])
            res.top_frames.append(TopFrame(
                rank=rank, frame_index=fi, timestamp_s=_r(ts[i]), attention=_r(att[i], 8),
                box=[round(float(v), 1) for v in track.boxes[i]],
                landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in track.landmarks[i]]))
            crops[fi] = np.ascontiguousarray(region[i])  # exactly what the model read
            if frames is not None:
                src_frames[fi] = frames[fi]
        res._artifacts = {"crops": crops, "frames": src_frames, "region": self.model_config.region,
                          "preprocess": self.preprocess}
        where_s = (f"{ts[lo]:.2f}-{ts[hi]:.2f} s" if (lo > 0 or hi < t_len - 1) else "the whole video")
        res.message = (f"scored {n_scored} of {t_len} sampled frames in {n_clips} clip(s) over {where_s}; "
                       f"face detected in {100 * obs.mean():.0f}% of sampled frames")
        timings["total"] = time.perf_counter() - t0
        timings["other"] = max(0.0, timings["total"] - sum(v for k, v in timings.items() if k != "total"))
        res.timings_s = {k: _r(v, 4) for k, v in timings.items()}
        return res


def format_results(results: Sequence[DetectionResult], max_name: int = 40) -> str:
    """A readable table: one line per video (verdict, P(fake), clips, face coverage, notes), then a
    summary line; failed videos say why."""
    if not results:
        return "no videos"

    def clip_name(n: str) -> str:
        return n if len(n) <= max_name else "…" + n[-(max_name - 1):]

    names = [clip_name(r.name) for r in results]
    w = max(5, max(len(n) for n in names))
    head = f"{'VIDEO':<{w}}  {'VERDICT':<7}  {'P(FAKE)':>7}  {'CLIPS':>5}  {'FACE':>5}  NOTES"
    lines = []
    m = next((r.model for r in results if r.model), {})
    thr = results[0].threshold_p
    lines.append(f"model {m.get('name', '?')} ({m.get('region', '?')} region, {m.get('pooling', '?')} pooling), "
                 f"threshold P(fake) >= {thr:.3f} from the validation split")
    lines.append(head)
    for r, n in zip(results, names):
        if r.ok:
            ft = r.face_track
            lines.append(f"{n:<{w}}  {str(r.verdict).upper():<7}  {r.p_fake:>7.3f}  {len(r.clips):>5}  "
                         f"{100 * ft.coverage if ft else 0:>4.0f}%  {r.short_notes()}")
        else:
            lines.append(f"{n:<{w}}  {'FAILED':<7}  {'-':>7}  {'-':>5}  {'-':>5}  {r.reason}: {r.message}")
    n_fake = sum(r.ok and r.verdict == "fake" for r in results)
    n_real = sum(r.ok and r.verdict == "real" for r in results)
    n_fail = sum(not r.ok for r in results)
    lines.append(f"{len(results)} video(s): {n_fake} fake, {n_real} real, {n_fail} failed")
    return "\n".join(lines)


def _oneline(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _probe_dict(path: Path) -> dict[str, Any] | None:
    from forensight.video import probe

    try:
        return dataclasses.asdict(probe(path))
    except Exception:  # noqa: BLE001 - only informative
        return None


def _runs(values: np.ndarray) -> list[str]:
    """Consecutive integer runs as text: [3,4,5,9] → ['3-5', '9']."""
    vals = [int(v) for v in values]
    out: list[str] = []
    start = prev = vals[0]
    for v in vals[1:] + [None]:  # type: ignore[list-item]
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
        if v is not None:
            start = prev = v
    return out

"""Score any video with a trained model: P(fake), verdict, per-clip scores and *when* the evidence is.

A thin layer over the one scoring path, so a video scores what ``evaluate`` measured for it:

1. the preprocessing config stored in the model file (never a default) samples frames, tracks
   the faces (a track is a person only if it is face-like, :mod:`forensight.faces.faceness`; the
   others are listed in ``skipped`` as "not a face: ...") and cuts the model's region only
   (:func:`forensight.preprocess.process_video`);
2. :func:`forensight.planning.plan_clips` chooses the clips (the observed-face span; one clip
   for region models, ``clip_len``-frame clips for LipForensics) and says what it left out;
3. :func:`forensight.scoring.forward_batch` scores them (the model file's scoring model, the
   device's precision policy; sliding windows for one-clip models, indicative only);
4. video logit = mean of the clip logits (:func:`forensight.metrics.aggregate_video_scores`);
   P(fake) = sigmoid(logit); verdict "fake" when ``logit >= threshold`` (chosen on the
   validation split, stored in the model file); per-frame attention =
   :func:`forensight.scoring.clip_attention_shares`.

Bad input never raises out of :meth:`ForensightDetector.predict`: it returns a result with
``status="failed"``, a machine ``reason`` (one of :data:`forensight.reasons.REASONS`: ``not_found``,
``empty_file``, ``unreadable``, ``no_video_stream``, ``truncated``, ``decode_error``, ``too_large``,
``too_short``, ``no_face``, ``no_videos``, ``low_face_coverage``, ...; ``error`` only for a bug) and a
readable ``message``, so a batch continues past it. A full disk is no fault of the video: it raises
:class:`forensight.io.DiskFullError`.
:func:`detect_batch` scores many files and writes the JSON / CSV / HTML outputs.

Usage::

    det = forensight.load_detector("runs/lips_attention")      # run dir or model.pt
    res = det.predict("clip.mp4")
    print(res.verdict, res.p_fake, res.to_dict()["frames"][:3])
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensight.config import DetectConfig, PreprocessConfig, merge
from forensight.datasets._common import expand_inputs
from forensight.io import DiskFullError
from forensight.modelcard import card_warning
from forensight.modelfile import LoadedModel, ModelFileError, load_model_file, resolve_model_path
from forensight.records import (
    VIDEO_EXTENSIONS,
    FaceTrack,
    PreprocessError,
    SampledFrames,
    VideoInfo,
    VideoRecord,
)
from forensight.result import (
    ClipScore,
    DetectionResult,
    EvidenceMap,
    FaceTrackSummary,
    FrameScore,
    PersonResult,
    TopFrame,
    batch_document,
    r6,
)

log = logging.getLogger(__name__)

__all__ = ["BatchOutcome", "DetectionResult", "ForensightDetector", "ModelLoadError", "detect_batch",
           "expand_inputs", "load_detector"]

#: Raised by :func:`load_detector` (the model-file errors of :mod:`forensight.modelfile`).
ModelLoadError = ModelFileError


def load_detector(path: str | Path, cfg: DetectConfig | None = None, **overrides: Any) -> ForensightDetector:
    """Load a model for scoring videos: a training run (directory or ``model.pt``), a portable
    model folder (``forensight export`` / ``import``) or a published checkpoint file such as the
    official ``lipforensics_ff.pth`` (imported in memory; :func:`forensight.modelfile.import_published`).

    ``cfg`` (default :class:`DetectConfig`) with keyword ``overrides`` (``device``, ``top_k``,
    ``batch_size``, ``local_scores``). Files are read with ``torch.load(weights_only=True)`` or as
    safetensors + JSON: nothing in them can execute code. Raises :class:`ModelLoadError` (a ValueError) for a missing,
    tampered, foreign or inconsistent file, with a message saying which.
    """
    from forensight.scoring import resolve_device

    cfg = merge(DetectConfig, cfg, overrides)
    dev = resolve_device(cfg.device)
    return ForensightDetector(load_model_file(resolve_model_path(path), device=dev), cfg)


class ForensightDetector:
    """A loaded model + its preprocessing, scoring files or in-memory frames.

    Args:
        loaded: the model file's content (:func:`forensight.modelfile.load_model_file`).
        cfg: device, top_k, batch size, local scores (:class:`DetectConfig`).
    """

    def __init__(self, loaded: LoadedModel, cfg: DetectConfig | None = None) -> None:
        from forensight.scoring import resolve_device

        self.loaded = loaded
        self.cfg = cfg or DetectConfig()
        self.device = resolve_device(self.cfg.device)
        self.model = loaded.scoring_model().to(self.device)
        self.spec = loaded.input_spec
        self.preprocess: PreprocessConfig = loaded.preprocess
        self.threshold = float(loaded.threshold)

    # -- description -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Model facts recorded in every result (``result.model``)."""
        mc, pp, spec = self.loaded.model_config, self.preprocess, self.spec
        vm = self.loaded.payload.get("val_metrics", {}) or {}
        return {
            "name": mc.name, "arch": mc.arch, "region": spec.region, "pooling": mc.pooling,
            "input_size": int(spec.size), "clips": spec.describe(), "path": str(self.loaded.path),
            "preprocess_hash": pp.hash, "sampling": pp.sampling, "detector": pp.detector,
            "threshold_source": self.loaded.threshold_source,
            "threshold_calibrated": bool(self.loaded.threshold_info.get("calibrated", True)),
            "source": self.loaded.source, "kind": self.loaded.kind,
            "calibration": self.loaded.calibration, "temperature": self.loaded.temperature,
            "val_auc": vm.get("auc") if isinstance(vm.get("auc"), (int, float)) else None,
            "device": str(self.device),
            "trained_on": self.loaded.trained_on, "warning": card_warning(self.loaded.trained_on),
        }

    def __repr__(self) -> str:
        mc = self.loaded.model_config
        return (f"ForensightDetector({mc.name}, region={self.spec.region}, pooling={mc.pooling}, "
                f"threshold={self.threshold:.4f}, device={self.device})")

    # -- public API ------------------------------------------------------------------------------
    def predict(self, video_path: str | Path, name: str | None = None,
                progress: Callable[[str, float | None], None] | None = None,
                explain: bool | str | None = None) -> DetectionResult:
        """Score one video file; never raises for bad input (see ``status`` / ``reason``).

        ``explain``: spatial evidence maps (``evidence_maps``): True or "top" for the most-attended
        frames, "all" for every scored frame, False/"" for none, None = ``cfg.explain``.

        ``progress(stage, fraction)``, if given, is called as the work goes: ``("decoding", None)``
        when the file is opened, ``("faces", i / n)`` after each sampled frame's face detection,
        ``("scoring", None)`` before the model runs (the web app's live progress)."""
        from forensight.preprocess import input_file_error, process_video, still_image_error

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
                                                   f"({', '.join(VIDEO_EXTENSIONS[:6])}, ...)")
            bad = input_file_error(path)  # a named pipe, dangling link, ...: never opened
            if bad is not None:
                raise bad
            record = VideoRecord(path=path, label=0, split="", dataset="detect", method="input",
                                 compression="raw", name=path.stem or "video")
            try:
                if progress is not None:
                    progress("decoding", None)
                pv = process_video(record, self.preprocess, people=self._people(), min_frames=self.cfg.min_frames,
                                   progress=None if progress is None else (lambda f: progress("faces", f)),
                                   regions=(self.spec.region,))
            except PreprocessError as e:
                still = still_image_error(path) if e.reason == "too_short" else None
                raise (still or e) from None
            still = still_image_error(path, pv.index.info)
            if still is not None:
                raise still
        except PreprocessError as e:
            if e.reason in ("no_face", "too_short", "truncated", "decode_error", "too_large"):
                base.video = _probe_dict(path)  # the file is a video: say what it is
            return self._failed(base, e.reason, e.message, t0)
        except MemoryError:
            return self._failed(base, "too_large", "ran out of memory while decoding", t0)
        except DiskFullError:  # not the video's fault: the batch stops with the message (see detect_batch)
            raise
        except Exception as e:  # a batch must continue; the failure is reported loudly
            log.warning("detect: unexpected error on %s", path, exc_info=True)
            return self._failed(base, "error", f"{type(e).__name__}: {e}", t0)
        if progress is not None:
            progress("scoring", None)
        return self._score(base, pv.index.info, pv.frames_idx, pv.timestamps, [(pv.track, pv.regions), *pv.others],
                           dict(pv.timings), t0, frames=None, rejected=pv.rejected,
                           explain=self._explain_mode(explain))

    def predict_frames(self, frames: np.ndarray | Sequence[np.ndarray], fps: float = 25.0,
                       name: str = "frames", explain: bool | str | None = None) -> DetectionResult:
        """Score in-memory RGB frames: uint8 ``(T, H, W, 3)`` (or a list of ``(H, W, 3)``).

        Frames are sampled with the model's preprocessing exactly as a file of ``T`` frames at
        ``fps`` frames per second would be; timestamps are ``frame_index / fps`` seconds.
        ``explain``: as in :meth:`predict`.
        """
        mode = self._explain_mode(explain)
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
            idx = sample_indices(t_len, self.preprocess, min_frames=self.cfg.min_frames)
            sampled = SampledFrames(indices=idx, timestamps=idx.astype(np.float64) / float(fps),
                                    frames=arr[idx])
            t1 = time.perf_counter()
            people, rejected = process_frames(sampled, self.preprocess, people=self._people(),
                                              regions=(self.spec.region,))
            timings["preprocess"] = time.perf_counter() - t1
        except PreprocessError as e:
            return self._failed(base, e.reason, e.message, t0)
        return self._score(base, info, sampled.indices, sampled.timestamps, people, timings, t0, frames=arr,
                           rejected=rejected, explain=mode)

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
    def _explain_mode(self, explain: bool | str | None) -> str:
        """``predict``'s ``explain`` argument as a :data:`forensight.config.EXPLAIN_MODES` value."""
        from forensight.config import EXPLAIN_MODES

        mode = self.cfg.explain if explain is None else {True: "top", False: ""}.get(explain, explain)
        if mode not in EXPLAIN_MODES:
            raise ValueError(f"explain must be True/False or one of {EXPLAIN_MODES}, got {explain!r}")
        return str(mode)

    def _base(self, path: str, name: str) -> DetectionResult:
        return DetectionResult(path=path, name=name, status="ok", threshold=r6(self.threshold),
                               threshold_p=r6(self._p(self.threshold)), model=self.describe())

    def _failed(self, res: DetectionResult, reason: str, message: str, t0: float) -> DetectionResult:
        res.status = "failed"
        res.reason = reason
        lead = {"no_face": "no face found", "too_short": f"too short for this model ({self._needs()})"}.get(reason)
        res.message = f"{lead}: {message}" if lead else message
        res.skipped.append({"what": "the whole video", "why": res.message})
        res.timings_s["total"] = r6(time.perf_counter() - t0, 4)
        return res

    def _people(self) -> float | None:
        """The ``people`` argument of preprocessing: every face seen often enough, or the main one."""
        return self._min_person_coverage() if self.cfg.people else None

    def _needs(self) -> str:
        pp = self.preprocess
        if self.spec.clip_len is not None:
            return f"it needs at least one {self.spec.clip_len}-frame clip with the face visible"
        if pp.sampling == "linear":
            return f"it samples {pp.num_frames} distinct frames"
        return f"it needs at least {pp.min_frames} sampled frame(s)"

    def _windows(self, n: int) -> list[tuple[int, int]]:
        """Sliding windows ``[a, b)`` over a one-clip model's ``n`` scored frames (indicative)."""
        if self.spec.clip_len is not None or not self.cfg.local_scores:
            return []
        w = max(4, n // 4)
        if n <= w:
            return []
        step = max(1, w // 2)
        starts = list(range(0, n - w + 1, step))
        if starts[-1] != n - w:
            starts.append(n - w)
        return [(s, s + w) for s in starts]

    def _run(self, region: np.ndarray, idx: np.ndarray, clips: list[tuple[int, int]], explain: bool = False
             ) -> tuple[list[float], list[np.ndarray], list[float], list[np.ndarray]]:
        """Clip logits, valid-frame weights, window logits and (``explain``) per-clip Grad-CAM maps
        through the scoring path."""
        from forensight.datasets.clips import clip_item, collate_clips
        from forensight.scoring import forward_batch

        items = [clip_item("video", 0, region, idx, a, b) for a, b in clips]
        windows = self._windows(clips[0][1] - clips[0][0]) if len(clips) == 1 else []
        logits: list[float] = []
        weights: list[np.ndarray] = []
        local: list[float] = []
        cams: list[np.ndarray] = []
        for b0 in range(0, len(items), self.cfg.batch_size):
            out = forward_batch(self.model, collate_clips(items[b0:b0 + self.cfg.batch_size]), self.device,
                                windows=windows, explain=explain)
            logits.extend(float(v) for v in out.logits)
            weights.extend(out.weights)
            cams.extend(out.cams)
            if out.window_logits:
                local = out.window_logits[0]
        return logits, weights, local, cams

    def _score(self, res: DetectionResult, info: VideoInfo, idx: np.ndarray, ts: np.ndarray,
               people: Sequence[tuple[FaceTrack, dict[str, np.ndarray]]], timings: dict[str, float], t0: float,
               frames: np.ndarray | None, rejected: Sequence[tuple[FaceTrack, Any]] = (),
               explain: str = "") -> DetectionResult:
        """Score every person (``people[0]`` = the main face) and make the video's result: the
        highest-scoring person's score, timeline and top frames, plus each person in ``people``.
        ``rejected``: ``(track, faces.faceness.FaceVerdict)`` of face tracks that are not faces;
        never scored, each listed in ``skipped`` ("not a face: ...")."""
        res.video = {"width": info.width, "height": info.height, "fps": r6(info.fps, 4),
                     "num_frames": info.num_frames, "duration_s": r6(info.duration_s, 4),
                     "rotation": info.rotation, "codec": info.codec}
        idx = np.asarray(idx, np.int64)
        ts = np.asarray(ts, np.float64)
        pp = self.preprocess
        short = pp.sampling == "linear" and len(idx) < pp.num_frames
        t1 = time.perf_counter()
        scored = [self._score_person(k, track, regions, idx, ts, frames, short, explain=explain,
                                     frame_shape=(info.height, info.width))
                  for k, (track, regions) in enumerate(people, 1)]
        timings["model"] = time.perf_counter() - t1
        persons = [s[0] for s in scored]
        res.people = persons
        ok = [p for p in persons if p.ok]
        if not ok:
            return self._failed(res, persons[0].reason, persons[0].message, t0)
        best = max(ok, key=lambda p: (p.logit, -p.person))  # the most suspicious person; ties: the main face
        for name in ("p_fake", "logit", "verdict", "clips", "frames", "local_scores", "face_track", "top_frames",
                     "evidence_maps", "evidence"):
            setattr(res, name, getattr(best, name))
        res.person = best.person
        res.skipped.extend(scored[best.person - 1][1])
        for p in persons:
            if not p.ok:
                res.skipped.append({"what": f"person {p.person}", "why": f"not scored: {p.message}"})
        for track, verdict in rejected:
            box = np.asarray(track.boxes)[np.asarray(track.observed, bool)]
            where = np.median(box, axis=0).round(0).astype(int).tolist() if len(box) else []
            res.skipped.append({"what": f"a face track at {where} (x0, y0, x1, y1 px), in "
                                        f"{100 * float(np.mean(track.observed)):.0f}% of sampled frames",
                                "why": verdict.reason})
        main = people[0][0]
        rare = int(main.num_other_tracks) - (len(people) - 1)
        if rare > 0:
            why = (f"seen in too few sampled frames to score (< {100 * self._min_person_coverage():.0f}%)"
                   if self.cfg.people else "people=False: only the main face (largest, present longest) is scored")
            res.skipped.append({"what": f"{rare} other face track(s)", "why": why})
        res._artifacts = {**scored[best.person - 1][2],
                          "people": {p.person: sc[2] for p, sc in zip(persons, scored) if p.ok}}
        if short:
            res.notes.append(f"short video: scored its {len(idx)} frames (the model samples {pp.num_frames}; "
                             f"at least {self.cfg.min_frames} with a face are needed)")
        ft = best.face_track
        assert ft is not None
        lo = next(f for f in best.frames if f.scored)
        hi = next(f for f in reversed(best.frames) if f.scored)
        whole = lo is best.frames[0] and hi is best.frames[-1]
        where_s = "the whole video" if whole else f"{lo.timestamp_s:.2f}-{hi.timestamp_s:.2f} s"
        res.message = (f"scored {ft.num_scored} of {ft.num_sampled} sampled frames in {len(best.clips)} "
                       f"clip(s) over {where_s}; face detected in {100 * ft.coverage:.0f}% of sampled frames")
        if len(persons) > 1:
            res.message += (f"; {len(persons)} people scored, the verdict is person {best.person}'s "
                            "(the highest P(fake))")
        timings["total"] = time.perf_counter() - t0
        timings["other"] = max(0.0, timings["total"] - sum(v for k, v in timings.items() if k != "total"))
        res.timings_s = {k: r6(v, 4) for k, v in timings.items()}
        return res

    def _min_person_coverage(self) -> float:
        """Face coverage a person other than the main face needs to be scored."""
        return max(float(self.cfg.min_person_coverage), float(self.loaded.min_face_coverage))

    def _score_person(self, person: int, track: FaceTrack, regions: dict[str, np.ndarray], idx: np.ndarray,
                      ts: np.ndarray, frames: np.ndarray | None, short: bool, explain: str = "",
                      frame_shape: tuple[int, int] = (0, 0)
                      ) -> tuple[PersonResult, list[dict[str, str]], dict[str, Any]]:
        """One person's score through the scoring path: the result, what was skipped, report artifacts."""
        from forensight.metrics import aggregate_video_scores
        from forensight.planning import frame_step, plan_clips
        from forensight.scoring import clip_attention_shares

        obs = np.asarray(track.observed, bool)
        if short and int(obs.sum()) < self.cfg.min_frames:
            return (PersonResult(person=person, status="failed", reason="too_short",
                                 message=f"too short for this model: {len(idx)} frames, the face in {int(obs.sum())}; "
                                         f"a short clip needs at least {self.cfg.min_frames} frames with a face"),
                    [], {})
        plan = plan_clips(idx, obs, self.spec, step=frame_step(self.preprocess),
                          min_coverage=self.loaded.min_face_coverage)
        if not plan.clips:
            return PersonResult(person=person, status="failed", reason=plan.reason, message=plan.message), [], {}
        skipped = plan.skipped(idx, ts, obs, self.spec.clip_len)
        region = regions[self.spec.region]
        logits, weights, local_logits, cams = self._run(region, idx, plan.clips, explain=bool(explain))
        video_logit = aggregate_video_scores(["video"] * len(logits), logits)["video"]
        out = PersonResult(person=person, status="ok", logit=r6(video_logit), p_fake=r6(self._p(video_logit)),
                           verdict="fake" if video_logit >= self.threshold else "real")
        att = np.full(plan.num_positions, np.nan)
        for k, ((a, b), w) in enumerate(zip(plan.clips, clip_attention_shares(weights))):
            att[a:b] = w
            out.clips.append(self._span(k, a, b, logits[k], idx, ts))
        lo = plan.clips[0][0]
        out.local_scores = [self._span(None, lo + a, lo + b, lg, idx, ts)
                            for (a, b), lg in zip(self._windows(plan.clips[0][1] - lo), local_logits)]
        covered, clip_of = plan.scored, plan.clip_of
        out.frames = [FrameScore(frame_index=int(idx[i]), timestamp_s=r6(ts[i]),
                                 attention=r6(att[i], 8) if covered[i] else None, observed=bool(obs[i]),
                                 scored=bool(covered[i]), clip=int(clip_of[i]) if covered[i] else None)
                      for i in range(plan.num_positions)]
        span_lo, span_hi = plan.span or (0, 0)
        out.face_track = FaceTrackSummary(
            coverage=r6(float(obs.mean()), 4), scored_coverage=r6(float(obs[covered].mean()), 4),
            num_sampled=plan.num_positions, num_observed=int(obs.sum()), num_scored=int(covered.sum()),
            first_observed_frame=int(idx[span_lo]), last_observed_frame=int(idx[span_hi]),
            num_other_tracks=int(track.num_other_tracks),
            boxes=[[round(float(v), 1) for v in b] for b in np.asarray(track.boxes)])
        out.top_frames, artifacts = self._top_frames(att, covered, idx, ts, track, region, frames)
        if explain:
            out.evidence_maps, out.evidence = self._evidence(explain, cams, plan.clips, att, idx, ts, track, region,
                                                             frame_shape, out.top_frames)
        return out, skipped, artifacts

    def _evidence(self, mode: str, cams: list[np.ndarray], clips: list[tuple[int, int]], att: np.ndarray,
                  idx: np.ndarray, ts: np.ndarray, track: FaceTrack, region: np.ndarray, frame_shape: tuple[int, int],
                  top: list[TopFrame]) -> tuple[list[EvidenceMap], dict[str, Any]]:
        """Evidence maps of the video logit (:mod:`forensight.explain`) for the top frames ("top") or
        every scored frame ("all"), each with its crop's place in the frame."""
        from forensight.explain import (
            HOW_TO_READ,
            MAP_SIZE,
            cam_layer,
            resize_map,
            unit_square_affine,
            video_maps,
        )
        from forensight.regions import crop_to_frame

        scaled, peak = video_maps(cams)
        at: dict[int, np.ndarray] = {}
        for (a, b), m in zip(clips, scaled):
            for i in range(a, b):
                at[i] = m[i - a]
        pos = {int(idx[i]): i for i in at}
        chosen = [pos[t.frame_index] for t in top] if mode == "top" else sorted(at)
        affines = crop_to_frame(self.spec.region, track, frame_shape, self.preprocess, idx)
        window = self.spec.crop_window(*region.shape[1:3])
        maps = []
        for i in chosen:
            unit = unit_square_affine(affines[i], window, int(region.shape[1]))
            corners = np.array([[0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]], np.float64) @ unit.T
            maps.append(EvidenceMap(
                frame_index=int(idx[i]), timestamp_s=r6(ts[i]),
                attention=None if np.isnan(att[i]) else r6(att[i], 8),
                map=[[round(float(v), 4) for v in row] for row in resize_map(at[i], MAP_SIZE)],
                grid=[int(v) for v in at[i].shape],
                crop_to_frame=[[round(float(v), 4) for v in row] for row in unit],
                box=[round(float(v), 1) for v in (*corners.min(0), *corners.max(0))]))
        layer = cam_layer(self.model)
        name = next((n for n, m in self.model.named_modules() if m is layer), type(layer).__name__)
        info = {"method": "Grad-CAM (Selvaraju et al., 2017)", "target": "the video logit (mean of clip logits)",
                "layer": name, "grid": maps[0].grid if maps else None, "map_size": MAP_SIZE,
                "frames": "most-attended" if mode == "top" else "every scored frame", "scale": r6(peak, 8),
                "how_to_read": HOW_TO_READ}
        return maps, info

    def _p(self, logit: float) -> float:
        """P(fake) of a logit (the model file's calibration when it has one)."""
        return float(self.loaded.p_fake(logit))

    def _span(self, index: int | None, a: int, b: int, logit: float, idx: np.ndarray, ts: np.ndarray) -> ClipScore:
        return ClipScore(index=index, start_frame=int(idx[a]), end_frame=int(idx[b - 1]), start_s=r6(ts[a]),
                         end_s=r6(ts[b - 1]), num_frames=b - a, logit=r6(logit), p_fake=r6(self._p(logit)))

    def _top_frames(self, att: np.ndarray, covered: np.ndarray, idx: np.ndarray, ts: np.ndarray, track: FaceTrack,
                    region: np.ndarray, frames: np.ndarray | None) -> tuple[list[TopFrame], dict[str, Any]]:
        """The ``top_k`` most-attended frames, and the crops the model read (report artifacts)."""
        order = [int(i) for i in np.argsort(-np.nan_to_num(att, nan=-1.0), kind="stable") if covered[i]]
        crops: dict[int, np.ndarray] = {}
        src_frames: dict[int, np.ndarray] = {}
        top: list[TopFrame] = []
        rows, cols = self.spec.crop_window(*region.shape[1:3])
        for rank, i in enumerate(order[:max(0, self.cfg.top_k)], 1):
            fi = int(idx[i])
            top.append(TopFrame(
                rank=rank, frame_index=fi, timestamp_s=r6(ts[i]), attention=r6(att[i], 8),
                box=[round(float(v), 1) for v in track.boxes[i]],
                landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in track.landmarks[i]]))
            crop = region[i][rows, cols]
            crops[fi] = np.ascontiguousarray(crop if crop.ndim == 3 else crop[..., None])  # what the model read
            if frames is not None:
                src_frames[fi] = frames[fi]
        return top, {"crops": crops, "frames": src_frames, "region": self.spec.region,
                     "preprocess": self.preprocess}


@dataclass
class BatchOutcome:
    """What :func:`detect_batch` did: the results (artifacts dropped), report pages per result
    index, and the files written."""

    results: list[DetectionResult]
    document: dict[str, Any]
    pages: dict[int, str] = field(default_factory=dict)
    index: Path | None = None
    csv: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[DetectionResult]:
        return [r for r in self.results if not r.ok]


def detect_batch(paths: Iterable[str | Path], detector: ForensightDetector, *, report: str | Path | None = None,
                 csv: str | Path | None = None, progress: bool = False) -> BatchOutcome:
    """Score every video under ``paths``; optionally write HTML pages (+ index) to ``report`` and
    one row per video to ``csv``. A page that cannot be written is a warning, never a lost batch;
    a full disk raises :class:`forensight.io.DiskFullError` (every file is written atomically, so
    none is half-written, and a rerun writes the same outputs)."""
    from forensight.report import write_table

    if report is not None:
        from forensight.html_report import write_index, write_video_report
    results: list[DetectionResult] = []
    out = BatchOutcome(results=results, document={})
    for res in detector.iter_predict(paths, progress=progress):
        if report is not None:
            try:
                out.pages[len(results)] = write_video_report(res, report, index_link=True).name
            except DiskFullError:  # every later page would fail too: stop with what and how much
                raise
            except Exception as e:  # noqa: BLE001 - one unwritable page must not stop the batch
                out.warnings.append(f"no report page for {res.name}: {e}")
        res.drop_artifacts()
        results.append(res)
    if report is not None:
        out.index = write_index(results, report)
    if csv is not None:
        from forensight.result import CSV_COLUMNS

        rows = [{**r.summary_row(), "report": out.pages.get(i, "")} for i, r in enumerate(results)]
        write_table(rows, None, csv, columns=CSV_COLUMNS)
        out.csv = Path(csv)
    out.document = batch_document(results, detector.describe())
    return out


def _probe_dict(path: Path) -> dict[str, Any] | None:
    from forensight.video import probe

    try:
        return dataclasses.asdict(probe(path))
    except Exception:  # noqa: BLE001 - only informative
        return None

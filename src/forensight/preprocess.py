"""Preprocessing: videos → face-region crops in a cache, over many videos.

Per video (``process_video``):
  1. index the file (packets only) and choose the frame numbers to sample;
  2. decode the sampled frames in one forward pass; per frame detect faces on a downscaled copy
     and predict 68 landmarks for each detection on the native frame; every decoded frame goes
     into a ``video.FrameStore`` (RAM up to ``buffer_mb``, then an anonymous temporary file), so
     every frame is decoded once and memory stays bounded for any length and resolution;
  3. link detections into tracks, keep one subject, interpolate gaps, smooth over time;
  4. cut every region from the stored native-resolution frames, in order, freeing each.
A file shorter than its container declares is flagged ``truncated`` (``on_truncated``: "warn"
scores the surviving frames and records a warning, "fail" refuses it).

Over many videos (``run_preprocess``): worker processes, ``shard=(i, n)`` for cluster job arrays,
resume (finished and failed videos are skipped), a progress bar, a failure log, and a summary.
Bad input never stops the batch and is never replaced by anything: it is recorded with a reason.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forensight.cache import Cache
from forensight.config import PreprocessConfig
from forensight.io import DiskFullError
from forensight.records import FaceTrack, PreprocessError, SampledFrames, VideoRecord
from forensight.video import FrameStore, VideoIndex, index_video, iter_frames, prefetch, sample_indices

if TYPE_CHECKING:
    from forensight.faces.faceness import FaceVerdict
    from forensight.pseudofake import PseudoFakeConfig

log = logging.getLogger(__name__)

STAGES = ("index", "decode", "detect", "landmarks", "track", "crop", "write")


@dataclass
class ProcessedVideo:
    """Everything preprocessing produces for one video (before it is written).

    ``regions`` maps region → uint8 (T, h, w, c); ``timings`` maps stage → seconds.
    ``warnings``: problems that did not stop the video, each ``{"code": ..., "message": ...}``
    (code "truncated": the file ends before its declared length and only its surviving prefix
    was processed; ``truncated`` then holds the counts, see ``video.Truncation.to_dict``).
    ``frame_store``: how the sampled native frames were held between detection and cropping
    (``{"in_memory": n, "spilled": m}`` frames; see ``process_video``).
    ``others``: with ``process_video(..., people=...)``, the other people's ``(track, regions)``
    (``faces.tracking.build_tracks`` order); ``track`` / ``regions`` are always the subject's.
    ``rejected``: face tracks that are not faces (``faces.faceness.check_track``) with their verdict;
    never a person, never the subject (see ``_tracks``).
    """

    record: VideoRecord
    index: VideoIndex
    frames_idx: np.ndarray
    timestamps: np.ndarray
    track: FaceTrack
    regions: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    frame_store: dict[str, int] = field(default_factory=dict)
    others: list[tuple[FaceTrack, dict[str, np.ndarray]]] = field(default_factory=list)
    rejected: list[tuple[FaceTrack, FaceVerdict]] = field(default_factory=list)
    pseudo: list[PseudoOutput] = field(default_factory=list)

    @property
    def truncated(self) -> dict[str, Any] | None:
        """Frames found vs declared when the file is truncated, else None."""
        return None if self.index.truncation is None else self.index.truncation.to_dict()

    def arrays(self) -> dict[str, np.ndarray]:
        return {"indices": self.frames_idx.astype(np.int64), "timestamps": self.timestamps.astype(np.float64),
                "boxes": self.track.boxes.astype(np.float32), "landmarks": self.track.landmarks.astype(np.float32),
                "observed": self.track.observed.astype(bool)}

    def meta(self) -> dict[str, Any]:
        info = self.index.info
        return {"num_frames": int(self.frames_idx.size), "coverage": round(self.track.coverage, 4),
                "num_other_tracks": int(self.track.num_other_tracks),
                "rejected_tracks": [v.reason for _, v in self.rejected],
                "video": {"width": info.width, "height": info.height, "fps": info.fps,
                          "num_frames": info.num_frames, "duration_s": info.duration_s,
                          "rotation": info.rotation, "codec": info.codec,
                          "declared_frames": self.index.declared_frames, "declared_s": self.index.declared_s},
                "truncated": self.truncated, "warnings": [dict(w) for w in self.warnings],
                "frame_store": dict(self.frame_store),
                "timings_s": {k: round(v, 4) for k, v in self.timings.items()}}


@dataclass
class PseudoOutput:
    """One pseudo-fake made from a processed real video (``process_video(..., pseudo=...)``).

    ``record``: its :class:`VideoRecord` (label 1, method ``pseudo_<kind>``, the source's split;
    ``manipulated_frames`` = the source frame numbers blended); ``regions``: region → uint8
    (T, h, w, c) crops cut from the blended native frames (None when it failed); ``truth``: the
    ground truth (:meth:`forensight.pseudofake.PseudoFakePlan.ground_truth`); ``error``: why no
    pseudo-fake was made (reason ``too_few_frames`` / ``landmarks_off_frame``), else None.
    """

    record: VideoRecord
    regions: dict[str, np.ndarray] | None = None
    truth: dict[str, Any] | None = None
    error: PreprocessError | None = None


class _Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def add(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (t1 - t0)
        return t1


def _detect_pass(
    frames: Iterable[tuple[int, float, np.ndarray]], cfg: PreprocessConfig, store: FrameStore | None,
    timer: _Timer, done: Callable[[int], None] | None = None,
) -> tuple[list[int], list[float], list[Any]]:
    """Detections + landmarks for every sampled frame; each frame is then put in ``store`` (if given).

    ``frames`` yields ``(frame number, timestamp s, uint8 RGB (H, W, 3))``. Returns frame
    numbers, timestamps and per frame ``(boxes (N, 4), scores (N,), landmarks (N, 68, 2), skin (N,))``
    (skin: ``faces.faceness.skin_fraction`` of each detection, for the face check of ``_tracks``).
    With ``cfg.detect_follow`` = k > 0, samples between detections (every k-th sample and the full
    passes) follow the previous frame's faces by their landmarks (``faces.sequence``); a followed face
    that the next detection does not confirm loses its followed frames. A followed face keeps the
    detector score and the skin-colour fraction of its last detection (the face check takes
    medians over frames, so a value measured once per detection is what it needs).
    """
    from forensight.faces.detectors import get_detector
    from forensight.faces.faceness import FaceCheck, skin_fraction
    from forensight.faces.landmarks import get_landmark_predictor
    from forensight.faces.sequence import (
        SequenceFaceDetector,
        box_offsets,
        boxes_from_landmarks,
        confirm_followed,
    )

    detector = SequenceFaceDetector(get_detector(cfg.detector), max_side=cfg.detect_max_side,
                                    face_px=cfg.detect_face_px, full_every=cfg.detect_full_every,
                                    max_upscale=cfg.detect_max_upscale)
    predictor = get_landmark_predictor()
    min_skin = FaceCheck().min_skin
    follow = int(cfg.detect_follow)
    nums: list[int] = []
    times: list[float] = []
    dets: list[Any] = []
    offsets = np.zeros((0, 4))  # the current faces' box offsets from their landmarks (last detection)
    followed: list[int] = []  # positions in ``dets`` followed since the last detection (same faces, same order)
    t = time.perf_counter()
    for num, ts, rgb in frames:
        t = timer.add("decode", t)
        prev = dets[-1] if dets else None
        if (follow and prev is not None and len(prev[0]) and num - nums[-1] <= 2 and len(nums) % follow
                and not detector.full_due()):
            boxes = boxes_from_landmarks(prev[2], offsets)
            scores, skin = prev[1], prev[3]  # as measured at the face's last detection
            lms = predictor.predict_many(rgb, boxes)
            detector.skip(boxes)
            followed.append(len(dets))
        else:
            boxes, scores = detector.detect(rgb)
            t = timer.add("detect", t)
            lms = predictor.predict_many(rgb, boxes) if len(boxes) else np.zeros((0, 68, 2), np.float32)
            if followed:  # every followed face must be found where following would have put it
                keep = confirm_followed(boxes_from_landmarks(prev[2], offsets), boxes)
                if not keep.all():
                    for k in followed:
                        dets[k] = tuple(np.asarray(a)[keep] for a in dets[k])
                followed = []
            offsets = box_offsets(boxes, lms)
            skin = np.array([skin_fraction(rgb, lm) for lm in lms], np.float32)
        # only losing a skin-coloured face (or any, when none is: a colour cast) forces a full pass
        like = ~(skin < min_skin)  # NaN (no colour to judge) counts as face-like
        detector.set_face_like(like if like.any() else np.ones(len(skin), bool))
        t = timer.add("landmarks", t)
        nums.append(num)
        times.append(ts)
        dets.append((boxes, scores, lms, skin))
        if store is not None:
            store.append(rgb)
        if done is not None:
            done(len(nums))
    return nums, times, dets


def _cut(rgb: np.ndarray, i: int, track: FaceTrack, lips: Any, cfg: PreprocessConfig) -> dict[str, np.ndarray]:
    """Every region of sample ``i`` of one person (``lips`` = (smoothed, raw) landmarks or None)."""
    from forensight.regions import align_lips, crop_regions

    crops = crop_regions(rgb, track.landmarks[i], track.boxes[i], cfg)
    if lips is not None:
        # official geometry: transform from smoothed landmarks, patch centred on this frame's own
        crops["lips"] = align_lips(rgb, lips[0][i], cfg.lips_size, center_landmarks=lips[1][i])[..., None]
    return crops


def _crop_all(frames: Iterable[np.ndarray], tracks: Sequence[tuple[FaceTrack, Any]], cfg: PreprocessConfig,
              timer: _Timer, plans: Sequence[Any] = ()) -> list[dict[str, np.ndarray]]:
    """Pass 2: every region of every frame, for each ``(track, lips)``; ``lips`` = (smoothed, raw)
    landmarks for the mouth alignment, or None. One pass over the frames whatever the number of people.

    ``plans``: pseudo-fakes of the subject (:class:`forensight.pseudofake.PseudoFakePlan`); each frame
    is blended by each plan and its regions cut from the blended native frame with the subject's
    track (an untouched frame reuses the real crops). Their crops follow the people's in the result.
    """
    outs: list[dict[str, list[np.ndarray]]] = [{r: [] for r in cfg.regions} for _ in list(tracks) + list(plans)]
    t = time.perf_counter()
    for i, rgb in enumerate(frames):
        t = timer.add("store", t)  # waiting for the frame: 0 from RAM, a disk read when it was spilled
        per_person = [_cut(rgb, i, track, lips, cfg) for track, lips in tracks]
        t = timer.add("crop", t)
        for k, plan in enumerate(plans):
            fake = plan.apply(i, rgb)
            crops = per_person[0] if fake is rgb else _cut(fake, i, tracks[0][0], tracks[0][1], cfg)
            for name, crop in crops.items():
                outs[len(tracks) + k][name].append(crop)
        if plans:
            t = timer.add("pseudo", t)
        for out, crops in zip(outs, per_person):
            for name, crop in crops.items():
                out[name].append(crop)
    return [{k: np.stack(v) for k, v in out.items()} for out in outs]


def effective_smooth_window(window: int, frame_indices: np.ndarray) -> int:
    """The track-smoothing window in SAMPLES for a window of ``window`` source frames.

    Smoothing removes detector jitter between neighbouring frames; when the samples lie several
    frames apart (linear sampling) the same window covers fewer samples, down to 1 (none), so
    real head motion between distant samples is never averaged away. Always odd.
    """
    if frame_indices.size < 2:
        return 1
    gap = float(np.median(np.diff(frame_indices)))
    n = int(window / max(gap, 1.0))
    return max(1, n if n % 2 else n - 1)


def _tracks(dets: list[Any], nums: list[int], cfg: PreprocessConfig, people: float | None = None
            ) -> tuple[list[tuple[FaceTrack, Any]], list[tuple[FaceTrack, FaceVerdict]], list[dict[str, str]]]:
    """The people of a video: ``(track, lips landmarks)`` of the subject, then (with ``people``) of
    every other person whose face was detected in at least that fraction of the sampled frames;
    the rejected tracks ``(track, verdict)``; and warnings (``{"code", "message"}``: the subject was
    kept although its colour is not skin-like, see below).

    Only face-like tracks are people (``faces.faceness.check_track``, bounds for ``cfg.detector``):
    the subject is the heaviest face-like track (``faces.tracking.build_tracks`` order), so a
    flag or a cartoon is never a dataset video's subject nor a person ``detect`` scores.
    Rejected = every track that fails the check and is seen in at least ``people`` of the
    frames (any track when ``people`` is None). ``num_other_tracks`` counts face-like tracks only.
    Colour is judged only where the footage shows skin as skin-coloured: the subject is the heaviest
    track passing every check; if none does, it is the heaviest passing every check but colour,
    colour then judges no track of the video, and an ``atypical_face_colour`` warning says so (a
    colour cast, old camera footage or a colour-cast face swap must never make faces unscored; the
    built-in carphone footage's real faces measure 2-15 % skin-like pixels). So colour separates a
    person from a face-like object beside a skin-coloured face (the benchmark video's flag).
    Raises ``PreprocessError("no_face")`` when no track passes even without colour.
    """
    from forensight.faces.faceness import FaceCheck, check_track
    from forensight.faces.tracking import build_tracks

    idx = np.asarray(nums, np.int64)
    found = build_tracks(dets, effective_smooth_window(cfg.smooth_window, idx))
    check = FaceCheck().for_detector(cfg.detector)
    full = [check_track(t, check) for t in found]
    # the same checks without colour (NaN skin = "cannot judge")
    plain = [check_track(t, check, skin=np.full(len(t.observed), np.nan, np.float32)) for t in found]
    notes: list[dict[str, str]] = []
    subject = next((i for i, v in enumerate(full) if v.ok), None)
    verdicts = full
    if subject is None:
        subject = next((i for i, v in enumerate(plain) if v.ok), None)
        if subject is None:
            raise PreprocessError("no_face", f"{len(found)} face track(s) found in {len(nums)} sampled frames, "
                                             f"none face-like; the largest: {full[0].reason if full else 'none'}")
        # The main face is not skin-coloured (a colour cast, old camera footage, a colour-cast face
        # swap): colour says nothing about faces in this video, so it judges no track.
        verdicts = plain
        notes.append({"code": "atypical_face_colour",
                      "message": f"the main face is kept although {full[subject].reason.removeprefix('not a face: ')}"
                                 "; colour was judged for no face of this video (a colour cast is a known "
                                 "manipulation artefact and never makes a face unscored)"})
    others = [i for i in range(len(found)) if i != subject and verdicts[i].ok]
    faces = [found[subject]] + [found[i] for i in others]
    rejected = [(t, v) for i, (t, v) in enumerate(zip(found, verdicts))
                if i != subject and not v.ok and (people is None or float(t.observed.mean()) >= people)]
    for t in faces:
        t.num_other_tracks = len(faces) - 1
    tracks = faces[:1] if people is None else faces[:1] + [t for t in faces[1:] if float(t.observed.mean()) >= people]
    out: list[tuple[FaceTrack, Any]] = []
    for track in tracks:
        lips = None
        if "lips" in cfg.regions:
            from forensight.regions import smooth_lips_landmarks

            raw = track.raw_landmarks if track.raw_landmarks is not None else track.landmarks
            lips = (smooth_lips_landmarks(raw, cfg.lips_smooth_window, frame_indices=idx,
                                          mode=cfg.lips_smooth_mode), raw)
        out.append((track, lips))
    return out, rejected, notes


def _only(cfg: PreprocessConfig, regions: Sequence[str] | None) -> PreprocessConfig:
    """``cfg`` cutting only ``regions`` (a subset of ``cfg.regions``, kept in its order); None = all."""
    if regions is None:
        return cfg
    unknown = sorted(set(regions) - set(cfg.regions))
    if unknown or not regions:
        raise ValueError(f"regions {list(regions)} must be a non-empty subset of the config's {list(cfg.regions)}")
    import dataclasses

    return dataclasses.replace(cfg, regions=tuple(r for r in cfg.regions if r in regions))


def process_video(record: VideoRecord, cfg: PreprocessConfig, buffer_mb: float = 768.0,
                  threads: int = 0, overlap: bool = True, people: float | None = None,
                  min_frames: int = 0, progress: Callable[[float], None] | None = None,
                  regions: Sequence[str] | None = None,
                  pseudo: PseudoFakeConfig | None = None) -> ProcessedVideo:
    """Preprocess one video (see the module docstring); raises ``PreprocessError`` on bad input.

    One decode, bounded memory. The sampled frames are decoded exactly once, in one forward
    pass (``video.iter_frames``). Each decoded frame goes through detection and landmarks and is
    then put in a ``video.FrameStore``: in RAM up to ``buffer_mb`` MiB, beyond that appended to
    an anonymous temporary file. Tracking needs every frame's detections before any crop can be
    cut (subject choice, gap interpolation and smoothing look at the whole track), so the frames
    must be held until then; the store gives them back one by one for cropping, bit for bit.
    Resident memory is therefore at most ``buffer_mb`` of frames + a few frames in flight
    (decoder, prefetch queue of 4) + the outputs (crops, per-frame landmarks), whatever the
    video's length; the temporary file takes ``H * W * 3`` bytes per frame beyond the budget.

    Truncated files (``video.Truncation``: fewer frames than the container declares) follow
    ``cfg.on_truncated``: "warn" processes the surviving prefix and records a warning (code
    "truncated") in ``ProcessedVideo.warnings`` / the cached metadata; "fail" raises
    ``PreprocessError("truncated", "... N of M declared frames ...")``.

    ``threads`` = decoder threads (0 = FFmpeg's choice); ``overlap`` decodes in a background
    thread while faces are detected (useful when a core is free: one process, or detect).
    ``people``: also track, and cut the regions of, every other person whose face is detected in
    at least this fraction of the sampled frames (``ProcessedVideo.others``; ``detect`` scores
    each); None = the subject only (datasets). ``min_frames`` > 0: a video shorter than linear
    sampling's ``num_frames`` is sampled whole if it has at least that many frames
    (``video.sample_indices``); 0 = refused as "too_short" (datasets). ``progress(fraction)`` is
    called after each sampled frame's detection (fraction of the sampled frames done).
    ``regions``: cut only these of ``cfg.regions`` (``detect`` needs only its model's region);
    each is cut exactly as with all of them. None = all.
    ``pseudo``: for a REAL video, also make its pseudo-fakes (:func:`forensight.pseudofake.pseudo_records`)
    from the same decoded frames and landmarks, cut in the same pass (``ProcessedVideo.pseudo``).
    """
    cut = _only(cfg, regions)
    timings: dict[str, float] = {}
    timer = _Timer(timings)
    t0 = time.perf_counter()
    idx = index_video(record.path, max_side=cfg.max_side)
    warnings: list[dict[str, str]] = []
    if idx.truncation is not None:
        msg = idx.truncation.message(record.path)
        if cfg.on_truncated == "fail":
            raise PreprocessError("truncated", msg)
        log.warning("%s (on_truncated='warn': processing the surviving prefix)", msg)
        warnings.append({"code": "truncated", "message": msg})
    wanted = sample_indices(idx.info.num_frames, cfg, min_frames=min_frames)
    timer.add("index", t0)
    if cfg.input == "mouth_crops":
        pv = _process_mouth_crops(record, cfg, idx, wanted, timer, threads)
        pv.warnings.extend(warnings)
        return pv
    with FrameStore(int(buffer_mb * 2**20)) as store:
        decoded = iter_frames(record.path, wanted, index=idx, threads=threads)
        nums, times, dets = _detect_pass(prefetch(decoded) if overlap else decoded, cfg, store, timer,
                                         None if progress is None else (lambda i: progress(i / len(wanted))))
        held = {"in_memory": store.num_in_memory, "spilled": store.num_spilled}

        t = time.perf_counter()
        tracks, rejected, notes = _tracks(dets, nums, cut, people)
        warnings.extend(notes)
        t = timer.add("track", t)
        pseudo_out, plans = _pseudo_plans(record, pseudo, tracks[0][0], idx.info)
        timer.add("pseudo", t)
        crops = _crop_all(store.drain(), tracks, cut, timer, [p for _, p in plans])
    for (out, plan), rg in zip(plans, crops[len(tracks):]):
        out.regions = rg
        out.truth = plan.ground_truth(nums)
        out.record = replace(out.record, manipulated_frames=tuple(out.truth["manipulated_frames"]))
    return ProcessedVideo(record=record, index=idx, frames_idx=np.asarray(nums, np.int64),
                          timestamps=np.asarray(times, np.float64), track=tracks[0][0], regions=crops[0],
                          timings=timings, warnings=warnings, frame_store=held,
                          others=[(tr, rg) for (tr, _), rg in zip(tracks[1:], crops[1:len(tracks)])],
                          rejected=rejected, pseudo=pseudo_out)


def _pseudo_plans(record: VideoRecord, pseudo: PseudoFakeConfig | None, track: FaceTrack, info: Any,
                  ) -> tuple[list[PseudoOutput], list[tuple[PseudoOutput, Any]]]:
    """Every pseudo-fake of ``record`` (all outputs; the ``(output, plan)`` of those that can be made)."""
    if pseudo is None or record.label != 0:
        return [], []
    from forensight.pseudofake import plan_pseudofake, pseudo_records, rng_for

    shape = (info.height, info.width, 3)  # the decoded frames' size (after rotation)
    outs: list[PseudoOutput] = []
    plans: list[tuple[PseudoOutput, Any]] = []
    for k, (rec, kind) in enumerate(pseudo_records(record, pseudo)):
        out = PseudoOutput(record=rec)
        outs.append(out)
        try:
            plan = plan_pseudofake(kind, pseudo.region, track.landmarks, shape, rng_for(pseudo, record.video_id, k),
                                   pseudo.sparsity, pseudo.per_frame)
        except PreprocessError as e:
            out.error = e
            continue
        plans.append((out, plan))
    return outs, plans


def _process_mouth_crops(record: VideoRecord, cfg: PreprocessConfig, idx: VideoIndex, wanted: np.ndarray,
                         timer: _Timer, threads: int) -> ProcessedVideo:
    """Videos that already are aligned mouth crops: every frame → grayscale "lips" crop."""
    import cv2

    info = idx.info
    if (info.width, info.height) != (cfg.lips_size, cfg.lips_size):
        raise PreprocessError(
            "wrong_format", f"{record.path}: input 'mouth_crops' needs {cfg.lips_size}x{cfg.lips_size} frames "
                            f"(aligned mouth crops), got {info.width}x{info.height}; use input 'video' instead")
    nums, times, crops = [], [], []
    t = time.perf_counter()
    for num, ts, rgb in iter_frames(record.path, wanted, index=idx, threads=threads):
        nums.append(num)
        times.append(ts)
        crops.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None])
    timer.add("decode", t)
    n = len(nums)
    side = float(cfg.lips_size)
    track = FaceTrack(boxes=np.tile(np.array([0, 0, side, side], np.float32), (n, 1)),
                      landmarks=np.full((n, 68, 2), np.nan, np.float32), observed=np.ones(n, bool),
                      scores=np.ones(n, np.float32))
    return ProcessedVideo(record=record, index=idx, frames_idx=np.asarray(nums, np.int64),
                          timestamps=np.asarray(times, np.float64), track=track, regions={"lips": np.stack(crops)},
                          timings=timer.timings)


def process_frames(frames: SampledFrames, cfg: PreprocessConfig, people: float | None = None,
                   regions: Sequence[str] | None = None
                   ) -> tuple[list[tuple[FaceTrack, dict[str, np.ndarray]]], list[tuple[FaceTrack, FaceVerdict]]]:
    """Preprocess frames already in memory (uint8 (T,H,W,3) RGB): ``(face track, region crops)``
    of the subject, then of the other people (``people`` and ``regions`` as in
    :func:`process_video`), and the rejected non-face tracks with their verdicts
    (``ProcessedVideo.rejected``)."""
    cfg = _only(cfg, regions)
    timer = _Timer({})
    items = zip(frames.indices.tolist(), frames.timestamps.tolist(), frames.frames)
    nums, _, dets = _detect_pass(items, cfg, None, timer)
    tracks, rejected, notes = _tracks(dets, nums, cfg, people)
    for n in notes:
        log.warning("%s", n["message"])
    regions = _crop_all(iter(frames.frames), tracks, cfg, timer)
    return [(tr, rg) for (tr, _), rg in zip(tracks, regions)], rejected


# ---- many videos ---------------------------------------------------------------------------------

@dataclass
class PreprocessSummary:
    """What a preprocessing run did, counting every candidate path of the shard exactly once.

    ``total`` = candidates found in this shard = ``done + failed + skipped``; ``skipped_reasons``
    maps why a candidate was skipped (``done_before``: already in the cache, ``failed_before``: an
    earlier failure, not retried) → count; ``failures`` maps video id → (reason, message) of this
    run's failures; ``seconds`` = wall time; ``stage_seconds`` = summed per-stage seconds.
    """

    root: Path
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    pseudo_done: int = 0
    pseudo_failures: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def accounted(self) -> int:
        """``done + failed + skipped``: equals ``total`` when every candidate was counted once."""
        return self.done + self.failed + self.skipped

    def __str__(self) -> str:
        why = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped_reasons.items()))
        check = ("every candidate counted once" if self.accounted == self.total
                 else f"MISCOUNT: {self.accounted} accounted for, {self.total} found")
        head = (f"preprocess: {self.total} found in this shard = {self.done} done + {self.failed} failed + "
                f"{self.skipped} skipped{f' ({why})' if why else ''}; {check}  [{self.seconds:.1f} s] "
                f"-> {self.root}")
        lines = [head]
        if self.pseudo_done or self.pseudo_failures:
            reasons = Counter(r for r, _ in self.pseudo_failures.values())
            lines.append(f"  pseudo-fakes: {self.pseudo_done} written, {len(self.pseudo_failures)} not made"
                         + (" (" + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) + ")" if reasons else ""))
        if self.failures:
            reasons = Counter(r for r, _ in self.failures.values())
            lines.append("  failures by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
            for vid, (reason, msg) in list(self.failures.items())[:10]:
                lines.append(f"  - {vid}: {reason}: {msg}")
            if len(self.failures) > 10:
                lines.append(f"  ... and {len(self.failures) - 10} more (see manifest.csv / preprocess.log)")
        return "\n".join(lines)


def shard_records(records: Sequence[VideoRecord], shard: tuple[int, int]) -> list[VideoRecord]:
    """The records of shard ``i`` of ``n`` (0-based), split by a stable order of qualified ids."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    ordered = sorted(records, key=lambda r: r.video_id)
    return ordered[i::n]


def _work(args: tuple[Any, ...]) -> tuple[str, str, str, str, dict, dict]:
    """Worker: process and write one video (and its pseudo-fakes).

    Returns (video_id, status, reason, message, timings, pseudo counts ``{"done": n, "failed":
    {video_id: (reason, message)}}``). ``args`` = (record, config, cache root, decode buffer in
    MiB, decoder threads, crash_on, pseudo-fake config or None). The pseudo-fake entries are
    written BEFORE the real video's, so a finished real entry means its pseudo-fakes were handled;
    a source video that fails gives each of its pseudo-fakes a failure with the same reason.
    The path is checked first (``input_file_error``: a folder, named pipe or dangling link is
    never opened), and a still image is told from a video (``still_image_error``).
    ``crash_on`` is a TEST-ONLY hook (from the environment variable ``CRASH_ENV``, read by
    ``run_preprocess``): when it equals the record's name or file name, this process kills itself
    with SIGKILL, as the out-of-memory killer would. "" = no hook.
    """
    record, cfg, root, buffer_mb, threads, crash_on, pseudo = args
    if crash_on and crash_on in (record.name, record.path.name):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    cache = Cache(Path(root), cfg)
    try:
        bad_input = input_file_error(record.path)
        if bad_input is not None:
            raise bad_input
        try:
            pv = process_video(record, cfg, buffer_mb=buffer_mb, threads=threads, overlap=threads != 1,
                               pseudo=pseudo)
        except PreprocessError as e:
            if e.reason == "too_short":  # one frame of an image format: not a short video, no video at all
                still = still_image_error(record.path)
                if still is not None:
                    raise still from e
            raise
        still = still_image_error(record.path, pv.index.info)
        if still is not None:
            raise still
        t = time.perf_counter()
        counts = _write_pseudo(cache, pv, pseudo)
        cache.write_entry(record, pv.arrays(), pv.regions, pv.meta())
        pv.timings["write"] = time.perf_counter() - t
        return record.video_id, "ok", "", "", pv.timings, counts
    except PreprocessError as e:
        cache.write_failure(record, e.reason, e.message)
        return record.video_id, "failed", e.reason, e.message, {}, _fail_pseudo(cache, record, pseudo, e.reason,
                                                                              e.message)
    except MemoryError:
        cache.write_failure(record, "too_large", "ran out of memory")
        return (record.video_id, "failed", "too_large", "ran out of memory", {},
                _fail_pseudo(cache, record, pseudo, "too_large", "ran out of memory"))
    except DiskFullError:  # not this video's fault: the run stops, and its rerun resumes here
        raise
    except Exception as e:  # noqa: BLE001 - an unexpected bug must not stop the batch, but must be loud
        msg = f"{type(e).__name__}: {e}"
        cache.write_failure(record, "error", msg + " | " + traceback.format_exc(limit=3).replace("\n", " "))
        return record.video_id, "failed", "error", msg, {}, _fail_pseudo(cache, record, pseudo, "error", msg)


def _write_pseudo(cache: Cache, pv: ProcessedVideo, pseudo: PseudoFakeConfig | None) -> dict[str, Any]:
    """Write the pseudo-fake entries (or their failures) of a processed real video; their counts."""
    counts: dict[str, Any] = {"done": 0, "failed": {}}
    for out in pv.pseudo:
        if out.error is not None:
            cache.write_failure(out.record, out.error.reason, out.error.message)
            counts["failed"][out.record.video_id] = (out.error.reason, out.error.message)
            continue
        assert out.regions is not None and pseudo is not None
        meta = {**pv.meta(), "pseudo": {**(out.truth or {}), "source": pv.record.video_id,
                                        "config": pseudo.to_dict()}}
        cache.write_entry(out.record, pv.arrays(), out.regions, meta)
        counts["done"] += 1
    return counts


def _fail_pseudo(cache: Cache, record: VideoRecord, pseudo: PseudoFakeConfig | None, reason: str,
                 message: str) -> dict[str, Any]:
    """A failed source video: each of its pseudo-fakes fails with the same reason."""
    counts: dict[str, Any] = {"done": 0, "failed": {}}
    if pseudo is None:
        return counts
    from forensight.pseudofake import pseudo_records

    for rec, _ in pseudo_records(record, pseudo):
        msg = f"its source video {record.video_id} failed: {message}"
        cache.write_failure(rec, reason, msg)
        counts["failed"][rec.video_id] = (reason, msg)
    return counts


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_preprocess(records: Sequence[VideoRecord], root: str | Path, cfg: PreprocessConfig, workers: int = 1,
                   shard: tuple[int, int] = (0, 1), retry_failed: bool = False, progress: bool = True,
                   buffer_mb: float = 768.0, pseudo: PseudoFakeConfig | None = None) -> PreprocessSummary:
    """Preprocess ``records`` into the cache at ``root`` (created if new; resumed if it exists).

    Every record of the shard ends counted once in the summary (done, failed with a reason, or
    skipped with a reason: ``done_before`` / ``failed_before``) and has one manifest row. Failure
    reasons beyond those of ``PreprocessError``: ``not_regular_file`` (a folder, named pipe, socket
    or device), ``dangling_link``, ``not_a_video`` (a still image), ``worker_crashed`` (the worker
    process died on this video: out of memory or a native crash; see ``_run_pool``).

    With ``workers`` >= 2 videos run in worker processes and a crashing worker costs only its own
    video; with ``workers`` = 1 they run in this process (a native crash ends the run; the rerun
    resumes). Shards may run concurrently on one cache root: each cleans only the temporary
    directories of dead processes (``Cache.clean_partial``).

    ``pseudo``: also write pseudo-fakes of every REAL video (:mod:`forensight.pseudofake`; K =
    ``pseudo.per_video`` entries each, label 1, method ``pseudo_sbi`` / ``pseudo_vb``, in the source's
    split) from the same decoded frames and landmarks; counted in ``pseudo_done`` / ``pseudo_failures``.
    A real video counts as done before only when its pseudo-fakes are also done (or failed, unless
    ``retry_failed``). A set of records with no real video is refused (ValueError).

    The pseudo-fake settings are recorded in the cache's ``cache.json`` (``pseudo_fakes``); a cache
    holding pseudo-fakes made with other settings is refused (:class:`forensight.cache.PseudoFakeSettingsMismatch`,
    naming the differing settings) before anything is written.

    Raises ``CacheConfigMismatch`` if ``root`` was made with another config. Videos already in
    the cache are skipped, and so are earlier failures unless ``retry_failed``.

    A full disk stops the run with :class:`forensight.io.DiskFullError` (what was being written,
    how much room it needed): no half entry is kept and the video is NOT recorded as failed, so
    the rerun after space is freed resumes with it and ends as a run that never failed.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    if pseudo is not None:
        if cfg.input != "video":
            raise ValueError(f"pseudo-fakes need faces and landmarks (input 'video'); the config's input is "
                             f"{cfg.input!r}")
        n_real = sum(r.label == 0 for r in records)
        if n_real == 0:
            raise ValueError(f"pseudo-fakes are made from real videos, and none of the {len(records)} input "
                             "videos is real (label 0): give a folder with real/ (or a CSV with label 0 rows)")
    cache = Cache.create(root, cfg, pseudo_fakes=None if pseudo is None else pseudo.to_dict())
    cache.clean_partial()
    mine = shard_records(records, shard)
    ids = [r.video_id for r in mine]
    dup = [k for k, v in Counter(ids).items() if v > 1]
    if dup:
        raise ValueError(f"duplicate video ids in the input: {dup[:5]}")
    summary = PreprocessSummary(root=Path(root), total=len(mine))
    todo = []
    for r in mine:
        why = ("done_before" if cache.is_done(r.video_id) and _pseudo_settled(cache, r, pseudo, retry_failed)
               else "failed_before" if cache.is_failed(r.video_id) and not retry_failed else "")
        if why:
            summary.skipped += 1
            summary.skipped_reasons[why] = summary.skipped_reasons.get(why, 0) + 1
        else:
            todo.append(r)
    threads = 1 if workers > 1 else 0
    crash_on = os.environ.get(CRASH_ENV, "")
    jobs = [(r, cfg, str(cache.root), buffer_mb, threads, crash_on, pseudo) for r in todo]
    bar = tqdm(total=len(jobs), desc="preprocess", unit="video", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1:
            _consume(map(_work, jobs), summary, bar)
        else:
            # forkserver, not fork: forking a process whose torch/OpenMP thread pools are running
            # can deadlock the children (seen in the full test suite); the server is clean.
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["forensight.preprocess", "cv2", "dlib"])
            _run_pool(jobs, workers, ctx, cache, summary, bar)
    finally:
        bar.close()
        try:
            cache.write_manifest()
        except DiskFullError as e:  # the manifest is rebuilt from the entries by the rerun
            log.warning("%s", e)
    summary.seconds = time.perf_counter() - t_start
    if summary.accounted != summary.total:
        raise RuntimeError(f"preprocess miscounted (a bug): {summary.total} videos in the shard but "
                           f"{summary.done} done + {summary.failed} failed + {summary.skipped} skipped")
    return summary


def _pseudo_settled(cache: Cache, record: VideoRecord, pseudo: PseudoFakeConfig | None, retry_failed: bool) -> bool:
    """True when every pseudo-fake of ``record`` is in the cache (or failed, unless ``retry_failed``)."""
    if pseudo is None:
        return True
    from forensight.pseudofake import pseudo_records

    return all(cache.is_done(rec.video_id) or (cache.is_failed(rec.video_id) and not retry_failed)
               for rec, _ in pseudo_records(record, pseudo))


def _consume(results: Iterable[tuple], summary: PreprocessSummary, bar: Any) -> None:
    """Count ``_work`` results (video_id, status, reason, message, timings, pseudo counts) into ``summary``."""
    for vid, status, reason, msg, timings, pseudo in results:
        summary.pseudo_done += int(pseudo.get("done", 0))
        summary.pseudo_failures.update(pseudo.get("failed", {}))
        if status == "ok":
            summary.done += 1
            for k, v in timings.items():
                summary.stage_seconds[k] = summary.stage_seconds.get(k, 0.0) + v
        else:
            summary.failed += 1
            summary.failures[vid] = (reason, msg)
            log.warning("failed %s: %s: %s", vid, reason, msg)
        bar.update(1)
        bar.set_postfix(done=summary.done, failed=summary.failed, refresh=False)


# ---- integrity helpers: input checks, crash isolation ----------------------------------------------

#: TEST-ONLY: a video name (``VideoRecord.name`` or file name) whose worker kills itself with SIGKILL,
#: to exercise the crash handling of ``_run_pool``. Never set it outside tests.
CRASH_ENV = "FORENSIGHT_TEST_CRASH_ON"

#: Codecs of still-image formats: a one-frame stream in one of them is an image, not a video.
STILL_IMAGE_CODECS = frozenset({
    "png", "apng", "mjpeg", "jpegls", "jpeg2000", "jpegxl", "bmp", "tiff", "webp", "gif", "ppm", "pgm",
    "pgmyuv", "pbm", "pam", "pcx", "sgi", "targa", "dpx", "exr", "qoi", "hdr", "xbm", "xpm", "xwd",
    "sunrast", "pictor", "psd", "dds", "photocd", "jpeg",
})


def input_file_error(path: Path) -> PreprocessError | None:
    """What is wrong with ``path`` before it is opened as a video, or None for a regular file.

    Reasons: ``not_found`` (nothing there), ``dangling_link`` (a symbolic link to nothing, or a
    link loop), ``not_regular_file`` (a folder, named pipe, socket or device: the message names
    which; a named pipe would block a decoder forever), ``unreadable`` (no permission to look).
    """
    import stat

    try:
        lst = path.lstat()
    except FileNotFoundError:
        return PreprocessError("not_found", f"no such file: {path}")
    except OSError as e:
        return PreprocessError("unreadable", f"{path}: cannot be examined ({e})")
    link = stat.S_ISLNK(lst.st_mode)
    try:
        st = path.stat() if link else lst
    except FileNotFoundError:
        return PreprocessError("dangling_link", f"{path} is a dangling symbolic link "
                                                f"(to {os.readlink(path)!r}, which does not exist)")
    except OSError as e:
        return PreprocessError("dangling_link", f"{path} is a symbolic link that cannot be followed ({e})")
    if stat.S_ISREG(st.st_mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(st.st_mode)),
                f"of file type {stat.S_IFMT(st.st_mode):o}")
    via = f" (symbolic link to {os.readlink(path)!r})" if link else ""
    return PreprocessError("not_regular_file", f"not a regular file: {path} is {kind}{via}")


def still_image_error(path: Path, info: Any = None) -> PreprocessError | None:
    """``not_a_video`` if ``path`` (probed unless ``info`` is given) is a still image, else None.

    A still image = one frame in a still-image codec (``STILL_IMAGE_CODECS``), e.g. a PNG or
    JPEG renamed ``.mp4``; FFmpeg opens it as a one-frame "video", which must not be reported
    as a short video (``too_short``) or cached as one. A probe that fails gives None (the caller
    keeps its own error). ``info`` is a ``records.VideoInfo``.
    """
    from forensight.video import probe

    if info is None:
        try:
            info = probe(path)
        except PreprocessError:
            return None
    if info.num_frames <= 1 and info.codec.lower() in STILL_IMAGE_CODECS:
        return PreprocessError("not_a_video", f"not a video: {path} is a still image "
                                              f"({info.num_frames} frame, {info.codec} codec, "
                                              f"{info.width}x{info.height})")
    return None


def _run_pool(jobs: Sequence[tuple], workers: int, ctx: Any, cache: Cache, summary: PreprocessSummary,
              bar: Any) -> None:
    """Run ``jobs`` (``_work`` arguments) on ``workers`` processes; a crashing worker costs only its video.

    At most ``workers`` jobs are in flight, so all of them are running. When a worker process
    dies (SIGKILL from the out-of-memory killer, a segfault in native code) the pool breaks and
    every job in flight fails with ``BrokenProcessPool`` without telling which one killed it.
    Each of those is then run ALONE in a fresh process (``_run_alone``): the one that dies
    again is recorded as failed with reason ``worker_crashed`` (path and exit signal in the
    message); the others complete normally. A new pool takes the remaining jobs.
    """
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, Future, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = deque(jobs)
    idle_breaks = 0  # pools that broke with no job in flight (an idle worker died)
    while queue:
        suspects: list[tuple] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            running: dict[Future, tuple] = {}
            while queue or running:
                while queue and len(running) < workers and not suspects:
                    try:
                        fut = pool.submit(_work, queue[0])
                    except BrokenProcessPool:
                        break
                    running[fut] = queue.popleft()
                if not running:  # broken between jobs: no video to blame; a new pool takes the queue
                    idle_breaks += 1
                    if idle_breaks > 3:
                        raise RuntimeError(f"worker pools keep breaking with no job running "
                                           f"({len(queue)} videos left): worker processes cannot run here")
                    break
                _collect(wait(list(running), return_when=FIRST_COMPLETED)[0], running, suspects, summary, bar)
                if suspects:  # the pool is broken: every job in flight ends, with a result or the error
                    _collect(wait(list(running))[0], running, suspects, summary, bar)
                    break
        if suspects:
            log.warning("a worker process died; running the %d video(s) it may have been processing "
                        "one by one", len(suspects))
            cache.clean_partial()  # the dead workers' half-written entries
            for job in suspects:
                _consume([_run_alone(job, ctx, cache)], summary, bar)
            cache.clean_partial()


def _collect(finished: Iterable[Any], running: dict[Any, tuple], suspects: list[tuple],
             summary: PreprocessSummary, bar: Any) -> None:
    """Count ``finished`` futures of ``running`` (future → job); the pool's victims go to ``suspects``."""
    from concurrent.futures.process import BrokenProcessPool

    for fut in finished:
        job = running.pop(fut)
        exc = fut.exception()
        if isinstance(exc, BrokenProcessPool):
            suspects.append(job)
        elif exc is not None:
            raise exc
        else:
            _consume([fut.result()], summary, bar)


def _run_alone(job: tuple, ctx: Any, cache: Cache) -> tuple[str, str, str, str, dict, dict]:
    """Run one ``_work`` job in a fresh process of ``ctx``; record ``worker_crashed`` if it dies.

    Returns ``_work``'s result, or for a process that died before answering a failure with reason
    ``worker_crashed`` whose message names the video's path and how the process ended.
    """
    import signal

    record: VideoRecord = job[0]
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_solo_main, args=(job, send), daemon=True)
    proc.start()
    send.close()
    try:
        result = recv.recv()
    except EOFError:  # the process died without answering
        result = None
    finally:
        recv.close()
    proc.join()
    if result is not None:
        return result
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            how = f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit status {code}"
    msg = (f"the worker process died while processing {record.path} ({how}); run alone it died again: "
           "out of memory (the OOM killer sends SIGKILL) or a crash in native decoding / face-detection code")
    cache.write_failure(record, "worker_crashed", msg)
    return record.video_id, "failed", "worker_crashed", msg, {}, _fail_pseudo(cache, record, job[6], "worker_crashed",
                                                                             msg)


def _solo_main(job: tuple, conn: Any) -> None:
    """Entry point of ``_run_alone``'s process: run ``_work(job)`` and send its result on ``conn``."""
    _init_worker()
    conn.send(_work(job))
    conn.close()

"""Clip planning: which sampled frames of a video a model reads, as which clips. Decided once.

Training, the validation threshold, ``evaluate``, the study and ``detect`` all cut videos with
:func:`plan_clips`, so a video is scored the same way wherever it is scored.

The policy:

1. ``max_frames`` (> 0): only sampled frames whose source frame number is below it (the
   FaceForensics++ LipForensics protocol reads the first 110 frames). The same meaning as the
   preprocessing option of that name.
2. **The observed face span.** Only the sampled frames from the first to the last one in which
   the face was *detected* are scored. Before the first detection and after the last one the
   face position is only held from the nearest detection (extrapolated, never seen), so those
   frames are reported as skipped, never scored. Frames inside the span where detection missed
   are scored (their box is interpolated between two real detections) and reported as such.
3. **Clips.** A model whose input spec has ``clip_len=None`` (region models) reads ONE clip: the
   whole span. A clip model (``clip_len=25``, LipForensics) reads consecutive non-overlapping
   clips of ``clip_len`` sampled frames, cut inside runs of frames that are consecutive in the
   source video when the sampling has a fixed step (``all``, ``clips``, ``stride``), so a clip
   never spans a gap; leftover frames at the end of a run are reported. ``max_clips`` (> 0) keeps
   that many clips, evenly spread.

A video with no observed face has no plan (``reason="no_face"``); nor has one in which the face
was detected in fewer than ``min_coverage`` of the sampled frames (``reason="low_face_coverage"``:
a single false detection would otherwise be held over every frame and become a whole "face"
video), nor one whose span holds no whole clip (``reason="too_short"``). The coverage threshold is
set when a model is trained (``TrainConfig.min_face_coverage``, default 0.25), stored in its model
file, and applied by training, ``evaluate`` and ``detect`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forensight.config import InputSpec, PreprocessConfig

__all__ = ["ClipPlan", "frame_step", "plan_clips"]


@dataclass(frozen=True)
class ClipPlan:
    """The clips of one video, as ``(start, stop)`` positions in its sampled-frame arrays.

    Attributes:
        clips: half-open ``[start, stop)`` position ranges, in time order.
        num_positions: sampled frames the video has.
        span: ``(first, last)`` positions (inclusive) of the observed-face span, None if no face.
        limit: positions at or beyond this index were cut by ``max_frames``.
        reason: ``""`` when there are clips, else ``"no_face"`` or ``"too_short"``.
        message: a readable sentence when there are no clips.
    """

    clips: list[tuple[int, int]] = field(default_factory=list)
    num_positions: int = 0
    span: tuple[int, int] | None = None
    limit: int = 0
    reason: str = ""
    message: str = ""

    @property
    def scored(self) -> np.ndarray:
        """bool ``(num_positions,)``: positions read by some clip."""
        out = np.zeros(self.num_positions, bool)
        for a, b in self.clips:
            out[a:b] = True
        return out

    def skipped(self, frame_indices: np.ndarray, timestamps: np.ndarray, observed: np.ndarray,
                clip_len: int | None = None) -> list[dict[str, str]]:
        """What this plan leaves out or interpolates, as ``{"what", "why"}`` items (for reports)."""
        idx, ts, obs = np.asarray(frame_indices), np.asarray(timestamps), np.asarray(observed, bool)
        if self.span is None:
            return [{"what": "the whole video", "why": self.message}]
        lo, hi = self.span
        n = self.num_positions
        out: list[dict[str, str]] = []

        def span(a: int, b: int) -> str:
            return f"frames {int(idx[a])}-{int(idx[b])} ({ts[a]:.2f}-{ts[b]:.2f} s, {b - a + 1} sampled)"

        if self.limit < n:
            out.append({"what": span(self.limit, n - 1), "why": "beyond max_frames"})
        if lo > 0:
            out.append({"what": span(0, lo - 1), "why": "before the face was first detected"})
        if hi < min(n, self.limit) - 1:
            out.append({"what": span(hi + 1, min(n, self.limit) - 1), "why": "after the face was last detected"})
        covered = self.scored
        in_span = np.zeros(n, bool)
        in_span[lo:hi + 1] = True
        left = np.nonzero(in_span & ~covered)[0]
        if left.size:
            what = "a whole clip of consecutive frames" if clip_len is None else f"a whole {clip_len}-frame clip"
            out.append({"what": f"{left.size} sampled frame(s) with the face ({', '.join(_runs(idx[left]))})",
                        "why": f"not part of {what}"})
        unobserved = int((covered & ~obs).sum())
        if unobserved:
            out.append({"what": f"face detection in {unobserved} of {int(covered.sum())} scored frames",
                        "why": "no face detected there; the crop uses the face position interpolated "
                               "between neighbouring detections"})
        return out

    @property
    def clip_of(self) -> np.ndarray:
        """int ``(num_positions,)``: index of the clip reading each position, -1 if none."""
        out = np.full(self.num_positions, -1, np.int64)
        for k, (a, b) in enumerate(self.clips):
            out[a:b] = k
        return out


def frame_step(pp: PreprocessConfig) -> int | None:
    """Source-frame step between consecutive samples of a sampling mode (None: no fixed step)."""
    return {"all": 1, "clips": 1, "stride": int(pp.stride)}.get(pp.sampling)


def plan_clips(frame_indices: np.ndarray, observed: np.ndarray, spec: InputSpec, *, step: int | None = None,
               max_frames: int = 0, max_clips: int = 0, min_coverage: float = 0.0) -> ClipPlan:
    """Plan the clips of one video (see the module docstring for the policy).

    Args:
        frame_indices: int ``(T,)`` source frame numbers of the sampled frames, increasing.
        observed: bool ``(T,)`` face detected in that sampled frame.
        spec: the model's input spec (``clip_len``).
        step: source-frame step that makes samples consecutive (:func:`frame_step`); clips of a
            clip model never cross a place where the step is broken. None: no such constraint.
        max_frames: only frames numbered below this (0 = all).
        max_clips: keep at most this many clips, evenly spread (0 = all).
        min_coverage: the least fraction of the (``max_frames``-limited) sampled frames in which the
            face must have been detected (0 = any single detection suffices).
    """
    idx = np.asarray(frame_indices, np.int64).reshape(-1)
    obs = np.asarray(observed, bool).reshape(-1)
    if idx.shape != obs.shape:
        raise ValueError(f"frame_indices {idx.shape} and observed {obs.shape} differ in length")
    n = int(idx.size)
    limit = int(np.searchsorted(idx, max_frames, side="left")) if max_frames > 0 else n
    seen = np.nonzero(obs[:limit])[0]
    if seen.size == 0:
        where = f" among the sampled frames below frame {max_frames}" if limit < n else ""
        return ClipPlan(num_positions=n, limit=limit, reason="no_face",
                        message=f"no face detected in any of the {limit} sampled frames{where}")
    lo, hi = int(seen[0]), int(seen[-1])
    coverage = seen.size / max(limit, 1)
    if coverage < min_coverage:
        return ClipPlan(num_positions=n, span=(lo, hi), limit=limit, reason="low_face_coverage",
                        message=(f"the face was detected in only {seen.size} of {limit} sampled frames "
                                 f"({100 * coverage:.0f}%, below the model's minimum of {100 * min_coverage:.0f}%): "
                                 "too little to tell a face track from a stray detection"))
    if spec.clip_len is None:
        clips = [(lo, hi + 1)]
    else:
        clips = []
        run_start = lo
        for p in range(lo + 1, hi + 2):
            if p == hi + 1 or (step is not None and idx[p] - idx[p - 1] != step):
                clips.extend((s, s + spec.clip_len) for s in range(run_start, p - spec.clip_len + 1, spec.clip_len))
                run_start = p
        if max_clips and len(clips) > max_clips:
            keep = np.linspace(0, len(clips) - 1, max_clips).round().astype(np.int64)
            clips = [clips[int(k)] for k in keep]
    if not clips:
        return ClipPlan(num_positions=n, span=(lo, hi), limit=limit, reason="too_short",
                        message=(f"the face is visible over {hi - lo + 1} sampled frame(s) (frames "
                                 f"{int(idx[lo])}-{int(idx[hi])}), fewer than one {spec.clip_len}-frame clip"
                                 + (" of consecutive frames" if step is not None else "")))
    return ClipPlan(clips=clips, num_positions=n, span=(lo, hi), limit=limit)


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

"""The detection result schema: what ``detect`` says about a video, torch-free.

:class:`DetectionResult` (``to_dict()`` is the ``--json`` record, ``from_dict`` its inverse),
the readable table (:func:`format_results`), the CSV columns (:data:`CSV_COLUMNS`) and the batch
JSON document (:func:`batch_document`). ``html_report`` and the CLI depend only on this module,
so a report can be re-rendered from saved JSON without torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forensight._version import __version__

__all__ = [
    "BATCH_SCHEMA",
    "CSV_COLUMNS",
    "SCHEMA",
    "ClipScore",
    "DetectionResult",
    "EvidenceMap",
    "FaceTrackSummary",
    "FrameScore",
    "PersonResult",
    "TopFrame",
    "batch_document",
    "format_results",
    "r6",
    "sigmoid",
]

# v2: ``people`` / ``person`` (every face scored), ``model.trained_on``;
# v3: ``evidence_maps`` / ``evidence`` (spatial Grad-CAM maps, only when asked: ``detect --explain``).
# Older records read back unchanged (the new fields default to empty).
SCHEMA = "forensight-detect-v3"
BATCH_SCHEMA = "forensight-detect-batch-v3"

CSV_COLUMNS = ["name", "path", "status", "reason", "verdict", "p_fake", "logit", "threshold", "threshold_p",
               "num_clips", "num_frames_scored", "coverage", "num_other_tracks", "num_people", "person",
               "duration_s", "fps",
               "width", "height", "top_frame_index", "top_frame_time_s", "model", "report", "message"]


def sigmoid(x: float) -> float:
    """Numerically safe logistic function (logit → probability)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def r6(x: float, nd: int = 6) -> float:
    """``round(float(x), nd)``: how numbers are stored in results."""
    return round(float(x), nd)


@dataclass
class ClipScore:
    """A span of sampled frames and its score: one model input (``clips``, with its ``index``)
    or a sliding window (``local_scores``, ``index`` None; indicative only: the verdict always
    uses the whole-video score).

    ``start_frame``/``end_frame`` are source frame numbers (inclusive, 0-based);
    ``start_s``/``end_s`` their presentation times in seconds; ``num_frames`` sampled frames.
    """

    index: int | None
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
class EvidenceMap:
    """Where in one frame the evidence is (``detect --explain``): a Grad-CAM map of the video logit.

    Attributes:
        frame_index, timestamp_s: the sampled frame (source frame number, seconds).
        attention: its attention share (as in ``frames``).
        map: ``S x S`` floats in [0, 1] (rows top to bottom, columns left to right) over the crop
            the model read; all maps of a video share one scale, 1 = its strongest cell on the
            network's own grid (the bilinear resize to ``S x S`` may show it slightly lower).
        grid: ``[h, w]`` of the network block the map was computed on (the real resolution;
            ``map`` is its bilinear resize).
        crop_to_frame: ``2 x 3`` affine: map coordinates ``(u, v, 1)``, ``u, v`` in [0, 1] (u
            rightwards, v down, over the crop), to frame pixels ``(x, y)`` (pixel edges, native
            resolution): ``[x, y] = crop_to_frame @ [u, v, 1]``.
        box: ``[x0, y0, x1, y1]`` bounding box of the crop in frame pixels (the region drawn on
            the frame; equal to the crop for box regions, the rotated crop's bounds for "lips").
    """

    frame_index: int
    timestamp_s: float
    attention: float | None
    map: list[list[float]]
    grid: list[int]
    crop_to_frame: list[list[float]]
    box: list[float]


@dataclass
class PersonResult:
    """One person (face track) of a video, scored on their own.

    Attributes:
        person: 1-based id in track order (1 = the main face: largest, present longest).
        status: "ok" or "failed" (e.g. face seen too rarely to score: ``reason``, ``message``).
        p_fake, logit, verdict, clips, frames, local_scores, face_track, top_frames: as in
            :class:`DetectionResult`, for this person's face.
    """

    person: int
    status: str
    reason: str = ""
    message: str = ""
    p_fake: float | None = None
    logit: float | None = None
    verdict: str | None = None
    clips: list[ClipScore] = field(default_factory=list)
    frames: list[FrameScore] = field(default_factory=list)
    local_scores: list[ClipScore] = field(default_factory=list)
    face_track: FaceTrackSummary | None = None
    top_frames: list[TopFrame] = field(default_factory=list)
    evidence_maps: list[EvidenceMap] = field(default_factory=list)
    evidence: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersonResult:
        d = dict(d)
        ft = d.get("face_track")
        return cls(**{k: v for k, v in d.items() if k not in _NESTED}, **_nested(d), face_track=(
            FaceTrackSummary(**ft) if ft else None))


_NESTED = ("clips", "frames", "local_scores", "face_track", "top_frames", "evidence_maps")
_PERSON_FIELDS = ("status", "reason", "message", "p_fake", "logit", "verdict", *_NESTED, "evidence")


def _nested(d: dict[str, Any]) -> dict[str, Any]:
    return {"clips": [ClipScore(**c) for c in d.get("clips", [])],
            "frames": [FrameScore(**c) for c in d.get("frames", [])],
            "local_scores": [ClipScore(**{"index": None, **c}) for c in d.get("local_scores", [])],
            "top_frames": [TopFrame(**c) for c in d.get("top_frames", [])],
            "evidence_maps": [EvidenceMap(**c) for c in d.get("evidence_maps", [])]}


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
        evidence_maps: spatial evidence maps (Grad-CAM), only when asked (``detect --explain``):
            those of the most-attended frames (rank order) or of every scored frame (time order).
        evidence: how they were made (method, target, network layer, frames, scale), or None.
        video: probed metadata (width, height, fps, num_frames, duration_s, rotation, codec).
        model: which model scored it (name, arch, region, pooling, path, preprocess hash, ...,
            ``trained_on``: its model card, ``warning``: e.g. trained only on synthetic data).
        people: every person whose face was seen often enough, each scored on their own
            (:class:`PersonResult`); the video's verdict is the HIGHEST-scoring person's (a video
            is fake if anyone in it is), and the fields above (``p_fake`` ... ``top_frames``) are
            that person's. One entry for a one-person video.
        person: the id of that person (None when nothing was scored).
        notes: remarks on how the score was obtained that are not failures (e.g. a short clip
            scored with fewer frames than the model samples).
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
    local_scores: list[ClipScore] = field(default_factory=list)
    face_track: FaceTrackSummary | None = None
    top_frames: list[TopFrame] = field(default_factory=list)
    evidence_maps: list[EvidenceMap] = field(default_factory=list)
    evidence: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    people: list[PersonResult] = field(default_factory=list)
    person: int | None = None
    notes: list[str] = field(default_factory=list)
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
        """Inverse of :meth:`to_dict` (e.g. to rebuild reports from saved JSON; v1 records too)."""
        d = dict(d)
        ft = d.get("face_track")
        return cls(
            **{k: v for k, v in d.items() if k not in (*_NESTED, "people")}, **_nested(d),
            face_track=FaceTrackSummary(**ft) if ft else None,
            people=[PersonResult.from_dict(p) for p in d.get("people", [])],
        )

    def person_view(self, person: int) -> DetectionResult:
        """This result as if ``person`` (an id in :attr:`people`) were the one scored: the same video,
        model and threshold with that person's score, timeline and top frames (for per-person pages
        and plots); its artifacts are that person's crops."""
        p = next((q for q in self.people if q.person == person), None)
        if p is None:
            raise KeyError(f"no person {person} in {self.name} (people: {[q.person for q in self.people]})")
        view = dataclasses.replace(self, **{k: getattr(p, k) for k in _PERSON_FIELDS}, person=person)
        art = self._artifacts or {}
        view._artifacts = {**art, **(art.get("people") or {}).get(person, {})} if art else None
        return view

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
        if len(self.people) > 1:
            ranks = ", ".join(f"#{p.person} {p.p_fake:.2f}" if p.ok else f"#{p.person} -" for p in self.people)
            notes.append(f"{len(self.people)} people, verdict from #{self.person} (P(fake) {ranks})")
        elif ft and ft.num_other_tracks:
            notes.append(f"{ft.num_other_tracks} other face(s) seen too rarely to score")
        notes.extend(self.notes)
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
            "num_people": len(self.people), "person": self.person,
            "duration_s": v.get("duration_s"), "fps": v.get("fps"),
            "width": v.get("width"), "height": v.get("height"),
            "top_frame_index": top.frame_index if top else None,
            "top_frame_time_s": top.timestamp_s if top else None,
            "model": self.model.get("name", ""), "message": self.message,
        }


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
                 f"threshold P(fake) >= {thr:.3f}: {m.get('threshold_source') or 'chosen on the validation split'}"
                 + (f"; P(fake) {m['calibration']}" if m.get("calibration") else ""))
    from forensight.modelcard import card_lines

    lines.extend(f"  {line}" for line in card_lines(m.get("trained_on")))
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


def batch_document(results: Sequence[DetectionResult], model: dict[str, Any]) -> dict[str, Any]:
    """The ``detect --json`` document of a batch: schema, model facts, one record per video."""
    return {"schema": BATCH_SCHEMA, "model": model, "results": [r.to_dict() for r in results]}

"""Link per-frame face detections into tracks, pick the subject, fill gaps, smooth.

Input of :func:`build_track` is, for each sampled frame ``t`` (in time order), a tuple
``(boxes (N_t, 4), scores (N_t,), landmarks (N_t, 68, 2))`` in native pixels (``N_t`` may be 0),
optionally with a fourth element ``skin (N_t,)`` (``faces.faceness.skin_fraction`` of each
detection; carried into ``FaceTrack.skin``, given for every frame or none).

1. **Linking.** Frames are visited in order; each detection is matched greedily (best pair
   first) to a live track whose last box overlaps it (IoU >= ``iou_threshold``) or whose
   centre is near (centre distance <= ``max_center_dist`` x the mean side of the two boxes),
   provided the two sizes differ by at most ``max_size_ratio``. A track stays live for
   ``max_gap`` frames without a detection; unmatched detections start new tracks.
2. **Subject.** The track with the largest sum over frames of its box area (i.e. large *and*
   present in many frames) is the subject (:func:`build_track`: datasets keep one person per
   video); the other tracks are counted in ``FaceTrack.num_other_tracks``. :func:`build_tracks`
   returns every person's track in that order (``detect`` scores each). Preprocessing then keeps
   only face-like tracks (``faces.faceness.check_track``): its subject is the first face-like one.
3. **Gaps.** Frames where the subject was not observed get boxes and landmarks linearly
   interpolated between the observed neighbours (the nearest observed value is held before the
   first / after the last observation); ``observed`` is False and the score 0 there.
4. **Smoothing.** :func:`smooth_sequence` (a centred moving average that keeps still input
   exactly still and linear motion linear) over the filled sequence. The gap-filled but
   unsmoothed landmarks are kept in ``FaceTrack.raw_landmarks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from forensight.faces.detectors import box_iou
from forensight.records import FaceTrack, PreprocessError

__all__ = ["build_track", "build_tracks", "interpolate_missing", "link_detections", "smooth_sequence"]

Detections = tuple[np.ndarray, ...]


def smooth_sequence(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over the first axis.

    ``out[t]`` is the mean of ``x[t-h .. t+h]`` with ``h = min(window // 2, t, T - 1 - t)``: the
    window shrinks *symmetrically* near the ends, so the output is never pulled towards one
    side. It is computed as ``x[t] + mean(x[t+k] - x[t])``, so a constant sequence comes back
    bit-for-bit unchanged and a linear one stays linear (up to float rounding) everywhere.

    Args:
        x: ``(T, ...)`` float array (any trailing shape, e.g. boxes ``(T, 4)`` or landmarks
            ``(T, 68, 2)``).
        window: odd number of frames (1 = no smoothing).

    Returns:
        Array of the same shape and float dtype as ``x`` (float64 for integer input).
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"smoothing window must be an odd number >= 1, got {window}")
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    t_len = x.shape[0] if x.ndim else 0
    if window == 1 or t_len < 3:
        return x.astype(out_dtype, copy=True)
    xd = x.astype(np.float64)
    t = np.arange(t_len)
    half = np.minimum(np.minimum(t, t_len - 1 - t), window // 2)
    acc = np.zeros_like(xd)
    extra = (1,) * (x.ndim - 1)
    for k in range(1, int(half.max()) + 1):
        idx = np.nonzero(half >= k)[0]
        acc[idx] += (xd[idx + k] - xd[idx]) + (xd[idx - k] - xd[idx])
    out = xd + acc / (2 * half + 1).reshape((-1, *extra))
    return out.astype(out_dtype)


def _area(b: np.ndarray) -> float:
    return float(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0))


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    dets: list[int] = field(default_factory=list)
    last_box: np.ndarray = field(default_factory=lambda: np.zeros(4))
    weight: float = 0.0

    @property
    def last_frame(self) -> int:
        return self.frames[-1]


def link_detections(
    boxes_per_frame: Sequence[np.ndarray],
    *,
    max_gap: int = 8,
    iou_threshold: float = 0.2,
    max_center_dist: float = 1.0,
    max_size_ratio: float = 2.0,
) -> list[dict[int, int]]:
    """Greedy frame-by-frame association of boxes into tracks.

    Args:
        boxes_per_frame: per frame, float ``(N_t, 4)`` boxes ``(x0, y0, x1, y1)``.
        max_gap: a track accepts a detection at most ``max_gap`` frames after its last one.
        iou_threshold: IoU at or above which a pair may link.
        max_center_dist: a pair may also link when its centre distance is at most this many
            times the mean side (sqrt of area) of the two boxes.
        max_size_ratio: pairs whose box sides differ by more than this factor never link.

    Returns:
        One ``{frame index: detection index}`` mapping per track, ordered by the track's first
        frame (then detection index).
    """
    tracks: list[_Track] = []
    for t, boxes in enumerate(boxes_per_frame):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        live = [i for i, tr in enumerate(tracks) if t - tr.last_frame <= max_gap]
        pairs: list[tuple[float, int, int]] = []
        ious = box_iou(np.array([tracks[ti].last_box for ti in live]).reshape(-1, 4), boxes)  # once per frame
        for k, ti in enumerate(live):
            a = tracks[ti].last_box
            side_a = np.sqrt(_area(a))
            for di, b in enumerate(boxes):
                side_b = np.sqrt(_area(b))
                if side_a <= 0 or side_b <= 0 or max(side_a, side_b) > max_size_ratio * min(side_a, side_b):
                    continue
                iou = float(ious[k, di])
                ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
                cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
                dist = float(np.linalg.norm(ca - cb)) / (0.5 * (side_a + side_b))
                if iou >= iou_threshold or dist <= max_center_dist:
                    pairs.append((dist - iou, ti, di))
        pairs.sort()
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            tr = tracks[ti]
            tr.frames.append(t)
            tr.dets.append(di)
            tr.last_box = boxes[di]
        for di in range(len(boxes)):
            if di not in used_d:
                tracks.append(_Track(frames=[t], dets=[di], last_box=boxes[di]))
    return [dict(zip(tr.frames, tr.dets, strict=True)) for tr in tracks]


def interpolate_missing(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Fill unobserved frames by linear interpolation in time.

    Args:
        values: ``(T, ...)`` array; rows where ``observed`` is False are ignored.
        observed: bool ``(T,)`` with at least one True.

    Returns:
        float64 ``(T, ...)``: observed rows unchanged, rows between two observations linearly
        interpolated, rows before the first / after the last observation equal to it.
    """
    observed = np.asarray(observed, bool)
    if not observed.any():
        raise ValueError("interpolate_missing needs at least one observed frame")
    values = np.asarray(values, np.float64)
    t_len = values.shape[0]
    flat = values.reshape(t_len, -1)
    known = np.nonzero(observed)[0]
    t = np.arange(t_len)
    out = np.empty_like(flat)
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(t, known, flat[known, c])
    out[observed] = flat[observed]
    return out.reshape(values.shape)


def build_tracks(
    dets: Sequence[Detections],
    smooth_window: int,
    *,
    max_gap: int = 8,
    iou_threshold: float = 0.2,
    max_center_dist: float = 1.0,
    max_size_ratio: float = 2.0,
) -> list[FaceTrack]:
    """Follow EVERY face through the sampled frames: one gap-filled, smoothed track per person.

    Args: as :func:`build_track`.

    Returns:
        One :class:`~forensight.records.FaceTrack` per linked track (each ``T = len(dets)``
        frames, ``observed`` True only where that person's face was detected), ordered by weight
        (sum over frames of box area: large *and* present long first; ties keep the earlier
        start). Element 0 is the subject :func:`build_track` returns. ``num_other_tracks`` of
        every track is ``len(result) - 1``.

    Raises:
        PreprocessError: reason ``"no_face"`` when no frame has a detection.
        ValueError: on inconsistent shapes or an even / non-positive ``smooth_window``.
    """
    if smooth_window < 1 or smooth_window % 2 == 0:
        raise ValueError(f"smooth_window must be an odd number >= 1, got {smooth_window}")
    boxes_pf: list[np.ndarray] = []
    with_skin = {len(d) for d in dets} == {4}
    for t, det in enumerate(dets):
        if len(det) not in (3, 4):
            raise ValueError(f"frame {t}: expected (boxes, scores, landmarks[, skin]), got {len(det)} items")
        boxes, scores, lms = det[:3]
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        s = np.asarray(scores, np.float32).reshape(-1)
        lm = np.asarray(lms, np.float32)
        if len(s) != len(b) or lm.shape != (len(b), 68, 2):
            raise ValueError(
                f"frame {t}: boxes {b.shape}, scores {s.shape} and landmarks {lm.shape} disagree "
                "(expected (N, 4), (N,), (N, 68, 2))"
            )
        if len(det) == 4 and np.asarray(det[3]).reshape(-1).shape != (len(b),):
            raise ValueError(f"frame {t}: skin fractions {np.asarray(det[3]).shape} disagree with {len(b)} boxes")
        boxes_pf.append(b)
    t_len = len(boxes_pf)
    if sum(len(b) for b in boxes_pf) == 0:
        raise PreprocessError("no_face", f"no face detected in any of the {t_len} sampled frames")

    tracks = link_detections(
        boxes_pf,
        max_gap=max_gap,
        iou_threshold=iou_threshold,
        max_center_dist=max_center_dist,
        max_size_ratio=max_size_ratio,
    )
    weights = [sum(_area(boxes_pf[t][d]) for t, d in tr.items()) for tr in tracks]
    order = sorted(range(len(tracks)), key=lambda i: -weights[i])  # stable: earlier start first among equals
    return [_fill_track(tracks[i], dets, boxes_pf, smooth_window, len(tracks) - 1, with_skin) for i in order]


def _fill_track(links: dict[int, int], dets: Sequence[Detections], boxes_pf: list[np.ndarray], smooth_window: int,
                num_other: int, with_skin: bool = False) -> FaceTrack:
    """One linked track → a FaceTrack over all frames (gaps interpolated, then smoothed)."""
    t_len = len(boxes_pf)
    observed = np.zeros(t_len, bool)
    boxes = np.zeros((t_len, 4), np.float64)
    landmarks = np.zeros((t_len, 68, 2), np.float64)
    scores = np.zeros(t_len, np.float32)
    skin = np.full(t_len, np.nan, np.float32) if with_skin else None
    for t, d in links.items():
        observed[t] = True
        if skin is not None:
            skin[t] = np.asarray(dets[t][3], np.float32).reshape(-1)[d]
        boxes[t] = boxes_pf[t][d]
        landmarks[t] = np.asarray(dets[t][2], np.float32)[d]
        scores[t] = np.asarray(dets[t][1], np.float32).reshape(-1)[d]

    boxes = smooth_sequence(interpolate_missing(boxes, observed), smooth_window)
    raw_landmarks = interpolate_missing(landmarks, observed)
    landmarks = smooth_sequence(raw_landmarks, smooth_window)
    return FaceTrack(
        boxes=boxes.astype(np.float32),
        landmarks=landmarks.astype(np.float32),
        observed=observed,
        scores=scores,
        num_other_tracks=num_other,
        raw_landmarks=raw_landmarks.astype(np.float32),
        skin=skin,
    )


def build_track(
    dets: Sequence[Detections],
    smooth_window: int,
    *,
    max_gap: int = 8,
    iou_threshold: float = 0.2,
    max_center_dist: float = 1.0,
    max_size_ratio: float = 2.0,
) -> FaceTrack:
    """Follow one subject through the sampled frames (the first of :func:`build_tracks`).

    Args:
        dets: per sampled frame, ``(boxes (N_t, 4), scores (N_t,), landmarks (N_t, 68, 2))``
            in native pixels.
        smooth_window: odd number of frames of the centred moving average applied to boxes and
            landmarks after gap filling (1 = none).
        max_gap, iou_threshold, max_center_dist, max_size_ratio: linking parameters, see
            :func:`link_detections`.

    Returns:
        :class:`~forensight.records.FaceTrack` with ``T = len(dets)`` frames: float32 boxes
        ``(T, 4)``, float32 landmarks ``(T, 68, 2)``, bool ``observed (T,)``, float32 scores
        ``(T,)`` (0 where not observed), ``num_other_tracks`` and ``raw_landmarks`` (float32
        ``(T, 68, 2)``: gap-filled but not smoothed, for the LipForensics alignment which does
        its own smoothing).

    Raises:
        PreprocessError: reason ``"no_face"`` when no frame has a detection.
        ValueError: on inconsistent shapes or an even / non-positive ``smooth_window``.
    """
    return build_tracks(dets, smooth_window, max_gap=max_gap, iou_threshold=iou_threshold,
                        max_center_dist=max_center_dist, max_size_ratio=max_size_ratio)[0]

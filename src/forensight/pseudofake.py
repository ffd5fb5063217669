"""Pseudo-fakes from real videos: self-blending and video-level part blending, per facial region.

A detector can be trained from real videos only when the fakes are made from those videos. Two
generators work on decoded native-resolution frames and their 68 iBUG landmarks (written from the
papers' descriptions; no code of theirs is used):

* **Self-blend** (``"sbi"``, after Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended
  Images", CVPR 2022). Source and target are the same frame. The source is changed in colour
  (per-channel RGB shift of up to 20 grey levels; hue up to 5 of OpenCV's 180 steps, saturation
  and value scaled by 0.8-1.2 / 0.85-1.15; brightness up to 10 %, contrast 0.9-1.1), in frequency
  (down-scaled by 0.25-0.5 and back up, or sharpened with 0.2-0.5 of an unsharp mask) and in
  geometry (scaled by 0.95-1.05 about the face centre and shifted by up to 3 % of the face width).
  The mask is the convex hull of the chosen region's landmarks, elastically deformed by a smooth
  random field (up to 2-6 % of the face width) and blurred (Gaussian sigma 2-6 % of the face width);
  the blend ratio is drawn from {0.25, 0.5, 0.75, 1, 1, 1}. All of that is drawn ONCE per video (a
  clip-consistent forgery: no flicker is invented), or per frame with ``per_frame=True``.
* **Video-level blending / facial feature drift** (``"vb"``, after the StA paper, CVPR 2025). Facial
  parts (eyes, nose, mouth, by landmark group) are warped by a small random similarity (rotation up
  to 3 deg, scale 0.95-1.05, shift up to 3 % of the face width, times a per-video amplitude 0.5-1)
  that is drawn anew for EVERY frame, and blended back through a feathered hull mask of the part:
  the part drifts against the face from frame to frame, which a time-average washes out and a
  temporal model should catch.

**Regions** (``region``): ``face`` (SBI: hull of all 68 points; VB: eyes, nose and mouth), ``eyes``
(SBI: brows + eyes; VB: each eye), ``mouth`` (SBI: the lips grown by 35 %; VB: the mouth) or
``any`` (one of the three drawn per pseudo-fake).

**Temporal sparsity.** As ``forensight.synth`` does for its sparse methods, a ``sparsity`` share
of the sampled frames is manipulated, in 1-3 contiguous bursts (:func:`forensight.blending.bursts`,
the first and last frame of a burst blended at 60 %); every other frame is returned untouched
(the same array). The ground truth (:meth:`PseudoFakePlan.ground_truth`) lists the manipulated
sample positions, their source frame numbers and the box ``[x0, y0, x1, y1]`` (native pixels,
exclusive right/bottom) where the blend weight exceeds 1 %.

Inside preprocessing (``forensight.preprocess``) each real video gets ``per_video`` pseudo-fakes
(:func:`pseudo_records`), cut from the same decoded frames and landmarks as the real entry.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from forensight.blending import blend, bursts, envelope, hull_mask, roi, warp_roi
from forensight.records import FAKE, PSEUDO_PREFIX, REAL, PreprocessError, VideoRecord

__all__ = ["KINDS", "MIN_FRAMES", "REGIONS", "PseudoFakeConfig", "PseudoFakePlan", "make_pseudofake",
           "plan_pseudofake", "pseudo_records", "region_points", "truth_areas"]

#: Generator kinds and the method name their cache entries carry.
KINDS: dict[str, str] = {"sbi": PSEUDO_PREFIX + "sbi", "vb": PSEUDO_PREFIX + "vb"}
#: Values of ``region``.
REGIONS = ("face", "eyes", "mouth", "any")
#: Fewest sampled frames a pseudo-fake is made from (one burst of the minimum length).
MIN_FRAMES = 4

# iBUG-68 landmark groups
_SBI_SETS: dict[str, tuple[np.ndarray, float]] = {  # region → (points of the hull, growth about the centroid)
    "face": (np.r_[0:68], 0.0),
    "eyes": (np.r_[17:27, 36:48], 0.1),
    "mouth": (np.r_[48:68], 0.35),
}
_PARTS: dict[str, np.ndarray] = {"eye_r": np.r_[36:42], "eye_l": np.r_[42:48], "nose": np.r_[27:36],
                                 "mouth": np.r_[48:60]}
_VB_PARTS: dict[str, tuple[str, ...]] = {"face": ("eye_r", "eye_l", "nose", "mouth"), "eyes": ("eye_r", "eye_l"),
                                         "mouth": ("mouth",)}
_VB_GROW = 0.45  # part hull growth about its centroid
_VB_FEATHER = 0.12  # part mask Gaussian sigma, in part widths
_BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
_ELASTIC_GRID = 6  # control points per side of the elastic field


def region_points(kind: str, region: str) -> np.ndarray:
    """The landmark indices (int64) whose hull(s) bound ``kind``'s mask for ``region``."""
    _check(kind, region, allow_any=False)
    if kind == "sbi":
        return _SBI_SETS[region][0]
    return np.concatenate([_PARTS[p] for p in _VB_PARTS[region]])


def _check(kind: str, region: str, allow_any: bool = True) -> None:
    if kind not in KINDS:
        raise ValueError(f"pseudo-fake kind must be one of {list(KINDS)}, got {kind!r}")
    ok = REGIONS if allow_any else REGIONS[:-1]
    if region not in ok:
        raise ValueError(f"pseudo-fake region must be one of {list(ok)}, got {region!r}")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PseudoFakeConfig:
    """Which pseudo-fakes preprocessing adds for each real video.

    Attributes:
        kinds: generator kinds, keys of :data:`KINDS` ("sbi", "vb"); the ``k``-th pseudo-fake of a
            video uses ``kinds[(k + offset) % len(kinds)]`` with a per-video offset, so with K = 1
            the kinds alternate over videos and with K = len(kinds) every video gets each kind.
        per_video: K, pseudo-fakes per real video (>= 1).
        region: "face", "eyes", "mouth" or "any" (drawn per pseudo-fake).
        sparsity: share of the sampled frames manipulated, in (0, 1], in bursts.
        per_frame: SBI only: redraw the blend parameters on every frame (default: once per video).
        seed: seeds every draw together with the video id, so a rerun gives the same bytes.
    """

    kinds: tuple[str, ...] = ("sbi", "vb")
    per_video: int = 1
    region: str = "any"
    sparsity: float = 0.5
    per_frame: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        kinds = tuple(self.kinds)
        object.__setattr__(self, "kinds", kinds)
        if not kinds or len(set(kinds)) != len(kinds) or any(k not in KINDS for k in kinds):
            raise ValueError(f"pseudo-fake kinds must be distinct names from {list(KINDS)}, got {list(kinds)}")
        if self.region not in REGIONS:
            raise ValueError(f"pseudo-fake region must be one of {list(REGIONS)}, got {self.region!r}")
        if int(self.per_video) < 1:
            raise ValueError(f"pseudo-fakes per video must be >= 1, got {self.per_video}")
        if not 0 < float(self.sparsity) <= 1:
            raise ValueError(f"pseudo-fake sparsity must be in (0, 1], got {self.sparsity}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kinds"] = list(self.kinds)
        return d


def _video_key(video_id: str) -> int:
    return zlib.crc32(video_id.encode("utf-8"))


def pseudo_records(record: VideoRecord, cfg: PseudoFakeConfig) -> list[tuple[VideoRecord, str]]:
    """The ``(record, kind)`` of each pseudo-fake made from the real video ``record`` (none for a fake).

    A pseudo-fake record keeps the source's path, split, dataset and compression (so it never leaves
    its source's split), has label 1, method ``pseudo_<kind>`` and name ``<source name>_p<k>``.
    """
    if record.label != REAL:
        return []
    offset = _video_key(record.video_id) % len(cfg.kinds)
    out = []
    for k in range(int(cfg.per_video)):
        kind = cfg.kinds[(k + offset) % len(cfg.kinds)]
        out.append((replace(record, label=FAKE, method=KINDS[kind], name=f"{record.name}_p{k}",
                            manipulated_frames=None), kind))
    return out


def rng_for(cfg: PseudoFakeConfig, source_id: str, k: int) -> np.random.Generator:
    """The generator of the ``k``-th pseudo-fake of the video ``source_id`` (seeded by cfg.seed)."""
    return np.random.default_rng([int(cfg.seed), 18, _video_key(source_id), int(k)])


# --------------------------------------------------------------------------- parameters


def _draw_sbi(rng: np.random.Generator) -> dict[str, Any]:
    """One draw of the self-blend parameters (see the module docstring for the ranges)."""
    freq = "down" if rng.random() < 0.5 else "sharpen"
    grid = rng.uniform(-1, 1, (_ELASTIC_GRID, _ELASTIC_GRID, 2))
    return {"rgb_shift": rng.uniform(-20, 20, 3), "hue": float(rng.uniform(-5, 5)),
            "sat": float(rng.uniform(0.8, 1.2)), "val": float(rng.uniform(0.85, 1.15)),
            "brightness": float(rng.uniform(-0.1, 0.1) * 255), "contrast": float(rng.uniform(0.9, 1.1)),
            "freq": freq, "down": float(rng.uniform(0.25, 0.5)), "sharpen": float(rng.uniform(0.2, 0.5)),
            "scale": float(rng.uniform(0.95, 1.05)), "shift": rng.uniform(-0.03, 0.03, 2),
            "elastic": float(rng.uniform(0.02, 0.06)), "grid": grid, "feather": float(rng.uniform(0.02, 0.06)),
            "ratio": float(rng.choice(_BLEND_RATIOS))}


def _public(p: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly parameters (the elastic field itself is left out)."""
    out: dict[str, Any] = {}
    for k, v in p.items():
        if k == "grid":
            continue
        out[k] = [round(float(x), 4) for x in v] if isinstance(v, np.ndarray) else (
            round(v, 4) if isinstance(v, float) else v)
    return out


# --------------------------------------------------------------------------- the plan


@dataclass
class PseudoFakePlan:
    """Everything drawn for one pseudo-fake of one video; :meth:`apply` makes its frames one by one.

    Attributes:
        kind: "sbi" or "vb"; region: "face", "eyes" or "mouth".
        landmarks: float32 (T, 68, 2) landmarks of the sampled frames, native pixels.
        env: float32 (T,) blend weight per sampled frame (0 = untouched; bursts).
        bursts: ``[start, end)`` sample positions of the bursts.
        sbi: per-frame SBI parameter dicts (the same dict on every frame unless ``per_frame``).
        vb: float64 (T, parts, 4) per-frame (angle deg, scale, dx, dy in face widths) of each part.
        vb_amp: per-video VB amplitude.
        boxes: sample position → blended box, filled by :meth:`apply`.
    """

    kind: str
    region: str
    landmarks: np.ndarray
    env: np.ndarray
    bursts: list[tuple[int, int]]
    per_frame: bool = False
    sbi: list[dict[str, Any]] = field(default_factory=list)
    vb: np.ndarray | None = None
    vb_amp: float = 1.0
    boxes: dict[int, list[int]] = field(default_factory=dict)

    # ---- masks ---------------------------------------------------------------------------------
    def face_width(self, i: int) -> float:
        """Jaw width (landmark 0 to 16) in frame ``i``, pixels (at least 8)."""
        lm = self.landmarks[i]
        return max(8.0, float(np.linalg.norm(lm[16] - lm[0])))

    def reach(self, i: int) -> float:
        """How far (px) the mask of frame ``i`` may extend beyond its grown landmark hull(s):
        elastic displacement + 4 feather sigmas + 2 px of anti-aliasing."""
        if self.kind == "sbi":
            p = self.sbi[i]
            return (p["elastic"] + 4 * p["feather"]) * self.face_width(i) + 2.0
        pw = max(self._part_width(i, part) for part in _VB_PARTS[self.region])
        return 4 * _VB_FEATHER * pw + 2.0

    def hulls(self, i: int) -> list[np.ndarray]:
        """The grown landmark point sets (float (N, 2)) whose convex hulls the mask of frame ``i`` covers."""
        lm = self.landmarks[i].astype(np.float64)
        if self.kind == "sbi":
            idx, grow = _SBI_SETS[self.region]
            pts = lm[idx]
            c = pts.mean(0)
            return [(pts - c) * (1 + grow) + c]
        out = []
        for part in _VB_PARTS[self.region]:
            pts = lm[_PARTS[part]]
            c = pts.mean(0)
            out.append((pts - c) * (1 + _VB_GROW) + c)
        return out

    def _part_width(self, i: int, part: str) -> float:
        return max(4.0, float(np.ptp(self.landmarks[i][_PARTS[part]][:, 0])))

    def sbi_mask(self, i: int, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """SBI: the float32 mask (before the blend ratio and envelope) in its ROI, and the ROI."""
        p = self.sbi[i]
        fw = self.face_width(i)
        (pts,) = self.hulls(i)
        box = roi(pts, (p["elastic"] + 4 * p["feather"]) * fw + 4, shape)
        mask = hull_mask(pts, 0.0, 0.0, box)
        h, w = mask.shape
        if h >= 2 and w >= 2:
            # elastic deformation: a smooth random displacement field over the ROI, in face widths
            disp = cv2.resize(p["grid"].astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
            disp *= p["elastic"] * fw
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            mask = cv2.remap(mask, xx + disp[..., 0], yy + disp[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, p["feather"] * fw))
        return mask, box

    def mask(self, i: int, shape: tuple[int, ...]) -> np.ndarray:
        """Float32 (H, W) blend weight of sample ``i`` over the whole frame (0 outside the bursts): the
        SBI mask x blend ratio x envelope, or the largest VB part mask x envelope."""
        out = np.zeros(shape[:2], np.float32)
        a = float(self.env[i])
        if a <= 0:
            return out
        if self.kind == "sbi":
            m, (x0, y0, x1, y1) = self.sbi_mask(i, shape)
            out[y0:y1, x0:x1] = m * self.sbi[i]["ratio"] * a
            return out
        for part, grown in zip(_VB_PARTS[self.region], self.hulls(i)):
            pw = self._part_width(i, part)
            r = roi(grown, 4 * _VB_FEATHER * pw + 4, shape)
            if r[2] - r[0] < 2 or r[3] - r[1] < 2:
                continue
            x0, y0, x1, y1 = r
            out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], hull_mask(grown, 0.0, _VB_FEATHER * pw, r) * a)
        return out

    # ---- frames --------------------------------------------------------------------------------
    def apply(self, i: int, frame: np.ndarray) -> np.ndarray:
        """Sample ``i``'s frame of the pseudo-fake: uint8 (H, W, 3); ``frame`` itself when untouched."""
        a = float(self.env[i])
        if a <= 0:
            return frame
        out = frame.copy()
        if self.kind == "sbi":
            self.boxes[i] = self._apply_sbi(i, frame, out, a)
        else:
            self.boxes[i] = self._apply_vb(i, frame, out, a)
        return out

    def _apply_sbi(self, i: int, frame: np.ndarray, out: np.ndarray, a: float) -> list[int]:
        p = self.sbi[i]
        fw = self.face_width(i)
        mask, box = self.sbi_mask(i, frame.shape)
        x0, y0, x1, y1 = box
        # the source: a wider patch around the ROI (room for the shift), changed in colour and frequency
        pad = math.ceil(0.06 * fw + 2)
        H, W = frame.shape[:2]
        bx0, by0, bx1, by1 = max(0, x0 - pad), max(0, y0 - pad), min(W, x1 + pad), min(H, y1 + pad)
        src = _sbi_source(frame[by0:by1, bx0:bx1], p)
        # small scale about the face centre + shift, mapped into ROI coordinates
        c = self.landmarks[i].astype(np.float64).mean(0)
        s = p["scale"]
        off = (1 - s) * c + np.asarray(p["shift"]) * fw
        m = np.array([[s, 0.0, s * bx0 + off[0] - x0], [0.0, s, s * by0 + off[1] - y0]])
        patch = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        return blend(out, patch, mask * (p["ratio"] * a), box)

    def _apply_vb(self, i: int, frame: np.ndarray, out: np.ndarray, a: float) -> list[int]:
        assert self.vb is not None
        fw = self.face_width(i)
        box: list[int] | None = None
        lm = self.landmarks[i].astype(np.float64)
        for j, part in enumerate(_VB_PARTS[self.region]):
            pts = lm[_PARTS[part]]
            c = pts.mean(0)
            pw = self._part_width(i, part)
            ang, sc, dx, dy = self.vb[i, j]
            t = math.radians(ang)
            rot = sc * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            shift = np.array([dx, dy]) * fw
            m = np.hstack([rot, (c + shift - rot @ c)[:, None]])
            grown = (pts - c) * (1 + _VB_GROW) + c
            r = roi(grown, 4 * _VB_FEATHER * pw + abs(shift).max() + 4, frame.shape)
            if r[2] - r[0] < 2 or r[3] - r[1] < 2:
                continue
            patch = warp_roi(out, m, r)  # from the current output, so the parts compose
            mask = hull_mask(grown, 0.0, _VB_FEATHER * pw, r)
            b = blend(out, patch, mask * a, r)
            box = b if box is None else [min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]), max(box[3], b[3])]
        return box if box is not None else [0, 0, 0, 0]

    # ---- ground truth --------------------------------------------------------------------------
    def ground_truth(self, frame_numbers: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """What was manipulated: ``kind``, ``region``, ``positions`` (sample positions, 0-based),
        ``manipulated_frames`` (their source frame numbers from ``frame_numbers``), ``bursts`` (sample
        positions), ``weights`` (blend envelope per manipulated sample), ``boxes`` (one
        ``[x0, y0, x1, y1]`` per manipulated sample, native pixels, exclusive right/bottom edges,
        filled as :meth:`apply` made them) and the drawn ``params``."""
        pos = [int(k) for k in np.nonzero(self.env)[0]]
        nums = np.asarray(frame_numbers)
        params: dict[str, Any]
        if self.kind == "sbi":
            params = {"per_frame": self.per_frame,
                      **({"frames": [_public(p) for p in self.sbi]} if self.per_frame else _public(self.sbi[0]))}
        else:
            params = {"amplitude": round(self.vb_amp, 4), "parts": list(_VB_PARTS[self.region])}
        return {"kind": self.kind, "method": KINDS[self.kind], "region": self.region, "positions": pos,
                "manipulated_frames": [int(nums[k]) for k in pos], "bursts": [[int(a), int(b)] for a, b in self.bursts],
                "weights": [round(float(self.env[k]), 3) for k in pos],
                "boxes": [self.boxes.get(k) for k in pos], "params": params}


def truth_areas(truth: dict[str, Any], frame_numbers: Sequence[int] | np.ndarray | None = None
                ) -> dict[int, list[float]]:
    """WHERE a pseudo-fake is manipulated, read back from its stored ground truth (the dict of
    :meth:`PseudoFakePlan.ground_truth`, kept under ``meta["pseudo"]`` of its cache entry): per
    manipulated source frame number, the ``[x0, y0, x1, y1]`` box (native frame pixel edges, the
    frame the landmarks and crops live in) where the blend weight exceeds 1 %.

    The boxes are listed per manipulated SAMPLE (``positions``, 0-based sample positions); the keys
    are their source frame numbers (``manipulated_frames``), the numbers the scoring path reports.
    ``frame_numbers``: the entry's sampled frame numbers (``CacheEntry.indices``); when given, each
    position must sample the frame number stored for it. Samples without a box or with an empty one
    (nothing blended above 1 %) are left out, so a truth without any box gives ``{}``. ValueError
    when the lists disagree in length, a box is not 4 numbers, or a position is out of range or
    samples another frame than the one stored.
    """
    frames = list(truth.get("manipulated_frames") or [])
    boxes = list(truth.get("boxes") or [])
    if not frames and not boxes:
        return {}
    if len(frames) != len(boxes):
        raise ValueError(f"pseudo-fake ground truth lists {len(frames)} manipulated frames but {len(boxes)} boxes")
    pos = truth.get("positions")
    if frame_numbers is not None and pos is not None:
        nums = np.asarray(frame_numbers)
        if len(pos) != len(frames):
            raise ValueError(f"pseudo-fake ground truth lists {len(pos)} positions but {len(frames)} frames")
        for k, f in zip(pos, frames):
            if not 0 <= int(k) < len(nums) or int(nums[int(k)]) != int(f):
                raise ValueError(f"pseudo-fake ground truth: sample position {k} does not sample frame {f} "
                                 f"(the entry has {len(nums)} sampled frames)")
    out: dict[int, list[float]] = {}
    for f, b in zip(frames, boxes):
        if b is None:
            continue
        if len(b) != 4:
            raise ValueError(f"pseudo-fake ground truth: the box of frame {f} has {len(b)} numbers, not 4")
        x0, y0, x1, y1 = (float(v) for v in b)
        if x1 > x0 and y1 > y0:
            out[int(f)] = [x0, y0, x1, y1]
    return out


def _sbi_source(patch: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The self-blend source: ``patch`` (uint8 (h, w, 3) RGB) with the colour and frequency changes of ``p``."""
    x = patch.astype(np.float32) + np.asarray(p["rgb_shift"], np.float32)
    hsv = cv2.cvtColor(np.clip(x + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + p["hue"], 180.0)
    hsv[..., 1] *= p["sat"]
    hsv[..., 2] *= p["val"]
    x = cv2.cvtColor(np.clip(hsv + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    x = (x - 128.0) * p["contrast"] + 128.0 + p["brightness"]
    h, w = x.shape[:2]
    if p["freq"] == "down" and min(h, w) >= 8:
        small = cv2.resize(x, (max(1, round(w * p["down"])), max(1, round(h * p["down"]))),
                           interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif p["freq"] == "sharpen":
        x = x + p["sharpen"] * (x - cv2.GaussianBlur(x, (0, 0), 1.0))
    return np.clip(x, 0, 255)


# --------------------------------------------------------------------------- making plans


def check_landmarks(landmarks: np.ndarray, frame_shape: tuple[int, ...], points: np.ndarray) -> None:
    """Raise ``PreprocessError`` (``too_few_frames`` / ``landmarks_off_frame``) when no pseudo-fake can
    be made from these (T, 68, 2) landmarks in frames of ``frame_shape`` (H, W, ...)."""
    t = int(landmarks.shape[0])
    if t < MIN_FRAMES:
        raise PreprocessError("too_few_frames", f"{t} sampled frames; a pseudo-fake needs at least {MIN_FRAMES}")
    h, w = frame_shape[:2]
    pts = landmarks[:, points]
    bad = ~np.isfinite(pts).all(axis=(1, 2)) | (pts[..., 0] < 0).any(1) | (pts[..., 0] > w - 1).any(1) \
        | (pts[..., 1] < 0).any(1) | (pts[..., 1] > h - 1).any(1)
    if bad.any():
        k = int(np.argmax(bad))
        raise PreprocessError("landmarks_off_frame",
                              f"{int(bad.sum())} of {t} sampled frames have the region's landmarks outside the "
                              f"{w}x{h} frame (or missing), first at sample {k}: no pseudo-fake is made from a "
                              "face cut by the frame edge")


def plan_pseudofake(kind: str, region: str, landmarks: np.ndarray, frame_shape: tuple[int, ...],
                    rng: np.random.Generator, sparsity: float = 0.5, per_frame: bool = False) -> PseudoFakePlan:
    """Draw one pseudo-fake of a video: its bursts and parameters.

    Args:
        kind: "sbi" or "vb".
        region: "face", "eyes", "mouth" or "any" (one of the three drawn from ``rng``).
        landmarks: float (T, 68, 2) landmarks of the T sampled frames, native pixels.
        frame_shape: (H, W, ...) of the native frames.
        rng: the pseudo-fake's generator (:func:`rng_for` in preprocessing).
        sparsity: share of the T frames manipulated, in (0, 1].
        per_frame: SBI: redraw the parameters on every frame.

    Raises:
        ValueError: an unknown kind / region, or sparsity outside (0, 1].
        PreprocessError: ``too_few_frames`` (T < :data:`MIN_FRAMES`) or ``landmarks_off_frame``.
    """
    _check(kind, region)
    if not 0 < sparsity <= 1:
        raise ValueError(f"sparsity must be in (0, 1], got {sparsity}")
    if region == "any":
        region = str(rng.choice(REGIONS[:-1]))
    lms = np.asarray(landmarks, np.float32)
    if lms.ndim != 3 or lms.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (T, 68, 2), got {lms.shape}")
    check_landmarks(lms, frame_shape, region_points(kind, region))
    t = lms.shape[0]
    bs = bursts(t, sparsity, rng)
    plan = PseudoFakePlan(kind=kind, region=region, landmarks=lms, env=envelope(bs, t), bursts=bs,
                          per_frame=per_frame)
    if kind == "sbi":
        first = _draw_sbi(rng)
        plan.sbi = [first if (k == 0 or not per_frame) else _draw_sbi(rng) for k in range(t)]
    else:
        plan.vb_amp = float(rng.uniform(0.5, 1.0))
        n = len(_VB_PARTS[region])
        u = rng.uniform(-1, 1, (t, n, 4)) * plan.vb_amp  # a new draw for every frame: the drift
        plan.vb = np.stack([u[..., 0] * 3.0, 1 + u[..., 1] * 0.05, u[..., 2] * 0.03, u[..., 3] * 0.03], axis=-1)
    return plan


def make_pseudofake(frames: np.ndarray, landmarks: np.ndarray, kind: str, region: str = "any",
                    seed: int | np.random.Generator = 0, sparsity: float = 0.5, per_frame: bool = False,
                    frame_numbers: Sequence[int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """A whole pseudo-fake clip at once (tests, contact sheets; preprocessing streams :meth:`PseudoFakePlan.apply`).

    Args:
        frames: uint8 (T, H, W, 3) RGB native frames; landmarks: float (T, 68, 2).
        kind, region, sparsity, per_frame: see :func:`plan_pseudofake`.
        seed: an int seed or a generator.
        frame_numbers: source frame number of each sample (default 0..T-1).

    Returns:
        uint8 (T, H, W, 3) frames (untouched frames are copies of the input) and the ground truth
        (:meth:`PseudoFakePlan.ground_truth`).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) != len(landmarks):
        raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark sets")
    plan = plan_pseudofake(kind, region, landmarks, frames.shape[1:], rng, sparsity, per_frame)
    out = np.stack([plan.apply(i, f) for i, f in enumerate(frames)])
    nums = np.arange(len(frames)) if frame_numbers is None else np.asarray(frame_numbers)
    return out, plan.ground_truth(nums)

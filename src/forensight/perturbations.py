"""Test-time perturbations of raw videos: the DeeperForensics-1.0 suite, mixed, and two extensions.

The seven reference types at severity levels 1-5, with the constants and operations of the
DeeperForensics-1.0 reference code (``perturbation/distortions.py`` and
``add_distortion_to_video.py`` of EndlessSora/DeeperForensics-1.0; the "JPEG" of that code is a
pixelation, and its level table is :data:`TYPES`):

=============  =====  ===============================  ===========================================
type           code   levels 1-5                       operation on a uint8 RGB frame
=============  =====  ===============================  ===========================================
saturation     CS     0.4, 0.3, 0.2, 0.1, 0.0          Cb, Cr scaled around the neutral value (YCbCr)
contrast       CC     0.85, 0.725, 0.6, 0.475, 0.35    pixel values x level, cast to uint8 (truncated)
block          BW     16, 32, 48, 64, 80               level x (min(H, W) // 256) grey (128) 8x8 blocks
noise          GNC    0.001, 0.002, 0.005, 0.01, 0.05  Gaussian noise of that variance on YCbCr / 255
blur           GB     7, 9, 13, 17, 21                 Gaussian blur, k x k kernel, sigma = k / 6
pixelation     JPEG   2, 3, 4, 5, 6                    bilinear downscale by the factor, then back up
compression    VC     30, 32, 35, 38, 40               H.264 re-encode (libx264) at that CRF
=============  =====  ===============================  ===========================================

Beyond the reference: ``mixed`` (2-4 distinct reference types drawn per video, in a random order,
each at the given level; a drawn ``compression`` is applied last, as it re-encodes the file) and
two extensions, named ``ext_*`` so that they are never mistaken for the reference's types:
``ext_jpeg`` (real JPEG re-encoding of every frame, quality 90, 70, 50, 30, 10) and
``ext_rescale`` (social-media style downscaling with area interpolation, the smaller video kept:
scale 0.75, 0.6, 0.5, 0.4, 0.3 of each side).

Facts of the reference kept on purpose (tests check them):

* Its YCbCr is OpenCV's float conversion of 0-255 values (chroma offset 0.5) followed by the
  studio-range scaling ``Y' = (219 Y + 16) / 255``, ``C' = (224 C + 16) / 255``; saturation scales
  ``C'`` around 0.5, a hair (0.002 grey levels) from the exact neutral ``128 / 255``.
* Casts to uint8 truncate (``astype``), they do not round (saturation, contrast, noise).
* The block count is ``level x (min(H, W) // 256)``: a frame whose short side is under 256 px
  gets no block at all. Positions are uniform with ``0 <= x <= W - 9``, ``0 <= y <= H - 9``; blocks
  may overlap.
* Noise is drawn independently for Y', Cb' and Cr', and the result is clipped to 0-255.
* ``compression`` re-encodes like ``ffmpeg -i in -crf N out``: libx264, preset medium, 4:2:0.

Determinism. Every random draw comes from a generator seeded by (seed, video key, step of the
chain, type, frame number) (:func:`frame_rng`), so the same seed gives the same frames whatever
order or subset of frames is processed; the levels of one type share their draws (level 2's
blocks include level 1's, the noise field only grows). ``compression`` keeps the reference's x264
settings (preset medium, B-frames, macroblock-tree rate control) with one thread, and x264 is then
not reproducible: 8 encodes of the same 64 frames at CRF 35 gave 5 different decoded videos
(PSNR spread 0.03-0.13 dB; 2026-12-01). Only ``mbtree=0`` or ``bframes=0`` made it reproducible,
but each moves the quality at a given CRF by 0.3-0.5 dB PSNR, i.e. away from the reference's
levels, so they are not used: for that type only the frames given to the encoder are guaranteed
identical, and a resumed run reuses the cached result.

Videos (:func:`perturb_video`). The whole video is decoded once (``forensight.video``), perturbed
frame by frame and written to ``dst``: Ut Video (lossless, intra-only, planar RGB) in AVI (``.avi``)
for every chain without ``compression``, so no compression is added to the non-VC perturbations
and the decoded frames are exactly the perturbed ones; H.264 in MP4 (``.mp4``) at the CRF when the
chain holds ``compression``. (Ut Video over FFV1, both lossless: at 1280x720 it encoded 23 vs 100
ms/frame here and decodes the preprocessing's frames about 6x faster; libx264rgb at qp 0 is lossless
too but inter-coded and slower to seek.) Frame count and frame rate are kept (timestamps become ``i / fps``);
rotation metadata is applied, so frames are written upright.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from forensight.perturbation_spec import (  # the vocabulary; re-exported here
    CODES,
    LEVELS,
    MIXED,
    REFERENCE_TYPES,
    check_level,
    resolve_type,
    split_spec,
)

__all__ = [
    "EXTENSIONS",
    "LEVELS",
    "MIXED",
    "REFERENCE_TYPES",
    "TYPES",
    "Perturbation",
    "PerturbationType",
    "PerturbedVideo",
    "block_positions",
    "block_wise",
    "color_contrast",
    "color_saturation",
    "frame_rng",
    "gaussian_blur",
    "gaussian_noise_color",
    "jpeg_reencode",
    "parse_spec",
    "perturb_frames",
    "perturb_video",
    "pixelation",
    "rescale",
    "resolve_type",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]

BLOCK = 8  #: side of a block-wise block, pixels
GREY = 128  #: value of a block-wise block
NEUTRAL = 0.5  #: the reference's neutral chroma value (in its C' units)


# ---- colour space of the reference ---------------------------------------------------------------

def rgb_to_ycbcr(frame: np.ndarray) -> np.ndarray:
    """The reference's YCbCr of a uint8 (or 0-255 float) RGB frame ``(H, W, 3)`` → float32 ``(H, W, 3)``.

    Channels (Y', Cb', Cr'): OpenCV's float YCrCb conversion of the 0-255 values (Y = 0.299 R +
    0.587 G + 0.114 B, Cr = 0.713 (R - Y) + 0.5, Cb = 0.564 (B - Y) + 0.5), then
    ``Y' = (219 Y + 16) / 255`` and ``C' = (224 C + 16) / 255``. Grey maps to Cb' = Cr' = 128 / 255.
    """
    _check_frame(frame)
    ycrcb = cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.float32), cv2.COLOR_RGB2YCrCb)
    out = ycrcb[:, :, (0, 2, 1)].copy()
    out[:, :, 0] = (out[:, :, 0] * (235 - 16) + 16) / 255.0
    out[:, :, 1:] = (out[:, :, 1:] * (240 - 16) + 16) / 255.0
    return out


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: float ``(H, W, 3)`` (Y', Cb', Cr') → float32 RGB, NOT clipped."""
    arr = np.array(ycbcr, dtype=np.float32, copy=True)
    arr[:, :, 0] = (arr[:, :, 0] * 255.0 - 16) / (235 - 16)
    arr[:, :, 1:] = (arr[:, :, 1:] * 255.0 - 16) / (240 - 16)
    return cv2.cvtColor(np.ascontiguousarray(arr[:, :, (0, 2, 1)]), cv2.COLOR_YCrCb2RGB)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to 0-255 and truncate to uint8 (the reference's ``astype``; values are in range there,
    the clip only keeps the cast defined)."""
    return np.clip(x, 0, 255).astype(np.uint8)


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        raise ValueError(f"expected an RGB frame (H, W, 3), got shape {shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"empty frame of shape {frame.shape}")


def _check_uint8(frame: np.ndarray) -> None:
    _check_frame(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {frame.dtype}")


# ---- the reference's seven operations (pure functions on one uint8 RGB frame) --------------------

def color_saturation(frame: np.ndarray, factor: float) -> np.ndarray:
    """CS: Cb', Cr' → ``0.5 + (C' - 0.5) * factor`` in the reference's YCbCr; uint8 RGB ``(H, W, 3)``.

    ``factor`` 0 removes the colour (Cb = Cr = neutral, to within the truncation to uint8).
    """
    _check_uint8(frame)
    ycc = rgb_to_ycbcr(frame)
    ycc[:, :, 1:] = NEUTRAL + (ycc[:, :, 1:] - NEUTRAL) * float(factor)
    return _to_uint8(ycbcr_to_rgb(ycc))


def color_contrast(frame: np.ndarray, factor: float) -> np.ndarray:
    """CC: ``uint8(frame * factor)`` (float32 product, truncated); uint8 RGB ``(H, W, 3)``."""
    _check_uint8(frame)
    return _to_uint8(frame.astype(np.float32) * np.float32(factor))


def block_positions(height: int, width: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Top-left corners ``(n, 2)`` as (y, x) of the BW blocks of a ``height`` x ``width`` frame.

    ``n = count * (min(height, width) // 256)``; ``0 <= y <= height - 9``, ``0 <= x <= width - 9``
    (the reference's ``random.randint(0, side - 1 - 8)``, inclusive).
    """
    n = int(count) * (min(int(height), int(width)) // 256)
    if n == 0:
        return np.zeros((0, 2), np.int64)
    if height < BLOCK + 1 or width < BLOCK + 1:
        raise ValueError(f"a {width}x{height} frame is too small for {BLOCK}x{BLOCK} blocks")
    # one (y, x) pair after the other, so a larger count extends a smaller one's blocks
    high = np.array([height - 1 - BLOCK, width - 1 - BLOCK], np.int64)
    return rng.integers(0, high, size=(n, 2), endpoint=True).astype(np.int64)


def block_wise(frame: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """BW: grey (128) 8x8 blocks at :func:`block_positions`; a new uint8 RGB frame ``(H, W, 3)``."""
    _check_uint8(frame)
    out = frame.copy()
    for y, x in block_positions(frame.shape[0], frame.shape[1], count, rng):
        out[y:y + BLOCK, x:x + BLOCK, :] = GREY
    return out


def gaussian_noise_color(frame: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """GNC: ``YCbCr / 255 + N(0, variance)`` per channel and pixel, back to RGB, clipped, truncated."""
    _check_uint8(frame)
    if variance < 0:
        raise ValueError(f"noise variance must be >= 0, got {variance}")
    ycc = rgb_to_ycbcr(frame) / 255.0
    noise = rng.standard_normal(ycc.shape, dtype=np.float32) * np.float32(math.sqrt(variance))
    return _to_uint8(ycbcr_to_rgb((ycc + noise) * 255.0))


def gaussian_blur(frame: np.ndarray, kernel: int) -> np.ndarray:
    """GB: ``cv2.GaussianBlur`` with a ``kernel`` x ``kernel`` window and sigma = kernel / 6 (odd kernel)."""
    _check_uint8(frame)
    k = int(kernel)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"blur kernel must be odd and >= 1, got {kernel}")
    return cv2.GaussianBlur(frame, (k, k), k / 6.0)


def pixelation(frame: np.ndarray, factor: int) -> np.ndarray:
    """The reference's "JPEG": bilinear resize to ``(W // factor, H // factor)`` and back to ``(W, H)``."""
    _check_uint8(frame)
    f = int(factor)
    h, w = frame.shape[:2]
    if f < 1 or h // f < 1 or w // f < 1:
        raise ValueError(f"pixelation factor {factor} does not fit a {w}x{h} frame")
    small = cv2.resize(frame, (w // f, h // f), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ---- extensions -----------------------------------------------------------------------------------

def jpeg_reencode(frame: np.ndarray, quality: int) -> np.ndarray:
    """Extension ``ext_jpeg``: encode the frame as a baseline JPEG at ``quality`` (OpenCV/libjpeg,
    4:2:0) and decode it; uint8 RGB ``(H, W, 3)``."""
    _check_uint8(frame)
    q = int(quality)
    if not 0 <= q <= 100:
        raise ValueError(f"JPEG quality must be in [0, 100], got {quality}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def rescaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(h, w)`` of a frame rescaled by ``scale`` (rounded, at least 16 px a side)."""
    return max(16, round(height * scale)), max(16, round(width * scale))


def rescale(frame: np.ndarray, scale: float) -> np.ndarray:
    """Extension ``ext_rescale``: area downscale of each side by ``scale`` (0 < scale <= 1); the
    smaller frame ``(h, w, 3)`` is returned (as a platform delivers it), not upscaled back."""
    _check_uint8(frame)
    if not 0 < scale <= 1:
        raise ValueError(f"rescale factor must be in (0, 1], got {scale}")
    h, w = rescaled_size(frame.shape[0], frame.shape[1], scale)
    if (h, w) == frame.shape[:2]:
        return frame.copy()
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


# ---- the registry ---------------------------------------------------------------------------------

FrameOp = Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class PerturbationType:
    """One perturbation type: its name, code, the parameter of each level and the frame operation.

    Attributes:
        name: canonical name (``saturation`` ... ``compression``, ``mixed``, ``ext_jpeg``, ``ext_rescale``).
        code: DeeperForensics-1.0's code (CS, CC, BW, GNC, GB, JPEG, VC) or ours (MIX, XJPEG, XRES).
        params: the parameter of levels 1-5 (what the operation takes).
        unit: what the parameter means.
        op: ``(frame, param, rng) -> frame`` for per-frame types; None for ``compression`` (a
            re-encode) and ``mixed`` (a chain of the others).
        extension: True for the types beyond the reference.
        random: whether ``op`` draws from its generator.
    """

    name: str
    code: str
    params: tuple[float, ...]
    unit: str
    op: FrameOp | None
    extension: bool = False
    random: bool = False
    type_id: int = field(default=0, compare=False)

    def param(self, level: int) -> Any:
        """The parameter of ``level`` (1-5)."""
        check_level(level)
        return self.params[level - 1]


def _deterministic(fn: Callable[[np.ndarray, Any], np.ndarray]) -> FrameOp:
    return lambda frame, param, rng: fn(frame, param)


_TYPE_LIST = [
    PerturbationType("saturation", "CS", (0.4, 0.3, 0.2, 0.1, 0.0), "chroma factor", _deterministic(color_saturation)),
    PerturbationType("contrast", "CC", (0.85, 0.725, 0.6, 0.475, 0.35), "intensity factor",
                     _deterministic(color_contrast)),
    PerturbationType("block", "BW", (16, 32, 48, 64, 80), "8x8 blocks per 256 px of the short side",
                     lambda f, p, r: block_wise(f, int(p), r), random=True),
    PerturbationType("noise", "GNC", (0.001, 0.002, 0.005, 0.01, 0.05), "variance on YCbCr / 255",
                     lambda f, p, r: gaussian_noise_color(f, float(p), r), random=True),
    PerturbationType("blur", "GB", (7, 9, 13, 17, 21), "Gaussian kernel side (sigma = k / 6)",
                     _deterministic(lambda f, p: gaussian_blur(f, int(p)))),
    PerturbationType("pixelation", "JPEG", (2, 3, 4, 5, 6), "down/up-scaling factor",
                     _deterministic(lambda f, p: pixelation(f, int(p)))),
    PerturbationType("compression", "VC", (30, 32, 35, 38, 40), "H.264 CRF", None),
    PerturbationType(MIXED, "MIX", (1, 2, 3, 4, 5), "level of each of the 2-4 drawn types", None, random=True),
    PerturbationType("ext_jpeg", "XJPEG", (90, 70, 50, 30, 10), "JPEG quality",
                     _deterministic(lambda f, p: jpeg_reencode(f, int(p))), extension=True),
    PerturbationType("ext_rescale", "XRES", (0.75, 0.6, 0.5, 0.4, 0.3), "scale of each side",
                     _deterministic(lambda f, p: rescale(f, float(p))), extension=True),
]
#: Every type by canonical name, in table order.
TYPES: dict[str, PerturbationType] = {
    t.name: PerturbationType(t.name, t.code, t.params, t.unit, t.op, t.extension, t.random, i + 1)
    for i, t in enumerate(_TYPE_LIST)}
#: The types beyond the reference (named ``ext_*``).
EXTENSIONS = tuple(n for n, t in TYPES.items() if t.extension)
if [(n, t.code) for n, t in TYPES.items()] != list(CODES.items()):  # the vocabulary lives in forensight.perturbation_spec
    raise RuntimeError("perturbations.TYPES and perturbation_spec.CODES name different types or codes")


def _key_int(video_key: str) -> int:
    return int.from_bytes(hashlib.sha256(video_key.encode("utf-8")).digest()[:8], "little")


def frame_rng(seed: int, video_key: str, step: int, type_name: str, frame_index: int) -> np.random.Generator:
    """The generator of one perturbation step on one frame: seeded by (seed, SHA-256 of the video
    key, step of the chain, type, frame number), so frames can be processed in any order or subset."""
    ss = np.random.SeedSequence([int(seed), _key_int(video_key), int(step), TYPES[type_name].type_id,
                                 int(frame_index)])
    return np.random.default_rng(ss)


@dataclass(frozen=True)
class Perturbation:
    """A perturbation type at a level with a seed; ``spec`` is its canonical string.

    Args:
        type: a type name or code (see :func:`resolve_type`).
        level: 1-5.
        seed: seeds every random draw (with the video key and the frame number).
    """

    type: str
    level: int
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", resolve_type(self.type))
        object.__setattr__(self, "level", check_level(self.level))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"perturbation seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def info(self) -> PerturbationType:
        return TYPES[self.type]

    @property
    def param(self) -> Any:
        """The type's parameter at this level (e.g. 13 for blur level 3)."""
        return self.info.param(self.level)

    @property
    def spec(self) -> str:
        """Canonical string ``type:level:seed=N`` (the preprocessing config's ``perturbation``)."""
        return f"{self.type}:{self.level}:seed={self.seed}"

    @property
    def name(self) -> str:
        """Short name for folders and tables: ``type-level``."""
        return f"{self.type}-{self.level}"

    def steps(self, video_key: str) -> tuple[tuple[str, int], ...]:
        """The (type, level) chain applied to the video with key ``video_key``: one step, or for
        ``mixed`` 2-4 distinct reference types in a random order (drawn per video from the seed),
        ``compression`` moved last when drawn."""
        if self.type != MIXED:
            return ((self.type, self.level),)
        rng = np.random.default_rng(np.random.SeedSequence(
            [self.seed, _key_int(video_key), TYPES[MIXED].type_id, self.level]))
        n = int(rng.integers(2, 4, endpoint=True))
        drawn = [REFERENCE_TYPES[i] for i in rng.permutation(len(REFERENCE_TYPES))[:n]]
        drawn.sort(key=lambda t: t == "compression")  # stable: the others keep their random order
        return tuple((t, self.level) for t in drawn)

    def crf(self, video_key: str) -> int | None:
        """The H.264 CRF of the chain's ``compression`` step, or None when it has none."""
        for t, lvl in self.steps(video_key):
            if t == "compression":
                return int(TYPES[t].param(lvl))
        return None

    def output_size(self, height: int, width: int, video_key: str) -> tuple[int, int]:
        """``(h, w)`` of the perturbed frames of a ``height`` x ``width`` video."""
        for t, lvl in self.steps(video_key):
            if t == "ext_rescale":
                height, width = rescaled_size(height, width, float(TYPES[t].param(lvl)))
        return height, width

    def apply(self, frame: np.ndarray, video_key: str, frame_index: int) -> np.ndarray:
        """Every per-frame step of the chain on one uint8 RGB frame (``compression`` excluded: it
        is the video's re-encode, :func:`perturb_video`). Deterministic in (seed, key, frame)."""
        _check_uint8(frame)
        out = frame
        for k, (t, lvl) in enumerate(self.steps(video_key)):
            info = TYPES[t]
            if info.op is None:
                continue
            rng = frame_rng(self.seed, video_key, k, t, frame_index) if info.random else None
            out = info.op(out, info.param(lvl), rng)
        return out


def parse_spec(spec: str) -> Perturbation:
    """Inverse of :attr:`Perturbation.spec` (``type:level`` or ``type:level:seed=N``;
    grammar: :func:`forensight.perturbation_spec.split_spec`)."""
    return Perturbation(*split_spec(spec))


# ---- frames and videos ----------------------------------------------------------------------------

def perturb_frames(frames: Iterable[np.ndarray], perturbation: Perturbation, video_key: str,
                   indices: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """Apply ``perturbation``'s per-frame steps to uint8 RGB frames ``(H, W, 3)``, lazily.

    ``indices``: the frame numbers of ``frames`` (default 0, 1, ...), which seed the random draws.
    An empty ``frames`` is a ValueError (raised when the iterator is consumed).
    """
    nums = iter(indices) if indices is not None else None
    n = 0
    for i, frame in enumerate(frames):
        num = next(nums) if nums is not None else i
        n += 1
        yield perturbation.apply(frame, video_key, int(num))
    if n == 0:
        raise ValueError("no frames to perturb (empty video)")


@dataclass
class PerturbedVideo:
    """What :func:`perturb_video` wrote.

    Attributes:
        path: the perturbed video (``.avi`` Ut Video lossless, or ``.mp4`` H.264 with ``compression``).
        perturbation: its spec.
        steps: the (type, level) chain applied.
        num_frames: frames written (= the source's).
        perturbed_frames: frames that went through the chain (all, or the ``frames`` asked for;
            every frame with ``compression``).
        size: ``(height, width)`` written.
        codec: "utvideo" or "libx264".
        seconds: wall time.
    """

    path: Path
    perturbation: str
    steps: tuple[tuple[str, int], ...]
    num_frames: int
    perturbed_frames: int
    size: tuple[int, int]
    codec: str
    seconds: float


def output_suffix(perturbation: Perturbation, video_key: str) -> str:
    """``.mp4`` when the chain re-encodes with H.264 (``compression``), else ``.avi`` (Ut Video, lossless)."""
    return ".mp4" if perturbation.crf(video_key) is not None else ".avi"


def perturb_video(src: str | Path, dst: str | Path, perturbation: Perturbation, video_key: str | None = None,
                  frames: Sequence[int] | np.ndarray | Callable[[int], Any] | None = None,
                  progress: bool = False) -> PerturbedVideo:
    """Perturb the video ``src`` and write it to ``dst`` with the suffix :func:`output_suffix` gives
    (``dst``'s own suffix is replaced); atomic (:func:`forensight.io.atomic_write`).

    Args:
        src: a video file (any format ``forensight.video`` reads).
        dst: the output path; its folder is created.
        perturbation: type, level, seed.
        video_key: what seeds the per-video draws besides the seed (default: ``src``'s file name);
            ``forensight robustness`` passes the qualified video id.
        frames: only these frame numbers are decoded and perturbed; every other frame is written as
            a flat grey placeholder of the same size. For a consumer that reads only those frames
            (the preprocessing's sampled frames) the file is equivalent to the fully perturbed one
            and much cheaper. A callable gets the frame count and returns the frame numbers (e.g.
            ``lambda n: video.sample_indices(n, cfg)``). Ignored (every frame perturbed) when the
            chain holds ``compression``.
        progress: a progress bar over the frames.

    Raises ``PreprocessError`` (from ``forensight.video``) for a file that cannot be read or has no
    frame (reason ``empty_file``, ``unreadable``, ``too_short``, ...), ValueError for a frame rate
    it cannot keep or an odd frame size under H.264 (4:2:0 needs even sides).
    """
    import time

    from tqdm.auto import tqdm

    from forensight.io import atomic_write
    from forensight.video import index_video, iter_frames

    t0 = time.perf_counter()
    src = Path(src)
    key = video_key if video_key is not None else src.name
    idx = index_video(src)
    n = int(idx.info.num_frames)
    fps = float(idx.info.fps)
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{src}: no usable frame rate ({fps!r}); cannot write the perturbed video")
    crf = perturbation.crf(key)
    h, w = perturbation.output_size(idx.info.height, idx.info.width, key)
    if crf is not None and (h % 2 or w % 2):
        raise ValueError(f"{src}: {w}x{h} frames cannot be H.264 4:2:0 encoded (compression needs even sides)")
    if frames is None or crf is not None:
        wanted = np.arange(n, dtype=np.int64)
    else:
        wanted = np.unique(np.asarray(frames(n) if callable(frames) else frames, dtype=np.int64))
    if wanted.size and (wanted[0] < 0 or wanted[-1] >= n):
        raise ValueError(f"frames must be in [0, {n}), got {wanted[0]}..{wanted[-1]}")
    dst = Path(dst).with_suffix(output_suffix(perturbation, key))
    dst.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=n, desc=f"{perturbation.name} {src.name}", unit="frame", disable=not progress, leave=False)

    def stream() -> Iterator[np.ndarray | None]:  # None: a placeholder frame
        decoded = iter_frames(src, wanted, index=idx, threads=1) if wanted.size else iter(())
        nxt = 0
        for num, _ts, rgb in decoded:
            while nxt < num:  # frames nobody reads
                nxt += 1
                bar.update(1)
                yield None
            out = perturbation.apply(rgb, key, num)
            if out.shape[:2] != (h, w):
                raise ValueError(f"{src}: frame {num} is {out.shape[1]}x{out.shape[0]}, expected {w}x{h} "
                                 "(the video changes size)")
            nxt += 1
            bar.update(1)
            yield out
        while nxt < n:
            nxt += 1
            bar.update(1)
            yield None

    codec = "libx264" if crf is not None else "utvideo"
    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        written = _encode(tmp, stream(), fps, (h, w), crf)
        if written != n:
            raise RuntimeError(f"{src}: wrote {written} frames, the source has {n}")

    try:
        atomic_write(dst, write)
    finally:
        bar.close()
    return PerturbedVideo(path=dst, perturbation=perturbation.spec, steps=perturbation.steps(key), num_frames=n,
                          perturbed_frames=int(wanted.size), size=(h, w), codec=codec,
                          seconds=time.perf_counter() - t0)


def _encode(path: Path, frames: Iterable[np.ndarray | None], fps: float, size: tuple[int, int],
            crf: int | None) -> int:
    """Encode uint8 RGB frames of ``size`` (h, w) to ``path``: Ut Video (gbrp, lossless) in AVI when
    ``crf`` is None, else libx264 (preset medium, yuv420p, one thread) at ``crf`` in MP4. A None
    frame is a flat grey placeholder (encoded once; Ut Video being intra-only, its packet is reused).

    ``forensight.video.write_video`` writes H.264 4:2:0 at preset veryfast only, which fits neither
    a lossless intermediate nor ffmpeg's default preset of the reference; hence this writer.
    Returns the number of frames written.
    """
    import av

    h, w = size
    rate = Fraction(fps).limit_denominator(1001)
    tb = 1 / rate
    container = av.open(str(path), mode="w", format="mp4" if crf is not None else "avi")
    try:
        if crf is None:
            stream = container.add_stream("utvideo", rate=rate)
            stream.pix_fmt = "gbrp"
        else:
            stream = container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(int(crf)), "preset": "medium", "threads": "1"}
        stream.width, stream.height = w, h
        stream.codec_context.thread_count = 1
        grey = av.VideoFrame.from_ndarray(np.full((h, w, 3), GREY, np.uint8), format="rgb24").reformat(
            format=stream.pix_fmt)
        grey_packet: bytes | None = None  # Ut Video is intra-only: one placeholder packet serves them all
        n = 0
        for rgb in frames:
            if rgb is None and grey_packet is not None:
                packet = av.Packet(grey_packet)
                packet.pts = packet.dts = n
                packet.time_base = tb
                packet.stream = stream
                packet.is_keyframe = True
                container.mux(packet)
                n += 1
                continue
            if rgb is None:
                frame = grey
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = n, tb
            packets = list(stream.encode(frame))
            if rgb is None and crf is None and len(packets) == 1:
                grey_packet = bytes(packets[0])
            for packet in packets:
                container.mux(packet)
            n += 1
        if n == 0:
            raise ValueError("no frames to write (empty video)")
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return n

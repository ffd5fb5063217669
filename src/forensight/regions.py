"""Face-region geometry from 68-point landmarks, native-resolution crops, LipForensics lips.

Coordinates. Landmarks are ``(x, y)`` pixel *centres* (pixel ``i`` is centred on ``i``); boxes
``(x0, y0, x1, y1)`` are pixel *edges* (pixel ``i`` spans ``[i, i + 1)``; a detector box of
columns 10..19 is ``x0 = 10, x1 = 20``). Boxes built from landmarks add the half-pixel shift.

Regions (``cfg.regions``; every crop is square, uint8 RGB ``(size, size, 3)``, cut from the
native-resolution frame by :func:`crop_box` and resized with ``cv2.INTER_AREA`` when shrinking,
``cv2.INTER_CUBIC`` when enlarging, i.e. when either side of the source box is under ``size``):

* ``frame``: the whole frame resized to ``size x size``. The aspect ratio is **not** kept (a
  16:9 frame is squeezed horizontally); nothing is padded or cut away.
* ``full``: the detector's face box made square around its centre (side = longer box side) and
  expanded by ``cfg.face_margin`` of that side on each side.
* ``eyes``: square around the bounding box of brows and eyes (landmarks 17-26, 36-47); side =
  the longer side of that bounding box + ``2 * EYES_MARGIN * iod``.
* ``mouth``: square around the bounding box of the mouth (48-67); side = its longer side +
  ``2 * MOUTH_MARGIN * iod`` (enough to include the philtrum and the top of the chin).

* ``eyes_band``: the top ``BAND_FRACTION`` (35 %) of the rows of the ``full`` box, full width.
* ``mouth_band``: the bottom ``BAND_FRACTION`` (35 %) of the rows of the ``full`` box, full width.

``iod`` is the inter-ocular distance (between the centres of landmarks 36-41 and 42-47), so the
eyes and mouth boxes scale with the face rather than being fixed pixel windows.

Bands (the seed paper's geometry, beside the landmark-based ``eyes`` / ``mouth``). The bands use
no landmarks: they are fixed horizontal strips of the very box ``full`` uses (face box + margin).
That box is first snapped to whole pixels exactly as :func:`crop_box` snaps it for ``full``
(:func:`snap_box`, ``S x S`` pixels), then the band keeps ``round(BAND_FRACTION * S)`` rows at its
top (``eyes_band``) or bottom (``mouth_band``), so each band is exactly the first / last rows of
the ``full`` crop's source pixels. The ``S x 0.35 S`` band is **stretched** to the square
``size x size`` output (about 2.9x vertically; the aspect ratio is not kept), as the seed's
224x224 inputs were. Since the band is under ``size`` rows for all but large faces, it is usually
resized with ``cv2.INTER_CUBIC`` (the rule above: area only when *both* sides shrink). Bands
reaching past the frame are padded with black like ``full``: same box, same :func:`crop_box`.

Borders. A box reaching past the frame is **padded with black** (zeros); it is never shifted or
shrunk to fit, so a region always shows the same part of the face at the same place.

Lips (``"lips"``, LipForensics / mpc001 lip-reading geometry; see :func:`align_lips`): the
frame is mapped by a similarity transform estimated from landmarks 33, 36, 39, 42, 45 (smoothed
over 12 frames, :func:`smooth_lips_landmarks`; a forward window by default, as the official code,
or a centred one: ``PreprocessConfig.lips_smooth_mode``) onto the same points of the 20-words mean face
in a 256x256 reference frame, and a 96x96 grayscale patch is cut around the transformed mouth.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import cv2
import numpy as np

from forensight.config import PreprocessConfig
from forensight.faces.landmarks import EYES_AND_BROWS, LEFT_EYE, LIPFORENSICS_STABLE_POINTS, MOUTH, RIGHT_EYE
from forensight.records import FaceTrack

__all__ = [
    "BAND_FRACTION",
    "BAND_REGIONS",
    "CROP_REGIONS",
    "EYES_MARGIN",
    "LIPS_REFERENCE_SIZE",
    "LIPS_SMOOTH_MODES",
    "MOUTH_MARGIN",
    "align_lips",
    "band_box",
    "crop_box",
    "crop_lips",
    "crop_regions",
    "crop_to_frame",
    "crop_track_regions",
    "lips_transform",
    "mean_face",
    "region_box",
    "similarity_transform",
    "smooth_lips_landmarks",
    "snap_box",
]

#: Regions cut as RGB boxes (everything but the aligned "lips").
CROP_REGIONS = ("frame", "full", "eyes", "mouth", "eyes_band", "mouth_band")
#: The seed paper's band regions, each a horizontal strip of the ``full`` box.
BAND_REGIONS = ("eyes_band", "mouth_band")
#: Height of the ``eyes_band`` / ``mouth_band`` strips, as a fraction of the ``full`` box's rows (seed: 35 %).
BAND_FRACTION = 0.35
#: Margin of the eyes box on each side, as a fraction of the inter-ocular distance.
EYES_MARGIN = 0.15
#: Margin of the mouth box on each side, as a fraction of the inter-ocular distance.
MOUTH_MARGIN = 0.3
#: Side of the mean-face reference frame of the lips alignment (LipForensics ``STD_SIZE``).
LIPS_REFERENCE_SIZE = 256
#: Largest crop canvas (pixels) crop_box will allocate before refusing a runaway box.
_MAX_CANVAS_PIXELS = 64_000_000


# --------------------------------------------------------------------------- geometry


def _square(cx: float, cy: float, side: float) -> np.ndarray:
    h = side / 2.0
    return np.array([cx - h, cy - h, cx + h, cy + h], np.float32)


def _iod(landmarks: np.ndarray) -> float:
    right = landmarks[list(RIGHT_EYE)].mean(axis=0)
    left = landmarks[list(LEFT_EYE)].mean(axis=0)
    return float(np.linalg.norm(left - right))


def _landmark_square(points: np.ndarray, margin: float) -> np.ndarray:
    lo = points.min(axis=0) + 0.5  # pixel centres → edge coordinates
    hi = points.max(axis=0) + 0.5
    side = float(max(hi - lo)) + 2.0 * margin
    c = (lo + hi) / 2.0
    return _square(float(c[0]), float(c[1]), max(side, 1.0))


def snap_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """The whole-pixel box :func:`crop_box` cuts for ``box``.

    ``x0`` is rounded half up (``floor(x0 + 0.5)``) and the width is ``max(1, round(x1 - x0))``;
    the same for y. The result may reach past the frame.

    Args:
        box: ``(4,)`` ``(x0, y0, x1, y1)`` pixel-edge box, native pixels.

    Returns:
        int ``(ix0, iy0, ix1, iy1)`` pixel edges, ``ix1 - ix0 >= 1`` and ``iy1 - iy0 >= 1``.
    """
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
    if not np.isfinite([x0, y0, x1, y1]).all():
        raise ValueError(f"box has non-finite coordinates: {box}")
    ix0, iy0 = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    w, h = max(1, round(x1 - x0)), max(1, round(y1 - y0))
    return ix0, iy0, ix0 + w, iy0 + h


def band_box(full_box: np.ndarray, band: str, fraction: float = BAND_FRACTION) -> np.ndarray:
    """The seed paper's eyes / mouth band: the top or bottom ``fraction`` of the rows of ``full_box``.

    ``full_box`` is snapped to whole pixels by :func:`snap_box` (``S`` rows, as :func:`crop_box`
    cuts it for "full") and ``max(1, round(fraction * S))`` rows are kept at its top
    ("eyes_band") or bottom ("mouth_band"), all of its columns. The band is returned in whole
    pixels, so :func:`crop_box` cuts exactly those rows of the ``full`` crop's source pixels.

    Args:
        full_box: ``(4,)`` ``(x0, y0, x1, y1)`` box of the "full" region, native pixels.
        band: "eyes_band" (top rows) or "mouth_band" (bottom rows).
        fraction: band height as a fraction of the box height, in ``(0, 1]``.

    Returns:
        float32 ``(4,)`` ``(x0, y0, x1, y1)`` with integer values; not square (``S`` wide,
        about ``fraction * S`` high). It may reach past the frame.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"band fraction must be in (0, 1], got {fraction}")
    ix0, iy0, ix1, iy1 = snap_box(full_box)
    rows = min(iy1 - iy0, max(1, round(fraction * (iy1 - iy0))))
    if band == "eyes_band":
        return np.array([ix0, iy0, ix1, iy0 + rows], np.float32)
    if band == "mouth_band":
        return np.array([ix0, iy1 - rows, ix1, iy1], np.float32)
    raise ValueError(f"unknown band {band!r}; choose one of {list(BAND_REGIONS)}")


def region_box(
    region: str,
    landmarks: np.ndarray,
    face_box: np.ndarray,
    frame_shape: Sequence[int],
    cfg: PreprocessConfig,
) -> np.ndarray:
    """Box of ``region`` in native pixels.

    Args:
        region: "frame", "full", "eyes", "mouth", "eyes_band" or "mouth_band" (for "lips" use
            :func:`align_lips`).
        landmarks: float ``(68, 2)`` iBUG landmarks, native pixels (unused by "frame", "full"
            and the bands).
        face_box: ``(4,)`` detector box ``(x0, y0, x1, y1)``, native pixels.
        frame_shape: ``(H, W, ...)`` of the native frame.
        cfg: supplies ``face_margin`` for "full" and the bands.

    Returns:
        float32 ``(4,)`` ``(x0, y0, x1, y1)``; square except for "frame" (= ``(0, 0, W, H)``)
        and the bands (whole-pixel strips of the "full" box, see :func:`band_box`).
        It may reach past the frame (see :func:`crop_box`).
    """
    lm = np.asarray(landmarks, np.float64).reshape(68, 2)
    if region == "frame":
        h, w = int(frame_shape[0]), int(frame_shape[1])
        return np.array([0, 0, w, h], np.float32)
    if region == "full":
        x0, y0, x1, y1 = (float(v) for v in np.asarray(face_box, np.float64).reshape(4))
        side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * cfg.face_margin)
        return _square((x0 + x1) / 2.0, (y0 + y1) / 2.0, max(side, 1.0))
    if region == "eyes":
        return _landmark_square(lm[list(EYES_AND_BROWS)], EYES_MARGIN * _iod(lm))
    if region == "mouth":
        return _landmark_square(lm[list(MOUTH)], MOUTH_MARGIN * _iod(lm))
    if region in BAND_REGIONS:
        return band_box(region_box("full", lm, face_box, frame_shape, cfg), region)
    if region == "lips":
        raise ValueError("the 'lips' region is an aligned crop, not a box: use align_lips / crop_lips")
    raise ValueError(f"unknown region {region!r}; choose one of {list(CROP_REGIONS)} or 'lips'")


def crop_box(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut ``box`` out of ``frame`` and resize it to ``size x size``.

    The box is snapped to whole pixels by :func:`snap_box` (``x0`` rounded, width
    ``round(x1 - x0)``, same for y). Parts of the box outside the frame are filled with zeros
    (black): the box is never shifted or clipped to fit. Shrinking uses ``cv2.INTER_AREA``;
    enlarging (either side smaller than ``size``) uses ``cv2.INTER_CUBIC``. A non-square box
    (the "frame" region, the bands) is stretched to the square output.

    Args:
        frame: uint8 ``(H, W, C)`` native-resolution frame (normally RGB, C = 3).
        box: ``(x0, y0, x1, y1)`` pixel-edge box.
        size: output side in pixels.

    Returns:
        uint8 ``(size, size, C)``.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ValueError(f"expected a (H, W, C) frame, got shape {frame.shape}")
    fh, fw, ch = frame.shape
    ix0, iy0, ix1, iy1 = snap_box(box)
    w, h = ix1 - ix0, iy1 - iy0
    if ix0 >= 0 and iy0 >= 0 and ix1 <= fw and iy1 <= fh:
        patch = frame[iy0:iy1, ix0:ix1]
    else:
        if w * h > _MAX_CANVAS_PIXELS:
            raise ValueError(f"box {box} ({w}x{h} px) is far larger than the {fw}x{fh} frame")
        patch = np.zeros((h, w, ch), frame.dtype)
        sx0, sy0, sx1, sy1 = max(ix0, 0), max(iy0, 0), min(ix1, fw), min(iy1, fh)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - iy0 : sy1 - iy0, sx0 - ix0 : sx1 - ix0] = frame[sy0:sy1, sx0:sx1]
    if w == size and h == size:
        return np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if (w >= size and h >= size) else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(patch), (size, size), interpolation=interp)
    return out.reshape(size, size, ch)


def crop_regions(
    frame: np.ndarray, landmarks: np.ndarray, face_box: np.ndarray, cfg: PreprocessConfig
) -> dict[str, np.ndarray]:
    """Every region of ``cfg.regions`` except "lips", as uint8 ``(cfg.size, cfg.size, 3)`` crops.

    Args:
        frame: uint8 RGB ``(H, W, 3)`` native-resolution frame.
        landmarks: ``(68, 2)`` landmarks of the subject in that frame.
        face_box: ``(4,)`` face box of the subject in that frame.
        cfg: the preprocessing config (regions, size, face_margin).

    The bands are strips of the "full" box of the same frame (:func:`band_box`), cut from the
    frame by the same :func:`crop_box` as every other region.
    """
    out: dict[str, np.ndarray] = {}
    for region in cfg.regions:
        if region == "lips":
            continue
        box = region_box(region, landmarks, face_box, frame.shape, cfg)
        out[region] = crop_box(frame, box, cfg.size)
    return out


# --------------------------------------------------------------------------- lips


@functools.lru_cache(maxsize=1)
def mean_face() -> np.ndarray:
    """The LipForensics / mpc001 20-words mean face: float64 ``(68, 2)`` in a 256x256 frame."""
    ref = resources.files("forensight").joinpath("resources/20words_mean_face.npy")
    with ref.open("rb") as fh:
        arr = np.load(fh)
    arr = np.asarray(arr, np.float64)
    if arr.shape != (68, 2):
        raise ValueError(f"20words_mean_face.npy has shape {arr.shape}, expected (68, 2)")
    arr.setflags(write=False)
    return arr


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` → ``dst``.

    Closed form of Umeyama's estimate without reflection (the same solution as
    ``skimage.transform.SimilarityTransform.estimate``).

    Args:
        src, dst: float ``(N, 2)`` corresponding points, N >= 2.

    Returns:
        float64 ``(2, 3)`` matrix ``M`` with ``dst ≈ src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    denom = float((s**2).sum())
    if denom <= 0:
        raise ValueError("similarity_transform: the source points coincide")
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / denom
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom
    rot = np.array([[a, -b], [b, a]])
    t = md - rot @ ms
    return np.concatenate([rot, t[:, None]], axis=1)


def lips_transform(smoothed_landmarks: np.ndarray) -> np.ndarray:
    """Similarity ``(2, 3)`` from frame pixels to the 256x256 mean-face frame.

    Estimated from landmarks 33, 36, 39, 42, 45 (nose tip, eye corners) of ``smoothed_landmarks``
    ``(68, 2)`` onto the same points of :func:`mean_face`.
    """
    lm = np.asarray(smoothed_landmarks, np.float64).reshape(68, 2)
    idx = list(LIPFORENSICS_STABLE_POINTS)
    return similarity_transform(lm[idx], mean_face()[idx])


#: Window placements of :func:`smooth_lips_landmarks` ("forward" = the official LipForensics one).
LIPS_SMOOTH_MODES = ("forward", "centred")


def smooth_lips_landmarks(
    landmarks: np.ndarray,
    window: int = PreprocessConfig.lips_smooth_window,
    frame_indices: np.ndarray | None = None,
    mode: str = PreprocessConfig.lips_smooth_mode,
) -> np.ndarray:
    """Temporal landmark smoothing of the LipForensics mouth alignment.

    ``out[t]`` is the plain mean of ``window`` consecutive frames ``s .. s + window - 1``; the
    window always keeps its full length inside the sequence. ``mode`` places it:

    * ``"forward"`` (the official LipForensics ``crop_mouths.py`` / mpc001
      ``crop_mouth_from_video.py`` deque loop): ``s = min(t, T - window)``, i.e. frame ``t``
      averages ``t .. t+11`` for 12, and each of the last ``window - 1`` frames reuses the
      last full window ``T-12 .. T-1`` (the official code keeps the transform of the last full
      window for the frames left in its queue; it does *not* average the shorter ``t .. T-1``).
      The alignment leads the motion by ~5.5 frames.
    * ``"centred"``: ``s = clip(t - window // 2, 0, T - window)``, i.e. ``t-6 .. t+5`` for 12:
      the same windows as the official code, shifted half a window so none leads the motion;
      the first and last frames get exactly the official first / last window.

    A sequence of at most ``window`` frames is averaged whole in both modes (the official code
    fails on it: its transform is undefined).

    Args:
        landmarks: float ``(T, 68, 2)`` per-frame landmarks (gaps already filled).
        window: frames per window (>= 1; official 12).
        frame_indices: optional int ``(T,)`` source frame numbers; when given, each run of
            consecutive numbers (e.g. each 25-frame clip) is smoothed on its own so frames
            that are not neighbours in the video are never averaged together.
        mode: "forward" or "centred" (see above). The default is the pipeline's,
            ``PreprocessConfig.lips_smooth_mode`` ("forward", the official geometry).

    Returns:
        float64 ``(T, 68, 2)``.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if mode not in LIPS_SMOOTH_MODES:
        raise ValueError(f"mode must be one of {LIPS_SMOOTH_MODES}, got {mode!r}")
    lm = np.asarray(landmarks, np.float64)
    t_len = lm.shape[0]
    if t_len == 0:
        return lm.copy()
    if frame_indices is not None:
        idx = np.asarray(frame_indices).reshape(-1)
        if len(idx) != t_len:
            raise ValueError(f"frame_indices has {len(idx)} entries for {t_len} frames")
        breaks = np.nonzero(np.diff(idx) != 1)[0] + 1
        if len(breaks):
            parts = np.split(np.arange(t_len), breaks)
            out = np.empty_like(lm)
            for part in parts:
                out[part] = smooth_lips_landmarks(lm[part], window, mode=mode)
            return out
    if t_len <= window:
        return np.broadcast_to(lm.mean(axis=0), lm.shape).copy()
    shift = 0 if mode == "forward" else window // 2
    starts = np.clip(np.arange(t_len) - shift, 0, t_len - window)
    csum = np.concatenate([np.zeros((1, *lm.shape[1:])), np.cumsum(lm, axis=0)], axis=0)
    means = (csum[window:] - csum[:-window]) / window  # means[s] = mean(lm[s : s + window])
    return means[starts]


def _lips_matrix(
    smoothed_landmarks: np.ndarray, center_landmarks: np.ndarray | None, size: int
) -> np.ndarray:
    """The single (2, 3) affine from frame pixels straight into the ``size x size`` patch."""
    if not 1 <= size <= LIPS_REFERENCE_SIZE:
        raise ValueError(f"lips size must be in [1, {LIPS_REFERENCE_SIZE}], got {size}")
    m = lips_transform(smoothed_landmarks)
    src = smoothed_landmarks if center_landmarks is None else center_landmarks
    mouth = np.asarray(src, np.float64).reshape(68, 2)[list(MOUTH)]
    centre = mouth.mean(axis=0) @ m[:, :2].T + m[:, 2]  # in the 256x256 reference frame
    # Integer-aligned patch as in the official cut_patch, clamped inside the reference frame.
    origin = np.round(centre) - size // 2
    origin = np.clip(origin, 0, LIPS_REFERENCE_SIZE - size)
    out = m.copy()
    out[:, 2] -= origin
    return out


def align_lips(
    frame_rgb: np.ndarray,
    smoothed_landmarks: np.ndarray,
    size: int = 96,
    *,
    center_landmarks: np.ndarray | None = None,
) -> np.ndarray:
    """LipForensics-aligned grayscale mouth crop.

    Geometry (as the official LipForensics / mpc001 preprocessing): the similarity transform
    :func:`lips_transform` maps the frame onto the 256x256 mean-face frame; a ``size x size``
    patch whose top-left corner is ``round(c) - size // 2`` is cut there, ``c`` being the mean
    of mouth landmarks 48-67 mapped by the same transform.

    Implementation: the transform and the patch offset are composed into one affine and a
    single ``cv2.warpAffine`` (bilinear, zero border) renders the patch straight from the
    native frame — the 256x256 image is never built (~0.1 ms at 1280x720). It matches the
    two-step official route (skimage warp to 256x256 order 1, zero border, then cut) to well
    under one grey level on average. Like the official warp it has no anti-aliasing prefilter:
    a face much larger than the mean face (inter-ocular distance above ~2x its 54 px) is point-
    sampled bilinearly, not averaged.

    Colour: the RGB patch is warped first and then converted to gray (ITU-R 601 weights,
    ``cv2.COLOR_RGB2GRAY``), the official order (its crops are saved in colour and converted by
    PIL ``convert("L")`` when loaded). The official warp truncates to uint8 (``astype``) where
    ``cv2`` rounds: values may differ by one grey level.

    Border: if ``c`` lies less than ``size / 2`` from the edge of the 256 frame, the patch is
    moved (clamped) to lie inside it, as the official ``cut_patch`` effectively does (its
    "too much bias" exceptions are tested only after clamping and never fire). Frame content
    outside the native frame is black.

    Args:
        frame_rgb: uint8 ``(H, W, 3)`` RGB native-resolution frame.
        smoothed_landmarks: float ``(68, 2)`` landmarks of this frame after
            :func:`smooth_lips_landmarks`; they define the transform.
        size: patch side (official 96; the data loader centre-crops 88).
        center_landmarks: landmarks ``(68, 2)`` whose mouth points place the patch. The
            official code uses the frame's *unsmoothed* landmarks here; default (None) uses
            ``smoothed_landmarks``.

    Returns:
        uint8 ``(size, size)`` grayscale.
    """
    frame_rgb = np.ascontiguousarray(frame_rgb)
    if frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame_rgb.dtype} {frame_rgb.shape}")
    m = _lips_matrix(smoothed_landmarks, center_landmarks, size)
    patch = cv2.warpAffine(
        frame_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)


def crop_lips(
    frames: np.ndarray,
    landmarks: np.ndarray,
    *,
    window: int = PreprocessConfig.lips_smooth_window,
    size: int = 96,
    frame_indices: np.ndarray | None = None,
    center_on: str = "raw",
    mode: str = PreprocessConfig.lips_smooth_mode,
) -> np.ndarray:
    """LipForensics mouth clips for a frame sequence.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB consecutive frames (native resolution).
        landmarks: float ``(T, 68, 2)`` landmarks (gaps filled), not yet lips-smoothed.
        window: :func:`smooth_lips_landmarks` window (official 12).
        size: patch side (official 96).
        frame_indices: source frame numbers, to smooth each consecutive run separately.
        center_on: "raw" (official: the patch is placed with the frame's own landmarks) or
            "smoothed" (placed with the smoothed landmarks; steadier).
        mode: window placement of :func:`smooth_lips_landmarks`, "forward" (official; the default,
            as in ``PreprocessConfig.lips_smooth_mode``) or "centred".

    Returns:
        uint8 ``(T, size, size)`` grayscale.
    """
    if center_on not in ("raw", "smoothed"):
        raise ValueError(f"center_on must be 'raw' or 'smoothed', got {center_on!r}")
    lm = np.asarray(landmarks, np.float64)
    if len(frames) != len(lm):
        raise ValueError(f"{len(frames)} frames but {len(lm)} landmark sets")
    smoothed = smooth_lips_landmarks(lm, window, frame_indices, mode=mode)
    out = np.empty((len(lm), size, size), np.uint8)
    for t in range(len(lm)):
        out[t] = align_lips(
            frames[t], smoothed[t], size, center_landmarks=lm[t] if center_on == "raw" else None
        )
    return out


def crop_track_regions(
    frames: np.ndarray,
    track: FaceTrack,
    cfg: PreprocessConfig,
    frame_indices: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """All regions of ``cfg.regions`` for a whole face track.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB native-resolution sampled frames.
        track: the subject's :class:`~forensight.records.FaceTrack` over those frames.
        cfg: preprocessing config.
        frame_indices: source frame numbers of ``frames`` (used by the lips smoothing so that
            only consecutive frames are averaged).

    The lips use ``track.raw_landmarks`` (gap-filled, unsmoothed) when present, else
    ``track.landmarks``, smoothed by :func:`smooth_lips_landmarks` and centred on the raw ones
    (the official geometry, see :func:`crop_lips`).

    Returns:
        ``{region: uint8 (T, size, size, 3)}`` for the box regions (frame, full, eyes, mouth,
        eyes_band, mouth_band) and, if requested,
        ``{"lips": uint8 (T, lips_size, lips_size)}``.
    """
    t_len = len(track)
    if len(frames) != t_len:
        raise ValueError(f"{len(frames)} frames but the track has {t_len}")
    out: dict[str, np.ndarray] = {
        r: np.empty((t_len, cfg.size, cfg.size, 3), np.uint8) for r in cfg.regions if r != "lips"
    }
    for t in range(t_len):
        for region, crop in crop_regions(frames[t], track.landmarks[t], track.boxes[t], cfg).items():
            out[region][t] = crop
    if "lips" in cfg.regions:
        raw = track.raw_landmarks if track.raw_landmarks is not None else track.landmarks
        out["lips"] = crop_lips(
            frames,
            raw,
            window=cfg.lips_smooth_window,
            size=cfg.lips_size,
            frame_indices=frame_indices,
            mode=cfg.lips_smooth_mode,
        )
    return {r: out[r] for r in cfg.regions}


def crop_to_frame(
    region: str,
    track: FaceTrack,
    frame_shape: Sequence[int],
    cfg: PreprocessConfig,
    frame_indices: np.ndarray | None = None,
) -> np.ndarray:
    """Where each cached crop of ``region`` came from: float64 ``(T, 2, 3)`` affines mapping crop
    pixel edges ``(x, y, 1)`` (0..side) to native frame pixel edges, one per frame of ``track``.

    The geometry is the one the crops were cut with: the snapped box of :func:`crop_box` scaled
    to the crop side for the box regions; the inverse of the LipForensics alignment
    (:func:`align_lips`, landmarks smoothed exactly as :func:`crop_track_regions` does) for "lips".
    """
    t_len = len(track)
    out = np.zeros((t_len, 2, 3), np.float64)
    if region == "lips":
        raw = track.raw_landmarks if track.raw_landmarks is not None else track.landmarks
        lm = np.asarray(raw, np.float64)
        smoothed = smooth_lips_landmarks(lm, cfg.lips_smooth_window, frame_indices, mode=cfg.lips_smooth_mode)
        half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
        for t in range(t_len):
            m = np.vstack([_lips_matrix(smoothed[t], lm[t], cfg.lips_size), [0.0, 0.0, 1.0]])
            # warpAffine maps pixel centres; edges = centres + 0.5 on both sides
            out[t] = (half @ np.linalg.inv(m) @ np.linalg.inv(half))[:2]
        return out
    for t in range(t_len):
        ix0, iy0, ix1, iy1 = snap_box(region_box(region, track.landmarks[t], track.boxes[t], frame_shape, cfg))
        out[t] = [[(ix1 - ix0) / cfg.size, 0.0, ix0], [0.0, (iy1 - iy0) / cfg.size, iy0]]
    return out

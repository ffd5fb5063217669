"""Shared pixel helpers of the manipulation generators (``forensight.synth`` and
``forensight.pseudofake``): temporally sparse bursts, their blend envelope, regions of interest,
feathered convex-hull masks, ROI warps and alpha blending. One implementation, used by both.

Conventions: images are uint8 or float32 ``(H, W, 3)`` RGB; points are float ``(N, 2)`` pixel
coordinates (x, y); a ROI is an integer box ``(x0, y0, x1, y1)`` with exclusive right/bottom edges.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["blend", "bursts", "envelope", "hull_mask", "mean_in", "roi", "warp_roi"]


def bursts(num_frames: int, sparsity: float, rng: np.random.Generator, min_len: int = 4) -> list[tuple[int, int]]:
    """1-3 disjoint contiguous bursts ``[start, end)`` covering ``round(sparsity * T)`` frames (>= 1)."""
    total = min(num_frames, max(1, round(sparsity * num_frames)))
    if total >= num_frames:
        return [(0, num_frames)]
    min_len = min(min_len, total)
    clean = num_frames - total
    k = int(rng.integers(1, 4))
    k = max(1, min(k, total // min_len, clean + 1))
    # lengths: min_len each + a random composition of the rest
    extra = total - k * min_len
    cuts = np.sort(rng.integers(0, extra + 1, k - 1)) if k > 1 else np.array([], np.int64)
    lengths = np.diff(np.r_[0, cuts, extra]) + min_len
    # gaps: k + 1 gaps, the k - 1 interior ones at least 1 frame
    free = clean - (k - 1)
    gcuts = np.sort(rng.integers(0, free + 1, k))
    gaps = np.diff(np.r_[0, gcuts, free])
    gaps[1:-1] += 1
    out, pos = [], int(gaps[0])
    for i in range(k):
        out.append((pos, pos + int(lengths[i])))
        pos += int(lengths[i]) + int(gaps[i + 1])
    return out


def roi(points: np.ndarray, pad: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) around ``points`` grown by ``pad`` px, clipped to the frame."""
    h, w = shape[:2]
    x0, y0 = np.floor(points.min(0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(0) + pad).astype(int) + 1
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


def hull_mask(points: np.ndarray, grow: float, sigma: float, roi: tuple[int, int, int, int]) -> np.ndarray:
    """Float32 (h, w) mask in ``roi``: convex hull of ``points`` scaled by ``1 + grow`` about its
    centroid, feathered with a Gaussian of ``sigma`` px."""
    x0, y0, x1, y1 = roi
    c = points.mean(0)
    pts = (points - c) * (1 + grow) + c - np.array([x0, y0])
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return mask


def warp_roi(img: np.ndarray, m: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """``img`` warped by the 2x3 map ``m`` (into full-frame pixels), only the ``roi`` part, float32."""
    x0, y0, x1, y1 = roi
    mr = m.copy()
    mr[:, 2] -= (x0, y0)
    return cv2.warpAffine(img, mr, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101).astype(np.float32)


def blend(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, roi: tuple[int, int, int, int]) -> list[int]:
    """Alpha-blend ``patch`` into ``frame`` (in place) inside ``roi``; returns the box where alpha > 1 %."""
    x0, y0, x1, y1 = roi
    base = frame[y0:y1, x0:x1].astype(np.float32)
    a = alpha[..., None]
    frame[y0:y1, x0:x1] = np.clip(a * patch + (1 - a) * base + 0.5, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha > 0.01)
    if ys.size == 0:
        return [x0, y0, x0, y0]
    return [x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1]


def mean_in(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-channel mean of ``img`` (h, w, C) weighted by ``w`` (h, w)."""
    ws = float(w.sum()) + 1e-6
    return (img * w[..., None]).reshape(-1, img.shape[-1]).sum(0) / ws


def envelope(bursts: list[tuple[int, int]], num_frames: int) -> np.ndarray:
    """Float32 (T,) blend weight per frame: 1 inside the bursts, 0 outside; the first and last
    frame of a burst of at least 4 frames get 0.6 (a soft start and end)."""
    env = np.zeros(num_frames, np.float32)
    for a, b in bursts:
        env[a:b] = 1.0
        if b - a >= 4:
            env[a] = env[b - 1] = 0.6
    return env

"""Spatial evidence maps: *where* in the face the evidence is (Grad-CAM through the model protocol).

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017), written from the paper's description, applied per frame of a video
model: for a clip with logit ``y`` and the activations ``A_t (C, h, w)`` of frame ``t`` at the
model's last convolutional block,

    alpha_t^k = mean over (i, j) of d y / d A_t^k[i, j]          (one weight per channel and frame)
    M_t       = ReLU( sum_k alpha_t^k * A_t^k )                  (h, w), >= 0

Frames are encoded independently, so each frame gets its own channel weights. The block is the
one the model names through the spatial protocol (:class:`forensight.models.protocol.SpatialDetector`,
``model.cam_layer()``): the per-frame encoder's last block (region models) or ResNet stage 4 of the
LipForensics trunk; nothing here asks which architecture a model is. The target is the clip logit;
a video logit is the mean of its clip logits, so its maps are the clip maps divided by the number
of clips (:func:`video_maps` does that).

Everything but :func:`grad_cam` is torch-free (numpy + OpenCV), so reports can draw maps stored in
JSON: :func:`resize_map` (the small fixed-size map stored per frame), :func:`unit_square_affine`
(map coordinates → frame pixels), :func:`map_to_frame`, :func:`colorize` / :func:`overlay`, and the
measurements against a known manipulated area: :func:`area_mask`, :func:`area_scores`
(share of map energy inside the area vs the area's share of the crop; the pointing game).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from torch import Tensor, nn

    from forensight.models.outputs import DetectorOutput

__all__ = [
    "EXPLAIN_COLUMNS",
    "HOW_TO_READ",
    "MAP_SIZE",
    "area_mask",
    "area_scores",
    "cam_layer",
    "colorize",
    "grad_cam",
    "map_to_frame",
    "overlay",
    "resize_map",
    "summarise_area_scores",
    "unit_square_affine",
    "video_area_scores",
    "video_maps",
]

#: Side of the map stored per frame in results (bilinear resize of the block's native grid).
MAP_SIZE = 14
#: The one-line reading note shown next to every overlay.
HOW_TO_READ = ("Grad-CAM of the video's fake score: warm (yellow) areas pushed this frame's evidence "
               "towards \"fake\" the most, dark areas not at all; maps are scaled to the video's "
               "strongest frame and are coarse (one cell per cell of the network's last block).")


def cam_layer(model: Any) -> nn.Module:
    """``model.cam_layer()`` (the spatial protocol), or a TypeError naming the model."""
    fn = getattr(model, "cam_layer", None)
    if fn is None:
        raise TypeError(f"{type(model).__name__} does not expose cam_layer(): it cannot give spatial "
                        "evidence maps (see forensight.models.protocol.SpatialDetector)")
    return fn()


def grad_cam(model: nn.Module, x: Tensor, lengths: Tensor | None,
             forward: Callable[[Tensor, Tensor | None], DetectorOutput] | None = None
             ) -> tuple[DetectorOutput, Tensor]:
    """Grad-CAM of every clip's logit on every frame.

    Args:
        model: a detector following the spatial protocol (``cam_layer()``), in eval mode.
        x: ``(B, T, C, H, W)`` normalised input, ``lengths (B,)`` valid frames (None = all).
        forward: how to run the model (default ``model(x, lengths)``); the scoring path passes
            its own to reuse the encoder features for sliding windows.

    Returns:
        the model's output (detached) and maps ``(B, T, h, w)`` float32, >= 0, on ``x``'s device;
        padded frames get zeros. Must run with gradients enabled (not under inference mode).
    """
    import torch

    from forensight.models.temporal import lengths_to_mask

    layer = cam_layer(model)
    captured: list[Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: Tensor) -> None:
        if not out.requires_grad:  # frozen / folded weights and a plain input: start the graph here
            out.requires_grad_(True)
        captured.append(out)

    if torch.is_inference_mode_enabled() or not torch.is_grad_enabled():
        raise RuntimeError("grad_cam needs gradients: call it outside torch.inference_mode / no_grad")
    handle = layer.register_forward_hook(hook)
    try:
        out = forward(x, lengths) if forward is not None else model(x, lengths)
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{type(layer).__name__} (the cam_layer of {type(model).__name__}) never ran")
    acts = torch.cat(captured) if len(captured) > 1 else captured[0]
    if acts.dim() != 4:
        raise RuntimeError(f"cam_layer output must be (N, C, h, w), got {tuple(acts.shape)}")
    grads = torch.autograd.grad(out.logits.float().sum(), captured)
    g = torch.cat(grads) if len(grads) > 1 else grads[0]
    a, g = acts.detach().float(), g.float()
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1))  # (N, h, w)
    b, t = x.shape[:2]
    mask = lengths_to_mask(lengths, b, t, x.device)
    n = cam.shape[0]
    if n == b * t:
        maps = cam.reshape(b, t, *cam.shape[1:]) * mask[:, :, None, None]
    elif n == int(mask.sum()):
        maps = cam.new_zeros(b, t, *cam.shape[1:])
        maps[mask] = cam
    else:
        raise RuntimeError(f"cam_layer gave {n} frame maps for a ({b}, {t}) batch with {int(mask.sum())} "
                           "valid frames: one row per encoded frame is expected")
    from forensight.models.outputs import DetectorOutput

    return DetectorOutput(logits=out.logits.detach(), weights=out.weights.detach()), maps


def video_maps(clip_maps: Sequence[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Maps of the video logit from each clip's maps ``(n_i, h, w)``: divided by the number of clips
    (the video logit is their mean), then scaled by the video's largest value into [0, 1].

    Returns the scaled maps (same shapes) and that largest value (0 when every map is 0: nothing
    in any frame raised the score; the maps then stay all 0)."""
    n = max(len(clip_maps), 1)
    raw = [np.asarray(m, np.float32) / n for m in clip_maps]
    peak = max((float(m.max()) for m in raw if m.size), default=0.0)
    if peak <= 0.0 or not np.isfinite(peak):
        return [np.zeros_like(m) for m in raw], 0.0
    return [m / peak for m in raw], peak


def resize_map(cam: np.ndarray, size: int = MAP_SIZE) -> np.ndarray:
    """A block's ``(h, w)`` map bilinearly resized to ``(size, size)`` over the same crop (cell
    centres aligned, as an upsampled Grad-CAM is displayed), float32, clipped at 0."""
    cam = np.asarray(cam, np.float32)
    if cam.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {cam.shape}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return np.clip(cv2.resize(cam, (size, size), interpolation=cv2.INTER_LINEAR), 0.0, None)


def unit_square_affine(crop_to_frame: np.ndarray, window: tuple[slice, slice], crop_side: int) -> np.ndarray:
    """The ``(2, 3)`` affine from map coordinates ``(u, v)`` in ``[0, 1]^2`` (u rightwards, v down,
    over the model's input window) to frame pixels ``(x, y)`` (pixel edges).

    Args:
        crop_to_frame: ``(2, 3)`` affine from cached-crop pixel edges to frame pixel edges
            (:func:`forensight.regions.crop_to_frame`).
        window: the model's centre-crop rows / columns of the cached crop (``InputSpec.crop_window``).
        crop_side: not used for scaling beyond the window; kept for a clear error on a bad window.
    """
    m = np.asarray(crop_to_frame, np.float64).reshape(2, 3)
    rows, cols = window
    if rows.stop > crop_side or cols.stop > crop_side:
        raise ValueError(f"window {window} does not fit a {crop_side}-px crop")
    w, h = cols.stop - cols.start, rows.stop - rows.start
    s = np.array([[w, 0.0, cols.start], [0.0, h, rows.start], [0.0, 0.0, 1.0]])
    return m @ s


def _cell_centres(size: int) -> np.ndarray:
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    u, v = np.meshgrid(c, c)
    return np.stack([u, v], -1)  # (size, size, 2): (u, v) of each cell centre


def map_to_frame(small: np.ndarray, affine: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """Render a stored map ``(S, S)`` into frame pixels: float32 ``(H, W)``, 0 outside the crop.

    ``affine``: ``(2, 3)`` map coordinates ``[0, 1]^2`` → frame pixel edges (as stored per frame)."""
    small = np.asarray(small, np.float32)
    s = small.shape[0]
    if small.ndim != 2 or small.shape[1] != s:
        raise ValueError(f"expected a square map, got shape {small.shape}")
    # map pixel centres (j, i) ↔ (u, v) = ((j + .5) / s, (i + .5) / s); frame centres ↔ edges - .5
    to_unit = np.array([[1.0 / s, 0.0, 0.5 / s], [0.0, 1.0 / s, 0.5 / s], [0.0, 0.0, 1.0]])
    m = np.vstack([np.asarray(affine, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]]) @ to_unit
    m[:2, 2] -= 0.5
    h, w = int(frame_shape[0]), int(frame_shape[1])
    return cv2.warpAffine(small, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def area_mask(area: np.ndarray | Sequence[float], affine: np.ndarray, size: int = MAP_SIZE) -> np.ndarray:
    """Which cells of a ``(size, size)`` map lie in a manipulated area: bool ``(size, size)``.

    ``area``: a box ``(x0, y0, x1, y1)`` in frame pixel edges, or a frame-sized mask ``(H, W)``
    (bool or float > 0.5 = inside; pseudo-fakes' masks). ``affine``: map ``[0, 1]^2`` → frame pixels.
    A cell is inside when its centre, mapped to the frame, is inside the area.
    """
    m = np.asarray(affine, np.float64).reshape(2, 3)
    pts = _cell_centres(size) @ m[:, :2].T + m[:, 2]  # (size, size, 2) frame (x, y)
    a = np.asarray(area)
    if a.ndim == 1:
        if a.shape[0] != 4:
            raise ValueError(f"a box needs 4 numbers (x0, y0, x1, y1), got {a.shape[0]}")
        x0, y0, x1, y1 = (float(v) for v in a)
        return (pts[..., 0] >= x0) & (pts[..., 0] < x1) & (pts[..., 1] >= y0) & (pts[..., 1] < y1)
    if a.ndim != 2:
        raise ValueError(f"area must be a box (4,) or a frame mask (H, W), got shape {a.shape}")
    xi, yi = np.floor(pts[..., 0]).astype(np.int64), np.floor(pts[..., 1]).astype(np.int64)
    ok = (xi >= 0) & (yi >= 0) & (xi < a.shape[1]) & (yi < a.shape[0])
    out = np.zeros((size, size), bool)
    out[ok] = a[yi[ok], xi[ok]] > 0.5
    return out


def area_scores(small: np.ndarray, inside: np.ndarray) -> dict[str, Any]:
    """How one frame's map falls on a known manipulated area.

    Returns ``energy_inside`` (share of the map's total in the area, None for an all-zero map),
    ``area_share`` (share of the crop's cells in the area: what a uniform map would score),
    ``pointing_hit`` (1 when the map's peak cell is in the area, 0 if not, None for an all-zero
    map; ties: every tied peak must be inside)."""
    m = np.asarray(small, np.float64)
    inside = np.asarray(inside, bool)
    if m.shape != inside.shape:
        raise ValueError(f"map {m.shape} and area mask {inside.shape} differ in shape")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("a map must be finite and >= 0")
    total = float(m.sum())
    area = float(inside.mean())
    if total <= 0.0:
        return {"energy_inside": None, "area_share": area, "pointing_hit": None}
    peak = m == m.max()
    return {"energy_inside": float(m[inside].sum()) / total, "area_share": area,
            "pointing_hit": int(bool(inside[peak].all()))}


def colorize(small: np.ndarray, side: int) -> np.ndarray:
    """A map in [0, 1] as an RGB uint8 ``(side, side, 3)`` image (OpenCV's inferno colour scale:
    black = 0, purple, orange, pale yellow = 1), bilinearly enlarged."""
    m = np.clip(np.asarray(small, np.float32), 0.0, 1.0)
    big = cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR)
    bgr = cv2.applyColorMap(np.round(big * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(crop: np.ndarray, small: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The crop (uint8 ``(h, w)``, ``(h, w, 1)`` or ``(h, w, 3)``) with the coloured map blended on top,
    RGB uint8; the map's weight grows with its value so cold areas keep the face visible."""
    c = np.asarray(crop)
    if c.ndim == 3 and c.shape[2] == 1:
        c = c[..., 0]
    if c.ndim == 2:
        c = np.repeat(c[..., None], 3, axis=2)
    if c.ndim != 3 or c.shape[2] != 3 or c.shape[0] != c.shape[1]:
        raise ValueError(f"expected a square crop (h, w[, 1|3]), got shape {np.asarray(crop).shape}")
    side = c.shape[0]
    col = colorize(small, side).astype(np.float32)
    w = alpha * np.clip(cv2.resize(np.asarray(small, np.float32), (side, side)), 0.0, 1.0)[..., None]
    w = 0.25 * alpha + (1 - 0.25) * w  # a faint tint everywhere, so the colour scale reads
    return np.clip(c.astype(np.float32) * (1 - w) + col * w, 0, 255).astype(np.uint8)


#: Columns of ``explain.csv`` (one row per fake video with a known manipulated area).
EXPLAIN_COLUMNS = ["video_id", "method", "region", "n_frames", "energy_inside", "area_share", "lift",
                   "pointing_hit", "n_zero_maps"]


def video_area_scores(cams: Sequence[np.ndarray], affines: Sequence[np.ndarray],
                      areas: Sequence[np.ndarray | Sequence[float]], size: int = MAP_SIZE) -> dict[str, Any] | None:
    """One video's maps against its known manipulated areas, averaged over its frames.

    Args:
        cams: per frame a Grad-CAM map ``(h, w)`` (any scale: the scores are ratios).
        affines: per frame the ``(2, 3)`` map ``[0, 1]^2`` → frame pixels affine.
        areas: per frame the manipulated area: a box ``(x0, y0, x1, y1)`` or a frame mask ``(H, W)``.

    Returns None without frames, else ``n_frames``, the means over frames of ``energy_inside``
    (over the frames whose map is not all 0; None if none), ``area_share`` and ``pointing_hit``,
    ``lift`` = ``energy_inside / area_share`` (1 = no better than a uniform map) and
    ``n_zero_maps`` (frames whose map is all 0: nothing raised the fake score there).
    """
    if not (len(cams) == len(affines) == len(areas)):
        raise ValueError(f"{len(cams)} maps, {len(affines)} affines and {len(areas)} areas: one each per frame")
    if not cams:
        return None
    rows = [area_scores(resize_map(c, size), area_mask(a, m, size)) for c, m, a in zip(cams, affines, areas)]
    e = [r["energy_inside"] for r in rows if r["energy_inside"] is not None]
    p = [r["pointing_hit"] for r in rows if r["pointing_hit"] is not None]
    area = float(np.mean([r["area_share"] for r in rows]))
    energy = float(np.mean(e)) if e else None
    return {"n_frames": len(rows), "energy_inside": energy, "area_share": area,
            "lift": None if energy is None or area <= 0 else energy / area,
            "pointing_hit": float(np.mean(p)) if p else None, "n_zero_maps": len(rows) - len(e)}


def summarise_area_scores(rows: Sequence[dict[str, Any]], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Means over videos of :func:`video_area_scores` rows, each with a percentile bootstrap 95 %
    interval over videos (:func:`forensight.metrics.bootstrap_mean_ci`): ``<key>``, ``<key>_ci``,
    ``<key>_n`` for energy_inside, area_share, lift, pointing_hit; ``videos``, ``frames``."""
    from forensight.metrics import bootstrap_mean_ci

    out: dict[str, Any] = {"videos": len(rows), "frames": int(sum(r["n_frames"] for r in rows))}
    for key in ("energy_inside", "area_share", "lift", "pointing_hit"):
        vals = [float(r[key]) for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
        out[f"{key}_ci"] = list(bootstrap_mean_ci(vals, n=max(1, n_boot), seed=seed)) if vals else [None, None]
        out[f"{key}_n"] = len(vals)
    return out

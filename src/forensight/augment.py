"""Robustness-minded training augmentation, clip-consistent (``TrainConfig.augment = "robust"``).

The set DeepfakeBench ablates (its detector configs: flip p 0.5, Gaussian blur p 0.5 with kernels
3-7, brightness / contrast p 0.5 within +-0.1, JPEG quality 40-100, isotropic resizing), on uint8
clip batches ``(B, T, H, W, C)`` where the model runs. Every parameter is drawn ONCE PER CLIP and
applied to all its frames, so no temporal jitter is invented (a flicker between frames would be a
cue that exists in no real video, and a temporal detector would learn it).

Per clip, in this order (each with its own probability, :class:`RobustAugment`):

1. horizontal flip;
2. isotropic resize: both sides scaled by the same factor in [0.5, 1) with a random
   interpolation (area, bilinear, bicubic), then back up to the input size (a lower-resolution
   source, as after a platform's rescaling);
3. Gaussian blur, odd kernel 3-7, OpenCV's default kernel for that side (``cv2.GaussianBlur`` with
   sigma 0), reflected borders;
4. colour jitter: brightness and contrast factors in [0.9, 1.1] (contrast around the clip's mean
   grey level), saturation factor in [0.9, 1.1] (RGB only);
5. JPEG re-encoding of every frame at one quality in [40, 100] (OpenCV / libjpeg, on the CPU).

With a frozen pretrained encoder the cached-feature path cannot see any of this (features are
computed once from the unaugmented crops); ``train`` then runs the frozen encoder on the
augmented crops every step instead (see ``TrainConfig.augment``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ClipAugment", "RobustAugment", "augment_clips", "draw_clip_params", "gaussian_kernel1d"]

INTERPOLATIONS_DOWN = ("area", "bilinear", "bicubic")
INTERPOLATIONS_UP = ("bilinear", "bicubic")


@dataclass(frozen=True)
class RobustAugment:
    """Probabilities and ranges of the robust policy (DeepfakeBench's defaults where it has them).

    Attributes:
        flip_p: horizontal flip.
        resize_p, resize_scale: isotropic down/up resize by a factor in ``[lo, hi)``.
        blur_p, blur_kernels: Gaussian blur with one of these odd kernel sides.
        color_p, brightness, contrast, saturation: colour jitter, factors in ``1 +- value``.
        jpeg_p, jpeg_quality: JPEG re-encoding at a quality in ``[lo, hi]``.
    """

    flip_p: float = 0.5
    resize_p: float = 0.3
    resize_scale: tuple[float, float] = (0.5, 1.0)
    blur_p: float = 0.5
    blur_kernels: tuple[int, ...] = (3, 5, 7)
    color_p: float = 0.5
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)

    def __post_init__(self) -> None:
        for name in ("flip_p", "resize_p", "blur_p", "color_p", "jpeg_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        lo, hi = self.resize_scale
        if not 0 < lo < hi <= 1:
            raise ValueError(f"resize_scale must satisfy 0 < lo < hi <= 1, got {self.resize_scale}")
        if not self.blur_kernels or any(k < 1 or k % 2 == 0 for k in self.blur_kernels):
            raise ValueError(f"blur_kernels must be odd sides >= 1, got {self.blur_kernels}")
        qlo, qhi = self.jpeg_quality
        if not 0 <= qlo <= qhi <= 100:
            raise ValueError(f"jpeg_quality must satisfy 0 <= lo <= hi <= 100, got {self.jpeg_quality}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class ClipAugment:
    """The augmentation drawn for one clip (None / False = that step is skipped)."""

    flip: bool = False
    resize: tuple[float, str, str] | None = None  # (scale, interpolation down, interpolation up)
    blur: int | None = None  # kernel side
    color: tuple[float, float, float] | None = None  # (brightness, contrast, saturation) factors
    jpeg: int | None = None  # quality


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g))


def _chance(g: torch.Generator, p: float) -> bool:
    return bool(torch.rand((), generator=g) < p)


def _pick(g: torch.Generator, options: tuple) -> object:
    return options[int(torch.randint(len(options), (), generator=g))]


def draw_clip_params(n: int, generator: torch.Generator | None = None,
                     policy: RobustAugment | None = None) -> list[ClipAugment]:
    """Draw the augmentation of ``n`` clips (one :class:`ClipAugment` each) from ``generator``."""
    pol = policy or RobustAugment()
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        flip = _chance(g, pol.flip_p)
        resize = None
        if _chance(g, pol.resize_p):
            resize = (_uniform(g, *pol.resize_scale), str(_pick(g, INTERPOLATIONS_DOWN)),
                      str(_pick(g, INTERPOLATIONS_UP)))
        blur = int(_pick(g, tuple(pol.blur_kernels))) if _chance(g, pol.blur_p) else None
        color = None
        if _chance(g, pol.color_p):
            color = (_uniform(g, 1 - pol.brightness, 1 + pol.brightness), _uniform(g, 1 - pol.contrast, 1 + pol.contrast),
                     _uniform(g, 1 - pol.saturation, 1 + pol.saturation))
        jpeg = None
        if _chance(g, pol.jpeg_p):
            jpeg = int(torch.randint(pol.jpeg_quality[0], pol.jpeg_quality[1] + 1, (), generator=g))
        out.append(ClipAugment(flip=flip, resize=resize, blur=blur, color=color, jpeg=jpeg))
    return out


def gaussian_kernel1d(k: int) -> torch.Tensor:
    """OpenCV's 1-D Gaussian kernel of odd side ``k`` with its default sigma (``cv2.getGaussianKernel(k,
    0)``: fixed tables for k <= 7, else sigma = 0.3 ((k - 1) / 2 - 1) + 0.8), float32 ``(k,)`` summing to 1."""
    import cv2

    return torch.from_numpy(cv2.getGaussianKernel(int(k), 0).ravel().astype(np.float32))


def _blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """Separable Gaussian blur of float ``(N, C, H, W)`` with reflected (101) borders."""
    c = x.shape[1]
    w = gaussian_kernel1d(k).to(x.device)
    pad = k // 2
    if min(x.shape[-2:]) <= pad:
        return x
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, w.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, w.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def _resize(x: torch.Tensor, scale: float, down: str, up: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(x, size=(sh, sw), mode=down, **({} if down == "area" else {"align_corners": False}))
    return F.interpolate(small, size=(h, w), mode=up, align_corners=False)


def _color(x: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    x = x * brightness
    c = x.shape[1]
    if c == 3:
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    else:
        grey = x.mean(dim=1, keepdim=True)
    mean = grey.mean()  # over the whole clip: one contrast pivot for all its frames
    x = (x - mean) * contrast + mean
    if c == 3:
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x = grey + (x - grey) * saturation
    return x


def _jpeg(clip: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of every frame of uint8 ``(T, H, W, C)`` at one quality (C = 1 or 3)."""
    import cv2

    out = np.empty_like(clip)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for i, fr in enumerate(clip):
        if fr.shape[-1] == 1:
            ok, buf = cv2.imencode(".jpg", fr[..., 0], params)
            dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)[..., None]
        else:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(fr, cv2.COLOR_RGB2BGR), params)
            dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a training crop")
        out[i] = dec
    return out


def augment_clips(frames: torch.Tensor, generator: torch.Generator | None = None,
                  policy: RobustAugment | None = None,
                  params: list[ClipAugment] | None = None) -> torch.Tensor:
    """The robust policy on a uint8 batch ``(B, T, H, W, C)`` (C = 1 or 3), on its device.

    One :class:`ClipAugment` per clip (drawn from ``generator`` unless ``params`` are given),
    applied identically to all frames of the clip (zero-padded frames past a clip's length are
    transformed too; the models mask them). Returns a new uint8 tensor of the same shape.
    """
    if frames.dtype != torch.uint8 or frames.dim() != 5:
        raise ValueError(f"expected uint8 frames (B, T, H, W, C), got {frames.dtype} {tuple(frames.shape)}")
    b, c = frames.shape[0], frames.shape[-1]
    if c not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {c}")
    draws = params if params is not None else draw_clip_params(b, generator, policy)
    if len(draws) != b:
        raise ValueError(f"{len(draws)} clip parameters for a batch of {b}")
    out = frames.clone()
    for i, p in enumerate(draws):
        if not (p.flip or p.resize or p.blur or p.color or p.jpeg):
            continue
        x = frames[i].permute(0, 3, 1, 2).float()  # (T, C, H, W), 0..255
        if p.flip:
            x = x.flip(-1)
        if p.resize is not None:
            x = _resize(x, *p.resize)
        if p.blur is not None:
            x = _blur(x, p.blur)
        if p.color is not None:
            x = _color(x, *p.color)
        clip = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        if p.jpeg is not None:
            clip = torch.from_numpy(_jpeg(clip.cpu().numpy(), p.jpeg)).to(frames.device)
        out[i] = clip
    return out

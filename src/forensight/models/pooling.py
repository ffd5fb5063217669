"""Pooling over time: ``h (B, T, D)`` and a valid-step mask ``(B, T)`` -> ``(pooled (B, D), weights (B, T))``.

Both heads return weights that sum to 1 over the valid steps and are exactly 0 on padding:

* :class:`MeanPooling` (the Control): uniform ``1 / length``;
* :class:`AttentionPooling`: ``Linear(D, attn_dim) -> tanh -> Linear(attn_dim, 1)`` scores one
  value per step, softmax over the valid steps, weighted sum.

These are the only poolings of the package: the region detector and LipForensics both use them
(the attention parameters are named ``proj`` / ``score`` as in the LipForensics attention head;
region-model files written before that rename load through a state_dict key adapter).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["AttentionPooling", "MeanPooling", "build_pooling"]


def _mask_or_all(h: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
    if mask.shape != h.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match (B, T) = {tuple(h.shape[:2])}")
    return mask.to(device=h.device, dtype=torch.bool)


class MeanPooling(nn.Module):
    """Average over valid time steps (Control head); no parameters."""

    def forward(self, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``h (B, T, D)``, ``mask (B, T)`` bool -> ``(pooled (B, D), weights (B, T))``."""
        m = _mask_or_all(h, mask).to(torch.float32)
        weights = m / m.sum(dim=1, keepdim=True).clamp_min(1.0)
        pooled = torch.einsum("bt,btd->bd", weights.to(h.dtype), h)
        return pooled, weights


class AttentionPooling(nn.Module):
    """Learned temporal attention: ``s_t = score(tanh(proj(h_t))))``, softmax over valid steps,
    weighted sum. Parameters: ``proj`` (D -> attn_dim) and ``score`` (attn_dim -> 1)."""

    def __init__(self, dim: int, attn_dim: int = 128) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, attn_dim)
        self.score = nn.Linear(attn_dim, 1)
        self._register_load_state_dict_pre_hook(_legacy_attention_keys)

    def forward(self, h: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``h (B, T, D)``, ``mask (B, T)`` bool -> ``(pooled (B, D), weights (B, T))``.

        The softmax runs in float32; padded steps get exactly 0 weight.
        """
        m = _mask_or_all(h, mask)
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1).float()  # (B, T)
        scores = scores.masked_fill(~m, float("-inf"))
        weights = torch.softmax(scores, dim=1).masked_fill(~m, 0.0)
        pooled = torch.einsum("bt,btd->bd", weights.to(h.dtype), h)
        return pooled, weights


def _legacy_attention_keys(state_dict: dict, prefix: str, *args: object) -> None:
    """State_dict key adapter: forensight-model-v1 region files named the attention MLP
    ``score.0`` / ``score.2`` (an ``nn.Sequential``); today it is ``proj`` / ``score``."""
    for old, new in (("score.0.", "proj."), ("score.2.", "score.")):
        for suffix in ("weight", "bias"):
            key = prefix + old + suffix
            if key in state_dict:
                state_dict[prefix + new + suffix] = state_dict.pop(key)


def build_pooling(name: str, dim: int, attn_dim: int = 128) -> nn.Module:
    """``"mean"`` -> :class:`MeanPooling`; ``"attention"`` -> :class:`AttentionPooling`."""
    if name == "mean":
        return MeanPooling()
    if name == "attention":
        return AttentionPooling(dim, attn_dim)
    raise ValueError(f"pooling must be 'mean' or 'attention', got {name!r}")

"""Temporal models over per-frame features: ``(B, T, D_in) -> (B, T, out_dim)``.

``lengths`` (``(B,)`` ints, ``1 <= length <= T``) marks the valid prefix of each sequence; the
outputs at padded steps are zero and padded inputs never influence valid outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["BiLSTM", "IdentityTemporal", "build_temporal", "lengths_to_mask"]


def lengths_to_mask(
    lengths: Tensor | Sequence[int] | None, batch: int, steps: int, device: torch.device | None = None
) -> Tensor:
    """``(B, T)`` bool mask, True on valid steps; all True when ``lengths`` is None.

    The one mask of the package (region detectors, LipForensics, pooling).

    Raises:
        ValueError: a length outside ``[1, T]`` or the wrong number of lengths.
        TypeError: non-integer lengths.
    """
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be integers, got {lengths.dtype}")
    lengths = lengths.to(device=device, dtype=torch.long).reshape(-1)
    if lengths.numel() != batch:
        raise ValueError(f"expected {batch} lengths, got {lengths.numel()}")
    if bool((lengths < 1).any()) or bool((lengths > steps).any()):
        raise ValueError(f"lengths must be in [1, {steps}], got {lengths.tolist()}")
    return torch.arange(steps, device=device).unsqueeze(0) < lengths.unsqueeze(1)


class BiLSTM(nn.Module):
    """One-layer bidirectional LSTM, ``hidden`` units per direction: ``(B, T, D) -> (B, T, 2*hidden)``.

    With ``lengths`` the sequences are packed, so the backward direction starts at each
    sequence's last valid step and padded steps come out as zeros.
    """

    def __init__(self, in_dim: int, hidden: int = 128, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x (B, T, D)``, ``lengths (B,)`` or None -> ``(B, T, 2*hidden)``."""
        b, t, _ = x.shape
        if lengths is None:
            return self.lstm(x)[0]
        lengths_cpu = torch.as_tensor(lengths).detach().to("cpu", torch.long).reshape(-1)
        if bool((lengths_cpu == t).all()):
            return self.lstm(x)[0]
        lengths_to_mask(lengths_cpu, b, t)  # validates
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=t)[0]


class IdentityTemporal(nn.Module):
    """No temporal model: ``(B, T, D) -> (B, T, D)`` (padded steps are zeroed)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x (B, T, D)`` -> ``x`` with padded steps set to 0."""
        if lengths is None:
            return x
        mask = lengths_to_mask(lengths, x.shape[0], x.shape[1], x.device)
        return x * mask.unsqueeze(-1).to(x.dtype)


def build_temporal(name: str, in_dim: int, hidden: int = 128) -> nn.Module:
    """``"bilstm"`` -> :class:`BiLSTM`; ``"none"`` -> :class:`IdentityTemporal`."""
    if name == "bilstm":
        return BiLSTM(in_dim, hidden)
    if name == "none":
        return IdentityTemporal(in_dim)
    raise ValueError(f"temporal must be 'bilstm' or 'none', got {name!r}")

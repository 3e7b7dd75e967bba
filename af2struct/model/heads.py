"""Output heads: distogram (from the pair), pLDDT and side-chain torsions (from the sequence row)."""

from __future__ import annotations

import torch
from torch import nn

from af2struct.model.config import HeadsConfig


class DistogramHead(nn.Module):
    """Pair ``[B, L, L, Cz]`` -> symmetric logits ``[B, L, L, bins]``."""

    def __init__(self, z_dim: int, cfg: HeadsConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(z_dim)
        self.proj = nn.Linear(z_dim, cfg.distogram_bins)

    def forward(self, z):
        logits = self.proj(self.norm(z))
        return (logits + logits.transpose(1, 2)) / 2


class PLDDTHead(nn.Module):
    """Sequence row ``[B, L, C]`` -> ``[B, L, bins]`` logits over lDDT-CA bins (0..1)."""

    def __init__(self, dim: int, cfg: HeadsConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, cfg.plddt_bins))

    def forward(self, s):
        return self.net(s)


class TorsionHead(nn.Module):
    """Sequence row ``[B, L, C]`` -> chi1..chi4 as unit (sin, cos) vectors ``[B, L, 4, 2]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 8))

    def forward(self, s):
        x = self.net(s).view(*s.shape[:-1], 4, 2)
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)


class PAEHead(nn.Module):
    """Pair ``[B, L, L, Cz]`` -> predicted aligned error logits ``[B, L, L, bins]`` (row ``i``:
    the frame residue, column ``j``: the aligned residue; not symmetric)."""

    def __init__(self, z_dim: int, cfg: HeadsConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(z_dim)
        self.proj = nn.Linear(z_dim, cfg.pae_bins)

    def forward(self, z):
        return self.proj(self.norm(z))


def pae_breaks(bins: int, pae_max: float, device=None) -> torch.Tensor:
    """``[bins - 1]`` bin boundaries 0 .. ``pae_max`` (AlphaFold: 63 boundaries, 0.5 A apart)."""
    return torch.linspace(0.0, pae_max, bins - 1, device=device)


def pae_bin_centers(bins: int, pae_max: float, device=None) -> torch.Tensor:
    """``[bins]`` bin centres; the last (``pae_max`` + half a bin, 31.75 A) is the largest PAE reported."""
    breaks = pae_breaks(bins, pae_max, device)
    step = breaks[1] - breaks[0]
    return torch.cat([breaks + step / 2, (breaks[-1] + 1.5 * step)[None]])


def pae_from_logits(logits: torch.Tensor, pae_max: float) -> torch.Tensor:
    """Expected aligned error (Angstrom) ``[..., L, L]`` from ``[..., L, L, bins]`` logits."""
    centers = pae_bin_centers(logits.shape[-1], pae_max, logits.device)
    return (torch.softmax(logits.float(), -1) * centers).sum(-1)


def plddt_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Expected lDDT-CA (0..100) from ``[..., bins]`` logits."""
    bins = logits.shape[-1]
    centers = (torch.arange(bins, device=logits.device, dtype=torch.float32) + 0.5) / bins
    return 100 * (torch.softmax(logits.float(), -1) * centers).sum(-1)

"""Input embeddings: residue types, relative positions, MSA (aligned or not), recycling
(AlphaFold2 supplement Algorithm 3, the input embedder; Algorithm 4, relative positions clipped
at +-32; Algorithm 32, the recycling embedder)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from af2struct.model.config import TrunkConfig

NUM_TOKENS = 23  # 20 amino acids, X (20), gap (21), padding/mask (22)


class InputEmbedder(nn.Module):
    def __init__(self, cfg: TrunkConfig, bins: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.seq_emb = nn.Embedding(NUM_TOKENS, cfg.dim)
        self.msa_emb = nn.Embedding(NUM_TOKENS, cfg.dim)
        self.deletion = nn.Linear(1, cfg.dim)
        self.msa_pos = nn.Embedding(cfg.max_seq_len, cfg.dim)  # positions of an unaligned MSA
        self.left = nn.Linear(cfg.dim, cfg.z_dim)
        self.right = nn.Linear(cfg.dim, cfg.z_dim)
        self.relpos = nn.Embedding(2 * cfg.max_rel_pos + 2, cfg.z_dim)  # last index: other chain/far
        self.recycle_norm = nn.LayerNorm(cfg.z_dim)
        self.recycle_dist = nn.Embedding(bins, cfg.z_dim)
        nn.init.zeros_(self.recycle_dist.weight)

    def relative_position(self, residue_index: torch.Tensor) -> torch.Tensor:
        d = residue_index[:, None, :] - residue_index[:, :, None]
        k = self.cfg.max_rel_pos
        idx = torch.where(d.abs() > k, torch.full_like(d, 2 * k + 1), d.clamp(-k, k) + k)
        return self.relpos(idx)

    def forward(self, seq, msa=None, msa_mask=None, residue_index=None, deletion_value=None,
                prev_z: Optional[torch.Tensor] = None, prev_bins: Optional[torch.Tensor] = None):
        """Returns ``a [B, Na, L, C]``, ``u [B, Nu, Lu, C]`` or None, ``z [B, L, L, Cz]`` and
        whether the MSA is aligned (stacked into ``a``)."""
        b, n = seq.shape
        s = self.seq_emb(seq.clamp(0, NUM_TOKENS - 1))
        if residue_index is None:
            residue_index = torch.arange(n, device=seq.device)[None].expand(b, n)
        z = self.left(s)[:, :, None] + self.right(s)[:, None, :] + self.relative_position(residue_index)
        if prev_z is not None:
            z = z + self.recycle_norm(prev_z)
        if prev_bins is not None:
            z = z + self.recycle_dist(prev_bins)
        u = None
        a = s[:, None]
        aligned = msa is not None and msa.shape[-1] == n
        if msa is not None:
            m = self.msa_emb(msa.clamp(0, NUM_TOKENS - 1))
            if deletion_value is not None:
                m = m + self.deletion(deletion_value[..., None].to(m.dtype))
            if aligned:
                a = torch.cat([a, m], dim=1)
            else:
                lu = msa.shape[-1]
                if lu > self.cfg.max_seq_len:
                    raise ValueError(f"MSA length {lu} exceeds max_seq_len={self.cfg.max_seq_len}")
                u = m + self.msa_pos(torch.arange(lu, device=msa.device))
        return a, u, z, aligned

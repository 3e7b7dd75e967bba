"""Triangle self-attention of the pair representation ``z [B, L, L, Cz]`` around the starting
node (AlphaFold2 supplement Algorithm 13, rows) or the ending node (Algorithm 14, columns), in
row chunks with a bound on the logits held at once."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from af2struct.model.attention import Attention, attend, key_mask_4d
from af2struct.model.config import TrunkConfig

LOGITS_BLOCK_BYTES = 16 * 2**20


class TriangleAttention(nn.Module):
    """Triangle attention around the starting (rows) or ending (columns) node, in row chunks."""

    def __init__(self, cfg: TrunkConfig, starting: bool) -> None:
        super().__init__()
        self.starting = starting
        self.norm = nn.LayerNorm(cfg.z_dim)
        self.to_bias = nn.Linear(cfg.z_dim, cfg.pair_heads, bias=False)
        self.attn = Attention(cfg.z_dim, cfg.pair_heads, cfg.pair_dim_head)
        self.chunk = cfg.attn_chunk_size
        self.saved_probs_max = cfg.attn_saved_probs_mib * 2**20

    def forward(self, z, pair_mask):
        if not self.starting:
            z = z.transpose(1, 2)
            pair_mask = None if pair_mask is None else pair_mask.transpose(1, 2)
        x = self.norm(z)
        bias = rearrange(self.to_bias(x), "b j k h -> b () h j k")
        b, n = x.shape[:2]
        # rows i, chunked: memory O(rows * L^2); also at most LOGITS_BLOCK_BYTES of logits per
        # chunk (larger blocks come fresh from the OS each time: measured 2-3x slower on a CPU)
        rows = max(1, min(self.chunk, LOGITS_BLOCK_BYTES // (b * bias.shape[2] * n * n * x.element_size())))
        # probabilities kept for backward, or (beyond the budget) recomputed there: [B, L, H, L, L]
        recompute = b * bias.shape[2] * n * n * n * x.element_size() > self.saved_probs_max
        outs = []
        # split, not sliced in a loop: one backward node joins the chunks' gradients (a slice's
        # backward writes its gradient into a zero tensor the size of the whole pair, per chunk)
        xs = x.split(rows, dim=1)
        masks = [None] * len(xs) if pair_mask is None else pair_mask.split(rows, dim=1)
        for xi, mi in zip(xs, masks):
            q, k, v = self.attn.project(xi, xi)  # [B, i, H, j, d]
            outs.append(self.attn.finish(xi, attend(q, k, v, bias, key_mask_4d(mi), recompute=recompute)))
        out = torch.cat(outs, dim=1)
        return out if self.starting else out.transpose(1, 2)

"""Attention over the MSA representation ``a [B, N, L, C]``.

* :class:`RowAttentionWithPairBias`: AlphaFold2 supplement Algorithm 7 (MSA row-wise gated
  self-attention with pair bias), the bias tied across rows; optionally block-sparse
  (alphafold2-pytorch's ``sparse_self_attn``).
* :class:`ColumnAttention`: Algorithm 8 (MSA column-wise gated self-attention; alphafold2-pytorch's
  ``inter_msa_self_attn``).
* :class:`CrossAttention`: alphafold2-pytorch's sequence <-> unaligned-MSA cross attention, keys and values
  optionally compressed by a strided convolution (``cross_attn_compress_ratio``; not in AlphaFold2).
"""

from __future__ import annotations

from einops import rearrange
from torch import nn

from af2struct.model.attention import Attention, CompressedKV, attend, block_sparse_attention, key_mask_4d
from af2struct.model.config import TrunkConfig


class RowAttentionWithPairBias(nn.Module):
    """Attention along L within each row of ``a``, biased by the pair (same bias for every row;
    Algorithm 7)."""

    def __init__(self, cfg: TrunkConfig, sparse: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim)
        self.norm_z = nn.LayerNorm(cfg.z_dim)
        self.to_bias = nn.Linear(cfg.z_dim, cfg.heads, bias=False)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dim_head)
        self.sparse = sparse
        self.block, self.num_global, self.chunk = cfg.sparse_block_size, cfg.sparse_num_global, cfg.attn_chunk_size

    def forward(self, a, z, a_mask):
        x = self.norm(a)
        bias = rearrange(self.to_bias(self.norm_z(z)), "b i j h -> b () h i j")  # tied across rows
        q, k, v = self.attn.project(x, x)  # [B, N, H, L, d]
        if self.sparse:
            out = block_sparse_attention(q, k, v, bias.expand(-1, q.shape[1], -1, -1, -1), a_mask,
                                         self.block, self.num_global)
        else:
            out = attend(q, k, v, bias, key_mask_4d(a_mask), self.chunk)
        return self.attn.finish(x, out)


class ColumnAttention(nn.Module):
    """Attention across the sequences of an MSA, per column: ``[B, N, L, C]`` (Algorithm 8)."""

    def __init__(self, cfg: TrunkConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dim_head)
        self.chunk = cfg.attn_chunk_size

    def forward(self, a, a_mask):
        x = rearrange(self.norm(a), "b n l c -> b l n c")
        key_mask = None if a_mask is None else rearrange(a_mask, "b n l -> b l n")
        out = self.attn(x, key_mask=key_mask, chunk=self.chunk)
        return rearrange(out, "b l n c -> b n l c")


class CrossAttention(nn.Module):
    """Tokens ``x [B, T, C]`` attend to ``ctx [B, S, C]``; optional strided-conv compression of ctx."""

    def __init__(self, cfg: TrunkConfig, compress: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim)
        self.norm_ctx = nn.LayerNorm(cfg.dim)
        self.compress = CompressedKV(cfg.dim, compress) if compress > 1 else None
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dim_head)
        self.chunk = cfg.attn_chunk_size

    def forward(self, x, ctx, ctx_mask):
        c = self.norm_ctx(ctx)
        if self.compress is not None:
            c, ctx_mask = self.compress(c, ctx_mask)
        return self.attn(self.norm(x), context=c, key_mask=ctx_mask, chunk=self.chunk)

"""Evoformer-style trunk blocks.

State: ``a [B, Na, L, C]`` (the sequence as row 0, plus an aligned MSA when given),
``u [B, Nu, Lu, C]`` (an MSA of another length, or None) and ``z [B, L, L, Cz]``.
Each block is two steps of the whole state (``msa_step``, ``pair_step``), also offered as the
two residual functions (increments) a reversible stack needs (``msa_update``, ``pair_update``):

* ``msa_update`` (F): row attention with pair bias (tied across rows; optionally block-sparse),
  column attention (``inter_msa_self_attn``), sequence <-> unaligned-MSA cross attention
  (keys/values compressed by ``cross_attn_compress_ratio``), transitions.
* ``pair_update`` (G): outer-product mean (and the sequence outer product), triangle
  multiplicative updates (outgoing, incoming), triangle attention (starting, ending node),
  transition.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from af2struct.model.attention import Attention, CompressedKV, attend, block_sparse_attention, key_mask_4d
from af2struct.model.config import TrunkConfig

LOGITS_BLOCK_BYTES = 16 * 2**20
State = Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]
# a_mask [B, Na, L], u_mask [B, Nu, Lu], pair_mask [B, L, L]: bool, True = real; None = all real
# (the trunk passes None when nothing is padded, so no mask is applied at all)
Masks = Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]


class Transition(nn.Module):
    def __init__(self, dim: int, factor: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * factor), nn.ReLU(), nn.Linear(dim * factor, dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x):
        return self.net(x)


class RowAttentionWithPairBias(nn.Module):
    """Attention along L within each row of ``a``, biased by the pair (same bias for every row)."""

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
    """Attention across the sequences of an MSA, per column: ``[B, N, L, C]``."""

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


class OuterProductMean(nn.Module):
    """Pair update from the MSA rows ``a [B, N, L, C]``: mean over rows of outer products,
    projected to ``Cz``: ``out_ij = W (sum_n l_ni (x) r_nj) / n_ij + b``.

    Two contraction orders give the same numbers; the cheaper one is taken. With few rows
    (single sequence: N = 1) the projection is folded into the right factor first
    (``[B, N, C_h, L, Cz]``, no ``[B, L, L, C_h^2]`` outer product is ever formed): ~C_h times
    fewer operations. With a deep MSA the outer products are summed over rows first, as
    AlphaFold does (memory independent of N).
    """

    def __init__(self, dim: int, z_dim: int, hidden: int = 16) -> None:
        super().__init__()
        self.hidden = hidden
        self.norm = nn.LayerNorm(dim)
        self.left = nn.Linear(dim, hidden)
        self.right = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden * hidden, z_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, a: torch.Tensor, a_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``a [B, N, L, C]``, ``a_mask [B, N, L]`` bool or None (all rows real) -> ``[B, L, L, Cz]``."""
        b, n, length, _ = a.shape
        h, z_dim = self.hidden, self.out.out_features
        x = self.norm(a)
        l, r = self.left(x), self.right(x)
        if a_mask is not None:
            m = a_mask.to(x.dtype)
            l, r = l * m[..., None], r * m[..., None]
            norm = torch.einsum("bni,bnj->bij", m, m).clamp(min=1.0)[..., None]
        else:
            norm = None
        w = self.out.weight.view(z_dim, h, h)  # [Cz, c (left), d (right)]
        if n * z_dim <= length * h:
            # right factor times the projection: [B, N, L, d] x [Cz, c, d] -> [B, (N c), (L Cz)]
            rw = torch.einsum("bnjd,zcd->bncjz", r, w).reshape(b, n * h, length * z_dim)
            out = torch.bmm(rearrange(l, "b n i c -> b i (n c)"), rw).view(b, length, length, z_dim)
        else:
            outer = torch.einsum("bnic,bnjd->bijcd", l, r)
            out = torch.einsum("bijcd,zcd->bijz", outer, w)
        if norm is None:
            out = out / n if n > 1 else out
        else:
            out = out / norm
        return out + self.out.bias


class _TriangleContraction(torch.autograd.Function):
    """``t_ij = sum_k a_ik b_jk`` (outgoing) or ``sum_k a_ki b_kj`` (incoming) per channel, for
    channel-last ``a, b [B, L, L, C]`` -> ``[B, L, L, C]``.

    The contraction is a batch of ``B * C`` matrix products over channel-first copies. Left to
    ``einsum``/autograd, the channel-last strides make the CPU ``bmm`` copy each of the
    ``B * C`` matrices separately, forward and backward; here each operand and each gradient is
    permuted once, in one copy.
    """

    @staticmethod
    def forward(ctx, a, b, outgoing: bool):
        a_cf = a.permute(0, 3, 1, 2).contiguous()  # [B, C, L, L]
        b_cf = b.permute(0, 3, 1, 2).contiguous()
        t = a_cf @ b_cf.transpose(-1, -2) if outgoing else a_cf.transpose(-1, -2) @ b_cf
        ctx.save_for_backward(a_cf, b_cf)
        ctx.outgoing = outgoing
        return t.permute(0, 2, 3, 1).contiguous()

    @staticmethod
    def backward(ctx, dt):
        a_cf, b_cf = ctx.saved_tensors
        dt = dt.permute(0, 3, 1, 2).to(a_cf.dtype).contiguous()  # under bf16 autocast: grads in the inputs' dtype
        if ctx.outgoing:  # t = a b^T
            da, db = dt @ b_cf, dt.transpose(-1, -2) @ a_cf
        else:  # t = a^T b
            da, db = b_cf @ dt.transpose(-1, -2), a_cf @ dt
        return da.permute(0, 2, 3, 1), db.permute(0, 2, 3, 1), None


class TriangleMultiplication(nn.Module):
    """AlphaFold's triangle multiplicative update (outgoing: sum_k a_ik b_jk; incoming: a_ki b_kj)."""

    def __init__(self, z_dim: int, hidden: int, outgoing: bool) -> None:
        super().__init__()
        self.outgoing = outgoing
        self.norm = nn.LayerNorm(z_dim)
        self.proj = nn.Linear(z_dim, 2 * hidden)
        self.gate = nn.Linear(z_dim, 2 * hidden)
        self.norm_out = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, z_dim)
        self.out_gate = nn.Linear(z_dim, z_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor, pair_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``z [B, L, L, Cz]``, ``pair_mask [B, L, L]`` bool or None -> ``[B, L, L, Cz]``."""
        x = self.norm(z)
        ab = self.proj(x) * torch.sigmoid(self.gate(x))
        if pair_mask is not None:
            ab = ab * pair_mask[..., None].to(x.dtype)
        a, b = ab.chunk(2, dim=-1)
        t = _TriangleContraction.apply(a, b, self.outgoing)
        return self.out(self.norm_out(t)) * torch.sigmoid(self.out_gate(x))


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


class EvoformerBlock(nn.Module):
    """One trunk block, as two residual functions of the state (see module doc)."""

    def __init__(self, cfg: TrunkConfig, layer: int, has_unaligned: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.row = RowAttentionWithPairBias(cfg, cfg.sparse_for_layer(layer))
        self.col = ColumnAttention(cfg) if cfg.inter_msa_self_attn else None
        self.a_trans = Transition(cfg.dim, cfg.transition_factor)
        if has_unaligned:
            self.seq_to_msa = CrossAttention(cfg, cfg.cross_attn_compress_ratio)
            self.msa_to_seq = CrossAttention(cfg, 1)
            self.u_row = Attention(cfg.dim, cfg.heads, cfg.dim_head)
            self.u_norm = nn.LayerNorm(cfg.dim)
            self.u_col = ColumnAttention(cfg) if cfg.inter_msa_self_attn else None
            self.u_trans = Transition(cfg.dim, cfg.transition_factor)
        self.has_unaligned = has_unaligned
        self.opm = OuterProductMean(cfg.dim, cfg.z_dim)
        if cfg.triangle_mult:
            self.tri_out = TriangleMultiplication(cfg.z_dim, cfg.z_dim, outgoing=True)
            self.tri_in = TriangleMultiplication(cfg.z_dim, cfg.z_dim, outgoing=False)
        if cfg.triangle_attn:
            self.tri_start = TriangleAttention(cfg, starting=True)
            self.tri_end = TriangleAttention(cfg, starting=False)
        self.z_trans = Transition(cfg.z_dim, cfg.transition_factor)

    def msa_step(self, state: State, masks: Masks) -> State:
        """The state after the MSA updates (``z`` unchanged)."""
        a, u, z = state
        a_mask, u_mask, _ = masks
        a = a + self.row(a, z, a_mask)
        if self.col is not None and a.shape[1] > 1:
            a = a + self.col(a, a_mask)
        if self.has_unaligned and u is not None:
            b, n, lu, c = u.shape
            flat = rearrange(u, "b n l c -> b (n l) c")
            flat_mask = None if u_mask is None else rearrange(u_mask, "b n l -> b (n l)")
            seq = a[:, 0] + self.seq_to_msa(a[:, 0], flat, flat_mask)
            a = torch.cat([seq[:, None], a[:, 1:]], dim=1)
            u = u + self.u_row(self.u_norm(u), key_mask=u_mask, chunk=self.cfg.attn_chunk_size)
            if self.u_col is not None and n > 1:
                u = u + self.u_col(u, u_mask)
            flat = rearrange(u, "b n l c -> b (n l) c")
            flat = flat + self.msa_to_seq(flat, a[:, 0], None if a_mask is None else a_mask[:, 0])
            u = rearrange(flat, "b (n l) c -> b n l c", n=n)
            u = u + self.u_trans(u)
        a = a + self.a_trans(a)
        return a, u, z

    def pair_step(self, state: State, masks: Masks) -> State:
        """The state after the pair updates (``a`` and ``u`` unchanged)."""
        a, u, z = state
        a_mask, _, pair_mask = masks
        z = z + self.opm(a, a_mask)
        if self.cfg.triangle_mult:
            z = z + self.tri_out(z, pair_mask)
            z = z + self.tri_in(z, pair_mask)
        if self.cfg.triangle_attn:
            z = z + self.tri_start(z, pair_mask)
            z = z + self.tri_end(z, pair_mask)
        z = z + self.z_trans(z)
        return a, u, z

    # the two residual functions of the reversible coupling: increments, None = unchanged
    def msa_update(self, state: State, masks: Masks) -> State:
        a, u, _ = self.msa_step(state, masks)
        return a - state[0], (None if u is None else u - state[1]), None

    def pair_update(self, state: State, masks: Masks) -> State:
        return None, None, self.pair_step(state, masks)[2] - state[2]

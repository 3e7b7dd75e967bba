"""Evoformer-style trunk blocks (AlphaFold2 supplement Algorithm 6, the Evoformer stack; its
parts live one algorithm per file: msa_attention, transition, outer_product_mean,
triangle_multiplication, triangle_attention).

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

from af2struct.model.attention import Attention
from af2struct.model.config import TrunkConfig
from af2struct.model.msa_attention import ColumnAttention, CrossAttention, RowAttentionWithPairBias
from af2struct.model.outer_product_mean import OuterProductMean
from af2struct.model.transition import Transition
from af2struct.model.triangle_attention import TriangleAttention
from af2struct.model.triangle_multiplication import TriangleMultiplication

State = Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]
# a_mask [B, Na, L], u_mask [B, Nu, Lu], pair_mask [B, L, L]: bool, True = real; None = all real
# (the trunk passes None when nothing is padded, so no mask is applied at all)
Masks = Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]


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

"""Triangle multiplicative update of the pair representation ``z [B, L, L, Cz]``
(AlphaFold2 supplement Algorithm 11, "outgoing" edges, and Algorithm 12, "incoming" edges), with
its contraction as a custom autograd function over channel-first copies."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


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

"""Outer product mean: MSA -> pair (AlphaFold2 supplement Algorithm 10)."""

from __future__ import annotations

from typing import Optional

import torch
from einops import rearrange
from torch import nn


class OuterProductMean(nn.Module):
    """Pair update from the MSA rows ``a [B, N, L, C]``: mean over rows of outer products,
    projected to ``Cz``: ``out_ij = W (sum_n l_ni (x) r_nj) / n_ij + b`` (Algorithm 10).

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

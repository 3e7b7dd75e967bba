"""Triangle multiplicative update of the pair representation ``z [B, L, L, Cz]``
(AlphaFold2 supplement Algorithm 11, "outgoing" edges, and Algorithm 12, "incoming" edges).

The contraction ``t_ij = sum_k a_ik b_jk`` is a batch of ``B * C`` matrix products, so ``a`` and
``b`` are made channel-first ``[B, C, L, L]`` by the projection itself (a matrix product with the
pair read transposed), never by a copy. Without gradients (prediction) the pointwise work before and
after the contraction runs on the CPU a block of rows at a time, so that its intermediates stay in the
cache instead of being written out whole ``[B, L, L, 4C]`` (at 397 residues 1.7-1.9x faster;
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import torch
from torch import nn

CHUNK_BYTES = 1 << 20  # the no-grad path's working set per block of rows (about a CPU's L2 cache)


def row_blocks(rows: int, row_bytes: int, budget: Optional[int] = None) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of ``rows`` rows of ``row_bytes`` each, every block
    under ``budget`` bytes (default :data:`CHUNK_BYTES`; at least one row per block)."""
    step = max(1, (CHUNK_BYTES if budget is None else budget) // max(1, row_bytes))
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


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

    def _contract(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Channel-first ``a, b [B, H, L, L]`` -> ``t [B, H, L, L]``."""
        return a @ b.transpose(-1, -2) if self.outgoing else a.transpose(-1, -2) @ b

    def _projection(self) -> tuple:
        """The a/b projection and its gate as one ``[4H, Cz]`` weight (a, b, then their gates) and bias."""
        return torch.cat([self.proj.weight, self.gate.weight]), torch.cat([self.proj.bias, self.gate.bias])

    def forward(self, z: torch.Tensor, pair_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``z [B, L, L, Cz]``, ``pair_mask [B, L, L]`` bool or None -> ``[B, L, L, Cz]``."""
        if not torch.is_grad_enabled() and z.device.type == "cpu":
            return self._forward_blocks(z, pair_mask)
        bsz, n, _, c = z.shape
        h = self.norm_out.normalized_shape[0]
        x = self.norm(z)
        weight, bias = self._projection()
        pg = torch.baddbmm(bias[None, :, None].expand(bsz, -1, 1), weight.expand(bsz, -1, -1),
                           x.reshape(bsz, n * n, c).transpose(1, 2))  # [B, 4H, L*L]
        p, g = pg.split(2 * h, 1)
        ab = p * torch.sigmoid(g)
        if pair_mask is not None:
            ab = ab * pair_mask.reshape(bsz, 1, n * n).to(ab.dtype)
        ab = ab.view(bsz, 2, h, n, n)
        t = self._contract(ab[:, 0], ab[:, 1]).permute(0, 2, 3, 1)  # [B, L, L, H]
        return self.out(self.norm_out(t)) * torch.sigmoid(self.out_gate(x))

    def unpaired(self, z: torch.Tensor) -> torch.Tensor:
        """The update ``[..., Cz]`` at pairs outside the pair mask (``z [..., Cz]``): every
        ``a_ik`` or ``b_jk`` of their triangles is masked, so ``t = 0`` and the update is
        ``out(norm_out(0)) * sigmoid(out_gate(norm(z)))``, its first factor a constant."""
        const = self.out(self.norm_out(torch.zeros_like(self.norm_out.weight)))
        return torch.sigmoid(self.out_gate(self.norm(z))) * const

    def _forward_blocks(self, z: torch.Tensor, pair_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """The same update without autograd, its pointwise work a block of rows ``i`` at a time:
        ``a`` and ``b`` written channel-first by the projection, the output gate kept in ``out``;
        after the contraction the output LayerNorm and projection read ``t`` channel-first and
        write channel-last (``tn^T W^T``), so nothing is ever transposed by a copy."""
        bsz, n, _, c = z.shape
        h = self.norm_out.normalized_shape[0]
        weight, bias = self._projection()
        bias = bias[:, None]
        dtype = z.dtype if torch.is_autocast_enabled() else torch.promote_types(z.dtype, weight.dtype)
        a = torch.empty(bsz, h, n, n, dtype=dtype, device=z.device)
        b = torch.empty_like(a)
        out = torch.empty_like(z)
        blocks = list(row_blocks(n, n * 4 * (2 * c + 4 * h)))
        for k in range(bsz):
            for i0, i1 in blocks:
                x = self.norm(z[k, i0:i1]).reshape(-1, c)  # [R, Cz], R = rows * L
                out[k, i0:i1] = torch.sigmoid(self.out_gate(x)).view(i1 - i0, n, c)
                pg = torch.addmm(bias, weight, x.t())  # [4H, R]
                v = torch.sigmoid(pg[2 * h:]).mul_(pg[:2 * h])
                if pair_mask is not None:
                    v.mul_(pair_mask[k, i0:i1].reshape(1, -1).to(v.dtype))
                a[k, :, i0:i1] = v[:h].view(h, i1 - i0, n)
                b[k, :, i0:i1] = v[h:].view(h, i1 - i0, n)
        t = self._contract(a, b)  # [B, H, L, L]
        del a, b
        # norm_out then out, folded: out(LN(t)) = W diag(gamma) tn + (W beta + bias)
        w_out = (self.out.weight * self.norm_out.weight).t().to(t.dtype)  # [H, Cz]
        b_out = (self.out.bias + self.out.weight @ self.norm_out.bias).to(t.dtype)
        for k in range(bsz):
            for i0, i1 in blocks:
                tc = t[k, :, i0:i1].reshape(h, -1)  # [H, R]
                tn = tc - tc.mean(0)  # the channel reductions as sums of rows (var_mean over dim 0 is slow)
                tn.mul_(torch.rsqrt(tn.square().mean(0).add_(self.norm_out.eps)))
                y = torch.addmm(b_out, tn.t(), w_out)  # [R, Cz]
                out[k, i0:i1].mul_(y.view(i1 - i0, n, c))
        return out

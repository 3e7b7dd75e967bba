"""Attention primitives: gated multi-head attention on PyTorch's scaled_dot_product_attention,
evaluated in query chunks, with optional pair bias, memory-compressed keys/values and a
block-sparse (local blocks + global tokens) pattern.

Shapes: queries ``[..., Lq, C]``, keys ``[..., Lk, C]``; ``bias [..., H, Lq, Lk]`` additive;
``key_mask [..., Lk]`` bool (True = attend).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

NEG_INF = -1e4


class _BiasedAttention(torch.autograd.Function):
    """``softmax(q k^T * scale + bias, masked) v`` with an explicit backward that also returns
    the gradient of the bias. PyTorch's CPU ``scaled_dot_product_attention`` falls back to its
    unfused math kernel when the mask needs a gradient (pair bias), which stores logits and
    probabilities and runs a NaN-safe softmax; this computes in place and keeps at most the
    probabilities. Shapes: ``q [..., H, Lq, d]``, ``k, v [..., H, Lk, d]``, ``bias`` and ``mask``
    broadcastable to ``[..., H, Lq, Lk]`` (``mask`` bool, True = attend, or None).

    ``recompute``: keep only each query's logit maximum and softmax denominator
    (``[..., H, Lq, 1]`` each) and recompute the probabilities in backward (one more ``q k^T``
    and ``exp``), as flash attention does: the saved memory drops from ``Lq * Lk`` to ``2 Lq``
    numbers per head, for ~40 % more attention time on a CPU.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, mask, recompute: bool = False):
        scale = q.shape[-1] ** -0.5
        s = _logits(q, k, bias, mask, scale)
        if recompute:
            m = s.amax(dim=-1, keepdim=True)
            p = s.sub_(m).exp_()
            z = p.sum(dim=-1, keepdim=True)
            p.div_(z)
        else:
            p = torch.softmax(s, dim=-1)
        del s
        # returned with the heads innermost in memory ([..., Lq, H, d] seen as [..., H, Lq, d]):
        # merging the heads afterwards is then a view, and the tensor saved here is the one the
        # output gating saves too, not a second copy
        o = torch.matmul(p, v).transpose(-2, -3).contiguous().transpose(-2, -3)
        if recompute:
            ctx.save_for_backward(q, k, v, o, m, z, bias, mask)
        else:
            ctx.save_for_backward(q, k, v, o, p)
        ctx.bias_shape, ctx.bias_dtype, ctx.scale, ctx.recompute = bias.shape, bias.dtype, scale, recompute
        return o

    @staticmethod
    def backward(ctx, do):
        if ctx.recompute:
            q, k, v, o, m, z, bias, mask = ctx.saved_tensors
            p = _logits(q, k, bias, mask, ctx.scale).sub_(m).exp_().div_(z)  # the forward's p, bit for bit
        else:
            q, k, v, o, p = ctx.saved_tensors
        do = do.to(v.dtype).contiguous()
        dv = torch.matmul(p.transpose(-1, -2), do)
        ds = torch.matmul(do, v.transpose(-1, -2))  # dP, turned into dS in place
        ds.sub_((do * o).sum(-1, keepdim=True)).mul_(p)
        del p
        dbias = None
        if ctx.needs_input_grad[3]:
            dbias = _sum_to(ds, ctx.bias_shape).to(ctx.bias_dtype)
        dq = torch.matmul(ds, k).mul_(ctx.scale)
        dk = torch.matmul(ds.transpose(-1, -2), q).mul_(ctx.scale)
        return dq, dk, dv, dbias, None, None


def _logits(q, k, bias, mask, scale: float) -> torch.Tensor:
    """``q k^T * scale + bias`` (+ the mask's ``NEG_INF``), computed in place in one new tensor."""
    s = torch.matmul(q, k.transpose(-1, -2))
    s.mul_(scale).add_(bias.to(s.dtype))
    if mask is not None:
        s.add_(mask_bias(mask, s.dtype))
    return s


def mask_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bool mask (True = attend) -> additive ``0 / NEG_INF`` of the same shape. Additive and
    finite, not ``-inf``: a query whose keys are all masked (padding) gets a finite output
    that nothing reads, never NaN."""
    return (~mask).to(dtype) * NEG_INF


def _sum_to(x: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``x`` over the dimensions that ``shape`` broadcasts (the gradient of a broadcast)."""
    lead = x.dim() - len(shape)
    dims = list(range(lead)) + [lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1]
    return x.sum(dim=dims, keepdim=True).view(shape) if dims else x


def attend(q, k, v, bias: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
           chunk: Optional[int] = None, recompute: bool = False) -> torch.Tensor:
    """Multi-head attention ``q [..., H, Lq, d]`` over ``k, v [..., H, Lk, d]`` with an additive
    ``bias`` and a bool ``mask`` (True = attend), both broadcastable to ``[..., H, Lq, Lk]``.

    Without a bias that needs a gradient on a CPU, this is PyTorch's fused
    ``scaled_dot_product_attention``, in chunks of ``chunk`` queries (memory
    ``O(chunk * Lk)``); with one, it is :class:`_BiasedAttention` (``recompute``: the
    probabilities are recomputed in backward instead of kept).
    """
    if bias is not None and bias.requires_grad and torch.is_grad_enabled() and q.device.type == "cpu":
        return _BiasedAttention.apply(q, k, v, bias, mask, recompute)
    attn_mask = None if bias is None else bias.to(q.dtype)
    if mask is not None:
        attn_mask = mask_bias(mask, q.dtype) if attn_mask is None else attn_mask + mask_bias(mask, q.dtype)
    lq = q.shape[-2]
    if chunk is None or lq <= chunk:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    q_chunks = q.split(chunk, dim=-2)  # one backward node for all chunks, not a zero-filled slice each
    if attn_mask is None or attn_mask.shape[-2] == 1:
        m_chunks = [attn_mask] * len(q_chunks)
    else:
        m_chunks = attn_mask.split(chunk, dim=-2)
    return torch.cat([F.scaled_dot_product_attention(qc, k, v, attn_mask=mc) for qc, mc in zip(q_chunks, m_chunks)],
                     dim=-2)


def key_mask_4d(key_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``[..., Lk]`` bool -> ``[..., 1, 1, Lk]`` (broadcast over heads and queries)."""
    return None if key_mask is None else key_mask[..., None, None, :]


class Attention(nn.Module):
    """Gated multi-head attention (AlphaFold style): ``x [..., Lq, C]`` (and ``context``) -> ``[..., Lq, C]``."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: Optional[int] = None,
                 gating: bool = True) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * inner, bias=False)
        self.to_gate = nn.Linear(dim, inner) if gating else None
        self.to_out = nn.Linear(inner, dim)
        if gating:
            nn.init.zeros_(self.to_gate.weight)
            nn.init.ones_(self.to_gate.bias)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def project(self, x, context):
        h = self.heads
        q = rearrange(self.to_q(x), "... l (h d) -> ... h l d", h=h)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        k = rearrange(k, "... l (h d) -> ... h l d", h=h)
        v = rearrange(v, "... l (h d) -> ... h l d", h=h)
        return q, k, v

    def finish(self, x, out):
        out = rearrange(out, "... h l d -> ... l (h d)")
        if self.to_gate is not None:
            out = out * torch.sigmoid(self.to_gate(x))
        return self.to_out(out)

    def forward(self, x, context=None, key_mask=None, bias=None, chunk: Optional[int] = None):
        """``key_mask [..., Lk]`` bool (True = attend) or None; ``bias [..., H, Lq, Lk]`` or None."""
        context = x if context is None else context
        q, k, v = self.project(x, context)
        return self.finish(x, attend(q, k, v, bias, key_mask_4d(key_mask), chunk))


class CompressedKV(nn.Module):
    """Memory-compressed keys/values (Liu et al. 2018): a strided Conv1d pools ``ratio`` tokens
    into one; the mask is pooled with max (a window with any real token is real)."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        self.conv = nn.Conv1d(dim, dim, kernel_size=ratio, stride=ratio)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]):
        """``x [B, T, C]``, ``mask [B, T]`` -> ``[B, ceil(T/r), C]``, ``[B, ceil(T/r)]``."""
        r = self.ratio
        t = x.shape[1]
        pad = (-t) % r
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        x = x * mask[..., None]
        y = self.conv(rearrange(x, "b t c -> b c t"))
        m = mask.view(mask.shape[0], -1, r).any(-1)
        return rearrange(y, "b c t -> b t c"), m


def block_sparse_attention(q, k, v, bias, key_mask, block: int, num_global: int) -> torch.Tensor:
    """Self-attention where each query block attends to its own and the two neighbouring key
    blocks plus ``num_global`` global tokens (the first positions), and the global tokens attend
    to everything. Scores cost ``O(L * (3 * block + num_global))`` instead of ``O(L^2)``.

    ``q, k, v [..., H, L, d]``; ``bias [..., H, L, L]`` or None; ``key_mask [..., L]`` or None.
    """
    *lead, h, n, d = q.shape
    g = min(num_global, n)
    nb = math.ceil(n / block)
    lp = nb * block
    dev = q.device
    # column index of every key slot of every block: [nb, W], W = 3 * block + g
    starts = (torch.arange(nb, device=dev) - 1) * block
    local = starts[:, None] + torch.arange(3 * block, device=dev)[None]
    glob = torch.arange(g, device=dev)[None].expand(nb, g)
    cols = torch.cat([glob, local], dim=1)
    valid = (cols >= 0) & (cols < n)
    valid[:, g:] &= cols[:, g:] >= g  # globals already in the global slots
    cols_c = cols.clamp(0, n - 1)
    pad_q = lp - n
    qb = F.pad(q, (0, 0, 0, pad_q)).reshape(*lead, h, nb, block, d)
    kb = k[..., cols_c, :]  # [..., H, nb, W, d]
    vb = v[..., cols_c, :]
    attn_bias = torch.zeros(valid.shape, dtype=q.dtype, device=dev).masked_fill(~valid, NEG_INF)
    attn_bias = attn_bias[:, None, :]  # [nb, 1, W]
    if key_mask is not None:
        km = key_mask[..., cols_c]  # [..., nb, W]
        attn_bias = attn_bias + mask_bias(km, q.dtype)[..., None, :, None, :]
    if bias is not None:
        bp = F.pad(bias, (0, 0, 0, pad_q)).reshape(*lead, h, nb, block, n)
        idx = cols_c[:, None, :].expand(nb, block, cols_c.shape[1])
        attn_bias = attn_bias + torch.gather(bp, -1, idx.expand(*bp.shape[:-3], nb, block, idx.shape[-1]))
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=attn_bias.to(q.dtype))
    out = out.reshape(*lead, h, lp, d)[..., :n, :]
    if g:
        gb = None
        if bias is not None:
            gb = bias[..., :g, :]
        if key_mask is not None:
            mb = mask_bias(key_mask, q.dtype)[..., None, None, :]
            gb = mb if gb is None else gb + mb
        out_g = F.scaled_dot_product_attention(q[..., :g, :], k, v, attn_mask=gb)
        out = torch.cat([out_g, out[..., g:, :]], dim=-2)
    return out

"""Plain and reversible stacks of two-function residual blocks.

Plain: ``x = x + F(x); x = x + G(x)`` per block (activations kept for backward), computed by the
blocks' ``msa_step`` / ``pair_step``; ``msa_update`` / ``pair_update`` return the increments
``F(x)``, ``G(x)`` (None where a part of the state is unchanged).

Reversible (RevNet coupling on a duplicated state): the state is split into two copies
``(x1, x2)``; each block computes ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``; the output is
``(y1 + y2) / 2``. The backward pass reconstructs each block's inputs from its outputs
(``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``) instead of storing them, so activation memory does not
grow with depth. ``ReversibleStack(..., store_activations=True)`` computes the same function with
ordinary autograd (used to check gradients).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

Tensors = Tuple[Optional[torch.Tensor], ...]


def _add(x: Tensors, d: Tensors, sign: float = 1.0) -> Tensors:
    return tuple(None if a is None else (a if b is None else a + sign * b) for a, b in zip(x, d))


class PlainStack(nn.Module):
    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, state: Tensors, masks) -> Tensors:
        for blk in self.blocks:
            state = blk.pair_step(blk.msa_step(state, masks), masks)
        return state


def _flat(x: Tensors) -> Tuple[List[torch.Tensor], List[bool]]:
    present = [t is not None for t in x]
    return [t for t in x if t is not None], present


def _unflat(ts: Sequence[torch.Tensor], present: Sequence[bool]) -> Tensors:
    it = iter(ts)
    return tuple(next(it) if p else None for p in present)


def _backward(outputs: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
    pairs = [(o, g) for o, g in zip(outputs, grads) if o is not None and o.requires_grad and g is not None]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])


class _ReversibleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, blocks, masks, present, n, *tensors):
        x1 = _unflat(tensors[:n], present)
        x2 = _unflat(tensors[n:], present)
        with torch.no_grad():
            for blk in blocks:
                x1 = _add(x1, blk.msa_update(x2, masks))
                x2 = _add(x2, blk.pair_update(x1, masks))
        ctx.blocks, ctx.masks, ctx.present, ctx.n = blocks, masks, present, n
        out1, out2 = _flat(x1)[0], _flat(x2)[0]
        ctx.save_for_backward(*[t.detach() for t in out1 + out2])
        return tuple(out1 + out2)

    @staticmethod
    def backward(ctx, *grads):
        n, present, masks = ctx.n, ctx.present, ctx.masks
        saved = ctx.saved_tensors
        y1, y2 = _unflat(saved[:n], present), _unflat(saved[n:], present)
        g1, g2 = list(grads[:n]), list(grads[n:])
        for blk in reversed(ctx.blocks):
            # y2 = x2 + G(y1): recompute G(y1) with grad to get dG/dy1 and param grads
            with torch.enable_grad():
                y1_req = tuple(None if t is None else t.detach().requires_grad_(True) for t in y1)
                gy = blk.pair_update(y1_req, masks)
                _backward([t for t, p in zip(gy, present) if p], g2)
            with torch.no_grad():
                x2 = _add(y2, gy, -1.0)
                g1 = [a + (b.grad if b.grad is not None else 0)
                      for a, b in zip(g1, [t for t in y1_req if t is not None])]
            # y1 = x1 + F(x2)
            with torch.enable_grad():
                x2_req = tuple(None if t is None else t.detach().requires_grad_(True) for t in x2)
                fy = blk.msa_update(x2_req, masks)
                _backward([t for t, p in zip(fy, present) if p], g1)
            with torch.no_grad():
                x1 = _add(y1, fy, -1.0)
                g2 = [a + (b.grad if b.grad is not None else 0)
                      for a, b in zip(g2, [t for t in x2_req if t is not None])]
            y1, y2 = x1, x2
        return (None, None, None, None, *g1, *g2)


class ReversibleStack(nn.Module):
    def __init__(self, blocks: Sequence[nn.Module], store_activations: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.store_activations = store_activations

    def forward(self, state: Tensors, masks) -> Tensors:
        flat, present = _flat(state)
        n = len(flat)
        if self.store_activations or not torch.is_grad_enabled():
            x1 = x2 = state
            for blk in self.blocks:
                x1 = _add(x1, blk.msa_update(x2, masks))
                x2 = _add(x2, blk.pair_update(x1, masks))
            out1, out2 = _flat(x1)[0], _flat(x2)[0]
        else:
            outs = _ReversibleFunction.apply(list(self.blocks), masks, present, n, *flat, *flat)
            out1, out2 = list(outs[:n]), list(outs[n:])
        return _unflat([(a + b) / 2 for a, b in zip(out1, out2)], present)

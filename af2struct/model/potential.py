"""Refine a Calpha trace on the distogram itself: minimise its negative log-likelihood.

MDS fits each pair's *expected* distance. Where the distogram is unsure (two modes, or mass
spread over many bins) the expectation is a distance the model does not predict, and fitting
it compresses the fold. Like AlphaFold 1 and trRosetta, this stage instead maximises the
likelihood of the whole distogram: each pair's distance is scored by the log probability
density of its bin (linear between bin centres), starting from the MDS trace and minimised
with L-BFGS. The far bin (beyond ``d_max``) holds the mass of a wide range of distances; it is
read as a density over ``far_width`` Angstrom, which sets how hard pairs the model calls far
push apart. Measured on 20 held-out validation chains of the training split (500 iterations,
then the SE(3) refiner, which was trained on MDS traces):

==========  =======  =====  ===================================
far width   lDDT-CA  TM     Calpha neighbours < 8 A / native's
==========  =======  =====  ===================================
(MDS+SE3)   0.359    0.259  1.00
20 A        0.370    0.261  0.98
100 A       0.406    0.254  2.10
==========  =======  =====  ===================================

A wide far bin buys lDDT-CA by packing the chain twice as densely as a protein (lDDT never
penalises bringing together residues that are far apart in the native), and those models
relax badly (a 200-residue model moved 2.4 A instead of 0.46 A). So the stage is off in the
shipped configuration (``StructureConfig.potential_iters = 0``); with ``far_width`` 20 it is a
small, honest gain that wants an SE(3) refiner trained on its output (``train --potential-iters``).
Distances below the first bin centre get a steep quadratic wall.
"""

from __future__ import annotations

from typing import Optional

import torch

from af2struct.model.mds import distogram_edges

WALL = 10.0  # kcal-free units per A^2 below the first bin centre


def bin_log_density(logits: torch.Tensor, d_min: float, d_max: float, far_width: float,
                    floor: float = 1e-4) -> tuple:
    """``(centres [K], log density [..., K])`` of distogram ``logits [..., K]``: ``log(p_k + floor)``
    less the log of the bin's width (``far_width`` for the last, far, bin, centred 1.5 A
    beyond ``d_max``)."""
    k = logits.shape[-1]
    edges = distogram_edges(k, d_min, d_max).to(logits.device)
    centres = torch.cat([(edges[:-1] + edges[1:]) / 2, edges[-1:] + 1.5])
    width = torch.cat([edges[1:] - edges[:-1], edges.new_tensor([far_width])])
    p = torch.softmax(logits.float(), -1)
    return centres, torch.log(p + floor) - torch.log(width)


def pair_nll(ca: torch.Tensor, i: torch.Tensor, j: torch.Tensor, centres: torch.Tensor,
             log_density: torch.Tensor) -> torch.Tensor:
    """Sum over pairs ``(i, j)`` of minus the interpolated log density of their distance in
    ``ca [L, 3]`` (``log_density [P, K]``), plus the wall below the first centre; beyond the
    far bin's centre the density is flat. Differentiable (the energy of :func:`pair_nll_and_grad`)."""
    return pair_nll_and_grad(ca, i, j, centres, log_density)[0]


def pair_nll_and_grad(ca: torch.Tensor, i: torch.Tensor, j: torch.Tensor, centres: torch.Tensor,
                      log_density: torch.Tensor) -> tuple:
    """:func:`pair_nll`'s energy and its gradient with respect to ``ca [L, 3]`` in closed form
    (the refinement's L-BFGS evaluates it a hundred times or more; autograd through the gathers
    cost more than the energy): ``(energy, gradient [L, 3])``."""
    diff = ca[i] - ca[j]
    d_raw = diff.norm(dim=-1)
    d = d_raw.clamp(min=1e-3)
    top = float(centres[-1])
    dc = d.clamp(max=top)
    k = centres.shape[0]
    t = torch.bucketize(dc, centres).clamp(1, k - 1)
    c0, c1 = centres[t - 1], centres[t]
    u = (dc - c0) / (c1 - c0)
    a = u.clamp(0, 1)
    lo = log_density.gather(1, (t - 1)[:, None])[:, 0]
    hi = log_density.gather(1, t[:, None])[:, 0]
    below = (centres[0] - d).clamp(min=0)
    energy = (-((1 - a) * lo + a * hi) + below ** 2 * WALL).sum()
    # dE/dd per pair: the interpolation's slope where it is not clamped, and the wall
    slope = torch.where((d <= top) & (u >= 0) & (u <= 1), -(hi - lo) / (c1 - c0), torch.zeros_like(d))
    de_dd = torch.where(d_raw >= 1e-3, slope - 2 * WALL * below, torch.zeros_like(d))
    pull = (de_dd / d)[:, None] * diff  # [P, 3]: dE/dx_i of each pair (minus for x_j)
    grad = torch.zeros_like(ca).index_add_(0, i, pull).index_add_(0, j, -pull)
    return energy, grad


def _chains(ca: torch.Tensor, logits: torch.Tensor, mask: Optional[torch.Tensor], far_width: float, d_min: float,
            d_max: float):
    """Per chain ``k`` of ``ca [B, L, 3]`` with at least 3 ``mask`` residues: ``(k, idx, i, j,
    centres, log_density)``, its residues, their pairs ``i < j`` and the pairs' log densities
    under ``logits [B, L, L, K]`` (:func:`bin_log_density`): what :func:`pair_nll` scores."""
    b, n, _ = ca.shape
    m = torch.ones(b, n, dtype=torch.bool, device=ca.device) if mask is None else mask.bool()
    for k in range(b):
        idx = m[k].nonzero()[:, 0]
        if len(idx) < 3:
            continue
        i, j = torch.triu_indices(len(idx), len(idx), 1, device=ca.device)
        centres, logd = bin_log_density(logits[k].detach()[idx][:, idx][i, j], d_min, d_max, far_width)
        yield k, idx, i, j, centres, logd


@torch.no_grad()
def distogram_nll(ca: torch.Tensor, logits: torch.Tensor, mask: Optional[torch.Tensor] = None,
                  far_width: float = 20.0, d_min: float = 2.0, d_max: float = 20.0) -> torch.Tensor:
    """``[B]`` the mean over residue pairs of :func:`pair_nll` (what :func:`refine_on_distogram`
    minimises) of ``ca [B, L, 3]`` under ``logits [B, L, L, K]``: lower is a structure the
    distogram finds likelier (``inf`` for a chain of fewer than 3 ``mask`` residues)."""
    out = torch.full((ca.shape[0],), float("inf"), device=ca.device)
    for k, idx, i, j, centres, logd in _chains(ca, logits, mask, far_width, d_min, d_max):
        out[k] = pair_nll(ca[k, idx].float(), i, j, centres, logd) / len(i)
    return out


def refine_on_distogram(ca: torch.Tensor, logits: torch.Tensor, mask: Optional[torch.Tensor] = None,
                        iters: int = 500, far_width: float = 20.0, d_min: float = 2.0,
                        d_max: float = 20.0) -> torch.Tensor:
    """``ca [B, L, 3]`` moved to a local minimum of the distogram's negative log-likelihood
    (``logits [B, L, L, K]``, ``mask [B, L]``: masked residues stay where they are). Each chain
    is minimised on its own (L-BFGS, strong Wolfe line search, ``iters`` iterations at most);
    no gradient flows back. Deterministic for a given input and thread count."""
    out = ca.detach().clone()
    if iters <= 0:
        return out
    for k, idx, i, j, centres, logd in _chains(ca, logits, mask, far_width, d_min, d_max):
        x = out[k, idx].float().clone()
        opt = torch.optim.LBFGS([x], max_iter=iters, line_search_fn="strong_wolfe")

        def closure():
            e, x.grad = pair_nll_and_grad(x, i, j, centres, logd)
            return e

        with torch.no_grad():
            opt.step(closure)
        out[k, idx] = x.detach().to(out.dtype)
    return out

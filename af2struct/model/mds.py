"""Distogram -> 3D: expected distances with confidence weights, and a batched weighted MDS.

``center_distogram`` turns distogram logits ``[B, L, L, K]`` into expected distances and
weights; the last bin (beyond ``d_max``) means "far": such pairs get ``d_max`` as a lower bound,
not a distance. ``weighted_mds`` starts from classical MDS on a geodesic completion of the near
pairs (shortest paths through the contact graph fill in the far pairs), minimises the weighted
stress with L-BFGS (far pairs only push apart until ``d_max``), then finishes with weighted
SMACOF (over-relaxed Guttman transforms). The SMACOF iterations are differentiable in the
distances and weights (so gradients reach the distogram at the stress minimum); the start and
the L-BFGS stage are not.
``fix_mirror`` chooses the hand from the Calpha trace alone: right-handed helices make the
Calpha pseudo-torsions (i, i+1, i+2, i+3) of proteins mostly positive (about +50 degrees).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

STRESS_FLOOR = 1e-6  # A^2: SMACOF stops at this weighted mean squared residual (RMS 0.001 A)


def distogram_edges(bins: int = 37, d_min: float = 2.0, d_max: float = 20.0) -> torch.Tensor:
    """``[bins]`` boundaries: bin k < bins-1 covers [edges[k], edges[k+1]), the last is >= d_max."""
    return torch.linspace(d_min, d_max, bins)


def distogram_centers(bins: int = 37, d_min: float = 2.0, d_max: float = 20.0) -> torch.Tensor:
    """``[bins - 1]`` centres of the distance bins (the last, far, bin has none)."""
    e = distogram_edges(bins, d_min, d_max)
    return (e[:-1] + e[1:]) / 2


def distances_to_bins(d: torch.Tensor, bins: int = 37, d_min: float = 2.0, d_max: float = 20.0) -> torch.Tensor:
    """Distance ``[...]`` -> bin index ``[...]`` (below d_min -> 0, at or beyond d_max -> bins-1)."""
    e = distogram_edges(bins, d_min, d_max).to(d.device, d.dtype)
    return torch.bucketize(d.contiguous(), e[1:], right=True).clamp(max=bins - 1)


def center_distogram(
    logits: torch.Tensor, d_min: float = 2.0, d_max: float = 20.0, far_weight: float = 0.05,
    mask: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[B, L, L, K]`` (as the model returns them) -> ``(distances, weights)`` ``[B, L, L]``.

    Distance: the expected distance over the K-1 distance bins; where the far bin holds most of
    the probability the distance is ``d_max`` (a lower bound for MDS). Weight: ``(1 - p_far) /
    (1 + std)^2`` for near pairs, ``far_weight * p_far`` for far ones, 0 on the diagonal and masked
    pairs.
    """
    k = logits.shape[-1]
    p = torch.softmax(logits.float(), dim=-1)
    centers = distogram_centers(k, d_min, d_max).to(p.device)
    p_near, p_far = p[..., :-1], p[..., -1]
    z = p_near.sum(-1).clamp(min=1e-6)
    mean = (p_near * centers).sum(-1) / z
    std = ((p_near * (centers - mean[..., None]) ** 2).sum(-1) / z).sqrt()
    far = p_far > 0.5
    dist = torch.where(far, torch.full_like(mean, d_max), mean)
    w = torch.where(far, far_weight * p_far, (1 - p_far) / (1 + std) ** 2)
    eye = torch.eye(dist.shape[-1], dtype=torch.bool, device=dist.device)
    w = w.masked_fill(eye, 0.0)
    dist = dist.masked_fill(eye, 0.0)
    if mask is not None:
        pm = mask[..., :, None] & mask[..., None, :]
        w = w * pm
    # symmetrise
    return (dist + dist.transpose(-1, -2)) / 2, (w + w.transpose(-1, -2)) / 2


def _geodesic_completion(dist: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
    """Shortest paths through the near-pair graph (Floyd-Warshall), ``[B, L, L]``."""
    inf = torch.finfo(dist.dtype).max / 4
    g = torch.where(near, dist, torch.full_like(dist, inf))
    n = g.shape[-1]
    idx = torch.arange(n, device=dist.device)
    g[:, idx, idx] = 0
    for k in range(n):
        g = torch.minimum(g, g[:, :, k:k + 1] + g[:, k:k + 1, :])
    finite = g < inf / 2
    fill = torch.where(finite, g, torch.zeros_like(g)).amax(dim=(-1, -2), keepdim=True)
    return torch.where(finite, g, fill)


def classical_mds(dist: torch.Tensor) -> torch.Tensor:
    """Classical (Torgerson) MDS: ``[B, L, L]`` distances -> ``[B, L, 3]``."""
    n = dist.shape[-1]
    j = torch.eye(n, dtype=dist.dtype, device=dist.device) - 1.0 / n
    b = -0.5 * j @ (dist ** 2) @ j
    evals, evecs = torch.linalg.eigh(b)
    top = evals[..., -3:].clamp(min=1e-6).flip(-1)
    vecs = evecs[..., -3:].flip(-1)
    x = vecs * top.sqrt()[..., None, :]
    if n < 3:  # one or two points span fewer than 3 dimensions
        x = torch.nn.functional.pad(x, (0, 3 - n))
    return x


def ca_pseudo_torsions(x: torch.Tensor) -> torch.Tensor:
    """``[B, L, 3]`` -> ``[B, L-3]`` pseudo-torsions (radians) of consecutive Calpha quadruples."""
    b0 = x[:, :-3] - x[:, 1:-2]
    b1 = x[:, 2:-1] - x[:, 1:-2]
    b2 = x[:, 3:] - x[:, 2:-1]
    b1n = b1 / b1.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    return torch.atan2((torch.cross(b1n, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def handedness(x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[B]`` score > 0 for the natural hand: mean of sin(torsion) over Calpha pseudo-torsions
    in the helical range (|torsion| in 20..90 degrees) minus the mirror's."""
    t = ca_pseudo_torsions(x)
    helical = (t.abs() > 0.35) & (t.abs() < 1.57)
    if mask is not None:
        m = mask[:, :-3] & mask[:, 1:-2] & mask[:, 2:-1] & mask[:, 3:]
        helical = helical & m
    s = torch.sign(t) * helical
    return s.sum(-1) + 1e-3 * torch.sin(t).sum(-1)  # tie-break for proteins without helices


def fix_mirror_ca(x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mirror (z -> -z) the structures of ``x [B, L, 3]`` whose hand is wrong."""
    flip = handedness(x, mask) < 0
    sign = torch.ones(x.shape[0], 1, 3, dtype=x.dtype, device=x.device)
    sign[flip, 0, 2] = -1
    return x * sign


def _stress_and_grad(x, dist, w, far):
    """``(stress [B], gradient [B, L, 3])``: the weighted stress (far pairs count only below their
    bound) and its gradient in closed form (no autograd: the L-BFGS stage runs hundreds of these):
    d stress / d x_k = 2 sum_j c_kj (x_k - x_j) with c = w (d - target) / d (far pairs beyond
    their bound have d = target)."""
    d = (((x[:, :, None] - x[:, None]) ** 2).sum(-1) + 1e-9).sqrt()
    target = torch.where(far, torch.maximum(d, dist), dist)
    resid = d - target
    c = w * resid / d
    grad = 2 * (c.sum(-1, keepdim=True) * x - c @ x)
    return (w * resid ** 2).sum((-1, -2)) / 2, grad


def _lbfgs_stress(x0, dist, w, far, iters: int) -> torch.Tensor:
    """Minimise the (lower-bounded) stress with L-BFGS from ``x0``; no gradient to the inputs."""
    with torch.no_grad():
        x = x0.detach().clone().contiguous()
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=iters, history_size=20, tolerance_grad=1e-7,
                                tolerance_change=1e-10, line_search_fn="strong_wolfe")

        def closure():
            loss, x.grad = _stress_and_grad(x, dist, w, far)
            return loss.sum()

        opt.step(closure)
    return x


def weighted_mds(
    dist: torch.Tensor, weights: Optional[torch.Tensor] = None, iters: int = 200, tol: float = 1e-6,
    d_max: float = 20.0, mask: Optional[torch.Tensor] = None, fix_mirror: bool = True,
    init: Optional[torch.Tensor] = None, relax: float = 1.8, lbfgs_iters: int = 300,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[B, L, L]`` distances (+weights) -> coordinates ``[B, L, 3]`` and stress history ``[B, T]``.

    Pairs whose distance is exactly ``d_max`` (the far sentinel of :func:`center_distogram`) are
    lower bounds; ``mask [B, L]`` drops residues (their
    coordinates come out at the centroid).
    """
    b, n, _ = dist.shape
    dist = dist.to(torch.promote_types(dist.dtype, torch.float32))
    w = torch.ones_like(dist) if weights is None else weights.to(dist.dtype).clone()
    eye = torch.eye(n, dtype=torch.bool, device=dist.device)
    if mask is not None:
        pm = mask[:, :, None] & mask[:, None, :]
        w = w * pm
    w = w.masked_fill(eye, 0.0)
    far = (dist - d_max).abs() < 1e-4  # the far sentinel written by center_distogram
    with torch.no_grad():
        if init is None:
            near = (~far) & (w > 0)
            if mask is not None:
                near = near & pm
            start = classical_mds(_geodesic_completion(dist.detach(), near))
        else:
            start = init.detach().float()
    # ensure a connected weight graph (isolated residues would make V singular)
    w = w + 1e-4 * (~eye)  # masked residues too: V must stay invertible
    v = -w
    v = v + torch.diag_embed(w.sum(-1))
    ones = torch.full((n, n), 1.0 / n, dtype=v.dtype, device=v.device)
    v_pinv = torch.linalg.inv(v + ones) - ones
    # stress at float32's noise floor (weighted RMS residual <= 0.001 A: distances met exactly,
    # e.g. a true trace's): done; further steps only stir rounding noise
    floor = STRESS_FLOOR * w.sum((-1, -2)) / 2
    if lbfgs_iters > 0 and not bool((_stress_and_grad(start, dist, w, far)[0] <= floor).all()):
        start = _lbfgs_stress(start, dist.detach(), w.detach(), far, lbfgs_iters)
    x = start
    history = []
    prev = None
    for _ in range(iters):
        d = torch.cdist(x, x).clamp(min=1e-6)
        target = torch.where(far, torch.maximum(d, dist), dist)
        stress = (w * (d - target) ** 2).sum((-1, -2)) / 2
        history.append(stress)
        if bool((stress <= floor).all()):
            break
        if prev is not None and bool(((prev - stress).abs() <= tol * prev.clamp(min=1e-9)).all()):
            break
        prev = stress
        bmat = -w * target / d
        bmat = bmat.masked_fill(eye, 0.0)
        bmat = bmat - torch.diag_embed(bmat.sum(-1))
        guttman = v_pinv @ (bmat @ x)
        x = x + relax * (guttman - x)  # over-relaxed SMACOF: same fixed points, ~2x fewer steps
    if fix_mirror:
        x = fix_mirror_ca(x, mask)
    return x, torch.stack(history, dim=-1)

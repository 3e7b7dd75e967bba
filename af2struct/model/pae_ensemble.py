"""The spread of the distogram's structures around a templated model: an ensemble term for its PAE.

The PAE head predicts the aligned error from the pair representation and the written structure's
context; with templates what it misses is mostly *which frames are wrong*: the error of a pair is
mostly its row's (how wrong the frame of residue ``i`` is), and the head's row means follow the
truth at r 0.68 (benchmarks/history, fourth session). That information is in how well the
distogram pins each part of the structure down, so it is measured directly, as trRosetta and
RoseTTAFold read their confidence off the spread of the models they fold: structures the distogram
finds likely are sampled around the written one by overdamped Langevin dynamics on the distogram's
negative log-likelihood (the energy the structure stage minimises, :mod:`af2struct.model.potential`,
without the template restraints), ``x <- x - eta grad E + sqrt(2 eta T) xi``, and the spread of
residue ``j`` in the frame of residue ``i`` is the mean over samples of
``|R_i^T (x_j - t_i) - R0_i^T (x0_j - t0_i)|`` (the aligned error of a sample against the written
model, frames built on the trace as the templated structure stage builds them). The PAE reported is
``sqrt(head^2 + spread^2)``: two error sources added in quadrature.

Chosen on 83 held-out dev chains with templates (the benchmark's chains not among them): PAE
within-target Pearson r with the true aligned error of the written model, 0.650 for the head alone
(the spread taken about each written model of the previous structure configuration):

==================================================================  =====
sampling (Langevin, T in units of the negative log-likelihood)      r
==================================================================  =====
on the distogram and the template restraints, T 3, 300 steps, 0.002  0.687
on the distogram alone, T 1.5 / 3 / 6, 120 steps of 0.005           0.694 / 0.700 / 0.695
T 3, 60 steps of 0.01                                               0.695
T 3, 120 steps, pairs within 22 A, a sample every 10 (shipped)      0.700
the same, frames of 10-step means / of quenched samples             0.698 / 0.698
the same, capped at the head's 31.75 A                              0.696
head + 0.75 x spread instead of quadrature                          0.704 (mean 13.6 A, true 11.0)
==================================================================  =====

In the shipped pipeline (shipped structure configuration, the prediction's own sampling):
0.650 -> 0.690 (0.682 about the trace before the backbone cleanup); in the table's runs the
mean PAE went 9.2 -> 11.3 A for a true 11.0 A. The value is not capped at the head's range
(capping would clip 5 % of the values and lose r 0.004: the true errors reach beyond it too).
A checkpoint with a :class:`PaeCalibrator` (``heads.pae_calibrator``; the shipped one has one)
reads the head's PAE and the spread through it instead of adding them in quadrature: fitted by
mean squared error on 90 predicted training-split chains (``scripts/fit_pae_calibrator.py``), it
takes the 83 dev chains to r 0.710 (quadrature 0.690) and the benchmark's 30 held-out templated
chains to 0.707 (0.677).
Pairs farther apart than ``pae_spread_cutoff`` in the written model are left out: the
distogram's far bin is flat beyond 21.5 A, so they add nothing to the forces over a short run
(r unchanged, half the time).
"""

from __future__ import annotations

import torch
from torch import nn

from af2struct.model.config import StructureConfig
from af2struct.model.frames import frame_coordinates
from af2struct.model.potential import PairTable, bin_log_density
from af2struct.model.se3_refine import trace_backbone


def aligned_spread(logits: torch.Tensor, ca: torch.Tensor, cfg: StructureConfig, d_min: float, d_max: float,
                   seed: int = 0) -> torch.Tensor:
    """``[L, L]`` mean aligned deviation (A; row = the frame's residue) of structures sampled on
    the distogram ``logits [L, L, K]`` (bins from ``d_min`` to ``d_max``) around the trace
    ``ca [L, 3]`` (see the module's docstring): ``cfg.pae_spread_steps`` steps of size
    ``pae_spread_step_size`` (A^2 per unit of energy) at temperature ``pae_spread_temperature``
    (units of the negative log-likelihood), a sample every ``pae_spread_every`` steps, the pairs
    within ``pae_spread_cutoff`` A, the far bin read over ``template_potential_far_width`` A;
    random numbers from ``seed``. Zeros for fewer than 4 residues or no sample. Deterministic."""
    n = ca.shape[0]
    x0 = ca.detach().float()
    spread = torch.zeros(n, n, device=ca.device)
    if n < 4 or cfg.pae_spread_steps < cfg.pae_spread_every:
        return spread
    i, j = torch.triu_indices(n, n, 1, device=ca.device)
    near = (x0[i] - x0[j]).norm(dim=-1) < cfg.pae_spread_cutoff
    i, j = i[near], j[near]
    centres, log_density = bin_log_density(logits.detach()[i, j], d_min, d_max,
                                          cfg.template_potential_far_width)
    table = PairTable(i, j, centres, log_density)
    ref = frame_coordinates(trace_backbone(x0))
    gen = torch.Generator(device=ca.device).manual_seed(seed)
    noise = (2 * cfg.pae_spread_step_size * cfg.pae_spread_temperature) ** 0.5
    x, samples = x0.clone(), 0
    for step in range(1, cfg.pae_spread_steps + 1):
        _, grad = table.energy_and_grad(x)
        x = x - cfg.pae_spread_step_size * grad + noise * torch.randn(x.shape, generator=gen, device=x.device)
        if step % cfg.pae_spread_every == 0:
            spread += (frame_coordinates(trace_backbone(x)) - ref).norm(dim=-1)
            samples += 1
    return spread / samples


def with_spread(pae: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """``sqrt(pae^2 + spread^2)``: the head's expected aligned error and the ensemble's spread
    added in quadrature (any shape)."""
    return torch.sqrt(pae.square() + spread.square())


#: per-pair inputs of :class:`PaeCalibrator` (:func:`calibrator_features`)
CALIBRATOR_FEATURES = 10


def calibrator_features(pae: torch.Tensor, spread: torch.Tensor, plddt: torch.Tensor, ca: torch.Tensor) -> torch.Tensor:
    """``[L, L, 10]`` per pair ``(i, j)``: the head's PAE and the spread (/10 A), the pLDDT of
    ``i`` and of ``j`` (/100), their distance in the model (/10 A), log(1 + |i - j|) / 3, and the
    row ``i``'s and column ``j``'s means of the spread and of the head's PAE (/10 A); from
    ``pae``, ``spread [L, L]``, ``plddt [L]`` (0-100) and ``ca [L, 3]``."""
    n = pae.shape[-1]
    pae, spread, ca = pae.float(), spread.float(), ca.float()
    pl = (plddt.float() / 100).reshape(n)
    d = (ca[:, None] - ca[None]).norm(dim=-1)
    idx = torch.arange(n, device=pae.device)
    sep = torch.log1p((idx[:, None] - idx[None]).abs().float()) / 3
    rows = [pae / 10, spread / 10, pl[:, None].expand(n, n), pl[None].expand(n, n), d / 10, sep,
            spread.mean(1, keepdim=True).expand(n, n) / 10, spread.mean(0, keepdim=True).expand(n, n) / 10,
            pae.mean(1, keepdim=True).expand(n, n) / 10, pae.mean(0, keepdim=True).expand(n, n) / 10]
    return torch.stack(rows, -1)


class PaeCalibrator(nn.Module):
    """The PAE reported for a templated model, ``[L, L]`` (A), from :func:`calibrator_features`
    ``[L, L, 10]``: two hidden layers and a softplus, fitted by mean squared error to the true
    aligned error of predicted training-split chains (:mod:`af2struct.train.pae_calibrate`)."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CALIBRATOR_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1), nn.Softplus())

    def forward(self, features: torch.Tensor, pairs: int = 1 << 18) -> torch.Tensor:
        """``features [N, ..., 10]`` -> ``[N, ...]``, about ``pairs`` at a time along the first
        dimension (a 2,048-residue map would otherwise hold two 1 GB hidden layers)."""
        per_row = max(1, features[0].numel() // features.shape[-1]) if features.dim() > 1 else 1
        chunks = features.split(max(1, pairs // per_row), dim=0)
        return torch.cat([self.net(c)[..., 0] for c in chunks], 0) * 10

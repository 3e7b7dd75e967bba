"""Output heads (AlphaFold2 supplement 1.9): distogram from the pair (1.9.8), pLDDT from the
sequence row (1.9.6, Algorithm 29, with inputs of af2struct's own), predicted aligned error from
the pair (1.9.7) and side-chain torsions (as Algorithm 20's angle outputs)."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from af2struct.model.config import HeadsConfig
from af2struct.model.mds import distances_to_bins, distogram_centers, distogram_edges


class DistogramHead(nn.Module):
    """Pair ``[B, L, L, Cz]`` -> symmetric logits ``[B, L, L, bins]``."""

    def __init__(self, z_dim: int, cfg: HeadsConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(z_dim)
        self.proj = nn.Linear(z_dim, cfg.distogram_bins)

    def forward(self, z):
        logits = self.proj(self.norm(z))
        return (logits + logits.transpose(1, 2)) / 2


BASE_AGREEMENT_FEATURES = 6
AGREEMENT_FEATURES = 13
LOCAL_SEPARATION = 6  # |i - j| below this: a sequence-local pair


def _cdf(p: torch.Tensor, x: torch.Tensor, cfg: HeadsConfig, below: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``P(D < x)`` ``[B, L, L]`` under the distogram ``p [B, L, L, K]`` at distances ``x [B, L, L]``,
    linear within a bin (the far bin's mass lies beyond ``distogram_max``). ``below``:
    ``cumsum(p) - p``, the mass below each bin, when the caller has it."""
    edges = distogram_edges(p.shape[-1], cfg.distogram_min, cfg.distogram_max).to(p)
    width = edges[1] - edges[0]
    below = torch.cumsum(p, -1) - p if below is None else below
    k = ((x - edges[0]) / width).floor().clamp(0, p.shape[-1] - 2).long()
    frac = ((x - edges[0]) / width - k).clamp(0, 1)
    return (below.gather(-1, k[..., None]) + p.gather(-1, k[..., None]) * frac[..., None])[..., 0]


def _mean_distance(p: torch.Tensor, cfg: HeadsConfig) -> torch.Tensor:
    """``E[D]`` ``[...]`` under the distogram ``p [..., K]`` (the far bin counted at ``distogram_max`` + 1 A)."""
    centers = torch.cat([distogram_centers(p.shape[-1], cfg.distogram_min, cfg.distogram_max),
                         torch.tensor([cfg.distogram_max + 1.0])]).to(p)
    return (p * centers).sum(-1)


def expected_lddt_features(p: torch.Tensor, d: torch.Tensor, mask: torch.Tensor, cfg: HeadsConfig,
                           radius: float = 15.0) -> torch.Tensor:
    """``[B, L, 7]``: the lDDT-CA a structure with Calpha distances ``d [B, L, L]`` would score
    if the true distances were drawn from the distogram ``p [B, L, L, K]``, per residue: pairs
    weighted by ``P(D < radius)`` (the chance they count in lDDT), each scoring the mean over
    0.5/1/2/4 A of ``P(|D - d| < t)``; the same over sequence-local (``|i-j| < 6``) and
    non-local pairs; the non-local share of the expected neighbours; the weighted mean
    ``|d - E[D]| / 10 A`` (capped at 1); ``log(1 + distance to a terminus) / 5``; the non-local
    share of the structure's own neighbours. ``mask [B, L]``: the chain's residues (padding last)."""
    m = mask.bool()
    valid = m[:, :, None] & m[:, None, :] & ~torch.eye(d.shape[-1], dtype=torch.bool, device=d.device)
    below = torch.cumsum(p, -1) - p
    w = _cdf(p, torch.full_like(d, radius), cfg, below) * valid
    score = sum(_cdf(p, d + t, cfg, below) - _cdf(p, d - t, cfg, below) for t in (0.5, 1.0, 2.0, 4.0)) / 4
    idx = torch.arange(d.shape[-1], device=d.device)
    local = (idx[:, None] - idx[None]).abs() < LOCAL_SEPARATION

    def wmean(x, weight):
        return (x * weight).sum(-1) / weight.sum(-1).clamp(min=1e-6)

    deviation = ((d - _mean_distance(p, cfg)).abs() / 10).clamp(max=1)
    pos = idx.to(p.dtype)[None]
    last = m.sum(-1, keepdim=True).to(p.dtype) - 1  # [B, 1]
    terminus = torch.log1p(torch.minimum(pos, last - pos).clamp(min=0)) / 5
    near = valid & (d < radius)
    return torch.stack([wmean(score, w), wmean(score, w * local), wmean(score, w * ~local),
                        (w * ~local).sum(-1) / w.sum(-1).clamp(min=1e-6), wmean(deviation, w),
                        terminus, (near & ~local).sum(-1) / near.sum(-1).clamp(min=1)], -1)


@torch.no_grad()
def structure_agreement(logits: torch.Tensor, ca: torch.Tensor, mask: torch.Tensor, cfg: HeadsConfig,
                        radius: float = 15.0) -> torch.Tensor:
    """``[B, L, 13]`` per-residue features of how the predicted ``ca [B, L, 3]`` agrees with the
    distogram ``logits [B, L, L, K]``. The first 6, over the residue's neighbours (< ``radius``
    in the structure): mean probability and log-probability of the realised distance bin, mean
    distogram entropy, mean probability of the realised bin +-1 bin; and the neighbour count of
    the structure and the distogram's expected count (both / 20). Then
    :func:`expected_lddt_features` (7). Where a structure satisfies a confident distogram the
    residue's local geometry tends to be right; where it contradicts it, not."""
    p = torch.softmax(logits.float(), -1)
    d = torch.cdist(ca.float(), ca.float())
    k = distances_to_bins(d, logits.shape[-1], cfg.distogram_min, cfg.distogram_max)
    m = mask.bool()
    eye = torch.eye(ca.shape[1], dtype=torch.bool, device=ca.device)
    valid = m[:, :, None] & m[:, None, :] & ~eye
    near = valid & (d < radius)
    p_real = p.gather(-1, k[..., None])[..., 0]
    p_band = p_real + sum(p.gather(-1, (k + s).clamp(0, p.shape[-1] - 1)[..., None])[..., 0] for s in (-1, 1))
    entropy = -(p * p.clamp(min=1e-9).log()).sum(-1)
    n = near.sum(-1).clamp(min=1).float()

    def mean(x):
        return (x * near).sum(-1) / n

    k_r = int(distances_to_bins(torch.tensor(radius), logits.shape[-1], cfg.distogram_min, cfg.distogram_max))
    expected = (p[..., :k_r].sum(-1) * valid).sum(-1)
    feats = [mean(p_real), mean(p_real.clamp(min=1e-6).log()) / 10, mean(entropy) / 4, mean(p_band),
             near.sum(-1) / 20.0, expected / 20.0]
    out = torch.cat([torch.stack(feats, -1), expected_lddt_features(p, d, mask, cfg, radius)], -1)
    return out * m[..., None]


TEMPLATE_SUPPORT_FEATURES = 3


def template_support(templates: Optional[Dict[str, torch.Tensor]], mask: torch.Tensor,
                     max_templates: int = 4) -> torch.Tensor:
    """``[B, L, 3]`` how the templates cover each residue (``mask [B, L]``): the share of
    ``max_templates`` slots with a template residue aligned there, whether any has, and the
    number of templates / ``max_templates`` (zeros without templates). A pLDDT head fitted
    without it cannot tell a model copied from a good template from one folded ab initio."""
    b, n = mask.shape
    out = mask.new_zeros((b, n, TEMPLATE_SUPPORT_FEATURES), dtype=torch.float32)
    if not templates or "template_backbone_mask" not in templates or templates["template_backbone_mask"].shape[1] == 0:
        return out
    tm = templates["template_mask"].float()  # [B, T]
    covered = templates["template_backbone_mask"].float() * tm[..., None]  # [B, T, L]
    out[..., 0] = covered.sum(1) / max_templates
    out[..., 1] = covered.amax(1)
    out[..., 2] = (tm.sum(1) / max_templates)[:, None]
    return out * mask[..., None].float()


class PLDDTHead(nn.Module):
    """Per-residue logits ``[B, L, bins]`` over lDDT-CA bins (0..1) from the sequence row
    ``s [B, L, C]``; with ``cfg.plddt_context`` also from the pair row ``z [B, L, L, Cz]``
    (masked mean over partners) and the structure's :func:`structure_agreement` with the
    distogram (its first 6 features; with ``cfg.plddt_expected_lddt`` all 13), each added to
    ``s`` through a zero-initialised projection (a head trained without them starts where it
    was)."""

    def __init__(self, dim: int, cfg: HeadsConfig, z_dim: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, cfg.plddt_bins))
        self.context = cfg.plddt_context
        self.expected_lddt = cfg.plddt_context and cfg.plddt_expected_lddt
        self.template_support = False
        if self.context:
            self.pair = nn.Sequential(nn.LayerNorm(z_dim), nn.Linear(z_dim, dim))
            self.agree = nn.Sequential(nn.Linear(BASE_AGREEMENT_FEATURES, dim), nn.ReLU(), nn.Linear(dim, dim))
            new = [self.pair[-1], self.agree[-1]]
            if self.expected_lddt:
                extra = AGREEMENT_FEATURES - BASE_AGREEMENT_FEATURES
                self.agree_expected = nn.Sequential(nn.Linear(extra, dim), nn.ReLU(), nn.Linear(dim, dim))
                new.append(self.agree_expected[-1])
            self.template_support = cfg.plddt_template_support
            if self.template_support:
                self.template = nn.Sequential(nn.Linear(TEMPLATE_SUPPORT_FEATURES, dim), nn.ReLU(), nn.Linear(dim, dim))
                new.append(self.template[-1])
            for last in new:
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def pool_pair(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[B, L, Cz]``: the masked mean over partners ``j`` of the layer-normalised pair
        ``z [B, L, L, Cz]`` (``mask [B, L]``), before the norm's affine and the projection, which
        are linear and so commute with the mean (:meth:`from_pooled` applies them). The head's
        input from the pair in ``L x Cz`` numbers, so it can be cached per chain."""
        norm = self.pair[0]
        m = mask.to(z.dtype)
        zn = nn.functional.layer_norm(z, norm.normalized_shape, eps=norm.eps)
        return (zn * m[:, None, :, None]).sum(2) / m.sum(1).clamp(min=1)[:, None, None]

    def from_pooled(self, s: torch.Tensor, pair_mean: Optional[torch.Tensor] = None,
                    agreement: Optional[torch.Tensor] = None, support: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits ``[B, L, bins]`` from ``s [B, L, C]`` and (with context) :meth:`pool_pair`'s
        ``pair_mean [B, L, Cz]``, :func:`structure_agreement`'s ``agreement [B, L, 13]`` and
        :func:`template_support`'s ``support [B, L, 3]`` (``None``: no templates)."""
        if self.context:
            norm = self.pair[0]
            s = s + self.pair[1](pair_mean * norm.weight + norm.bias)
            s = s + self.agree(agreement[..., :BASE_AGREEMENT_FEATURES])
            if self.expected_lddt:
                s = s + self.agree_expected(agreement[..., BASE_AGREEMENT_FEATURES:])
            if self.template_support:
                if support is None:
                    support = s.new_zeros((*s.shape[:-1], TEMPLATE_SUPPORT_FEATURES))
                s = s + self.template(support.to(s.dtype))
        return self.net(s)

    def forward(self, s, z=None, mask=None, agreement=None, support=None):
        """``s [B, L, C]``; with context also ``z``, ``mask [B, L]``, ``agreement [B, L, 13]``
        and ``support [B, L, 3]``."""
        if not self.context:
            return self.net(s)
        return self.from_pooled(s, self.pool_pair(z, mask), agreement, support)


class TorsionHead(nn.Module):
    """Sequence row ``[B, L, C]`` -> chi1..chi4 as unit (sin, cos) vectors ``[B, L, 4, 2]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 8))

    def forward(self, s):
        x = self.net(s).view(*s.shape[:-1], 4, 2)
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)


PAE_CONTEXT_FEATURES = 15
NEIGHBOURHOOD = 12.0  # A: the frame residue's neighbourhood, whose pLDDT says how well its frame sits


@torch.no_grad()
def pae_context_features(logits: torch.Tensor, ca: torch.Tensor, plddt: torch.Tensor,
                         support: Optional[torch.Tensor], agreement: torch.Tensor, mask: torch.Tensor,
                         cfg: HeadsConfig, templates: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
    """``[B, L, L, 15]`` per pair (row ``i``: the frame residue, column ``j``: the aligned one)
    what the written structure says about its aligned error: pLDDT / 100 of ``i`` and of ``j``
    (``plddt [B, L]``, 0-100); whether a template covers ``i``, ``j`` and how many templates
    there are (``support [B, L, 3]`` of :func:`template_support`, ``None``: zeros); the
    sequence separation ``log(1 + |i - j|) / 5``; the structure's Calpha distance ``d / 30``
    (capped at 2) and its deviation from the distogram's mean ``|d - E[D]| / 10`` (capped at 1);
    the distogram's ``P(|D - d| < 2 A)`` and entropy / 4; the expected lDDT of ``i`` and ``j``
    (``agreement [B, L, 13]``'s 7th feature, :func:`expected_lddt_features`); whether one
    template has both residues and, over those, the least ``|d - d_template| / 10`` (capped at
    1; 1 where none: ``templates``, the model's template features); the mean pLDDT / 100 of the
    residues within 12 A of ``i`` (how well its frame's surroundings are placed). A model copied
    from a template is right where the template covers both residues and the distogram agrees;
    a pair representation alone cannot see the structure the error is measured on."""
    p = torch.softmax(logits.float(), -1)
    d = torch.cdist(ca.float(), ca.float())
    below = torch.cumsum(p, -1) - p
    agree = _cdf(p, d + 2.0, cfg, below) - _cdf(p, d - 2.0, cfg, below)
    deviation = ((d - _mean_distance(p, cfg)).abs() / 10).clamp(max=1)
    entropy = -(p * p.clamp(min=1e-9).log()).sum(-1) / 4
    b, n = ca.shape[:2]
    idx = torch.arange(n, device=ca.device, dtype=p.dtype)
    sep = torch.log1p((idx[:, None] - idx[None]).abs()) / 5
    if support is None:
        support = p.new_zeros((b, n, TEMPLATE_SUPPORT_FEATURES))
    m = mask.bool()
    pair_mask = m[:, :, None] & m[:, None, :]
    q = plddt.float() / 100
    lddt_exp = agreement[..., BASE_AGREEMENT_FEATURES].float()
    cover = support[..., 1].float()
    both, tpl_dev = _template_pair_agreement(d, templates, b, n)
    near = (d < NEIGHBOURHOOD) & pair_mask
    local_q = (near * q[:, None, :]).sum(-1) / near.sum(-1).clamp(min=1)

    def rows(x):
        return x[:, :, None].expand(-1, n, n)

    def cols(x):
        return x[:, None, :].expand(-1, n, n)

    feats = torch.stack([rows(q), cols(q), rows(cover), cols(cover), rows(support[..., 2].float()),
                         sep.expand_as(d), (d / 30).clamp(max=2), deviation, agree, entropy,
                         rows(lddt_exp), cols(lddt_exp), both, tpl_dev, rows(local_q)], -1)
    return feats * pair_mask[..., None]


def _template_pair_agreement(d: torch.Tensor, templates: Optional[Dict[str, torch.Tensor]], b: int,
                             n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(both, deviation)`` ``[B, L, L]``: whether one template has both residues, and the least
    ``|d - d_template| / 10`` (capped at 1) over such templates (1 where none)."""
    both = d.new_zeros((b, n, n))
    dev = d.new_ones((b, n, n))
    if not has_template_backbone(templates):
        return both, dev
    x = templates["template_backbone"][..., 1, :].float()  # [B, T, L, 3]
    have = templates["template_backbone_mask"].bool() & templates["template_mask"].bool()[..., None]
    for t in range(x.shape[1]):
        pair = have[:, t, :, None] & have[:, t, None, :]
        gap = ((d - torch.cdist(x[:, t], x[:, t])).abs() / 10).clamp(max=1)
        dev = torch.where(pair, torch.minimum(dev, gap), dev)
        both = torch.maximum(both, pair.float())
    return both, dev


def has_template_backbone(templates: Optional[Dict[str, torch.Tensor]]) -> bool:
    """Whether ``templates`` (a feature batch's ``template_*``) hold at least one template's backbone."""
    return bool(templates) and "template_backbone" in templates and templates["template_backbone"].shape[1] > 0 \
        and bool(templates["template_mask"].any())


class PAEHead(nn.Module):
    """Pair ``[B, L, L, Cz]`` -> predicted aligned error logits ``[B, L, L, bins]`` (row ``i``:
    the frame residue, column ``j``: the aligned residue; not symmetric). With
    ``cfg.pae_context``, :meth:`with_context` adds what the written structure says
    (:func:`pae_context_features`) through a zero-initialised network (a head trained without
    it starts where it was)."""

    def __init__(self, z_dim: int, cfg: HeadsConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(z_dim)
        self.proj = nn.Linear(z_dim, cfg.pae_bins)
        self.context = None
        if cfg.pae_context:
            hidden = cfg.pae_bins
            self.context = nn.Sequential(nn.Linear(PAE_CONTEXT_FEATURES, hidden), nn.ReLU(),
                                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, cfg.pae_bins))
            nn.init.zeros_(self.context[-1].weight)
            nn.init.zeros_(self.context[-1].bias)

    def forward(self, z):
        return self.proj(self.norm(z))

    def from_normalized(self, zn: torch.Tensor, feats: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits from ``zn``, the pair layer-normalised without its affine (``[..., Cz]``: what
        the PAE stage caches), and (with context) ``feats [..., 15]``."""
        logits = self.proj(zn * self.norm.weight + self.norm.bias)
        return logits if self.context is None or feats is None else logits + self.context(feats.to(logits.dtype))

    def with_context(self, logits: torch.Tensor, feats: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """``logits [B, L, L, bins]`` (from :meth:`forward`) plus the context network on
        ``feats [B, L, L, 15]``, a block of ``chunk`` frame rows at a time (its hidden layers
        are ``L x L x bins`` numbers each)."""
        if self.context is None:
            return logits
        return torch.cat([logits[:, i:i + chunk] + self.context(feats[:, i:i + chunk].to(logits.dtype))
                          for i in range(0, logits.shape[1], chunk)], 1)


def pae_breaks(bins: int, pae_max: float, device=None) -> torch.Tensor:
    """``[bins - 1]`` bin boundaries 0 .. ``pae_max`` (AlphaFold: 63 boundaries, 0.5 A apart)."""
    return torch.linspace(0.0, pae_max, bins - 1, device=device)


def pae_bin_centers(bins: int, pae_max: float, device=None) -> torch.Tensor:
    """``[bins]`` bin centres; the last (``pae_max`` + half a bin, 31.75 A) is the largest PAE reported."""
    breaks = pae_breaks(bins, pae_max, device)
    step = breaks[1] - breaks[0]
    return torch.cat([breaks + step / 2, (breaks[-1] + 1.5 * step)[None]])


def pae_from_logits(logits: torch.Tensor, pae_max: float) -> torch.Tensor:
    """Expected aligned error (Angstrom) ``[..., L, L]`` from ``[..., L, L, bins]`` logits."""
    centers = pae_bin_centers(logits.shape[-1], pae_max, logits.device)
    return (torch.softmax(logits.float(), -1) * centers).sum(-1)


def plddt_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Expected lDDT-CA (0..100) from ``[..., bins]`` logits."""
    bins = logits.shape[-1]
    centers = (torch.arange(bins, device=logits.device, dtype=torch.float32) + 0.5) / bins
    return 100 * (torch.softmax(logits.float(), -1) * centers).sum(-1)

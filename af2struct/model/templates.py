"""Templates into the pair representation (AlphaFold2 supplement 1.7.1; Algorithms 2, 16, 17).

Per template ``t``: pair features of its backbone (:func:`template_pair_embedding`: the
pseudo-beta distogram, unit vectors in the backbone frames, pair masks, residue types; or a
caller's precomputed ``template_pair_features [B, T, L, L, F]``, alphafold2-pytorch 0.4's
``templates_feats``)
-> a template pair stack (triangle multiplicative updates and transitions, Algorithm 16) ->
pointwise attention of each pair ``z_ij`` over the templates' ``t_ij`` (Algorithm 17), added to
the pair. Backbone torsions (or the caller's ``template_angle_features [B, T, L, A]``) become extra MSA
rows (Algorithm 2, line 7-8).

Without autograd (prediction) each template's pair stack runs on its aligned residues only (an
unaligned residue's pairs take the pointwise part of the blocks: exactly what the masked stack
computes there), and the embedding and the pointwise attention a block of rows at a time.

The output projections start at zero (``TemplateConfig.zero_init``), so a trained model given
the template modules starts exactly where it was; without templates (``T = 0``) they are not run
at all, so a model predicts exactly as one without template modules.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from af2struct.common import residue_constants as rc
from af2struct.model.config import TemplateConfig
from af2struct.model.frames import backbone_frames
from af2struct.model.transition import Transition
from af2struct.model.triangle_multiplication import TriangleMultiplication, row_blocks

TEMPLATE_AATYPES = 22  # 20 amino acids, X, gap
ANGLE_FEATURES = TEMPLATE_AATYPES + 3 * 2 + 3  # residue type, sin/cos of phi/psi/omega, their masks


def pseudo_beta(backbone: torch.Tensor, aatype: torch.Tensor) -> torch.Tensor:
    """Virtual C-beta ``[..., L, 3]`` from ``backbone [..., L, 3 (N, CA, C), 3]`` (ideal
    geometry, the constants of trRosetta / ProteinMPNN); Calpha for glycine."""
    n, ca, c = backbone.unbind(-2)
    b, cc = ca - n, c - ca
    a = torch.cross(b, cc, dim=-1)
    cb = -0.58273431 * a + 0.56802827 * b - 0.54067466 * cc + ca
    gly = (aatype == rc.restype_order["G"])[..., None]
    return torch.where(gly, ca, cb)


def _bins(d: torch.Tensor, n: int, lo: float, hi: float) -> torch.Tensor:
    """Bin index ``0 .. n - 1`` of distances ``d`` for ``n - 1`` edges evenly from ``lo`` to ``hi``."""
    return torch.bucketize(d, torch.linspace(lo, hi, n - 1, device=d.device, dtype=d.dtype))


def template_pair_inputs(cfg: TemplateConfig, batch: Dict[str, torch.Tensor]):
    """The pieces of AlphaFold's ``template_pair_feat`` for ``template_* [B, T, L, ...]``:
    pseudo-beta distogram bin ``[B, T, L, L]`` (long), pseudo-beta pair mask, unit vectors
    ``[B, T, L, L, 3]`` (CA_j in the frame of residue i), backbone pair mask, template residue
    types ``[B, T, L]``, and the Calpha distogram bin (``None`` with ``ca_dgram_bins = 0``)."""
    bb = batch["template_backbone"].float()
    aatype = batch["template_aatype"].long().clamp(0, TEMPLATE_AATYPES - 1)
    m = batch["template_backbone_mask"].float() * batch["template_mask"].float()[..., None]
    pb = pseudo_beta(bb, aatype)
    bins = _bins(torch.cdist(pb, pb), cfg.dgram_bins, cfg.dgram_min, cfg.dgram_max)
    ca = bb[..., 1, :]
    ca_bins = _bins(torch.cdist(ca, ca), cfg.ca_dgram_bins, cfg.ca_dgram_min, cfg.ca_dgram_max) \
        if cfg.ca_dgram_bins else None
    mask2d = m[..., :, None] * m[..., None, :]
    rot, origin = backbone_frames(bb)
    local = torch.einsum("...iab,...ija->...ijb", rot, bb[..., None, :, 1, :] - origin[..., :, None, :])
    unit = local / local.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    # a backbone-only template: the pseudo-beta and the frame need the same three atoms
    return bins, mask2d, unit * mask2d[..., None], mask2d, aatype, ca_bins


class TemplatePairEmbedder(nn.Module):
    """Template pair features -> ``[B, T, L, L, c_t]``: one linear map of AlphaFold's
    concatenated features (distogram one-hot, masks, unit vectors, residue types of i and j),
    evaluated as lookups and small products (the one-hot tensor is never built)."""

    def __init__(self, cfg: TemplateConfig) -> None:
        super().__init__()
        c = cfg.pair_dim
        self.cfg = cfg
        self.dgram = nn.Embedding(cfg.dgram_bins, c)
        self.ca_dgram = nn.Embedding(cfg.ca_dgram_bins, c) if cfg.ca_dgram_bins else None
        self.aa_i = nn.Embedding(TEMPLATE_AATYPES, c)
        self.aa_j = nn.Embedding(TEMPLATE_AATYPES, c)
        self.unit = nn.Linear(3, c, bias=False)
        self.masks = nn.Linear(2, c)
        self.raw = nn.Linear(cfg.raw_feat_dim, c) if cfg.raw_feat_dim else None

    def forward(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        if "template_pair_features" in batch:
            if self.raw is None:
                raise ValueError("template pair features given, but the model was built without raw_feat_dim "
                                 "(alphafold2-pytorch: templates_dim)")
            return self.raw(batch["template_pair_features"])
        bins, pair_mask, unit, _, aatype, ca_bins = template_pair_inputs(self.cfg, batch)
        # The distogram(s) and the masks as one table lookup: both masks are the same pair mask m,
        # so masks([m, m]) = bias + m (w_0 + w_1); a masked pair reads the table's last row (zeros).
        table = self.dgram.weight + self.masks.weight.sum(-1)  # [bins, c]
        index = bins
        if self.ca_dgram is not None:
            table = (table[:, None] + self.ca_dgram.weight[None]).flatten(0, 1)  # [bins * ca_bins, c]
            index = bins * self.cfg.ca_dgram_bins + ca_bins
        table = torch.cat([table, table.new_zeros(1, table.shape[-1])])
        index = torch.where(pair_mask > 0, index, table.shape[0] - 1)
        row = self.aa_i(aatype) + self.masks.bias  # [B, T, L, c]
        col = self.aa_j(aatype)[..., None, :, :]
        if torch.is_grad_enabled() or unit.device.type != "cpu":
            return nn.functional.embedding(index, table) + self.unit(unit) + row[..., :, None, :] + col
        # prediction on the CPU: a block of rows at a time, its sums in the cache
        out = unit.new_empty(*index.shape, table.shape[-1])
        for i0, i1 in row_blocks(index.shape[-2], index.shape[-1] * table.shape[-1] * 4 * index.shape[:-2].numel()):
            x = nn.functional.embedding(index[..., i0:i1, :], table).add_(self.unit(unit[..., i0:i1, :, :]))
            out[..., i0:i1, :, :] = x.add_(row[..., i0:i1, None, :]).add_(col)
        return out


class TemplatePairBlock(nn.Module):
    """Algorithm 16 sized for a CPU: triangle multiplicative updates (outgoing, incoming) and a
    transition on ``t [N, L, L, c_t]`` (triangle attention left out, as in the trunk's default)."""

    def __init__(self, cfg: TemplateConfig) -> None:
        super().__init__()
        self.tri_out = TriangleMultiplication(cfg.pair_dim, cfg.pair_dim, outgoing=True)
        self.tri_in = TriangleMultiplication(cfg.pair_dim, cfg.pair_dim, outgoing=False)
        self.trans = Transition(cfg.pair_dim, 2)

    def forward(self, t: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        t = t + self.tri_out(t, mask)
        t = t + self.tri_in(t, mask)
        return t + self.trans(t)

    def unpaired(self, t: torch.Tensor) -> torch.Tensor:
        """The block at pairs outside the pair mask, ``t [..., c_t]``: there every triangle edge
        is masked, so each triangle update is its constant times its output gate."""
        t = t + self.tri_out.unpaired(t)
        t = t + self.tri_in.unpaired(t)
        return t + self.trans(t)


class TemplatePointwiseAttention(nn.Module):
    """Algorithm 17: each pair ``z_ij`` attends over the templates' ``t_ij`` (keys masked by
    ``template_mask``), evaluated ``chunk`` rows ``i`` at a time."""

    def __init__(self, z_dim: int, cfg: TemplateConfig, chunk: int = 64) -> None:
        super().__init__()
        inner = cfg.heads * cfg.dim_head
        self.heads, self.scale, self.chunk = cfg.heads, cfg.dim_head ** -0.5, chunk
        self.norm_z = nn.LayerNorm(z_dim)
        self.to_q = nn.Linear(z_dim, inner, bias=False)
        self.to_kv = nn.Linear(cfg.pair_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, z_dim)
        if cfg.zero_init:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def _attend(self, z: torch.Tensor, t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Rows ``z [B, i, L, Cz]`` over ``t [B, T, i, L, c_t]`` -> ``[B, i, L, H * D]``."""
        q = rearrange(self.to_q(self.norm_z(z)), "b i j (h d) -> b () i j h d", h=self.heads)
        k, v = rearrange(self.to_kv(t), "b t i j (two h d) -> two b t i j h d", two=2, h=self.heads)
        w = torch.softmax((q * k).sum(-1) * self.scale + bias, dim=1)  # [B, T, i, j, H]
        return rearrange((w[..., None] * v).sum(1), "b i j h d -> b i j (h d)")

    def forward(self, z: torch.Tensor, t: torch.Tensor, template_mask: torch.Tensor) -> torch.Tensor:
        """``z [B, L, L, Cz]``, ``t [B, T, L, L, c_t]``, ``template_mask [B, T]`` -> ``[B, L, L, Cz]``."""
        # elementwise over the few templates (a batched matmul of [1, d] x [d, T] per pair is slower)
        bias = torch.where(template_mask.bool(), 0.0, -1e4).to(z.dtype)[:, :, None, None, None]  # [B, T, 1, 1, 1]
        n = z.shape[1]
        if torch.is_grad_enabled() or z.device.type != "cpu":
            blocks = [(i, min(n, i + self.chunk)) for i in range(0, n, self.chunk)]
        else:  # prediction on the CPU: blocks of rows that stay in the cache
            per_row = n * 4 * t.shape[1] * (t.shape[-1] + 4 * self.to_kv.out_features)
            blocks = list(row_blocks(n, per_row))
        out = self.to_out(torch.cat([self._attend(z[:, i0:i1], t[:, :, i0:i1], bias) for i0, i1 in blocks], 1))
        # a batch item with no real template gets no update (AlphaFold: times any(template_mask))
        return out * template_mask.bool().any(-1).to(out.dtype)[:, None, None, None]


class TemplateAngleEmbedder(nn.Module):
    """Algorithm 2, line 7: per-residue template features ``[B, T, L, A]`` -> extra MSA rows
    ``[B, T, L, C]`` (a two-layer MLP; with ``zero_init`` the last layer starts at zero)."""

    def __init__(self, dim: int, cfg: TemplateConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.angle_feat_dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        if cfg.zero_init:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats)


def angle_features(batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, T, L, 31]``: template residue type one-hot (22), sin/cos of phi, psi, omega (6) and
    their masks (3), zero where the query position is not aligned."""
    aatype = batch["template_aatype"].long().clamp(0, TEMPLATE_AATYPES - 1)
    m = batch["template_torsion_mask"].float()
    sincos = batch["template_torsions"].float() * m[..., None]
    onehot = nn.functional.one_hot(aatype, TEMPLATE_AATYPES).float()
    return torch.cat([onehot, sincos.flatten(-2), m], -1) * batch["template_backbone_mask"].float()[..., None]


class TemplateEmbedder(nn.Module):
    """Templates -> a pair update ``[B, L, L, Cz]`` and (``angle_feat_dim`` > 0) extra MSA rows
    ``[B, T, L, C]`` with their mask ``[B, T, L]``."""

    def __init__(self, cfg: TemplateConfig, dim: int, z_dim: int, chunk: int = 64) -> None:
        super().__init__()
        self.cfg = cfg
        self.pair_embed = TemplatePairEmbedder(cfg)
        self.blocks = nn.ModuleList(TemplatePairBlock(cfg) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.pair_dim)
        self.pointwise = TemplatePointwiseAttention(z_dim, cfg, chunk)
        self.angles = TemplateAngleEmbedder(dim, cfg) if cfg.angle_feat_dim else None

    def forward(self, z: torch.Tensor, batch: Dict[str, torch.Tensor],
                mask: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``z [B, L, L, Cz]``, template features of ``batch``, the query's residue ``mask [B, L]``."""
        precomputed = "template_pair_features" in batch
        if precomputed:  # a template with any residue is real
            res_mask = batch["template_residue_mask"].bool()
            tmask = res_mask.any(-1)
        else:
            tmask = batch["template_mask"].bool()
            res_mask = batch["template_backbone_mask"].bool() & tmask[..., None]
        b, n_t = tmask.shape
        t = self.pair_embed(batch).to(z.dtype)  # [B, T, L, L, c_t]
        flat = rearrange(t, "b t i j c -> (b t) i j c")
        aligned = rearrange(res_mask & mask.bool()[:, None], "b t i -> (b t) i")  # a template's query residues
        if torch.is_grad_enabled():
            flat_mask = aligned[:, :, None] & aligned[:, None, :]
            for block in self.blocks:
                flat = block(flat, flat_mask)
        else:
            flat = torch.stack([self._stack_cropped(x, r) for x, r in zip(flat, aligned)])
        t = rearrange(self.norm(flat), "(b t) i j c -> b t i j c", b=b)
        update = self.pointwise(z, t, tmask)
        rows = row_mask = None
        if self.angles is not None:
            feats = batch.get("template_angle_features") if precomputed else angle_features(batch)
            if feats is not None:
                rows = self.angles(feats.to(z.dtype))
                row_mask = res_mask & tmask[..., None] & mask.bool()[:, None]
        return update, rows, row_mask

    def _stack_cropped(self, t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The pair stack on one template's ``t [L, L, c_t]`` without autograd, as on the whole
        masked pair: the triangle updates on the pairs of its aligned residues ``rows [L]`` alone
        (a masked pair adds nothing to a triangle), the pairs with an unaligned residue by
        :meth:`TemplatePairBlock.unpaired`. A template that covers 80 % of the query costs 51 %
        of the triangle products."""
        inside = rows.nonzero()[:, 0]
        if len(inside) == len(rows):
            for block in self.blocks:
                t = block(t[None], None)[0]
            return t
        outside = (~rows).nonzero()[:, 0]
        core = t[inside][:, inside]  # [M, M, c]
        far_rows = t[outside]  # [L - M, L, c]: an unaligned residue i, every j
        far_cols = t[inside][:, outside]  # [M, L - M, c]: an aligned i, an unaligned j
        for block in self.blocks:
            if len(inside):
                core = block(core[None], None)[0]
            far_rows, far_cols = block.unpaired(far_rows), block.unpaired(far_cols)
        out = torch.empty_like(t)
        out[outside] = far_rows
        out[inside[:, None], outside[None]] = far_cols
        out[inside[:, None], inside[None]] = core
        return out


def _kabsch(mobile: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rotation ``[3, 3]`` and translation ``[3]`` that best move ``mobile [n, 3]`` onto ``target``."""
    mc, tc = mobile.mean(0), target.mean(0)
    h = (mobile - mc).T @ (target - tc)
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.T @ u.T))
    corr = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), d]))
    rot = vt.T @ corr @ u.T
    return rot, tc - rot @ mc


def template_trace(batch: Dict[str, torch.Tensor], min_overlap: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """A Calpha trace of the query from its templates, to start the structure from:
    ``(ca [B, L, 3], known [B, L])``. The templates are taken in order (best first); each later
    one is superposed on the positions already placed (Kabsch over at least ``min_overlap``
    shared residues) and fills the residues still missing. Residues no template covers are
    placed on straight lines between their placed neighbours (beyond a terminus: 3.8 A steps
    outwards), so the trace is complete; ``known`` marks the residues a template placed."""
    bb = batch["template_backbone"].float()
    tmask = batch["template_backbone_mask"].bool() & batch["template_mask"].bool()[..., None]
    b, n_t, n = tmask.shape
    ca_out = torch.zeros(b, n, 3, dtype=bb.dtype, device=bb.device)
    known_out = torch.zeros(b, n, dtype=torch.bool, device=bb.device)
    for k in range(b):
        ca = torch.zeros(n, 3, dtype=bb.dtype, device=bb.device)
        known = torch.zeros(n, dtype=torch.bool, device=bb.device)
        for t in range(n_t):
            m = tmask[k, t]
            if not m.any():
                continue
            x = bb[k, t, :, 1]
            if known.any():
                both = known & m
                if int(both.sum()) < min_overlap:
                    continue
                rot, _ = _kabsch(x[both], ca[both])
                x = (x - x[both].mean(0)) @ rot.T + ca[both].mean(0)
            new = m & ~known
            ca[new] = x[new]
            known |= new
        if known.any():
            ca_out[k] = _fill_gaps(ca, known)
            known_out[k] = known
    return ca_out, known_out


def _fill_gaps(ca: torch.Tensor, known: torch.Tensor, step: float = rc.ca_ca_distance) -> torch.Tensor:
    """``ca [L, 3]`` with the residues not ``known`` placed between their known neighbours."""
    idx = torch.nonzero(known)[:, 0]
    out = ca.clone()
    for a, c in zip(idx[:-1].tolist(), idx[1:].tolist()):
        if c - a > 1:
            f = torch.linspace(0, 1, c - a + 1, dtype=ca.dtype, device=ca.device)[1:-1, None]
            out[a + 1:c] = ca[a] * (1 - f) + ca[c] * f
    centre = ca[known].mean(0)
    first, last = int(idx[0]), int(idx[-1])
    for end, direction in ((first, -1), (last, 1)):
        span = range(end - 1, -1, -1) if direction < 0 else range(end + 1, len(ca))
        out_dir = ca[end] - centre
        out_dir = out_dir / out_dir.norm().clamp(min=1e-6)
        for s, i in enumerate(span, 1):
            out[i] = ca[end] + out_dir * step * s
    return out

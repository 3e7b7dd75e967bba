"""Losses (all masked): distogram cross-entropy, backbone distance loss, pLDDT, PAE, chi torsions."""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from af2struct.common import residue_constants as rc
from af2struct.model.config import HeadsConfig
from af2struct.model.frames import aligned_error
from af2struct.model.heads import pae_breaks
from af2struct.model.mds import distances_to_bins, distogram_edges

CA = 1
BACKBONE = (0, 1, 2)  # N, CA, C in atom37


def distogram_loss(logits: torch.Tensor, pos37: torch.Tensor, mask37: torch.Tensor,
                   d_min: float = 2.0, d_max: float = 20.0) -> torch.Tensor:
    """Cross-entropy of ``logits [B, L, L, K]`` against binned true Calpha distances."""
    ca = pos37[:, :, CA]
    m = mask37[:, :, CA] > 0
    pair = m[:, :, None] & m[:, None, :]
    pair &= ~torch.eye(ca.shape[1], dtype=torch.bool, device=ca.device)
    target = distances_to_bins(torch.cdist(ca, ca), logits.shape[-1], d_min, d_max)
    ce = F.cross_entropy(logits.permute(0, 3, 1, 2).float(), target, reduction="none")
    return (ce * pair).sum() / pair.sum().clamp(min=1)


def backbone_distance_loss(backbone: torch.Tensor, pos37: torch.Tensor, mask37: torch.Tensor,
                           radius: float = 15.0, clamp: float = 10.0) -> torch.Tensor:
    """Mean |d_pred - d_true| (clamped) over backbone atom pairs (N, CA, C) closer than
    ``radius`` in the truth: an lDDT-like, superposition-free structure loss."""
    b, n = backbone.shape[:2]
    pred = backbone.reshape(b, n * 3, 3)
    true = pos37[:, :, list(BACKBONE)].reshape(b, n * 3, 3)
    m = (mask37[:, :, list(BACKBONE)] > 0).reshape(b, n * 3)
    dt = torch.cdist(true, true)
    dp = torch.cdist(pred, pred)
    pair = m[:, :, None] & m[:, None, :] & (dt < radius)
    err = (dp - dt).abs().clamp(max=clamp)
    return (err * pair).sum() / pair.sum().clamp(min=1)


@torch.no_grad()
def lddt_ca_per_residue(ca_pred: torch.Tensor, pos37: torch.Tensor, mask37: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` per-residue lDDT-CA of a prediction (inclusion 15 A, thresholds 0.5/1/2/4)."""
    ca = pos37[:, :, CA]
    m = mask37[:, :, CA] > 0
    dt = torch.cdist(ca, ca)
    dp = torch.cdist(ca_pred, ca_pred)
    eye = torch.eye(ca.shape[1], dtype=torch.bool, device=ca.device)
    pair = m[:, :, None] & m[:, None, :] & (dt < 15.0) & ~eye
    err = (dp - dt).abs()
    score = sum((err < t).float() for t in (0.5, 1.0, 2.0, 4.0)) / 4
    return (score * pair).sum(-1) / pair.sum(-1).clamp(min=1)


def plddt_cross_entropy(plddt_logits: torch.Tensor, lddt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over ``mask [B, L]`` of the cross-entropy of ``plddt_logits [B, L, bins]`` against the
    true per-residue lDDT ``[B, L]`` (0..1) in equal bins."""
    bins = plddt_logits.shape[-1]
    target = (lddt * bins).long().clamp(max=bins - 1)
    m = mask.bool()
    ce = F.cross_entropy(plddt_logits.permute(0, 2, 1).float(), target, reduction="none")
    return (ce * m).sum() / m.sum().clamp(min=1)


def plddt_loss(plddt_logits: torch.Tensor, ca_pred: torch.Tensor, pos37: torch.Tensor,
               mask37: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the pLDDT head against the binned true lDDT-CA of ``ca_pred``."""
    return plddt_cross_entropy(plddt_logits, lddt_ca_per_residue(ca_pred.detach(), pos37, mask37),
                               mask37[:, :, CA] > 0)


def pae_loss(pae_logits: torch.Tensor, backbone: torch.Tensor, pos37: torch.Tensor, mask37: torch.Tensor,
             pae_max: float) -> torch.Tensor:
    """Cross-entropy of the PAE head ``[B, L, L, bins]`` against the binned true aligned error
    of the predicted ``backbone [B, L, 3, 3]`` (no gradient into the structure), over pairs
    whose frame residue has N, CA and C and whose aligned residue has CA."""
    true_bb = pos37[:, :, list(BACKBONE)]
    with torch.no_grad():
        err = aligned_error(backbone.detach().float(), true_bb.float())
    has_frame = (mask37[:, :, list(BACKBONE)] > 0).all(-1)
    return pae_cross_entropy(pae_logits, err, has_frame[:, :, None] & (mask37[:, None, :, CA] > 0), pae_max)


def pae_cross_entropy(pae_logits: torch.Tensor, err: torch.Tensor, pair_mask: torch.Tensor,
                      pae_max: float) -> torch.Tensor:
    """Mean over the ``pair_mask [B, R, L]`` pairs of the cross-entropy of ``pae_logits
    [B, R, L, bins]`` against the binned true aligned error ``err [B, R, L]`` (A)."""
    target = torch.bucketize(err, pae_breaks(pae_logits.shape[-1], pae_max, err.device))  # breaks below err
    ce = F.cross_entropy(pae_logits.permute(0, 3, 1, 2).float(), target, reduction="none")
    return (ce * pair_mask).sum() / pair_mask.sum().clamp(min=1)


def chi_loss(chi_pred: torch.Tensor, chi_true: torch.Tensor, chi_mask: torch.Tensor,
             aatype: torch.Tensor) -> torch.Tensor:
    """Squared error of unit (sin, cos) vectors, with pi-periodic chis (ASP, GLU, PHE, TYR)
    scored against the closer of the two equivalent angles."""
    true = torch.stack([torch.sin(chi_true), torch.cos(chi_true)], -1)
    err = ((chi_pred - true) ** 2).sum(-1)
    err_alt = ((chi_pred + true) ** 2).sum(-1)
    periodic = torch.zeros(rc.restype_num + 3, 4, device=aatype.device)
    for res, k in (("D", 1), ("E", 2), ("F", 1), ("Y", 1)):
        periodic[rc.restype_order[res], k] = 1
    per = periodic[aatype.clamp(max=rc.restype_num + 2)] > 0
    err = torch.where(per, torch.minimum(err, err_alt), err)
    return (err * chi_mask).sum() / chi_mask.sum().clamp(min=1)


@torch.no_grad()
def long_range_contact_precision(logits: torch.Tensor, pos37: torch.Tensor, mask37: torch.Tensor, heads,
                                 min_sep: int = 24, contact: float = 8.0) -> torch.Tensor:
    """Mean over the batch of the top-L/5 precision of Calpha contacts (< ``contact`` A) at
    sequence separation >= ``min_sep``, ranked by the distogram's P(d < contact).

    ``logits [B, L, L, K]``; ``heads`` is the model's :class:`HeadsConfig` (bin edges)."""
    edges = distogram_edges(logits.shape[-1], heads.distogram_min, heads.distogram_max)
    k = int(torch.searchsorted(edges, torch.tensor(contact)))
    p_contact = torch.softmax(logits.float(), -1)[..., :k].sum(-1)
    ca, m = pos37[:, :, CA], mask37[:, :, CA] > 0
    true = torch.cdist(ca, ca) < contact
    n = ca.shape[1]
    idx = torch.arange(n, device=ca.device)
    far = (idx[None, :] - idx[:, None]) >= min_sep  # upper triangle, separation >= min_sep
    out = []
    for b in range(ca.shape[0]):
        ok = far & m[b][:, None] & m[b][None, :]
        length = int(m[b].sum())
        top = max(1, length // 5)
        if not ok.any():
            continue
        scores = p_contact[b][ok]
        order = torch.argsort(scores, descending=True, stable=True)[:top]
        out.append(true[b][ok][order].float().mean())
    return torch.stack(out).mean() if out else torch.tensor(float("nan"))


def total_loss(out: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor], weights: Dict[str, float],
               pae_max: float = HeadsConfig.pae_max) -> Dict[str, torch.Tensor]:
    """All losses for a batch; ``loss`` is their weighted sum (``pae_max``: the model's
    ``HeadsConfig.pae_max``)."""
    pos, m = batch["all_atom_positions"], batch["all_atom_mask"]
    terms = {"distogram": distogram_loss(out["distogram"], pos, m),
             "chi": chi_loss(out["chi"], batch["chi_angles"], batch["chi_mask"], batch["aatype"])}
    if "backbone" in out:
        terms["structure"] = backbone_distance_loss(out["backbone"], pos, m)
        terms["plddt"] = plddt_loss(out["plddt_logits"], out["ca"], pos, m)
        if "pae_logits" in out:
            terms["pae"] = pae_loss(out["pae_logits"], out["backbone"], pos, m, pae_max)
        with torch.no_grad():
            ca_m = m[:, :, CA]
            terms["lddt_ca"] = (lddt_ca_per_residue(out["ca"], pos, m) * ca_m).sum() / ca_m.sum().clamp(min=1)
    terms["loss"] = sum(weights.get(k, 0.0) * v for k, v in terms.items() if k != "lddt_ca")
    return terms

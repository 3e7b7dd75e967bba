"""The whole network: trunk -> distogram (+ pLDDT, torsions) -> MDS -> SE(3) refinement.

:class:`Af2StructModel` takes a typed config and a feature batch, as OpenFold's
``AlphaFold(config)`` / ``forward(batch)`` do: ``Af2StructModel(config)(batch)`` returns the
distogram logits ``[B, L, L, 37]`` (every trunk output with ``return_all``); the batch's keys,
shapes and meanings are written once, in :data:`BATCH_FEATURES`. :meth:`Af2StructModel.predict`
is the inference call: features in, every output decoded (pLDDT 0-100, PAE in Angstrom, distogram
and its bin edges, coordinates) in one dict. alphafold2-pytorch's constructor keywords and call
(``Alphafold2(dim=..., depth=...)(seq, msa, mask=...)``) are mapped onto these once, in
:mod:`af2struct.model.alphafold2_pytorch` (``from af2struct import Alphafold2``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from af2struct.common.residue_constants import SequenceError
from af2struct.model.config import ModelConfig
from af2struct.model.heads import (
    DistogramHead,
    PAEHead,
    PLDDTHead,
    TorsionHead,
    has_template_backbone,
    pae_bin_centers,
    pae_context_features,
    pae_from_logits,
    plddt_from_logits,
    structure_agreement,
    template_support,
)
from af2struct.model.mds import center_distogram, distances_to_bins, distogram_edges, weighted_mds
from af2struct.model.pae_ensemble import PaeCalibrator, aligned_spread, calibrator_features, with_spread
from af2struct.model.potential import DistogramLikelihood, top_template_restraints
from af2struct.model.se3_refine import SE3Refiner, trace_backbone
from af2struct.model.templates import template_trace
from af2struct.model.trunk import Trunk, has_templates

#: The feature batch the network consumes, written once (:func:`af2struct.data.features.collate`
#: makes it from per-example features; ``B`` examples, ``L`` residues, ``N`` MSA rows, ``T``
#: templates): key -> (shape and dtype, meaning). The ``template_*`` keys are optional; a model
#: with template modules uses them.
BATCH_FEATURES: Dict[str, Tuple[str, str]] = {
    "aatype": ("[B, L] int64", "residue types (residue_constants.restypes order; 20 = unknown)"),
    "residue_index": ("[B, L] int64", "residue numbers: relative positions come from them"),
    "seq_mask": ("[B, L] float32", "1 for a residue, 0 for padding"),
    "msa": ("[B, N, L] int64", "alignment rows, row 0 the query (20 = unknown, 21 = gap); one row: no MSA path"),
    "msa_mask": ("[B, N, L] float32", "1 for a real MSA entry"),
    "deletion_value": ("[B, N, L] float32", "2/pi arctan(d/3) of the d residues deleted before each position"),
    "template_aatype": ("[B, T, L] int64", "template residue at each query position (21 = gap)"),
    "template_backbone": ("[B, T, L, 3, 3] float32", "template N, CA, C at each query position (A)"),
    "template_backbone_mask": ("[B, T, L] float32", "1 where the query position is aligned to an observed residue"),
    "template_torsions": ("[B, T, L, 3, 2] float32", "sin, cos of the template's phi, psi, omega"),
    "template_torsion_mask": ("[B, T, L, 3] float32", "1 where the torsion exists in the template"),
    "template_mask": ("[B, T] float32", "1 for a real template"),
    # precomputed template inputs instead of the above (alphafold2-pytorch 0.4's, mapped by
    # af2struct.model.alphafold2_pytorch): pair features, which residues each template has, and
    # per-residue features that become extra MSA rows
    "template_pair_features": ("[B, T, L, L, F] float32", "precomputed template pair features"),
    "template_residue_mask": ("[B, T, L] bool", "1 where a template with precomputed features has the residue"),
    "template_angle_features": ("[B, T, L, A] float32", "precomputed per-residue template features"),
}
#: Keys of :data:`BATCH_FEATURES` a batch may leave out (see :func:`batch_inputs`).
OPTIONAL_FEATURES = ("residue_index", "seq_mask", "msa", "msa_mask", "deletion_value")
#: What training adds to the batch: the losses' targets (the network never reads them).
BATCH_LABELS: Dict[str, Tuple[str, str]] = {
    "all_atom_positions": ("[B, L, 37, 3] float32", "the native's atom37 coordinates (A)"),
    "all_atom_mask": ("[B, L, 37] float32", "1 where the native has the atom"),
    "chi_angles": ("[B, L, 4] float32", "the native's chi1-4 (radians, 0 where undefined)"),
    "chi_mask": ("[B, L, 4] float32", "1 where the chi angle exists"),
}

class Af2StructModel(nn.Module):
    """Features -> distogram, pLDDT, torsions, PAE and (``predict``) coordinates.

    ``config``: a :class:`~af2struct.model.config.ModelConfig` (a preset of
    :mod:`af2struct.model.config`; the default config when omitted).
    """

    def __init__(self, config: Optional[ModelConfig] = None) -> None:
        super().__init__()
        config = config or ModelConfig()
        self.config = config
        t, h, tpl = config.trunk, config.heads, config.templates
        own = tpl.enabled and tpl.own_trunk
        self.trunk = Trunk(t, h.distogram_bins, None if own else tpl)
        self.distogram_head = DistogramHead(t.z_dim, h)
        # templates.own_trunk: a trunk and distogram head for inputs with a template
        self.templated = nn.ModuleDict({"trunk": Trunk(t, h.distogram_bins, tpl),
                                        "distogram_head": DistogramHead(t.z_dim, h)}) if own else None
        self.plddt_head = PLDDTHead(t.dim, h, t.z_dim)
        self.torsion_head = TorsionHead(t.dim)
        self.pae_head = PAEHead(t.z_dim, h) if h.pae_bins else None
        self.pae_calibrator = PaeCalibrator() if h.pae_calibrator else None
        self._refiner = None
        if config.structure.use_se3:
            self._refiner = SE3Refiner(config.structure, t.dim, t.z_dim)

    # ------------------------------------------------------------------ trunk + heads
    @property
    def template_trunk(self) -> Optional[Trunk]:
        """The trunk that reads templates (none in a model without template modules)."""
        if self.templated is not None:
            return self.templated["trunk"]
        return self.trunk if self.trunk.template is not None else None

    def run_trunk(self, seq, msa=None, mask=None, msa_mask=None, residue_index=None, deletion_value=None,
                  num_recycles: Optional[int] = None,
                  templates: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, torch.Tensor]:
        """Trunk with recycling; returns ``single [B, L, C]``, ``pair``, ``distogram`` logits,
        ``chi [B, L, 4, 2]``, with a PAE head ``pae_logits [B, L, L, bins]``, and ``plddt_logits [B, L, bins]``
        unless the pLDDT head needs the structure (``heads.plddt_context``: then :meth:`structure` adds it).
        With ``templates.own_trunk``, the examples with a template go through :attr:`templated`'s
        trunk and distogram head, the others through the first ones."""
        args = (seq, msa, mask, msa_mask, residue_index, deletion_value)
        rows = templated_rows(templates) if self.templated is not None else None
        if rows is None or not bool(rows.any()):
            s, z, logits = self._recycle(self.trunk, self.distogram_head, args, num_recycles, templates)
        elif bool(rows.all()):
            s, z, logits = self._recycle(self.templated["trunk"], self.templated["distogram_head"], args,
                                         num_recycles, templates)
        else:  # a mixed batch: each part through its trunk, put back in the batch's order
            parts, order = [], []
            for sel, trunk, head in ((~rows, self.trunk, self.distogram_head),
                                     (rows, self.templated["trunk"], self.templated["distogram_head"])):
                idx = sel.nonzero().squeeze(1)
                part_args = tuple(None if a is None else a[idx] for a in args)
                part_tpl = {k: v[idx] for k, v in templates.items()}
                parts.append(self._recycle(trunk, head, part_args, num_recycles, part_tpl))
                order.append(idx)
            back = torch.argsort(torch.cat(order))
            s, z, logits = (torch.cat(xs)[back] for xs in zip(*parts))
        out = {"single": s, "pair": z, "distogram": logits, "chi": self.torsion_head(s)}
        if not self.config.heads.plddt_context:  # else pLDDT comes with the structure (:meth:`structure`)
            out["plddt_logits"] = self.plddt_head(s)
        if self.pae_head is not None:
            out["pae_logits"] = self.pae_head(z)
        return out

    def _recycle(self, trunk: Trunk, head: DistogramHead, args: tuple, num_recycles: Optional[int],
                 templates: Optional[Dict[str, torch.Tensor]]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``trunk`` and ``head`` with recycling: ``(single, pair, distogram logits)`` of the last cycle."""
        cycles = self.config.trunk.num_recycles if num_recycles is None else num_recycles
        h = self.config.heads
        prev_z = prev_bins = None
        for c in range(cycles + 1):
            last = c == cycles
            with torch.set_grad_enabled(torch.is_grad_enabled() and last):
                s, z = trunk(*args, prev_z, prev_bins, templates)
                logits = head(z)
            if not last:
                prev_z = z.detach()
                d, _ = center_distogram(logits.detach(), h.distogram_min, h.distogram_max)
                prev_bins = distances_to_bins(d, h.distogram_bins, h.distogram_min, h.distogram_max)
        return s, z, logits

    def forward(self, batch: Dict[str, torch.Tensor], num_recycles: Optional[int] = None,
                return_all: bool = False):
        """Distogram logits ``[B, L, L, bins]`` (every trunk output with ``return_all``) of a
        feature ``batch`` (:data:`BATCH_FEATURES`; its ``template_*`` features are used when the
        model has template modules)."""
        templates = {k: v for k, v in batch.items() if k.startswith("template_")} or None
        out = self.run_trunk(*batch_inputs(batch), num_recycles=num_recycles, templates=templates)
        return out if return_all else out["distogram"]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, batch: Dict[str, torch.Tensor], num_recycles: Optional[int] = None,
                timings: Optional[Dict[str, float]] = None) -> Dict[str, torch.Tensor]:
        """Inference on a feature ``batch`` (:data:`BATCH_FEATURES`): trunk with
        recycling, then the structure stages, every head decoded. Returns ``plddt [B, L]`` (0-100),
        ``distogram [B, L, L, bins]`` logits with ``bin_edges [bins]`` (A; the last bin is "at or
        beyond"), ``backbone [B, L, 3, 3]`` (N, CA, C), ``chi [B, L, 4, 2]`` (sin, cos), ``ca_mds``
        and ``ca [B, L, 3]`` (the MDS and the refined Calpha traces), and, with a PAE head,
        ``pae [B, L, L]`` (A; row = the residue whose frame aligns; the head's: with templates the
        pipeline adds the ensemble's spread, :meth:`pae_with_spread`) and ``max_pae`` (the largest
        value the head can report, 31.75 A); ``templated [B]``: which examples had a template.
        Raises ``SequenceError`` for a sequence longer than ``trunk.max_seq_len`` and
        ``ValueError`` for template features given to a model without template modules.
        ``timings``, if given, gets the seconds of the ``trunk`` and ``structure`` stages."""
        n, max_len = batch["aatype"].shape[-1], self.config.trunk.max_seq_len
        if n > max_len:
            raise SequenceError(f"sequence of {n} residues exceeds the model's max_seq_len={max_len}")
        templates = {k: v for k, v in batch.items() if k.startswith("template_")} or None
        if templates is not None and self.template_trunk is None and bool(batch["template_mask"].any()):
            raise ValueError("these weights have no template modules: predict without templates, or with "
                             "weights trained with templates (the shipped ones are)")
        t0 = time.perf_counter()
        mask = batch["seq_mask"] > 0
        h = self.config.heads
        with deterministic_algorithms():
            out = self(batch=batch, num_recycles=num_recycles, return_all=True)
            t1 = time.perf_counter()
            out = self.structure(out, mask, templates=templates, aatype=batch["aatype"])
        if timings is not None:
            timings.update(trunk=t1 - t0, structure=time.perf_counter() - t1)
        dev = out["distogram"].device
        result = {"plddt": plddt_from_logits(out["plddt_logits"]), "distogram": out["distogram"],
                  "bin_edges": distogram_edges(h.distogram_bins, h.distogram_min, h.distogram_max).to(dev),
                  "backbone": out["backbone"], "chi": out["chi"], "ca_mds": out["ca_mds"], "ca": out["ca"]}
        rows = templated_rows(templates)
        result["templated"] = torch.zeros(mask.shape[0], dtype=torch.bool, device=dev) if rows is None else rows
        if "pae_logits" in out:
            result["pae"] = pae_from_logits(out["pae_logits"], h.pae_max)
            result["max_pae"] = pae_bin_centers(h.pae_bins, h.pae_max, dev)[-1]
        return result

    @torch.no_grad()
    def pae_with_spread(self, pae: torch.Tensor, distogram: torch.Tensor, ca: torch.Tensor,
                        plddt: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``pae [L, L]`` of one templated prediction with the spread of the structures its
        distogram (logits ``[L, L, K]``) allows around its written Calpha trace ``ca [L, 3]``
        (:mod:`af2struct.model.pae_ensemble`; the prediction pipeline applies it to the written
        model): read by the model's :class:`~af2struct.model.pae_ensemble.PaeCalibrator` with
        ``plddt [L]`` where it has one (``heads.pae_calibrator``), else added in quadrature; as is
        when ``structure.pae_spread_steps`` is 0. The result can exceed the head's range."""
        if self.config.structure.pae_spread_steps <= 0:
            return pae
        h = self.config.heads
        spread = aligned_spread(distogram.float(), ca.float(), self.config.structure, h.distogram_min, h.distogram_max)
        if self.pae_calibrator is not None and plddt is not None:
            return self.pae_calibrator(calibrator_features(pae, spread, plddt, ca)).to(pae.dtype)
        return with_spread(pae, spread.to(pae.dtype))

    # ------------------------------------------------------------------ structure
    def structure(self, out: Dict[str, torch.Tensor], mask: torch.Tensor, mds_grad: bool = False,
                  mds_iters: Optional[int] = None, lbfgs_iters: int = 300,
                  potential_iters: Optional[int] = None,
                  templates: Optional[Dict[str, torch.Tensor]] = None,
                  aatype: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """MDS on the distogram, then (``structure.potential_iters`` > 0) the trace refined on the
        distogram's likelihood (:mod:`af2struct.model.potential`), then SE(3) refinement. Adds
        ``ca_mds [B, L, 3]`` (the MDS trace), ``ca_init`` (what SE(3) starts from), ``ca``,
        ``backbone [B, L, 3, 3]`` (N, CA, C) and (``heads.plddt_context``) ``plddt_logits`` to ``out``.
        With ``templates`` (the model's template features) and ``structure.template_init``, MDS
        starts from the templates' Calpha trace (:func:`~af2struct.model.templates.template_trace`)
        rather than from classical MDS of the distogram; with ``aatype [B, L]`` (the query) also,
        the refinement is restrained to the top template (``structure.template_restraint_scale``).

        Runs in float32 whatever autocast is active around it (a bf16 trunk's outputs are cast up):
        MDS, the likelihood refinement and the SE(3) coordinates need float32 precision."""
        out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
        with torch.autocast(out["distogram"].device.type, enabled=False):
            init = None
            if self.config.structure.template_init and self.template_trunk is not None \
                    and has_template_backbone(templates):
                ca_t, known = template_trace(templates)
                if bool(known.any(-1).all()):
                    init = _centered(ca_t, mask)
            support = template_support(templates, mask) if has_templates(templates) else None
            restraints = None
            scale = self.config.structure.template_restraint_scale
            if init is not None and scale > 0 and aatype is not None:
                restraints = top_template_restraints(templates, aatype, scale)
            return self._structure(out, mask, mds_grad, mds_iters, lbfgs_iters, potential_iters, init, support,
                                   templates if has_templates(templates) else None, restraints)

    def _structure(self, out: Dict[str, torch.Tensor], mask: torch.Tensor, mds_grad: bool,
                   mds_iters: Optional[int], lbfgs_iters: int, potential_iters: Optional[int],
                   init: Optional[torch.Tensor] = None, support: Optional[torch.Tensor] = None,
                   templates: Optional[Dict[str, torch.Tensor]] = None,
                   restraints: Optional[list] = None) -> Dict[str, torch.Tensor]:
        h = self.config.heads
        sc = self.config.structure
        iters = (sc.mds_iters if init is None else sc.template_mds_iters) if mds_iters is None else mds_iters
        p_iters = sc.potential_iters if potential_iters is None else potential_iters
        logits = out["distogram"] if mds_grad else out["distogram"].detach()
        d, w = center_distogram(logits, h.distogram_min, h.distogram_max, mask=mask.bool())
        with torch.set_grad_enabled(torch.is_grad_enabled() and mds_grad):
            ca_mds, _ = weighted_mds(d, w, iters=iters, d_max=h.distogram_max, mask=mask.bool(),
                                     fix_mirror=init is None, init=init, lbfgs_iters=lbfgs_iters)
        ca_mds = _centered(ca_mds, mask)
        ca_init = ca_mds
        far_width = sc.potential_far_width
        if init is not None:  # started from templates: its own likelihood refinement
            p_iters, far_width = sc.template_potential_iters, sc.template_potential_far_width
        if p_iters > 0:
            # one likelihood (its pair tables) for every start refined on it and their comparison
            likelihood = DistogramLikelihood(out["distogram"], mask, far_width, h.distogram_min, h.distogram_max,
                                             restraints)
            ca_init = _centered(likelihood.refine(ca_mds, p_iters), mask)
            if init is not None and sc.template_direct_start:  # the trace itself, refined
                direct = _centered(likelihood.refine(init, p_iters), mask)
                keep = (likelihood.nll(direct) < likelihood.nll(ca_init))[:, None, None]
                ca_mds, ca_init = torch.where(keep, init, ca_mds), torch.where(keep, direct, ca_init)
        out = dict(out, ca_mds=ca_mds, ca_init=ca_init)
        if self._refiner is None or (init is not None and not sc.se3_with_templates):
            # without SE(3): N and C directions from the neighbours along the trace
            out.update(ca=ca_init, backbone=trace_backbone(ca_init))
        else:
            ca, backbone = self._refiner(ca_init, out["single"], out["pair"], mask.bool())
            out.update(ca=ca, backbone=backbone)
        if h.plddt_context:
            agreement = structure_agreement(out["distogram"].detach(), out["ca"].detach(), mask, h)
            out["plddt_logits"] = self.plddt_head(out["single"], out["pair"], mask, agreement, support)
            if self.pae_head is not None and self.pae_head.context is not None and "pae_logits" in out:
                out["pae_context"] = pae_context_features(
                    out["distogram"].detach(), out["ca"].detach(), plddt_from_logits(out["plddt_logits"].detach()),
                    support, agreement, mask, h, templates)
                out["pae_logits"] = self.pae_head.with_context(out["pae_logits"], out["pae_context"])
        return out


@contextlib.contextmanager
def deterministic_algorithms():
    """Same input, same atoms: torch's deterministic kernels for the duration (restored after).
    The structure stage's L-BFGS minimisers take gradients through gathers with repeated indices
    (``x[i] - x[j]`` over all pairs), whose backward accumulates with several threads in an
    order that varies from run to run (a 382-residue templated target moved by up to 0.1 A
    between two runs); the deterministic accumulation is as fast on the CPU."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _centered(ca: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ca [B, L, 3]`` moved so the centroid of its ``mask [B, L]`` residues is the origin."""
    return ca - (ca * mask[..., None]).sum(1, keepdim=True) / mask.sum(1).clamp(min=1)[:, None, None]


def templated_rows(templates: Optional[Dict[str, torch.Tensor]]) -> Optional[torch.Tensor]:
    """``[B]`` bool: which examples of a batch have a template (a real ``template_mask`` slot, or
    a residue of precomputed template features); none without template features."""
    if not has_templates(templates):
        return None
    if "template_pair_features" in templates:
        mask = templates.get("template_residue_mask")
        if mask is None:
            return torch.ones(templates["template_pair_features"].shape[0], dtype=torch.bool,
                              device=templates["template_pair_features"].device)
        return mask.flatten(1).any(1)
    return templates["template_mask"].flatten(1).any(1)


def batch_inputs(batch: Dict[str, torch.Tensor]) -> tuple:
    """``(seq, msa, mask, msa_mask, residue_index, deletion_value)`` from a feature batch
    (:data:`BATCH_FEATURES`); a single-sequence MSA is passed as none (the trunk then skips the
    MSA path), and optional inputs a batch leaves out as none (the trunk's defaults: every
    residue present, numbered 0..L-1, no deletions)."""
    msa = batch["msa"] if "msa" in batch and batch["msa"].shape[1] > 1 else None
    mask = batch["seq_mask"] > 0 if "seq_mask" in batch else None
    msa_mask = (batch["msa_mask"] > 0) if msa is not None and "msa_mask" in batch else None
    return (batch["aatype"], msa, mask, msa_mask, batch.get("residue_index"),
            batch.get("deletion_value") if msa is not None else None)

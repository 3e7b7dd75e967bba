"""The trunk: embeddings (+ templates) + a stack of Evoformer-style blocks (plain or reversible)."""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from af2struct.model.config import TemplateConfig, TrunkConfig
from af2struct.model.embeddings import InputEmbedder
from af2struct.model.evoformer import EvoformerBlock
from af2struct.model.reversible import PlainStack, ReversibleStack
from af2struct.model.templates import TemplateEmbedder


def has_templates(templates: Optional[Dict[str, torch.Tensor]]) -> bool:
    """Whether a template feature dict holds at least one template slot (``T > 0``)."""
    if not templates:
        return False
    key = "template_pair_features" if "template_pair_features" in templates else "template_mask"
    return key in templates and templates[key].shape[1] > 0


class Trunk(nn.Module):
    def __init__(self, cfg: TrunkConfig, bins: int, templates: Optional[TemplateConfig] = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = InputEmbedder(cfg, bins)
        self.template = None
        if templates is not None and templates.enabled:
            self.template = TemplateEmbedder(templates, cfg.dim, cfg.z_dim, cfg.attn_chunk_size)
        blocks = [EvoformerBlock(cfg, i, has_unaligned=True) for i in range(cfg.depth)]
        self.stack = ReversibleStack(blocks) if cfg.reversible else PlainStack(blocks)
        self.norm_s = nn.LayerNorm(cfg.dim)
        self.norm_z = nn.LayerNorm(cfg.z_dim)

    def forward(self, seq, msa=None, mask=None, msa_mask=None, residue_index=None, deletion_value=None,
                prev_z=None, prev_bins=None, templates: Optional[Dict[str, torch.Tensor]] = None):
        """Returns the sequence row ``s [B, L, C]`` and the pair ``z [B, L, L, Cz]``.
        ``templates``: the ``template_*`` features of :data:`af2struct.model.network.BATCH_FEATURES`
        (``[B, T, ...]``); ignored by a model built without template modules, skipped when ``T = 0``."""
        b, n = seq.shape
        if n > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {n} exceeds max_seq_len={self.cfg.max_seq_len}")
        if mask is None:
            mask = torch.ones_like(seq, dtype=torch.bool)
        mask = mask.bool()
        if msa is not None and msa_mask is None:
            msa_mask = torch.ones_like(msa, dtype=torch.bool)
        a, u, z, aligned = self.embed(seq, msa, msa_mask, residue_index, deletion_value, prev_z, prev_bins)
        a_mask = mask[:, None]
        u_mask = None
        if msa is not None:
            if aligned:
                a_mask = torch.cat([a_mask, msa_mask.bool() & mask[:, None]], dim=1)
            else:
                u_mask = msa_mask.bool()
        if self.template is not None and has_templates(templates):
            update, rows, row_mask = self.template(z, templates, mask)
            z = z + update
            if rows is not None:  # template torsions: extra MSA rows (aligned with the query)
                a = torch.cat([a, rows.to(a.dtype)], dim=1)
                a_mask = torch.cat([a_mask, row_mask], dim=1)
        pair_mask = mask[:, :, None] & mask[:, None, :]
        # nothing padded (the usual case): no mask is applied anywhere (same result, less work)
        if bool(a_mask.all()):
            a_mask, pair_mask = None, None
        if u_mask is not None and bool(u_mask.all()):
            u_mask = None
        a, u, z = self.stack((a, u, z), (a_mask, u_mask, pair_mask))
        return self.norm_s(a[:, 0]), self.norm_z(z)

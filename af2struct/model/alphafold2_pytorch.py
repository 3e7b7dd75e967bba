"""alphafold2-pytorch at the door: its ``Alphafold2`` constructor and call, mapped once onto
af2struct's :class:`~af2struct.model.network.Af2StructModel` (a typed config and a feature batch).

The project af2struct started from (lucidrains' alphafold2-pytorch) builds its model with
keywords and calls it with tensors::

    model = Alphafold2(dim=256, depth=2, heads=8, dim_head=64, reversible=True,
                       sparse_self_attn=(True, False), cross_attn_compress_ratio=3)
    distogram = model(seq, msa, mask=mask, msa_mask=msa_mask)            # [B, L, L, 37]

and, from its 0.4, templates as precomputed features (``templates_dim``,
``templates_embed_layers``, ``templates_angles_feats_dim``; ``model(..., templates_feats=,
templates_mask=, templates_angles=)``). Here the keywords become fields of a
:class:`~af2struct.model.config.ModelConfig` (:func:`config_from_keywords`) its call goes to the same trunk, the
template tensors as the ``template_pair_features``, ``template_residue_mask`` and
``template_angle_features`` of :data:`~af2struct.model.network.BATCH_FEATURES`
(:func:`template_inputs`). ``from af2struct import Alphafold2`` is this
class; its README's examples run unchanged (``tests/model/test_alphafold2_pytorch_readme.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import torch

from af2struct.model.config import ModelConfig, SparseSpec, TrunkConfig
from af2struct.model.network import Af2StructModel

#: alphafold2-pytorch's template keywords -> af2struct's TemplateConfig fields
TEMPLATE_KEYWORDS = {"templates_dim": "raw_feat_dim", "templates_embed_layers": "blocks",
                     "templates_angles_feats_dim": "angle_feat_dim"}


def config_from_keywords(config: Optional[ModelConfig] = None, **keywords) -> ModelConfig:
    """``config`` (default: :class:`ModelConfig`'s) with alphafold2-pytorch's constructor
    keywords applied: ``dim``, ``depth``, ``heads``, ``dim_head``, ``reversible``,
    ``max_seq_len``, ``sparse_self_attn``, ``cross_attn_compress_ratio``, ``inter_msa_self_attn``
    and any other :class:`TrunkConfig` field set the trunk; the ``templates_*`` keywords turn
    the template modules on (precomputed features). ``None`` leaves a field as it is; an
    unknown keyword is a ``TypeError``."""
    config = config or ModelConfig()
    given = {k: v for k, v in keywords.items() if v is not None}
    templates = {TEMPLATE_KEYWORDS[k]: given.pop(k) for k in list(given) if k in TEMPLATE_KEYWORDS}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(TrunkConfig)})
    if unknown:
        raise TypeError(f"Alphafold2: unknown argument(s) {unknown}")
    if "dim" in given and "pair_dim" not in given and config.trunk.pair_dim is not None:
        given["pair_dim"] = None  # alphafold2-pytorch has one width: the pair follows dim
    if given:
        config = dataclasses.replace(config, trunk=dataclasses.replace(config.trunk, **given))
    if templates:
        config = dataclasses.replace(config, templates=dataclasses.replace(
            config.templates, enabled=True, zero_init=False, **templates))
    return config


def template_inputs(templates_feats: Optional[torch.Tensor], templates_mask: Optional[torch.Tensor] = None,
                    templates_angles: Optional[torch.Tensor] = None) -> Optional[Dict[str, torch.Tensor]]:
    """alphafold2-pytorch's template tensors (``templates_feats [B, T, L, L, F]``,
    ``templates_mask [B, T, L]``, ``templates_angles [B, T, L, A]``) as the precomputed template
    inputs of :data:`~af2struct.model.network.BATCH_FEATURES`; ``None`` without ``templates_feats``."""
    if templates_feats is None:
        return None
    if templates_mask is None:
        templates_mask = torch.ones(templates_feats.shape[:3], dtype=torch.bool, device=templates_feats.device)
    out = {"template_pair_features": templates_feats, "template_residue_mask": templates_mask.bool()}
    if templates_angles is not None:
        out["template_angle_features"] = templates_angles
    return out


class Alphafold2(Af2StructModel):
    """alphafold2-pytorch's ``Alphafold2``: its keywords (or ``config=``, a preset, with keywords
    overriding its trunk fields), its call (``model(seq, msa, mask=, msa_mask=)``) and, as every
    :class:`~af2struct.model.network.Af2StructModel`, ``model(batch=...)`` and ``predict``."""

    def __init__(self, dim: Optional[int] = None, depth: Optional[int] = None, heads: Optional[int] = None,
                 dim_head: Optional[int] = None, reversible: Optional[bool] = None, max_seq_len: Optional[int] = None,
                 sparse_self_attn: Optional[SparseSpec] = None, cross_attn_compress_ratio: Optional[int] = None,
                 inter_msa_self_attn: Optional[bool] = None, templates_dim: Optional[int] = None,
                 templates_embed_layers: Optional[int] = None, templates_angles_feats_dim: Optional[int] = None,
                 *, config: Optional[ModelConfig] = None, **trunk_overrides) -> None:
        super().__init__(config_from_keywords(
            config, dim=dim, depth=depth, heads=heads, dim_head=dim_head, reversible=reversible,
            max_seq_len=max_seq_len, sparse_self_attn=sparse_self_attn,
            cross_attn_compress_ratio=cross_attn_compress_ratio, inter_msa_self_attn=inter_msa_self_attn,
            templates_dim=templates_dim, templates_embed_layers=templates_embed_layers,
            templates_angles_feats_dim=templates_angles_feats_dim, **trunk_overrides))

    def forward(self, seq=None, msa=None, mask=None, msa_mask=None, residue_index=None, deletion_value=None,
                num_recycles: Optional[int] = None, return_all: bool = False, batch: Optional[Dict] = None,
                templates_feats=None, templates_mask=None, templates_angles=None):
        """Distogram logits ``[B, L, L, bins]`` (every trunk output with ``return_all``), from
        alphafold2-pytorch's tensors (its ``msa`` rows as it means them: aligned sequences beside
        ``seq``, one row included) or a feature ``batch``."""
        if batch is not None:
            return super().forward(batch, num_recycles=num_recycles, return_all=return_all)
        if templates_feats is not None and self.template_trunk is None:
            raise ValueError("templates_feats given to a model built without templates (pass templates_dim=...)")
        out = self.run_trunk(seq, msa, mask, msa_mask, residue_index, deletion_value, num_recycles,
                             template_inputs(templates_feats, templates_mask, templates_angles))
        return out if return_all else out["distogram"]

"""Model configuration: typed dataclasses with presets; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import json
import logging
import typing
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

T = TypeVar("T")
logger = logging.getLogger(__name__)

# keys that older configs carried but that name a path or device: dropped when read (a
# checkpoint is data and must not choose where the program reads or writes)
_RUNTIME_KEYS = {"StructureConfig": ("se3_cache_dir",)}

SparseSpec = Union[bool, Tuple[bool, ...]]


def _from_dict(cls: Type[T], d: Mapping[str, Any], where: str) -> T:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    d = dict(d)
    for key in _RUNTIME_KEYS.get(cls.__name__, ()):
        if d.pop(key, None) is not None:
            logger.warning("%s.%s ignored: a runtime setting is never taken from a model config or checkpoint "
                           "(set it on the command line or in the environment)", where, key)
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kw = {}
    for k, v in d.items():
        sub = _NESTED.get((cls.__name__, k))
        kw[k] = _from_dict(sub, v, f"{where}.{k}") if sub is not None else v
        if k == "sparse_self_attn" and isinstance(v, list):
            kw[k] = tuple(v)
    return cls(**kw)


@dataclasses.dataclass(frozen=True)
class TrunkConfig:
    """Evoformer-style trunk over an MSA/sequence stack [B, N, L, dim] and a pair [B, L, L, pair_dim].

    Attributes:
        dim: MSA/sequence channel width (C_m).
        pair_dim: pair channel width (C_z); defaults to ``dim``.
        depth: number of blocks.
        heads, dim_head: attention heads and width per head (MSA attention).
        pair_heads, pair_dim_head: for triangle attention on the pair.
        max_seq_len: longest sequence accepted (clear error beyond).
        max_rel_pos: relative-position clipping for the pair embedding.
        reversible: reversible residual coupling (activations not stored for backward).
        sparse_self_attn: block-sparse row attention (bool or one bool per layer).
        sparse_block_size, sparse_num_global: the block-sparse pattern (local blocks + globals).
        cross_attn_compress_ratio: keys/values of the MSA pooled by a strided convolution in the
            sequence<->MSA cross attention (1 = no compression).
        inter_msa_self_attn: column attention across MSA sequences (False: each sequence only
            attends within itself).
        attn_chunk_size: attention is evaluated this many rows at a time (memory O(L^2)).
        attn_saved_probs_mib: in training on a CPU, triangle attention keeps its probabilities
            for backward (``pair_heads * L^3`` floats per module) up to this many MiB per module;
            beyond, it keeps two numbers per query and recomputes them in backward (memory
            O(L^2) instead of O(L^3), ~40 % more attention time). 0 = always recompute.
        triangle_mult: triangle multiplicative updates in each block.
        triangle_attn: triangle (axial) attention on the pair in each block.
        num_recycles: extra passes feeding the pair and CA distances back (0 = single pass).
    """

    dim: int = 64
    pair_dim: Optional[int] = None
    depth: int = 4
    heads: int = 4
    dim_head: int = 16
    pair_heads: int = 4
    pair_dim_head: int = 16
    max_seq_len: int = 2048
    max_rel_pos: int = 32
    reversible: bool = False
    sparse_self_attn: SparseSpec = False
    sparse_block_size: int = 16
    sparse_num_global: int = 4
    cross_attn_compress_ratio: int = 1
    inter_msa_self_attn: bool = True
    attn_chunk_size: int = 64
    attn_saved_probs_mib: int = 1024
    triangle_mult: bool = True
    triangle_attn: bool = True
    transition_factor: int = 2
    num_recycles: int = 0

    def __post_init__(self) -> None:
        if self.depth < 1 or self.dim < 1 or self.heads < 1:
            raise ValueError("TrunkConfig: depth, dim and heads must be >= 1")
        if self.cross_attn_compress_ratio < 1:
            raise ValueError("TrunkConfig: cross_attn_compress_ratio must be >= 1")
        if isinstance(self.sparse_self_attn, tuple) and len(self.sparse_self_attn) != self.depth:
            raise ValueError(
                f"TrunkConfig: sparse_self_attn has {len(self.sparse_self_attn)} entries for depth {self.depth}"
            )

    @property
    def z_dim(self) -> int:
        return self.pair_dim or self.dim

    def sparse_for_layer(self, i: int) -> bool:
        s = self.sparse_self_attn
        return bool(s[i]) if isinstance(s, tuple) else bool(s)


@dataclasses.dataclass(frozen=True)
class StructureConfig:
    """Distogram -> MDS -> SE(3) refinement -> full atom."""

    mds_iters: int = 200
    # L-BFGS iterations on the distogram's negative log-likelihood after MDS (0 = off: see
    # af2struct.model.potential for why) and the width (A) the far bin's probability is spread over
    potential_iters: int = 0
    potential_far_width: float = 20.0
    # with templates: MDS starts from the templates' Calpha trace (af2struct.model.templates.
    # template_trace) instead of classical MDS, so the distogram refines a template-shaped start
    template_init: bool = True
    # SE(3) refinement of a template-started trace (False: skipped; the shipped refiner was trained
    # on template-free traces and moves a template-started one away from the truth, measured:
    # validation TM 0.74 -> 0.71, lDDT-CA 0.66 -> 0.60; again 2026-12-06 on 25 held-out dev
    # chains after the likelihood refinement: TM 0.802 -> 0.764, lDDT-CA 0.751 -> 0.634)
    se3_with_templates: bool = False
    # with templates, a second start: the templates' trace refined on the distogram without MDS;
    # the structure the distogram finds likelier is kept (MDS now and then pulls a small chain
    # away from a right template: dev chains TM 0.802 -> 0.814, 1WU9_A 0.34 -> 0.65; starting
    # from each template in turn or from classical MDS as well added nothing)
    template_direct_start: bool = True
    # a template-started trace refined on the distogram's likelihood (chosen on 6 held-out
    # validation chains with templates: TM 0.769 -> 0.785, lDDT-CA 0.697 -> 0.719 at 100 steps;
    # 200 steps 0.788; far width 20 A beat 100 A; with the second start, 60 steps for each: 25
    # held-out dev chains TM 0.8159 -> 0.8155, lDDT-CA 0.7524 -> 0.7520, in 0.62x the time; 30
    # steps since the PAE's ensemble term, below, to pay for it: 83 dev chains, 60 / 40 / 30 steps,
    # TM 0.8096 / 0.8092 / 0.8088, lDDT-CA 0.7540 / 0.7537 / 0.7529)
    template_potential_iters: int = 30
    template_potential_far_width: float = 20.0
    # MDS iterations from the templates' trace (``mds_iters`` without templates): with 40 refinement
    # steps, 50 (not 200) left 83 held-out dev chains at TM 0.8092 and 397 residues 0.2 s faster
    # (best of five runs); 30 gives the same structures as 50
    template_mds_iters: int = 50
    # with templates, both starts are refined (and compared) on the distogram plus harmonic
    # restraints to the top template's Calpha distances, sigma = this x exp(1.87 (1 - identity)) A
    # (af2struct.model.potential.TemplateRestraints; 0 = off). On the distogram alone the
    # refinement drew good templates towards the distogram's blurrier mode (top copy TM 0.93 ->
    # model 0.79); on 83 held-out dev chains: TM 0.8070 -> 0.8096, chains more than 0.02 TM below a
    # top copy of TM >= 0.8: 4 of 21 -> 0 (worst -0.009); scale 0.5 / 1.0 / 1.5: 0.8085 / 0.8097 / 0.8081
    template_restraint_scale: float = 0.7
    # with templates, the PAE adds in quadrature the spread of structures sampled on the distogram
    # around the written one (af2struct.model.pae_ensemble; 0 steps = off): Langevin steps, their
    # size (A^2 per unit of energy), temperature, a sample every this many steps, pairs within this
    # distance (A). 83 held-out dev chains: PAE within-target r 0.650 -> 0.690
    pae_spread_steps: int = 120
    pae_spread_step_size: float = 5e-3
    pae_spread_temperature: float = 3.0
    pae_spread_every: int = 10
    pae_spread_cutoff: float = 22.0
    use_se3: bool = True
    se3_dim: int = 16
    se3_depth: int = 2
    se3_heads: int = 2
    se3_dim_head: int = 8
    se3_num_degrees: int = 2
    se3_num_neighbors: int = 16
    se3_edge_dim: int = 8
    se3_max_step: float = 3.0  # Angstrom: bound on the coordinate update per residue


@dataclasses.dataclass(frozen=True)
class HeadsConfig:
    distogram_bins: int = 37
    distogram_min: float = 2.0
    distogram_max: float = 20.0
    plddt_bins: int = 50
    # pLDDT also from the pair row (pooled) and from how well the predicted structure agrees with
    # the distogram (False: from the sequence row only, as checkpoints written before it)
    plddt_context: bool = True
    # with context: also the distogram's expected lDDT of the structure and 6 related features
    # (af2struct.model.heads.expected_lddt_features; False: the 6 features of checkpoints before it)
    plddt_expected_lddt: bool = True
    # with context: also how the templates cover each residue (af2struct.model.heads.template_support;
    # False: checkpoints fitted before it, which read a templated model as if it had none)
    plddt_template_support: bool = False
    # predicted aligned error (AlphaFold's PAE): bins of 0.5 A up to pae_max, one more beyond;
    # 0 = no PAE head (checkpoints written before it)
    pae_bins: int = 64
    pae_max: float = 31.0
    # PAE also from the written structure: per pair, both residues' pLDDT and template cover, the
    # distance, its agreement with the distogram and with a template that has both residues, the
    # sequence separation (af2struct.model.heads.pae_context_features; needs plddt_context;
    # False: from the pair alone, as checkpoints fitted before it)
    pae_context: bool = False
    # with templates, a small network (af2struct.model.pae_ensemble.PaeCalibrator) turns the head's
    # PAE and the spread of the distogram's structures into the PAE reported, instead of adding
    # them in quadrature (fitted by scripts/fit_pae_calibrator.py on training-split chains)
    pae_calibrator: bool = False


@dataclasses.dataclass(frozen=True)
class TemplateConfig:
    """Template modules (:mod:`af2struct.model.templates`; AlphaFold2 supplement 1.7.1).

    Attributes:
        enabled: build the template modules (False: a model without them, as checkpoints
            written before templates).
        pair_dim: template pair channels (c_t).
        blocks: template pair stack blocks (alphafold2-pytorch's ``templates_embed_layers``).
        heads, dim_head: pointwise attention over the templates.
        dgram_bins, dgram_min, dgram_max: the pseudo-beta distogram (AlphaFold: 39 bins,
            3.25-50.75 A).
        ca_dgram_bins, ca_dgram_min, ca_dgram_max: the template's Calpha-Calpha distogram (this
            model predicts Calpha distances, AlphaFold pseudo-beta ones: the template feature
            that matches the target; 0 bins = left out).
        raw_feat_dim: width of precomputed pair features ``template_pair_features [B, T, L, L, F]``
            (alphafold2-pytorch's ``templates_dim``; 0 = only the model's own featurisation).
        angle_feat_dim: per-residue template features that become extra MSA rows (31 for the
            model's own: residue type, backbone torsions, masks; alphafold2-pytorch's
            ``templates_angles_feats_dim``); 0 = no template rows.
        zero_init: the template update and the template rows start at zero (AlphaFold's
            "final" init: a trained model given the modules starts exactly where it was); False,
            as a model built with alphafold2-pytorch's template arguments, starts with small random ones
            so its output depends on the templates from the start.
        own_trunk: inputs with a template go through a second trunk and distogram head of their
            own (``Af2StructModel.templated``), trained with templates; the first trunk, without
            template modules, folds the rest. AlphaFold2 likewise ships separate parameters for its
            templated models (model_1, model_2) and its template-free ones (model_3 to 5): here a
            trunk trained with templates folds chains without one worse (lDDT-CA -0.009 to -0.016),
            so each input gets the trunk trained for it. The heads, torsions and SE(3) are shared.
    """

    enabled: bool = False
    pair_dim: int = 16
    blocks: int = 2
    heads: int = 4
    dim_head: int = 8
    dgram_bins: int = 39
    dgram_min: float = 3.25
    dgram_max: float = 50.75
    ca_dgram_bins: int = 37
    ca_dgram_min: float = 2.0
    ca_dgram_max: float = 20.0
    raw_feat_dim: int = 0
    angle_feat_dim: int = 0
    zero_init: bool = True
    own_trunk: bool = False

    def __post_init__(self) -> None:
        if min(self.pair_dim, self.heads, self.dim_head, self.dgram_bins - 1) < 1 or self.blocks < 0:
            raise ValueError("TemplateConfig: pair_dim, heads, dim_head >= 1, dgram_bins >= 2, blocks >= 0")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    trunk: TrunkConfig = dataclasses.field(default_factory=TrunkConfig)
    structure: StructureConfig = dataclasses.field(default_factory=StructureConfig)
    heads: HeadsConfig = dataclasses.field(default_factory=HeadsConfig)
    templates: TemplateConfig = dataclasses.field(default_factory=TemplateConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        return _from_dict(cls, d, "ModelConfig")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "ModelConfig":
        """Replace fields inside sections: ``cfg.replace(trunk={"depth": 2})``."""
        out = {}
        for name, changes in sections.items():
            out[name] = dataclasses.replace(getattr(self, name), **changes)
        return dataclasses.replace(self, **out)

    def with_overrides(self, items: Sequence[str]) -> "ModelConfig":
        """This config with ``SECTION.KEY=VALUE`` overrides (``trunk.depth=6``,
        ``trunk.triangle_attn=true``); values are JSON (numbers, ``true``/``false``, ``null``).
        Unknown sections or keys, or a value of the wrong type, are errors."""
        d = self.to_dict()
        for item in items:
            key, sep, raw = item.partition("=")
            section, dot, name = key.strip().partition(".")
            if not sep or not dot or section not in d:
                raise ValueError(f"model override {item!r}: expected SECTION.KEY=VALUE with SECTION one of {sorted(d)}")
            if name not in d[section]:
                raise ValueError(f"model override {item!r}: unknown key {name!r}; known: {sorted(d[section])}")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"model override {item!r}: {raw!r} is not a JSON value (e.g. 6, 0.5, true)") from None
            old = d[section][name]
            sparse = typing.get_type_hints(type(getattr(self, section)))[name] == SparseSpec
            if old is not None and value is not None and not _same_kind(old, value, sparse):
                raise ValueError(f"model override {item!r}: expected a value like {old!r}")
            d[section][name] = value
        return ModelConfig.from_dict(d)


def _same_kind(old: Any, new: Any, sparse: bool = False) -> bool:
    """Whether ``new`` may replace ``old``: a bool only a bool (a :data:`SparseSpec` field also
    a list of bools), an int an int, a float any number."""
    if sparse and isinstance(new, list):
        return all(isinstance(v, bool) for v in new)
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    return type(old) is type(new)


_NESTED = {
    ("ModelConfig", "trunk"): TrunkConfig,
    ("ModelConfig", "structure"): StructureConfig,
    ("ModelConfig", "heads"): HeadsConfig,
    ("ModelConfig", "templates"): TemplateConfig,
}

PRESETS: Dict[str, ModelConfig] = {
    # for tests: a few thousand parameters, seconds on a CPU
    "tiny": ModelConfig(
        trunk=TrunkConfig(dim=16, depth=2, heads=2, dim_head=8, pair_heads=2, pair_dim_head=8, attn_chunk_size=32),
        structure=StructureConfig(mds_iters=50, se3_dim=8, se3_depth=1, se3_heads=1, se3_dim_head=4,
                                  se3_num_neighbors=8, se3_edge_dim=4),
    ),
    # the shipped checkpoint: trained on 2 CPU cores, so no triangle attention (it makes the
    # step ~2.8x slower at crop 128 on a CPU); triangle multiplicative updates are kept
    "default": ModelConfig(
        trunk=TrunkConfig(dim=48, pair_dim=48, depth=4, heads=4, dim_head=12, pair_heads=4, pair_dim_head=12,
                          triangle_attn=False),
    ),
    # for GPUs
    "large": ModelConfig(
        trunk=TrunkConfig(dim=256, pair_dim=128, depth=24, heads=8, dim_head=32, pair_heads=4, pair_dim_head=32,
                          num_recycles=3),
        structure=StructureConfig(se3_dim=32, se3_depth=3, se3_heads=4, se3_dim_head=16, se3_num_neighbors=32),
    ),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}") from None

"""Training settings: :class:`TrainConfig`, one field per setting, its help in the docstring and
its flag, type and group in the field's metadata, so ``af2struct train --help`` is generated from
it (:mod:`af2struct.common.options`)."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Optional, Tuple

from af2struct.common.argtypes import SEED_MAX, float_in, int_in
from af2struct.common.options import meta
from af2struct.model.config import PRESETS, StructureConfig, preset

STAGES = ("distogram", "full", "plddt", "pae")
#: the command line's option groups, in order
GROUPS = ("data", "templates", "model and run", "optimiser", "losses", "logging")


def _opt(group: str, **kw):
    return meta(group=group, **kw)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Data: ``data`` (all-atom chains: a SidechainNet pickle or a structure folder) and/or
    ``backbone_db`` (a ``chains_backbone.npz``: backbone-only chains), mixed with
    ``backbone_fraction`` of the samples from the database. Validation: ``valid_data``, the
    pickle's valid splits, or whole sequence clusters (``clusters`` TSV or ``manifest``) held out
    with ``valid_fraction``.

    Attributes:
        data: all-atom chains (chi supervision too): a SidechainNet .pkl or a folder of PDB/mmCIF files
        out: run folder (last.pt, best.pt, metrics.jsonl, loss.png)
        preset: model size (af2struct.model.config)
        stage: distogram: trunk + heads; full: adds MDS + SE(3) refinement with structure and pLDDT
            losses; plddt: the pLDDT head alone, on whole chains (e.g. --crop-size 400
            --plddt-chains 600 --steps 6000 --lr 1e-3); pae: the PAE head alone, on whole chains
            predicted and written as predict writes them (the same options, with --set
            heads.pae_context=true)
        valid_data: validation chains (pickle or folder) instead of a cluster split
        manifest: alternatively, a TSV with name and cluster40/cluster columns
        backbone_db: backbone-only chains: a chains_backbone.npz (e.g. ../shared/data/pdb2018_backbone)
        clusters: TSV (.gz too) with columns name, cluster: sampling weights 1/cluster size and the
            validation split by whole clusters (af2struct/data/splits/pdb2018_train_clusters30.tsv.gz
            covers pdb2018_backbone + train/chains at 30% identity)
        backbone_fraction: share of samples drawn from --backbone-db when --data is given too
        valid_fraction: fraction of chains held out for validation, as whole clusters
        steps: optimiser steps in all (the LR schedule spans them)
        time_limit_min: stop (resumably) after this many minutes of this run, 0 = no limit
        crop_size: residues per random contiguous crop
        batch_size: crops per micro-batch per process
        accum: micro-batches per optimiser step
        lr: peak AdamW learning rate (cosine decay to 10%)
        warmup: linear warm-up steps
        weight_decay: AdamW weight decay
        clip: gradient-norm clipping
        seed: seeds model init and the training samples and crops
        split_seed: seeds which clusters are held out for validation and the validation crops: keep
            it when a run continues from another's checkpoint, or validation holds chains it trained on
        w_distogram: weight of the distogram cross-entropy
        w_structure: weight of the backbone distance loss
        w_plddt: weight of the pLDDT cross-entropy
        w_chi: weight of the chi-angle loss (all-atom chains)
        w_pae: weight of the predicted-aligned-error cross-entropy (stage full)
        eval_every: validate (and maybe write best.pt) every N steps
        ckpt_every: write last.pt every N steps
        log_every: append a metrics.jsonl row every N steps
        max_valid: validation crops evaluated each time
        mds_iters: SMACOF iterations while training (stage full; a tenth of prediction's)
        freeze_trunk: train only the structure module and heads on a frozen trunk (fast second stage)
        mds_lbfgs_iters: L-BFGS stress iterations while training (stage full)
        plddt_chains: stages plddt and pae: distinct training chains predicted (each once, ~3 s at
            200 residues on a CPU core)
        potential_iters: stage full: L-BFGS iterations on the distogram's likelihood between MDS and
            SE(3) while training (predict and stage plddt use the model's own structure.potential_iters)
        init_from: checkpoint to start from: its weights and config (changed by --set; new tensors
            start at their initial values)
        template_hits: templates for --backbone-db chains: the database searched against itself (e.g.
            ../shared/data/pdb2018_backbone/self_hits_phmmer.tsv.gz); each crop gets 0 to
            --max-templates of its chain's hits, never itself, its PDB entry, a near-identical
            sequence or a held-out chain; held-out chains get templates only from other clusters.
            Needs a model with templates (--set templates.enabled=true)
        max_templates: templates per crop at most
        min_templates: templates per training crop at least; > 0 draws only chains that have a
            template (use 1 with --train-only trunk.template.: a crop without one teaches a frozen
            model nothing)
        train_only: train only parameters whose names start with PREFIX (repeatable), the rest
            frozen: e.g. --train-only trunk.template. fits template modules to a trained model,
            which then predicts exactly as before for a target without templates
        model_overrides: change one field of the preset's model config, repeatable: e.g. --set
            trunk.depth=6 --set trunk.triangle_attn=true (values are JSON; unknown keys are errors;
            a resumed run keeps its checkpoint's config; in stage plddt they change the --init-from
            checkpoint's config, e.g. --set heads.plddt_expected_lddt=true)
        resume: resume from OUT/last.pt when it exists (--no-resume: start over)
        device: auto (CUDA when present), cpu, cuda, cuda:1, ...
        amp: autocast the trunk to bf16 where the hardware multiplies bf16 natively (a CUDA GPU; a
            CPU with AVX512-BF16 or AMX: 1.4-2.2x faster there, see benchmarks/RESULTS.md); other
            CPUs, which would emulate bf16 several times slower, train in float32; --no-amp: float32
            everywhere. The structure module and the losses are always float32
        progress: a progress bar unless --quiet
    """

    data: Optional[str] = field(metadata=_opt("data"))
    out: str = field(metadata=_opt("model and run", required=True))
    preset: str = field(default="default", metadata=_opt("model and run", choices=sorted(PRESETS)))
    stage: str = field(default="distogram", metadata=_opt("model and run", choices=STAGES))
    valid_data: Optional[str] = field(default=None, metadata=_opt("data"))
    manifest: Optional[str] = field(default=None, metadata=_opt("data"))
    backbone_db: Optional[str] = field(default=None, metadata=_opt("data"))
    clusters: Optional[str] = field(default=None, metadata=_opt("data"))
    backbone_fraction: float = field(default=0.8, metadata=_opt("data", type=float_in(0, 1)))
    valid_fraction: float = field(default=0.05, metadata=_opt("data", type=float_in(0, 0.99)))
    steps: int = field(default=10000, metadata=_opt("model and run", type=int_in(0)))
    time_limit_min: float = field(default=0.0, metadata=_opt("model and run", type=float_in(0)))
    crop_size: int = field(default=128, metadata=_opt("data", type=int_in(8, 4096)))
    batch_size: int = field(default=2, metadata=_opt("model and run", type=int_in(1)))
    accum: int = field(default=1, metadata=_opt("model and run", type=int_in(1)))
    lr: float = field(default=1e-3, metadata=_opt("optimiser", type=float_in(0, lo_open=True)))
    warmup: int = field(default=200, metadata=_opt("optimiser", type=int_in(0)))
    weight_decay: float = field(default=0.0, metadata=_opt("optimiser", type=float_in(0)))
    clip: float = field(default=1.0, metadata=_opt("optimiser", type=float_in(0, lo_open=True)))
    seed: int = field(default=0, metadata=_opt("model and run", type=int_in(0, SEED_MAX)))
    split_seed: int = field(default=0, metadata=_opt("model and run", type=int_in(0, SEED_MAX)))
    w_distogram: float = field(default=1.0, metadata=_opt("losses", type=float_in(0)))
    w_structure: float = field(default=0.1, metadata=_opt("losses", type=float_in(0)))
    w_plddt: float = field(default=0.01, metadata=_opt("losses", type=float_in(0)))
    w_chi: float = field(default=0.1, metadata=_opt("losses", type=float_in(0)))
    w_pae: float = field(default=0.1, metadata=_opt("losses", type=float_in(0)))
    eval_every: int = field(default=200, metadata=_opt("logging", type=int_in(1)))
    ckpt_every: int = field(default=100, metadata=_opt("logging", type=int_in(1)))
    log_every: int = field(default=10, metadata=_opt("logging", type=int_in(1)))
    max_valid: int = field(default=32, metadata=_opt("data", type=int_in(0)))
    mds_iters: int = field(default=20, metadata=_opt("losses", type=int_in(0)))
    freeze_trunk: bool = field(default=False, metadata=_opt("losses"))
    mds_lbfgs_iters: int = field(default=60, metadata=_opt("losses", type=int_in(0)))
    plddt_chains: int = field(default=600, metadata=_opt("model and run", type=int_in(1)))
    potential_iters: int = field(default=StructureConfig.potential_iters, metadata=_opt("losses", type=int_in(0)))
    init_from: Optional[str] = field(default=None, metadata=_opt("model and run"))
    template_hits: Optional[str] = field(default=None, metadata=_opt("templates"))
    max_templates: int = field(default=4, metadata=_opt("templates", type=int_in(0, 16)))
    min_templates: int = field(default=0, metadata=_opt("templates", type=int_in(0, 16)))
    train_only: Tuple[str, ...] = field(default=(), metadata=_opt("templates", action="append", metavar="PREFIX"))
    model_overrides: Tuple[str, ...] = field(default=(), metadata=_opt(
        "model and run", flag="--set", action="append", metavar="SECTION.KEY=VALUE"))
    resume: bool = field(default=True, metadata=_opt("logging", flag="--no-resume", invert=True))
    device: str = field(default="auto", metadata=_opt("model and run"))
    amp: bool = field(default=True, metadata=_opt("logging", flag="--no-amp", invert=True))
    progress: bool = field(default=True, metadata=_opt("logging", flag="--quiet", invert=True))

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        if self.stage in ("plddt", "pae") and (not self.init_from or self.plddt_chains < 1):
            raise ValueError(f"stage {self.stage} calibrates a trained model: give init_from and plddt_chains >= 1")
        if self.batch_size < 1 or self.accum < 1 or self.steps < 0:
            raise ValueError("batch_size and accum must be >= 1, steps >= 0")
        if not self.data and not self.backbone_db:
            raise ValueError("no training data: give data (all-atom chains) and/or backbone_db")
        if not 0.0 <= self.backbone_fraction <= 1.0:
            raise ValueError("backbone_fraction must be in [0, 1]")
        if self.crop_size < 8:
            raise ValueError("crop_size must be >= 8")
        if self.template_hits and not self.backbone_db:
            raise ValueError("template_hits are hits of backbone_db chains: give backbone_db too")
        if not 0 <= self.min_templates <= self.max_templates <= 16:
            raise ValueError("need 0 <= min_templates <= max_templates <= 16")
        preset(self.preset).with_overrides(self.model_overrides)  # bad keys or values: an error now

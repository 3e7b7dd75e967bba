"""``af2struct train`` / ``scripts/train.py``: train the network (single process or torchrun DDP).

Single process:   af2struct train --backbone-db chains_backbone.npz --data CHAINS --out runs/x
Several (DDP):    torchrun --nproc_per_node 2 scripts/train.py ... --out runs/x
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from typing import Optional, Sequence

import torch

from af2struct.cli import run_command
from af2struct.common.argtypes import SEED_MAX, HelpFormatter, float_in, int_in
from af2struct.model.config import PRESETS
from af2struct.train.loop import STAGES, TrainConfig, train


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    p = p or argparse.ArgumentParser(prog="af2struct train")
    p.description = (
        "Train the af2struct network on all-atom chains (--data: a SidechainNet-format .pkl with splits "
        "train/valid-*, or a folder of PDB/mmCIF chains) and/or a backbone-only chain database "
        "(--backbone-db). Writes OUT/last.pt (resume point; a rerun resumes exactly), OUT/best.pt (best "
        "validation), OUT/metrics.jsonl and OUT/loss.png. Stage 'distogram' trains trunk and heads; stage "
        "'full' adds MDS + SE(3) refinement with structure and pLDDT losses; stage 'plddt' refits only the "
        "pLDDT head of a trained model (--init-from) on whole chains of up to --crop-size residues, predicted "
        "once as predict does (cached in OUT/plddt_inputs.pt), selected on --max-valid validation chains."
    )
    p.formatter_class = HelpFormatter
    d = {name: f.default for name, f in fields.items()}
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="all-atom chains (chi supervision too): a SidechainNet .pkl or a folder of PDB/mmCIF files")
    g.add_argument("--backbone-db", default=None,
                   help="backbone-only chains: a chains_backbone.npz (e.g. ../shared/data/pdb2018_backbone)")
    g.add_argument("--backbone-fraction", type=float_in(0, 1), default=d["backbone_fraction"],
                   help="share of samples drawn from --backbone-db when --data is given too")
    g.add_argument("--clusters", default=None,
                   help="TSV (.gz too) with columns name, cluster: sampling weights 1/cluster size and the "
                        "validation split by whole clusters (af2struct/data/splits/pdb2018_train_clusters30.tsv.gz "
                        "covers pdb2018_backbone + train/chains at 30%% identity)")
    g.add_argument("--manifest", default=None, help="alternatively, a TSV with name and cluster40/cluster columns")
    g.add_argument("--valid-data", default=None, help="validation chains (pickle or folder) instead of a cluster split")
    g.add_argument("--valid-fraction", type=float_in(0, 0.99), default=d["valid_fraction"],
                   help="fraction of chains held out for validation, as whole clusters")
    g.add_argument("--max-valid", type=int_in(0), default=d["max_valid"], help="validation crops evaluated each time")
    g.add_argument("--crop-size", type=int_in(8, 4096), default=d["crop_size"],
                   help="residues per random contiguous crop")
    _add_template_options(p, d)
    g = p.add_argument_group("model and run")
    g.add_argument("--out", required=True, help="run folder (last.pt, best.pt, metrics.jsonl, loss.png)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="default", help="model size (af2struct.model.config)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="change one field of the preset's model config, repeatable: e.g. --set trunk.depth=6 "
                        "--set trunk.triangle_attn=true (values are JSON; unknown keys are errors; a resumed "
                        "run keeps its checkpoint's config; in stage plddt they change the --init-from "
                        "checkpoint's config, e.g. --set heads.plddt_expected_lddt=true)")
    g.add_argument("--stage", choices=STAGES, default="distogram",
                   help="distogram: trunk + heads; full: adds MDS + SE(3) refinement with structure and pLDDT "
                        "losses; plddt: the pLDDT head alone, on whole chains (e.g. --crop-size 400 "
                        "--plddt-chains 600 --steps 6000 --lr 1e-3)")
    g.add_argument("--plddt-chains", type=int_in(1), default=d["plddt_chains"],
                   help="stage plddt: distinct training chains predicted (each once, ~3 s at 200 residues on a "
                        "CPU core)")
    g.add_argument("--init-from", default=None,
                   help="checkpoint to start from: its weights and config (changed by --set; new tensors start "
                        "at their initial values)")
    g.add_argument("--steps", type=int_in(0), default=d["steps"],
                   help="optimiser steps in all (the LR schedule spans them)")
    g.add_argument("--time-limit-min", type=float_in(0), default=d["time_limit_min"],
                   help="stop (resumably) after this many minutes of this run, 0 = no limit")
    g.add_argument("--batch-size", type=int_in(1), default=d["batch_size"], help="crops per micro-batch per process")
    g.add_argument("--accum", type=int_in(1), default=d["accum"], help="micro-batches per optimiser step")
    g.add_argument("--seed", type=int_in(0, SEED_MAX), default=d["seed"],
                   help="seeds model init and the training samples and crops")
    g.add_argument("--split-seed", type=int_in(0, SEED_MAX), default=d["split_seed"],
                   help="seeds which clusters are held out for validation and the validation crops: keep it "
                        "when a run continues from another's checkpoint, or validation holds chains it trained on")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    g = p.add_argument_group("optimiser")
    g.add_argument("--lr", type=float_in(0, lo_open=True), default=d["lr"],
                   help="peak AdamW learning rate (cosine decay to 10%%)")
    g.add_argument("--warmup", type=int_in(0), default=d["warmup"], help="linear warm-up steps")
    g.add_argument("--weight-decay", type=float_in(0), default=d["weight_decay"], help="AdamW weight decay")
    g.add_argument("--clip", type=float_in(0, lo_open=True), default=d["clip"], help="gradient-norm clipping")
    _add_loss_options(p, d)
    _add_run_options(p, d)
    return p


def _add_run_options(p: argparse.ArgumentParser, d: dict) -> None:
    """Logging, checkpoints, resume, precision and threads."""
    g = p.add_argument_group("logging")
    g.add_argument("--eval-every", type=int_in(1), default=d["eval_every"],
                   help="validate (and maybe write best.pt) every N steps")
    g.add_argument("--ckpt-every", type=int_in(1), default=d["ckpt_every"], help="write last.pt every N steps")
    g.add_argument("--log-every", type=int_in(1), default=d["log_every"],
                   help="append a metrics.jsonl row every N steps")
    g.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    g.add_argument("--no-amp", action="store_true",
                   help="train in float32 everywhere. By default a step autocasts the trunk to bf16 where the "
                        "hardware multiplies bf16 natively (a CUDA GPU; a CPU with AVX512-BF16 or AMX: 1.4-2.2x "
                        "faster there, see benchmarks/RESULTS.md); other CPUs, which would emulate bf16 several "
                        "times slower, train in float32. The structure module and the losses are always float32")
    g.add_argument("--threads", type=int_in(1, 1024), default=None,
                   help="CPU threads for torch, set once at start (default: OMP_NUM_THREADS if set, else every "
                        "core this process may use). Leave a core free for anything else you run: a thread "
                        "that has to share its core stalls the others (measured 30x slower steps)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_template_options(p: argparse.ArgumentParser, d: dict) -> None:
    """Templates while training, and which parameters train."""
    g = p.add_argument_group("templates")
    g.add_argument("--template-hits", default=None,
                   help="templates for --backbone-db chains: the database searched against itself (e.g. "
                        "../shared/data/pdb2018_backbone/self_hits_phmmer.tsv.gz); each crop gets 0 to "
                        "--max-templates of its chain's hits, never itself, its PDB entry, a near-identical "
                        "sequence or a held-out chain; held-out chains get templates only from other clusters. "
                        "Needs a model with templates (--set templates.enabled=true)")
    g.add_argument("--max-templates", type=int_in(0, 16), default=d["max_templates"], help="templates per crop at most")
    g.add_argument("--min-templates", type=int_in(0, 16), default=d["min_templates"],
                   help="templates per training crop at least; > 0 draws only chains that have a template (use 1 "
                        "with --train-only trunk.template.: a crop without one teaches a frozen model nothing)")
    g.add_argument("--train-only", action="append", default=[], metavar="PREFIX",
                   help="train only parameters whose names start with PREFIX (repeatable), the rest frozen: "
                        "e.g. --train-only trunk.template. fits template modules to a trained model, which then "
                        "predicts exactly as before for a target without templates")


def _add_loss_options(p: argparse.ArgumentParser, d: dict) -> None:
    """Loss weights and the structure path's settings while training."""
    g = p.add_argument_group("losses")
    g.add_argument("--w-distogram", type=float_in(0), default=d["w_distogram"],
                   help="weight of the distogram cross-entropy")
    g.add_argument("--w-structure", type=float_in(0), default=d["w_structure"],
                   help="weight of the backbone distance loss")
    g.add_argument("--w-plddt", type=float_in(0), default=d["w_plddt"], help="weight of the pLDDT cross-entropy")
    g.add_argument("--w-pae", type=float_in(0), default=d["w_pae"],
                   help="weight of the predicted-aligned-error cross-entropy (stage full)")
    g.add_argument("--w-chi", type=float_in(0), default=d["w_chi"],
                   help="weight of the chi-angle loss (all-atom chains)")
    g.add_argument("--mds-iters", type=int_in(0), default=d["mds_iters"],
                   help="SMACOF iterations while training (stage full)")
    g.add_argument("--mds-lbfgs-iters", type=int_in(0), default=d["mds_lbfgs_iters"],
                   help="L-BFGS stress iterations while training (stage full)")
    g.add_argument("--potential-iters", type=int_in(0), default=d["potential_iters"],
                   help="stage full: L-BFGS iterations on the distogram's likelihood between MDS and SE(3) "
                        "while training (predict and stage plddt use the model's own structure.potential_iters)")
    g.add_argument("--freeze-trunk", action="store_true",
                   help="train only the structure module and heads on a frozen trunk (fast second stage)")


def _set_threads(threads: Optional[int]) -> int:
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def run(args: argparse.Namespace) -> int:
    logging.getLogger("train").info("%d CPU thread(s) for torch", _set_threads(args.threads))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    kw = {k: getattr(args, k) for k in fields
          if hasattr(args, k) and k not in ("resume", "amp", "progress", "freeze_trunk")}
    try:
        kw.pop("train_only", None)
        cfg = TrainConfig(**kw, resume=not args.no_resume, amp=not args.no_amp, progress=not args.quiet,
                          freeze_trunk=args.freeze_trunk, model_overrides=tuple(args.overrides),
                          train_only=tuple(args.train_only))
        result = train(cfg)
    except (ValueError, KeyError, OSError) as exc:  # bad data or options, an --out that cannot be written
        msg = str(exc) if not isinstance(exc, OSError) or not exc.filename else \
            f"{exc.filename}: {exc.strerror or exc}"
        logging.getLogger("train").error("%s", msg)
        return 1
    logging.getLogger("train").info("finished: %s", result)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("train", argv)

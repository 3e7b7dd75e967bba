"""The training loop: seeded, resumable, single process or torchrun DDP (gloo/nccl).

Stages: ``distogram`` trains the trunk and heads on distogram + chi losses; ``full`` adds the
structure path (MDS -> SE(3) refinement) with the backbone distance loss and the pLDDT loss;
``plddt`` fits the pLDDT head alone on whole chains of a trained model (:mod:`af2struct.train.confidence`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

from af2struct.common.files import atomic_write_text
from af2struct.data.features import Example, collate
from af2struct.model.checkpoint import CheckpointError, config_from_checkpoint, load_checkpoint, save_checkpoint
from af2struct.model.config import ModelConfig, preset
from af2struct.model.network import Af2StructModel
from af2struct.train.confidence import calibrate_plddt
from af2struct.train.config import TrainConfig
from af2struct.train.data import load_training_data
from af2struct.train.losses import long_range_contact_precision, total_loss
from af2struct.train.metrics_log import plot_curve, trim_log
from af2struct.train.pae_fit import calibrate_pae
from af2struct.train.precision import use_bf16_autocast
from af2struct.train.sampling import TrainingMix

logger = logging.getLogger(__name__)


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _to(batch, device):
    return {k: v.to(device) for k, v in batch.items()}


def _loss_weights(cfg: TrainConfig) -> Dict[str, float]:
    return {"distogram": cfg.w_distogram, "structure": cfg.w_structure, "plddt": cfg.w_plddt, "chi": cfg.w_chi,
            "pae": cfg.w_pae}


def _core(model):
    """The model itself, also when wrapped by DistributedDataParallel."""
    return model.module if hasattr(model, "module") else model


def forward_outputs(model, batch, cfg: TrainConfig) -> Dict[str, torch.Tensor]:
    """The model's outputs on a batch (the structure path too in stage ``full``)."""
    core = _core(model)
    mask = batch["seq_mask"] > 0
    with torch.set_grad_enabled(torch.is_grad_enabled() and not cfg.freeze_trunk):
        out = model(batch=batch, return_all=True)
    if cfg.freeze_trunk:  # heads on the frozen trunk's outputs still learn
        if not core.config.heads.plddt_context:  # else made with the structure, below
            out["plddt_logits"] = core.plddt_head(out["single"])
        out["chi"] = core.torsion_head(out["single"])
        if core.pae_head is not None:
            out["pae_logits"] = core.pae_head(out["pair"])
    if cfg.stage == "full":
        # a cheaper MDS while training (the SE(3) refiner learns to finish the job)
        templates = {k: v for k, v in batch.items() if k.startswith("template_")} or None
        out = core.structure(out, mask, mds_iters=cfg.mds_iters, lbfgs_iters=cfg.mds_lbfgs_iters,
                             potential_iters=cfg.potential_iters, templates=templates, aatype=batch["aatype"])
    return out


def forward_losses(model, batch, cfg: TrainConfig) -> Dict[str, torch.Tensor]:
    """Every loss term of a batch; ``loss`` is their weighted sum."""
    return total_loss(forward_outputs(model, batch, cfg), batch, _loss_weights(cfg),
                      _core(model).config.heads.pae_max)


@torch.no_grad()
def evaluate_model(model, examples: List[Example], cfg: TrainConfig, device) -> Dict[str, float]:
    """Mean validation losses over ``examples`` (one at a time, unpadded), and the long-range
    (sequence separation >= 24) top-L/5 Calpha contact precision of the distogram."""
    model.eval()
    sums: Dict[str, float] = {}
    counts: Dict[str, int] = {}
    for ex in examples:
        batch = _to(collate([ex]), device)
        out = forward_outputs(model, batch, cfg)
        terms = total_loss(out, batch, _loss_weights(cfg), _core(model).config.heads.pae_max)
        terms["contact_lr_l5"] = long_range_contact_precision(out["distogram"], batch["all_atom_positions"],
                                                              batch["all_atom_mask"], _core(model).config.heads)
        for k, v in terms.items():
            if math.isfinite(float(v)):  # no long-range pair in a short crop: not counted
                sums[k] = sums.get(k, 0.0) + float(v)
                counts[k] = counts.get(k, 0) + 1
    model.train()
    return {f"valid_{k}": v / counts[k] for k, v in sums.items()}


def _device(cfg: TrainConfig, world: int) -> torch.device:
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def _model_and_optimizer(cfg: TrainConfig, model_config: Optional[ModelConfig], device, state: Dict[str, Any]):
    """The model and AdamW, resumed from ``out/last.pt`` when it exists (updating ``state``),
    else initialised from ``init_from`` or at random."""
    out = Path(cfg.out)
    init = load_checkpoint(cfg.init_from) if cfg.init_from else None
    if model_config is None:
        # a run that starts from a checkpoint keeps that checkpoint's config (changed by --set)
        base = config_from_checkpoint(init) if init is not None else preset(cfg.preset)
        model_config = base.with_overrides(cfg.model_overrides)
    payload = None
    if cfg.resume and (out / "last.pt").exists():
        try:
            payload = load_checkpoint(out / "last.pt")
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; to start this run over use --no-resume (or move {out / 'last.pt'} "
                                  "away, e.g. to resume from best.pt by copying it to last.pt)") from None
        model_config = config_from_checkpoint(payload)
        state.update(payload["train_state"])
    model = Af2StructModel(model_config).to(device)
    if payload is not None:
        model.load_state_dict(payload["model"])
        logger.info("resumed from %s at step %d", out / "last.pt", state["step"])
    elif init is not None:
        missing, unexpected = model.load_state_dict(init["model"], strict=False)
        logger.info("initialised from %s (%d new, %d unused tensors)", cfg.init_from, len(missing), len(unexpected))
    params = trainable_parameters(model, cfg.train_only)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if payload is not None and "optimizer" in payload:
        try:
            opt.load_state_dict(payload["optimizer"])
        except ValueError:
            logger.warning("optimizer state does not fit (stage changed?); starting it fresh")
    return model, model_config, opt


def trainable_parameters(model, prefixes: Tuple[str, ...]) -> List[torch.nn.Parameter]:
    """The parameters to train: all, or (``prefixes``) those whose names start with one of them;
    the others are frozen (``requires_grad`` off). An empty selection is an error."""
    if not prefixes:
        return list(model.parameters())
    keep = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(tuple(prefixes)))
        if p.requires_grad:
            keep.append(p)
    if not keep:
        raise ValueError(f"--train-only {list(prefixes)} selects no parameter of this model")
    logger.info("training %d of %d parameters (%s); the rest frozen", sum(p.numel() for p in keep),
                sum(p.numel() for p in model.parameters()), ", ".join(prefixes))
    return keep


def _train_step(model, ddp_model, opt, data: TrainingMix, cfg: TrainConfig, step: int, rank: int, world: int,
                device, use_amp: bool) -> Dict[str, float]:
    """One optimiser step over ``accum`` micro-batches; returns the mean loss terms and the
    gradient norm (an update with a non-finite gradient is skipped)."""
    for g in opt.param_groups:
        g["lr"] = _lr_at(step, cfg)
    opt.zero_grad(set_to_none=True)
    terms_sum: Dict[str, float] = {}
    for micro in range(cfg.accum):
        examples = data.batch(step * cfg.accum + micro, cfg.batch_size, rank)
        batch = _to(collate(examples), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            terms = forward_losses(ddp_model, batch, cfg)
        if terms["loss"].requires_grad:  # else nothing trainable took part (no template in this batch)
            (terms["loss"] / cfg.accum).backward()
        for k, v in terms.items():
            terms_sum[k] = terms_sum.get(k, 0.0) + float(v.detach()) / cfg.accum
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip))
    if all(p.grad is None for p in params):
        opt.zero_grad(set_to_none=True)  # no update at all (AdamW's moments and weight decay would still move)
    elif not math.isfinite(grad_norm):
        logger.warning("step %d: non-finite gradient; update skipped", step)
        opt.zero_grad(set_to_none=True)
    else:
        opt.step()
    return {**terms_sum, "grad_norm": grad_norm}


def train(cfg: TrainConfig, model_config: Optional[ModelConfig] = None) -> Dict[str, Any]:
    """Run (or resume) training; returns the last metrics. Writes into ``cfg.out``:
    ``last.pt`` (resume point), ``best.pt`` (best validation), ``metrics.jsonl``, ``loss.png``.

    Step ``s`` trains on samples drawn from ``(seed, s)``, so a resumed run repeats exactly what
    an uninterrupted one does. Stage ``plddt`` (:mod:`af2struct.train.confidence`) fits only the
    pLDDT head, on whole chains, and writes ``best.pt`` and ``metrics.jsonl``."""
    if cfg.stage == "plddt":
        return calibrate_plddt(cfg, load_training_data(cfg), lambda step: _lr_at(step, cfg))
    if cfg.stage == "pae":
        return calibrate_pae(cfg, load_training_data(cfg), lambda step: _lr_at(step, cfg))
    return TrainingRun(cfg, model_config).run()


class TrainingRun:
    """One training run: set up (device, DDP, resume, data), then step, validate, checkpoint."""

    def __init__(self, cfg: TrainConfig, model_config: Optional[ModelConfig] = None) -> None:
        self.cfg = cfg
        self.world, self.rank = _dist_info()
        self.is_main = self.rank == 0
        self.device = _device(cfg, self.world)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.state: Dict[str, Any] = {"step": 0, "best": None, "elapsed": 0.0, "last_valid": None}
        self.model, self.model_config, self.opt = _model_and_optimizer(cfg, model_config, self.device, self.state)
        self.ddp_model = self.model
        if self.world > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)
        self.data, self.valid_examples = load_training_data(cfg)
        self.log_path = self.out / "metrics.jsonl"
        self.use_amp = use_bf16_autocast(cfg.amp, self.device)
        if self.is_main:
            trim_log(self.log_path, self.state["step"])
            atomic_write_text(self.out / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=1))
            logger.info("%d training chains, %d validation crops, %d parameters, device %s, %s steps",
                        len(self.data), len(self.valid_examples), sum(p.numel() for p in self.model.parameters()),
                        self.device, "bf16 autocast" if self.use_amp else "float32")
            if not self.valid_examples:
                logger.warning("no validation chains: best.pt will not be written (give --valid-data, --clusters "
                               "or --manifest with --valid-fraction > 0)")
        self.t_start = time.perf_counter() - self.state["elapsed"]

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def checkpoint(self, name: str, metrics: Optional[Dict[str, Any]] = None) -> None:
        if self.is_main:
            self.state["elapsed"] = self.elapsed()
            save_checkpoint(self.out / name, self.model, self.model_config, dict(self.state), self.opt, metrics)

    def step(self) -> Dict[str, float]:
        """One optimisation step (logged every ``log_every``); returns its loss terms."""
        cfg, state = self.cfg, self.state
        terms = _train_step(self.model, self.ddp_model, self.opt, self.data, cfg, state["step"], self.rank,
                            self.world, self.device, self.use_amp)
        state["step"] += 1
        if self.is_main and state["step"] % cfg.log_every == 0:
            rec = {"step": state["step"], "time_s": round(self.elapsed(), 1), "lr": _lr_at(state["step"], cfg),
                   **{k: round(v, 5) for k, v in terms.items()}}
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        return terms

    def validate(self) -> Dict[str, Any]:
        """Validation metrics (logged); ``best.pt`` when they beat the best so far."""
        state = self.state
        metrics = evaluate_model(self.model, self.valid_examples, self.cfg, self.device)
        # stage full: best lDDT-CA, ties (structure frozen, heads training) to the lower total loss
        score = [metrics.get("valid_lddt_ca", -metrics["valid_distogram"]), -metrics["valid_loss"]]
        metrics.update(step=state["step"], time_s=round(self.elapsed(), 1))
        with open(self.log_path, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        logger.info("step %d: %s", state["step"], {k: round(v, 4) for k, v in metrics.items()})
        state["last_valid"] = state["step"]
        best = state["best"]
        if isinstance(best, (int, float)):  # written before ties were broken
            best = [best, -math.inf]
        if best is None or score > best:
            state["best"] = score
            self.checkpoint("best.pt", metrics)
        plot_curve(self.log_path, self.out / "loss.png")
        return metrics

    def run(self) -> Dict[str, Any]:
        """Steps until ``cfg.steps`` or the time limit; validation and checkpoints on schedule; a
        short or stopped run still ends validated, with ``best.pt`` and ``last.pt``."""
        cfg, state = self.cfg, self.state
        validating = self.is_main and bool(self.valid_examples)
        last_metrics: Dict[str, Any] = {}
        bar = tqdm(total=cfg.steps, initial=state["step"], desc="train", unit="step",
                   disable=not (cfg.progress and self.is_main))
        while state["step"] < cfg.steps:
            terms = self.step()
            bar.update()
            if self.is_main and state["step"] % cfg.log_every == 0:
                bar.set_postfix(loss=f"{terms['loss']:.3f}", dgram=f"{terms['distogram']:.3f}")
            if validating and state["step"] % cfg.eval_every == 0:
                last_metrics = self.validate()
            if state["step"] % cfg.ckpt_every == 0:
                self.checkpoint("last.pt")
            if cfg.time_limit_min and self.elapsed() > cfg.time_limit_min * 60:
                logger.info("time limit reached at step %d", state["step"])
                break
        bar.close()
        if validating and state["last_valid"] != state["step"]:
            last_metrics = self.validate()
        self.checkpoint("last.pt")
        if self.is_main and self.log_path.exists():
            plot_curve(self.log_path, self.out / "loss.png")
        if self.world > 1:
            torch.distributed.barrier()
        return {"step": state["step"], **last_metrics}

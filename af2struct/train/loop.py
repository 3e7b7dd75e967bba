"""The training loop: seeded, resumable, single process or torchrun DDP (gloo/nccl).

Stages: ``distogram`` trains the trunk and heads on distogram + chi losses; ``full`` adds the
structure path (MDS -> SE(3) refinement) with the backbone distance loss and the pLDDT loss.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from af2struct.common.atomic import atomic_write_text
from af2struct.data.dataset import LengthBatchSampler, ProteinDataset, proteins_from_folder, proteins_from_sidechainnet
from af2struct.data.features import collate, crop_example, make_example
from af2struct.model.config import ModelConfig, preset
from af2struct.train.checkpoint import load_checkpoint, save_checkpoint
from af2struct.train.losses import total_loss

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    preset: str = "default"
    stage: str = "distogram"
    valid_data: Optional[str] = None
    manifest: Optional[str] = None
    valid_fraction: float = 0.05
    steps: int = 10000
    time_limit_min: float = 0.0
    crop_size: int = 128
    batch_size: int = 2
    max_residues: Optional[int] = None
    accum: int = 1
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.0
    clip: float = 1.0
    seed: int = 0
    w_distogram: float = 1.0
    w_structure: float = 0.1
    w_plddt: float = 0.01
    w_chi: float = 0.1
    eval_every: int = 200
    ckpt_every: int = 100
    log_every: int = 10
    max_valid: int = 32
    mds_iters: int = 20
    freeze_trunk: bool = False
    mds_lbfgs_iters: int = 60
    init_from: Optional[str] = None
    resume: bool = True
    device: str = "auto"
    amp: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.stage not in ("distogram", "full"):
            raise ValueError("stage must be 'distogram' or 'full'")
        if self.batch_size < 1 or self.accum < 1 or self.steps < 0:
            raise ValueError("batch_size and accum must be >= 1, steps >= 0")


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def load_proteins(cfg: TrainConfig):
    """``(train, valid)`` dicts of Proteins from a SidechainNet pickle or a structure folder."""
    if cfg.data.endswith(".pkl"):
        train = proteins_from_sidechainnet(cfg.data, "train")
        try:
            valid = proteins_from_sidechainnet(cfg.valid_data or cfg.data, "valid")
        except KeyError:
            valid = {}
        return train, valid
    proteins = proteins_from_folder(cfg.data)
    if cfg.valid_data:
        return proteins, proteins_from_folder(cfg.valid_data)
    if cfg.manifest:
        from af2struct.data.make_dataset import read_clusters, split_by_cluster

        split = split_by_cluster(sorted(proteins), read_clusters(Path(cfg.manifest)), cfg.valid_fraction, cfg.seed)
        return ({k: v for k, v in proteins.items() if split[k] == "train"},
                {k: v for k, v in proteins.items() if split[k] != "train"})
    return proteins, {}


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _to(batch, device):
    return {k: v.to(device) for k, v in batch.items()}


def forward_losses(model, batch, cfg: TrainConfig) -> Dict[str, torch.Tensor]:
    core = model.module if hasattr(model, "module") else model
    mask = batch["seq_mask"] > 0
    msa = batch["msa"] if batch["msa"].shape[1] > 1 else None
    with torch.set_grad_enabled(torch.is_grad_enabled() and not cfg.freeze_trunk):
        out = model(batch["aatype"], msa, mask=mask, msa_mask=(batch["msa_mask"] > 0) if msa is not None else None,
                    residue_index=batch["residue_index"],
                    deletion_value=batch["deletion_value"] if msa is not None else None, return_all=True)
    if cfg.freeze_trunk:  # heads on the frozen trunk's outputs still learn
        out["plddt_logits"] = core.plddt_head(out["single"])
        out["chi"] = core.torsion_head(out["single"])
    if cfg.stage == "full":
        # a cheaper MDS while training (the SE(3) refiner learns to finish the job)
        out = core.structure(out, mask, mds_iters=cfg.mds_iters, lbfgs_iters=cfg.mds_lbfgs_iters)
    weights = {"distogram": cfg.w_distogram, "structure": cfg.w_structure, "plddt": cfg.w_plddt, "chi": cfg.w_chi}
    return total_loss(out, batch, weights)


@torch.no_grad()
def evaluate_model(model, examples: List[Dict[str, np.ndarray]], cfg: TrainConfig, device) -> Dict[str, float]:
    model.eval()
    sums: Dict[str, float] = {}
    for ex in examples:
        terms = forward_losses(model, _to(collate([ex]), device), cfg)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    model.train()
    return {f"valid_{k}": v / max(1, len(examples)) for k, v in sums.items()}


def _plot_curve(log_path: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from af2struct.common.atomic import atomic_path

    train, valid = [], []
    for line in log_path.read_text().splitlines():
        r = json.loads(line)
        (valid if "valid_loss" in r else train).append(r)
    if not train:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in train]
    vals = np.array([r["distogram"] for r in train])
    ax.plot(steps, vals, lw=0.6, alpha=0.35, label="train distogram CE (logged batches)")
    k = min(len(vals), 20)
    if k > 1:
        smooth = np.convolve(vals, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"train, moving mean of {k}")
    if valid:
        ax.plot([r["step"] for r in valid], [r["valid_distogram"] for r in valid], "o-", label="valid distogram CE")
    ax.set(xlabel="step", ylabel="loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig, model_config: Optional[ModelConfig] = None) -> Dict[str, Any]:
    """Run (or resume) training; returns the last metrics. Writes into ``cfg.out``:
    ``last.pt`` (resume point), ``best.pt`` (best validation), ``metrics.jsonl``, ``loss.png``."""
    from tqdm import tqdm

    from af2struct.model.network import Alphafold2

    world, rank = _dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model_config = model_config or preset(cfg.preset)
    state: Dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None, "elapsed": 0.0}
    resume_payload = None
    if cfg.resume and (out / "last.pt").exists():
        resume_payload = load_checkpoint(out / "last.pt")
        model_config = ModelConfig.from_dict(resume_payload["config"])
        state.update(resume_payload["train_state"])
    model = Alphafold2(config=model_config).to(device)
    if resume_payload is not None:
        model.load_state_dict(resume_payload["model"])
        logger.info("resumed from %s at step %d", out / "last.pt", state["step"])
    elif cfg.init_from:
        init = load_checkpoint(cfg.init_from)
        missing, unexpected = model.load_state_dict(init["model"], strict=False)
        logger.info("initialised from %s (%d new, %d unused tensors)", cfg.init_from, len(missing), len(unexpected))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume_payload is not None and "optimizer" in resume_payload:
        try:
            opt.load_state_dict(resume_payload["optimizer"])
        except ValueError:
            logger.warning("optimizer state does not fit (stage changed?); starting it fresh")
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)

    train_p, valid_p = load_proteins(cfg)
    dataset = ProteinDataset(train_p, crop_size=cfg.crop_size, seed=cfg.seed)
    if len(dataset) == 0:
        raise ValueError(f"{cfg.data}: no training chains")
    valid_examples = []
    for name in sorted(valid_p)[: cfg.max_valid]:
        ex = make_example(valid_p[name])
        n = len(ex["aatype"])
        valid_examples.append(crop_example(ex, max(0, (n - cfg.crop_size) // 2), cfg.crop_size))
    sampler = LengthBatchSampler(dataset.lengths, cfg.batch_size, cfg.max_residues, shuffle=True, seed=cfg.seed)
    log_path = out / "metrics.jsonl"
    is_main = rank == 0
    if is_main:
        atomic_write_text(out / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=1))
        logger.info("%d training chains, %d validation chains, %d parameters, device %s",
                    len(dataset), len(valid_examples), sum(p.numel() for p in model.parameters()), device)
    t_start = time.perf_counter() - state["elapsed"]
    last_metrics: Dict[str, Any] = {}
    bar = tqdm(total=cfg.steps, initial=state["step"], desc="train", unit="step", disable=not (cfg.progress and is_main))
    use_amp = cfg.amp and device.type == "cuda"

    def checkpoint(name: str, metrics=None):
        if not is_main:
            return
        state["elapsed"] = time.perf_counter() - t_start
        save_checkpoint(out / name, model, model_config, dict(state), opt, metrics)

    stop = False
    while state["step"] < cfg.steps and not stop:
        dataset.set_epoch(state["epoch"])
        sampler.set_epoch(state["epoch"])
        batches = list(sampler)[rank::world]
        while state["batch"] < len(batches) and state["step"] < cfg.steps:
            group = batches[state["batch"]: state["batch"] + cfg.accum]
            state["batch"] += len(group)
            for g in opt.param_groups:
                g["lr"] = _lr_at(state["step"], cfg)
            opt.zero_grad(set_to_none=True)
            terms_sum: Dict[str, float] = {}
            for idx in group:
                batch = _to(collate([dataset[i] for i in idx]), device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    terms = forward_losses(ddp_model, batch, cfg)
                (terms["loss"] / len(group)).backward()
                for k, v in terms.items():
                    terms_sum[k] = terms_sum.get(k, 0.0) + float(v.detach()) / len(group)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
            if not math.isfinite(grad_norm):
                logger.warning("step %d: non-finite gradient; update skipped", state["step"])
                opt.zero_grad(set_to_none=True)
            else:
                opt.step()
            state["step"] += 1
            bar.update()
            elapsed = time.perf_counter() - t_start
            if is_main and state["step"] % cfg.log_every == 0:
                rec = {"step": state["step"], "time_s": round(elapsed, 1), "lr": _lr_at(state["step"], cfg),
                       "grad_norm": grad_norm, **{k: round(v, 5) for k, v in terms_sum.items()}}
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                bar.set_postfix(loss=f"{terms_sum['loss']:.3f}", dgram=f"{terms_sum['distogram']:.3f}")
            if valid_examples and state["step"] % cfg.eval_every == 0:
                metrics = evaluate_model(model, valid_examples, cfg, device) if is_main else {}
                if is_main:
                    score = metrics.get("valid_lddt_ca", -metrics["valid_distogram"])
                    metrics.update(step=state["step"], time_s=round(elapsed, 1))
                    with open(log_path, "a") as fh:
                        fh.write(json.dumps(metrics) + "\n")
                    logger.info("step %d: %s", state["step"], {k: round(v, 4) for k, v in metrics.items()})
                    if state["best"] is None or score > state["best"]:
                        state["best"] = score
                        checkpoint("best.pt", metrics)
                    last_metrics = metrics
                    _plot_curve(log_path, out / "loss.png")
            if state["step"] % cfg.ckpt_every == 0:
                checkpoint("last.pt")
            if cfg.time_limit_min and elapsed > cfg.time_limit_min * 60:
                logger.info("time limit reached at step %d", state["step"])
                stop = True
                break
        if state["batch"] >= len(batches):
            state["epoch"] += 1
            state["batch"] = 0
    bar.close()
    checkpoint("last.pt")
    if is_main and log_path.exists():
        _plot_curve(log_path, out / "loss.png")
    if world > 1:
        torch.distributed.barrier()
    return {"step": state["step"], **last_metrics}

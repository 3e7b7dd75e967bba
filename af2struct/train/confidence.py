"""Stage ``plddt``: fit the pLDDT head on whole chains, predicted as ``predict`` predicts them.

The other stages train pLDDT on crops (96-128 residues) folded with a cheap MDS; whole chains
fold worse than crops, so a head trained that way is confident where it should not be (on
held-out whole chains: mean pLDDT 0.45 against a true lDDT-CA of 0.33) and cannot rank chains
by how well they folded. Here the trunk and structure module are frozen: each chain is predicted
once with the inference settings (full MDS, SE(3) refinement), the head's inputs
(:meth:`~af2struct.model.heads.PLDDTHead.pool_pair`: ``L x (C + Cz + 6)`` numbers) and the true
per-residue lDDT-CA are cached in ``OUT/plddt_inputs.pt`` (written as it goes, so a killed run
resumes where it stopped), and the head is then fitted over the cache for ``steps`` optimiser
steps (one chain each), keeping the step with the lowest validation cross-entropy. Writes
``OUT/best.pt`` (the whole model, the new head in it) and ``OUT/metrics.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch
from tqdm import tqdm

from af2struct.common.files import atomic_path
from af2struct.common.runner import file_digest
from af2struct.data.features import Example, collate
from af2struct.model.checkpoint import CheckpointError, config_from_checkpoint, load_checkpoint, save_checkpoint
from af2struct.model.config import ModelConfig
from af2struct.model.heads import plddt_from_logits, structure_agreement, template_support
from af2struct.model.network import Af2StructModel
from af2struct.train.losses import CA, lddt_ca_per_residue, plddt_cross_entropy

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: agreement has the 13 features of structure_agreement (was 6); 3: template support

# single [L, C], pair_mean [L, Cz], agreement [L, 13], support [L, 3], target [L], mask [L]
Inputs = Dict[str, torch.Tensor]


@torch.no_grad()
def plddt_inputs(model: Af2StructModel, example: Example) -> Inputs:
    """One chain through the frozen model as ``predict`` runs it (its configured MDS, SE(3)
    refinement): the pLDDT head's inputs and the true per-residue lDDT-CA of the predicted
    Calphas (``mask``: residues whose native Calpha is known)."""
    model.eval()
    batch = collate([example])
    seq_mask = batch["seq_mask"] > 0
    templates = {k: v for k, v in batch.items() if k.startswith("template_")} or None
    out = model.structure(model(batch=batch, return_all=True), seq_mask, templates=templates, aatype=batch["aatype"])
    head = model.plddt_head
    pos, atom_mask = batch["all_atom_positions"], batch["all_atom_mask"]
    rec = {"single": out["single"][0].float(), "target": lddt_ca_per_residue(out["ca"].float(), pos, atom_mask)[0],
           "mask": (atom_mask[0, :, CA] > 0) & seq_mask[0]}
    if head.context:
        rec["pair_mean"] = head.pool_pair(out["pair"], seq_mask)[0].float()
        rec["agreement"] = structure_agreement(out["distogram"], out["ca"], seq_mask, model.config.heads)[0].float()
        rec["support"] = template_support(templates, seq_mask)[0]
    return rec


def _logits(model: Af2StructModel, rec: Inputs) -> torch.Tensor:
    """``[L, bins]`` from cached inputs."""
    pair = rec["pair_mean"][None] if "pair_mean" in rec else None
    agree = rec["agreement"][None] if "agreement" in rec else None
    support = rec["support"][None] if "support" in rec else None
    return model.plddt_head.from_pooled(rec["single"][None], pair, agree, support)[0]


def _loss(logits: torch.Tensor, rec: Inputs) -> torch.Tensor:
    return plddt_cross_entropy(logits[None], rec["target"][None], rec["mask"][None])


@torch.no_grad()
def confidence_metrics(model: Af2StructModel, records: List[Inputs]) -> Dict[str, float]:
    """Validation: pLDDT cross-entropy (residue mean), and Pearson r of pLDDT against the true
    lDDT-CA: all residues pooled, the mean within-chain r, and across chains (chain means)."""
    ce_sum, n_res, pred, true, within, means = 0.0, 0, [], [], [], []
    for rec in records:
        m = rec["mask"]
        if not m.any():
            continue
        logits = _logits(model, rec)
        ce_sum += float(_loss(logits, rec)) * int(m.sum())
        n_res += int(m.sum())
        p = (plddt_from_logits(logits) / 100)[m].numpy()
        t = rec["target"][m].numpy()
        pred.append(p)
        true.append(t)
        means.append((p.mean(), t.mean()))
        if p.std() > 0 and t.std() > 0:
            within.append(float(np.corrcoef(p, t)[0, 1]))
    if not n_res:
        return {}
    p, t = np.concatenate(pred), np.concatenate(true)
    out = {"valid_plddt": ce_sum / n_res, "valid_plddt_mae": float(np.abs(p - t).mean())}
    if p.std() > 0 and t.std() > 0:
        out["valid_plddt_r"] = float(np.corrcoef(p, t)[0, 1])
    if within:
        out["valid_plddt_r_within"] = float(np.mean(within))
    cm = np.array(means)
    if len(cm) > 2 and cm[:, 0].std() > 0 and cm[:, 1].std() > 0:
        out["valid_plddt_r_across"] = float(np.corrcoef(cm[:, 0], cm[:, 1])[0, 1])
    return out


def _example_key(ex: Example) -> str:
    """Identity of a chain window (a chain drawn twice is predicted once)."""
    return hashlib.sha1(ex["aatype"].tobytes() + ex["residue_index"][:1].tobytes()).hexdigest()


class _Cache:
    """``OUT/plddt_inputs.pt`` (or stage pae's file): the records so far, tied to the initial
    checkpoint's digest and the record layout's ``version``."""

    def __init__(self, path: Path, checkpoint_sha: str, version: int = CACHE_VERSION) -> None:
        self.path, self.sha = path, checkpoint_sha
        self.data: Dict[str, Any] = {"version": version, "checkpoint_digest": checkpoint_sha,
                                     "train": [], "valid": []}
        if path.exists():
            try:
                old = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - an unreadable cache is rebuilt, not trusted
                logger.warning("%s unreadable (%s); predicting the chains again", path, exc)
                return
            if old.get("version") == version and old.get("checkpoint_digest") == checkpoint_sha:
                self.data = old
                logger.info("%s: %d training and %d validation chains already predicted", path,
                            len(old["train"]), len(old["valid"]))
            else:
                logger.warning("%s was made from another checkpoint; predicting the chains again", path)

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            torch.save(self.data, tmp)


def _fill(cache: _Cache, split: str, examples, count: int, model: Af2StructModel, progress: bool,
          record: Callable[[Af2StructModel, Example], Inputs] = plddt_inputs) -> List[Inputs]:
    """Predict chains from ``examples`` (an iterator) until ``count`` distinct ones are cached
    (``record``: a chain's cached inputs)."""
    records = cache.data[split]
    keys = cache.data.setdefault(split + "_keys", [])
    seen = set(keys)
    bar = tqdm(total=count, initial=len(records), desc=f"predict {split} chains", unit="chain", disable=not progress)
    for ex in examples:
        if len(records) >= count:
            break
        key = _example_key(ex)
        if key in seen:
            continue
        seen.add(key)
        keys.append(key)
        records.append(record(model, ex))
        bar.update()
        if len(records) % 20 == 0:
            cache.save()
    bar.close()
    cache.save()
    return records[:count]  # a cache filled by a run that asked for more


def _initial_model(path: str, overrides, head: str = "plddt_head.") -> Tuple[Af2StructModel, ModelConfig]:
    """The checkpoint's model in eval mode, its config changed by ``overrides``; only tensors of
    the ``head`` being fitted may be new (e.g. ``heads.plddt_expected_lddt=true`` on an older
    checkpoint: they start at zero, so the head starts where it was)."""
    payload = load_checkpoint(path)
    model_config = config_from_checkpoint(payload).with_overrides(overrides)
    model = Af2StructModel(model_config)
    try:
        missing, unexpected = model.load_state_dict(payload["model"], strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model ({exc})") from None
    foreign = [k for k in missing if not k.startswith(head)] + list(unexpected)
    if foreign:
        raise CheckpointError(f"{path}: weights do not fit the model ({len(foreign)} tensors, e.g. {foreign[:2]})")
    if missing:
        logger.info("new %s tensors (zero-initialised where they add in): %s", head.rstrip("."), missing)
    return model.eval(), model_config


def calibrate_plddt(cfg, training_data, lr_at: Callable[[int], float]) -> Dict[str, Any]:
    """Run stage ``plddt`` for a :class:`~af2struct.train.loop.TrainConfig` ``cfg`` (``init_from``
    required; ``plddt_chains`` training chains, ``max_valid`` validation chains, each at most
    ``crop_size`` residues; ``steps``, ``lr``, ``warmup``, ``eval_every``, ``seed``).
    ``training_data``: ``(TrainingMix, validation examples)`` as ``load_training_data`` makes them;
    ``lr_at(step)``: the learning-rate schedule. Returns the best validation metrics."""
    model, model_config, train, valid = cached_chains(cfg, training_data, "plddt", "plddt_inputs.pt",
                                                      CACHE_VERSION, plddt_inputs)
    logger.info("fitting the pLDDT head on %d whole chains (%d residues), validating on %d", len(train),
                sum(int(r["mask"].sum()) for r in train), len(valid))
    return fit_head(model, model_config, model.plddt_head, "plddt", train, valid, _loss_rec, confidence_metrics,
                    "valid_plddt", cfg, lr_at)


def cached_chains(cfg, training_data, stage: str, cache_file: str, version: int,
                  record: Callable[[Af2StructModel, Example], Inputs]):
    """``(model, model_config, train, valid)`` for a head-fitting stage: the ``--init-from``
    model (only the stage's head may have new tensors), and the ``record``s of ``max_valid``
    validation and ``plddt_chains`` training chains, predicted once and cached in
    ``OUT/cache_file`` (resumable; training chains without a known residue dropped)."""
    if not cfg.init_from:
        raise ValueError(f"stage {stage} calibrates a trained model: give --init-from CHECKPOINT")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model, model_config = _initial_model(cfg.init_from, cfg.model_overrides, f"{stage}_head.")
    mix, valid_examples = training_data
    if not valid_examples:
        raise ValueError(f"stage {stage} selects on validation chains: give --clusters/--manifest with "
                         "--valid-fraction > 0, or --valid-data")
    cache = _Cache(out / cache_file, file_digest(cfg.init_from), version)
    valid = _fill(cache, "valid", iter(valid_examples), len(valid_examples), model, cfg.progress, record)
    draws = (mix.sample(k, 0) for k in range(100 * cfg.plddt_chains))
    train = _fill(cache, "train", draws, cfg.plddt_chains, model, cfg.progress, record)
    return model, model_config, [r for r in train if r["mask"].any()], valid


def _loss_rec(model: Af2StructModel, rec: Inputs) -> torch.Tensor:
    return _loss(_logits(model, rec), rec)


def fit_head(model: Af2StructModel, model_config: ModelConfig, head: torch.nn.Module, stage: str,
             train: List[Inputs], valid: List[Inputs], loss: Callable[[Af2StructModel, Inputs], torch.Tensor],
             metrics: Callable[[Af2StructModel, List[Inputs]], Dict[str, float]], select: str, cfg,
             lr_at: Callable[[int], float]) -> Dict[str, Any]:
    """Fit ``head`` alone (the rest frozen) over cached ``train`` records, one chain a step, for
    ``cfg.steps`` AdamW steps; every ``cfg.eval_every`` steps the ``metrics`` on ``valid``; keep
    the step with the lowest ``select`` metric (step 0: the checkpoint's head). Writes
    ``OUT/metrics.jsonl`` and ``OUT/best.pt``; returns the best metrics."""
    out = Path(cfg.out)
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(head.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([cfg.seed, 104729])
    rows = []
    best = dict(metrics(model, valid), step=0)
    best_state = {k: v.clone() for k, v in head.state_dict().items()}
    rows.append(best)
    logger.info("step 0 (the checkpoint's head): %s", {k: round(v, 4) for k, v in best.items()})
    order: List[int] = []
    for step in range(cfg.steps):
        if not order:
            order = rng.permutation(len(train)).tolist()
        rec = train[order.pop()]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        value = loss(model, rec)
        opt.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            m = dict(metrics(model, valid), step=step + 1)
            rows.append(m)
            logger.info("step %d: %s", step + 1, {k: round(v, 4) for k, v in m.items()})
            if m[select] < best[select]:
                best = m
                best_state = {k: v.clone() for k, v in head.state_dict().items()}
    with atomic_path(out / "metrics.jsonl") as tmp:
        Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows))
    head.load_state_dict(best_state)
    state = {"step": best["step"], "stage": stage, "init_from": str(cfg.init_from),
             "train_chains": len(train), "valid_chains": len(valid)}
    save_checkpoint(out / "best.pt", model, model_config, state, None,
                    {k: v for k, v in best.items() if isinstance(v, float) and math.isfinite(v)})
    logger.info("best at step %d: %s -> %s", best["step"], {k: round(v, 4) for k, v in best.items()}, out / "best.pt")
    return best

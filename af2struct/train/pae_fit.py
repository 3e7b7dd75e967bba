"""Stage ``pae``: fit the PAE head on whole chains, predicted and written as ``predict`` writes them.

The PAE head was trained in stage ``full`` on crops folded without templates, from the pair
representation alone; the aligned error a user reads is that of the written model (the template
trace refined, the backbone cleaned). With templates its within-target correlation with the
true aligned error was 0.51. Here, as stage ``plddt`` does for pLDDT, the trunk and structure
module are frozen: each chain (with 0-4 of its templates, as the training mix draws them) is
predicted once, its written backbone built (:func:`~af2struct.geometry.decode.decode_structure`),
and for a seeded sample of frame rows the head's inputs are cached (the pair layer-normalised
without its affine, ``rows x L x Cz``, and :func:`~af2struct.model.heads.pae_context_features`)
with the true aligned error; the head (``heads.pae_context=true``: a zero-initialised network
on the context, so step 0 is the checkpoint's head) is then fitted over the cache, keeping the
step with the lowest validation cross-entropy.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np
import torch

from af2struct.data.features import Example, collate
from af2struct.geometry.decode import decode_structure
from af2struct.model.frames import aligned_error
from af2struct.model.heads import pae_from_logits
from af2struct.model.network import Af2StructModel
from af2struct.train.confidence import Inputs, cached_chains, fit_head
from af2struct.train.losses import BACKBONE, CA, pae_cross_entropy

CACHE_VERSION = 1
ROWS = 48  # frame rows cached per chain (a chain's PAE is L x L; its rows are alike)


@torch.no_grad()
def pae_inputs(model: Af2StructModel, example: Example, rows: int = ROWS) -> Inputs:
    """One chain through the frozen model as ``predict`` runs it; for up to ``rows`` frame
    residues (seeded by the chain's sequence) the PAE head's inputs ``zn [R, L, Cz]`` (float16),
    ``feats [R, L, 12]`` (float16 too), the true aligned error ``target [R, L]`` of the written backbone and
    ``mask [R, L]`` (frame with N, CA, C and residue with CA in the native)."""
    model.eval()
    if model.pae_head is None or model.pae_head.context is None:
        raise ValueError("stage pae fits a PAE head with context: --set heads.pae_context=true")
    batch = collate([example])
    seq_mask = batch["seq_mask"] > 0
    templates = {k: v for k, v in batch.items() if k.startswith("template_")} or None
    out = model.structure(model(batch=batch, return_all=True), seq_mask, templates=templates, aatype=batch["aatype"])
    n = int(seq_mask[0].sum())
    protein = decode_structure(example["aatype"][:n], out["backbone"][0, :n].numpy(), out["chi"][0, :n].numpy(),
                               np.zeros(n), pack=False)
    written = torch.tensor(protein.atom_positions[:, list(BACKBONE)], dtype=torch.float32)
    pos, atom_mask = batch["all_atom_positions"][0, :n], batch["all_atom_mask"][0, :n] > 0
    err = aligned_error(written, pos[:, list(BACKBONE)].float())
    pair_ok = atom_mask[:, list(BACKBONE)].all(-1)[:, None] & atom_mask[None, :, CA]
    rng = np.random.default_rng(int.from_bytes(example["aatype"][:n].tobytes()[:8].ljust(8, b"\0"), "little"))
    pick = torch.as_tensor(np.sort(rng.choice(n, min(rows, n), replace=False)))
    norm = model.pae_head.norm
    z = out["pair"][0, pick, :n].float()
    zn = torch.nn.functional.layer_norm(z, norm.normalized_shape, eps=norm.eps)
    return {"zn": zn.half(), "feats": out["pae_context"][0, pick, :n].half(), "target": err[pick],
            "mask": pair_ok[pick]}


def _logits(model: Af2StructModel, rec: Inputs) -> torch.Tensor:
    return model.pae_head.from_normalized(rec["zn"].float(), rec["feats"].float())


def _loss(model: Af2StructModel, rec: Inputs) -> torch.Tensor:
    return pae_cross_entropy(_logits(model, rec)[None], rec["target"][None], rec["mask"][None],
                             model.config.heads.pae_max)


@torch.no_grad()
def pae_metrics(model: Af2StructModel, records: List[Inputs]) -> Dict[str, float]:
    """Validation: PAE cross-entropy (pair mean), the mean within-chain Pearson r of the PAE
    with the true aligned error, and the mean PAE against the mean true error."""
    ce_sum, n_pairs, within, pae_mean, true_mean = 0.0, 0, [], [], []
    for rec in records:
        m = rec["mask"]
        if not m.any():
            continue
        ce_sum += float(_loss(model, rec)) * int(m.sum())
        n_pairs += int(m.sum())
        pae = pae_from_logits(_logits(model, rec), model.config.heads.pae_max)[m].numpy()
        t = rec["target"][m].numpy()
        pae_mean.append(pae.mean())
        true_mean.append(t.mean())
        if pae.std() > 0 and t.std() > 0:
            within.append(float(np.corrcoef(pae, t)[0, 1]))
    if not n_pairs:
        return {}
    out = {"valid_pae": ce_sum / n_pairs, "valid_pae_mean": float(np.mean(pae_mean)),
           "valid_true_ae_mean": float(np.mean(true_mean))}
    if within:
        out["valid_pae_r_within"] = float(np.mean(within))
    return out


def calibrate_pae(cfg, training_data, lr_at: Callable[[int], float]) -> Dict[str, Any]:
    """Run stage ``pae`` for a :class:`~af2struct.train.loop.TrainConfig` (as stage ``plddt``:
    ``init_from``, ``plddt_chains`` training chains, ``max_valid`` validation chains, ``steps``,
    ``lr``, ...); ``--set heads.pae_context=true`` adds the context network to an older
    checkpoint. Returns the best validation metrics."""
    model, model_config, train, valid = cached_chains(cfg, training_data, "pae", "pae_inputs.pt", CACHE_VERSION,
                                                      pae_inputs)
    return fit_head(model, model_config, model.pae_head, "pae", train, valid, _loss, pae_metrics, "valid_pae",
                    cfg, lr_at)

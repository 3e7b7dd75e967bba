"""Fit the PAE calibrator of templated models (:class:`~af2struct.model.pae_ensemble.PaeCalibrator`).

Training-split chains of the template library with a template from another cluster are predicted
as the pipeline predicts them (the head's PAE, the written model, its pLDDT), the spread of the
distogram's structures around each written model is sampled, and the calibrator is fitted by mean
squared error to the true aligned error of the written model. Chains of the held-out clusters
(the split the benchmarks hold out) are never read, nor used as templates.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
from tqdm import tqdm

from af2struct.common.io import structure_name
from af2struct.data.clusters import find_structures, read_clusters
from af2struct.data.template_search import TemplateDB, held_out_chains, hits_from_other_clusters
from af2struct.data.templates import template_features
from af2struct.model.frames import aligned_error
from af2struct.model.pae_ensemble import PaeCalibrator, aligned_spread, calibrator_features
from af2struct.predict.pipeline import predict_structure

log = logging.getLogger(__name__)


def training_chains(db: TemplateDB, clusters_path: Path, train_dirs: Sequence[Path], n: int, seed: int,
                    max_len: int = 300) -> List[tuple]:
    """``n`` chains ``(name, sequence, backbone [L, 3, 3], hits)`` of the training split (the split
    of the library's and ``train_dirs``' chains by cluster that the benchmarks hold out 2 % of),
    40-``max_len`` residues, each with a jackhmmer hit from another cluster that is not held out."""
    clusters = read_clusters(clusters_path, "cluster")
    held = held_out_chains(db, clusters, [structure_name(f) for f in find_structures([str(d) for d in train_dirs])])
    cand = [i for i in range(len(db)) if i not in held and 40 <= db.lengths[i] <= max_len]
    np.random.default_rng(seed).shuffle(cand)
    out = []
    for i in cand:
        if len(out) >= n:
            break
        hits = hits_from_other_clusters(db, i, clusters, held)
        if hits:
            out.append((db.names[i], db.sequence(i), db.backbone(i), hits))
    return out


def collect(model, db: TemplateDB, chains: Sequence[tuple]) -> List[Dict[str, torch.Tensor]]:
    """Per chain the calibrator's inputs ``features [L, L, 10]`` and the true aligned error
    ``error [L, L]`` of the written model (the model's own PAE without its ensemble term)."""
    sc = model.config.structure
    h = model.config.heads
    head_only = dataclasses.replace(model.config, structure=dataclasses.replace(sc, pae_spread_steps=0))
    model.config, saved = head_only, model.config
    try:
        data = []
        for name, seq, native, hits in tqdm(chains, desc="chains", unit="chain"):
            pred = predict_structure(model, seq, templates=template_features(hits, db, len(seq)))
            bb = torch.tensor(pred.protein.atom_positions[:, :3], dtype=torch.float64)
            error = aligned_error(bb, torch.tensor(native[:, :3], dtype=torch.float64)).float()
            ca = bb[:, 1].float()
            spread = aligned_spread(torch.from_numpy(pred.distogram_logits), ca, sc, h.distogram_min, h.distogram_max)
            feats = calibrator_features(torch.from_numpy(pred.pae), spread, torch.from_numpy(pred.plddt), ca)
            data.append({"name": name, "features": feats, "error": error})
    finally:
        model.config = saved
    return data


def fit(data: Sequence[Dict[str, torch.Tensor]], epochs: int = 30, pairs: int = 20000, lr: float = 1e-3,
        seed: int = 0) -> PaeCalibrator:
    """A :class:`PaeCalibrator` fitted by mean squared error over ``epochs`` passes of the
    chains, ``pairs`` random pairs of a chain per step (Adam, ``lr``); seeded."""
    torch.manual_seed(seed)
    calibrator = PaeCalibrator()
    opt = torch.optim.Adam(calibrator.parameters(), lr)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        for k in rng.permutation(len(data)):
            x = data[k]["features"].reshape(-1, data[k]["features"].shape[-1])
            y = data[k]["error"].reshape(-1)
            pick = torch.randperm(len(y))[:pairs]
            loss = (calibrator(x[pick]) - y[pick]).square().mean() / 100
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        log.info("epoch %d: mean squared error %.2f A^2", epoch + 1, 100 * total / len(data))
    return calibrator.eval()


def within_chain_r(calibrator, data: Sequence[Dict[str, torch.Tensor]]) -> float:
    """Mean over chains of the Pearson r between the calibrated PAE and the true aligned error."""
    rs = []
    with torch.no_grad():
        for d in data:
            a, b = calibrator(d["features"]).reshape(-1).numpy(), d["error"].reshape(-1).numpy()
            rs.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(rs))

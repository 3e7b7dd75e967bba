"""Training data for a :class:`~af2struct.train.loop.TrainConfig`: the chains (all-atom and
backbone-only), the split by whole sequence clusters, the samplers and the fixed validation
crops, read through the data modules (:mod:`af2struct.data`)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from af2struct.data.backbone_db import BackboneDB
from af2struct.data.clusters import read_clusters, split_by_cluster
from af2struct.data.dataset import proteins_from_folder, proteins_from_sidechainnet
from af2struct.data.features import Example
from af2struct.data.templates import read_hits_table
from af2struct.train.sampling import TemplateSource, TrainingMix, backbone_pool, center_crops, protein_pool


def read_split_clusters(cfg) -> Optional[Dict[str, str]]:
    if cfg.clusters:
        return read_clusters(Path(cfg.clusters), "cluster")
    if cfg.manifest:
        return read_clusters(Path(cfg.manifest))
    return None


def load_proteins(cfg):
    """``(train, valid)`` dicts of all-atom Proteins: a SidechainNet pickle's splits, a folder
    with ``valid_data``, or a folder (``valid`` empty: :func:`load_training_data` splits it)."""
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
    return proteins, {}


def load_training_data(cfg) -> Tuple[TrainingMix, List[Example]]:
    """The sampler over the training chains and the fixed validation crops.

    Whole sequence clusters are held out across both kinds of data, so an all-atom chain never
    trains while a member of its cluster validates."""
    clusters = read_split_clusters(cfg)
    db = BackboneDB(cfg.backbone_db) if cfg.backbone_db else None
    train_p, valid_p = load_proteins(cfg) if cfg.data else ({}, {})
    # a folder without its own validation set is split here, together with the database
    split_folder = bool(cfg.data) and not cfg.data.endswith(".pkl") and not cfg.valid_data
    split: Dict[str, str] = {}
    if not cfg.valid_data and (clusters is not None or db is not None):
        names = (list(db.names) if db is not None else []) + (list(train_p) if split_folder else [])
        split = split_by_cluster(sorted(set(names)), clusters or {}, cfg.valid_fraction, cfg.split_seed)
    if split_folder and split:
        valid_p = {k: v for k, v in train_p.items() if split.get(k, "train") != "train"}
        train_p = {k: v for k, v in train_p.items() if split.get(k, "train") == "train"}
    pools, fractions, valid = [], [], []
    n_bb_valid = round(cfg.max_valid * (cfg.backbone_fraction if cfg.data else 1.0))
    if db is not None:
        train_idx = [i for i, n in enumerate(db.names) if split.get(n, "train") == "train"]
        valid_idx = [i for i, n in enumerate(db.names) if split.get(n, "train") != "train"]
        train_t = valid_t = None
        if cfg.template_hits:
            # held-out chains are never a template; a held-out chain's templates come from other clusters
            hits = read_hits_table(cfg.template_hits)
            held_out = frozenset(valid_idx)
            train_t = TemplateSource(db, hits, held_out, None, cfg.max_templates, min_templates=cfg.min_templates)
            valid_t = TemplateSource(db, hits, held_out, clusters or {}, cfg.max_templates)
        pools.append(backbone_pool(db, train_idx, clusters, cfg.crop_size, templates=train_t))
        fractions.append(cfg.backbone_fraction if cfg.data else 1.0)
        valid += center_crops(backbone_pool(db, valid_idx, None, cfg.crop_size, templates=valid_t), cfg.crop_size,
                              n_bb_valid, cfg.split_seed)
    if cfg.data:
        pools.append(protein_pool(train_p, clusters, cfg.crop_size))
        fractions.append(1.0 - cfg.backbone_fraction if db is not None else 1.0)
        valid += center_crops(protein_pool(valid_p, None, cfg.crop_size), cfg.crop_size,
                              cfg.max_valid - len(valid), cfg.split_seed)
    return TrainingMix(pools, fractions, cfg.crop_size, cfg.seed), valid

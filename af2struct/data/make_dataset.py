"""Turn a folder of PDB/mmCIF files into a SidechainNet-format pickle (the command:
``af2struct make-dataset`` / ``scripts/make_dataset.py``, in :mod:`af2struct.cli.make_dataset`)."""

from __future__ import annotations

import csv
import gzip
import logging
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from af2struct.common.io import StructureError, find_structure_files, read_structure, structure_name
from af2struct.data.msa import read_fasta
from af2struct.data.sidechainnet import DatasetError, build_dataset, make_entry, save_dataset

logger = logging.getLogger("af2struct.make_dataset")


def find_structures(inputs: Sequence[str]) -> List[Path]:
    """Structure files among ``inputs`` (files, folders, globs); a missing input is a DatasetError."""
    try:
        return find_structure_files(inputs)
    except FileNotFoundError as exc:
        raise DatasetError(str(exc)) from None


def read_clusters(manifest: Path, column: Optional[str] = None) -> Dict[str, str]:
    """``{name: cluster}`` from a TSV (``.gz`` too) with a ``name`` column and a cluster column."""
    opener = gzip.open if str(manifest).endswith(".gz") else open
    with opener(manifest, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "name" not in rows[0]:
        raise DatasetError(f"{manifest}: a TSV with a 'name' column is needed")
    cols = [column] if column else ["cluster40", "cluster", "cluster95"]
    col = next((c for c in cols if c in rows[0]), None)
    if col is None:
        raise DatasetError(f"{manifest}: no cluster column among {cols}")
    return {r["name"]: r[col] for r in rows}


def split_by_cluster(
    names: Sequence[str], clusters: Dict[str, str], valid_fraction: float, seed: int = 0
) -> Dict[str, str]:
    """Assign each name to ``train`` or ``valid-clusters`` so no cluster spans both."""
    if not 0 <= valid_fraction < 1:
        raise DatasetError("--valid-fraction must be in [0, 1)")
    by_cluster: Dict[str, List[str]] = {}
    for n in names:
        by_cluster.setdefault(clusters.get(n, f"_own_{n}"), []).append(n)
    keys = sorted(by_cluster)
    random.Random(seed).shuffle(keys)
    target = valid_fraction * len(names)
    out, taken = {}, 0
    for k in keys:
        split = "valid-clusters" if taken < target else "train"
        if split != "train":
            taken += len(by_cluster[k])
        for n in by_cluster[k]:
            out[n] = split
    return out


def make_dataset(
    inputs: Sequence[str],
    out: Path,
    manifest: Optional[Path] = None,
    valid_fraction: float = 0.05,
    cluster_column: Optional[str] = None,
    sequences: Optional[Path] = None,
    split: str = "train",
    seed: int = 0,
    progress: bool = True,
) -> Dict[str, object]:
    """Build and write the dataset; returns a summary (counts per split, failures)."""
    files = find_structures(inputs)
    if not files:
        raise DatasetError(f"no PDB/mmCIF files found in {list(inputs)}")
    full = dict(read_fasta(sequences)) if sequences else {}
    entries: Dict[str, dict] = {}
    failures: Dict[str, str] = {}
    for f in tqdm(files, desc="structures", unit="file", disable=not progress):
        name = structure_name(f)
        try:
            record = read_structure(f)
            entries[name] = make_entry(record, name, full_sequence=full.get(name))
        except (StructureError, DatasetError, ValueError) as exc:
            failures[name] = str(exc)
            logger.error("skipped %s: %s", f, exc)
    if not entries:
        raise DatasetError("no structure could be converted; nothing written")
    if manifest is not None:
        assign = split_by_cluster(list(entries), read_clusters(manifest, cluster_column), valid_fraction, seed)
    else:
        assign = {n: split for n in entries}
    splits: Dict[str, list] = {}
    for name, e in entries.items():
        splits.setdefault(assign[name], []).append(e)
    data = build_dataset(splits, description=f"af2struct dataset from {', '.join(map(str, inputs))}")
    save_dataset(data, out)
    summary = {"out": str(out), "splits": {k: len(v) for k, v in splits.items()}, "failed": failures}
    logger.info("wrote %s: %s; %d failed", out, summary["splits"], len(failures))
    return summary

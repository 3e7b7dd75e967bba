"""Chain clusters and the splits made from them: a cluster manifest (TSV) read into
``{name: cluster}``, names split so that no cluster spans training and validation, and the
structure files of a folder. Used by the dataset command, training and the benchmarks' held-out sets."""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from af2struct.common.io import find_structure_files
from af2struct.data.sidechainnet import DatasetError


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

"""Turn a folder of PDB/mmCIF files into a SidechainNet-format pickle (the command:
``af2struct make-dataset`` / ``scripts/make_dataset.py``, in :mod:`af2struct.cli.make_dataset`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

from tqdm import tqdm

from af2struct.common.io import StructureError, read_structure, structure_name
from af2struct.data.clusters import find_structures, read_clusters, split_by_cluster
from af2struct.data.msa import read_fasta
from af2struct.data.sidechainnet import DatasetError, build_dataset, make_entry, save_dataset

logger = logging.getLogger("af2struct.make_dataset")


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

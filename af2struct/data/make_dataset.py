"""Turn a folder of PDB/mmCIF files into a SidechainNet-format pickle.

``python scripts/make_dataset.py PDB_OR_CIF_DIR --out FILE.pkl [--split-by-cluster manifest.tsv]``
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from af2struct.common.io import StructureError, find_structure_files, read_structure, structure_name
from af2struct.data.msa import MsaError, read_fasta
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
    from tqdm import tqdm

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


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct make-dataset")
    p.description = (
        "Convert a folder of PDB/mmCIF structures (optionally .gz) into a SidechainNet-format "
        "pickle that sidechainnet.load(local_scn_path=FILE) and af2struct's loaders read. "
        "Each file must hold one protein chain. Pickles run code when loaded: share and load "
        "only files you trust."
    )
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("inputs", nargs="+", help="structure files or folders of them")
    p.add_argument("--out", required=True, type=Path, help="output .pkl (written atomically)")
    p.add_argument("--split-by-cluster", type=Path, metavar="MANIFEST.tsv",
                   help="TSV with 'name' and a cluster column; whole clusters go to validation")
    p.add_argument("--cluster-column", help="cluster column to use (default: cluster40, cluster, cluster95)")
    p.add_argument("--valid-fraction", type=float, default=0.05, help="fraction of chains for validation")
    p.add_argument("--sequences", type=Path, metavar="FASTA",
                   help="full sequences by name; residues are placed by number (seq[num-1]), "
                        "unobserved ones marked missing in 'msk'")
    p.add_argument("--split", default="train", help="split name without a manifest (train, test, valid-X)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from af2struct.cli import run_command

    return run_command("make-dataset", argv)


def run(args: argparse.Namespace) -> int:
    try:
        summary = make_dataset(
            args.inputs, args.out, args.split_by_cluster, args.valid_fraction,
            args.cluster_column, args.sequences, args.split, args.seed, progress=not args.quiet,
        )
    except (DatasetError, MsaError, StructureError, OSError) as exc:
        logger.error("%s", exc)
        return 1
    return 0 if not summary["failed"] else 3


if __name__ == "__main__":
    sys.exit(main())

"""``af2struct make-dataset`` / ``scripts/make_dataset.py``: a folder of PDB/mmCIF chains -> a
SidechainNet-format pickle."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import SEED_MAX, HelpFormatter, float_in, int_in
from af2struct.common.io import StructureError
from af2struct.data.make_dataset import make_dataset
from af2struct.data.msa import MsaError
from af2struct.data.sidechainnet import DatasetError


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct make-dataset")
    p.description = (
        "Convert a folder of PDB/mmCIF structures (optionally .gz) into a SidechainNet-format "
        "pickle that sidechainnet.load(local_scn_path=FILE) and af2struct's loaders read. "
        "Each file must hold one protein chain. Pickles run code when loaded: share and load "
        "only files you trust."
    )
    p.formatter_class = HelpFormatter
    p.add_argument("inputs", nargs="+", help="structure files or folders of them")
    p.add_argument("--out", required=True, type=Path, help="output .pkl (written atomically)")
    p.add_argument("--split-by-cluster", type=Path, metavar="MANIFEST.tsv",
                   help="TSV with 'name' and a cluster column; whole clusters go to validation")
    p.add_argument("--cluster-column", help="cluster column to use (default: cluster40, cluster, cluster95)")
    p.add_argument("--valid-fraction", type=float_in(0, 0.99), default=0.05, help="fraction of chains for validation")
    p.add_argument("--sequences", type=Path, metavar="FASTA",
                   help="full sequences by name; residues are placed by number (seq[num-1]), "
                        "unobserved ones marked missing in 'msk'")
    p.add_argument("--split", default="train", help="split name without a manifest (train, test, valid-X)")
    p.add_argument("--seed", type=int_in(0, SEED_MAX), default=0, help="seed of the validation split")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("make-dataset", argv)


def run(args: argparse.Namespace) -> int:
    try:
        summary = make_dataset(
            args.inputs, args.out, args.split_by_cluster, args.valid_fraction,
            args.cluster_column, args.sequences, args.split, args.seed, progress=not args.quiet,
        )
    except (DatasetError, MsaError, StructureError, OSError) as exc:
        logging.getLogger("make-dataset").error("%s", exc)
        return 1
    return 0 if not summary["failed"] else 3


if __name__ == "__main__":
    sys.exit(main())

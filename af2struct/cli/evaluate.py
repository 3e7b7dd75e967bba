"""``af2struct evaluate`` / ``scripts/evaluate.py``: CASP-style scores of models against natives."""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import HelpFormatter, int_in, out_folder
from af2struct.eval.evaluate import EvaluationError, evaluate

DESCRIPTION = (
    "Score predicted structures against native structures the way CASP does: lDDT-CA and all-atom lDDT, "
    "GDT_TS/GDT_HA and TM-score (maximised over superpositions), CA and all-atom RMSD, clashscore and "
    "peptide-bond violations. Residues correspond by residue number where the numbering agrees, else by "
    "sequence alignment (the rule predict --native uses; --align or --by-number forces one). A model written "
    "in two formats (relaxed.pdb and relaxed.cif) is scored once. Writes scores.csv, "
    "scores.json, summary.md and plots."
)


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct evaluate")
    p.description = DESCRIPTION
    p.formatter_class = HelpFormatter
    p.add_argument("--pred", required=True,
                   help="model file, folder of <target>*.pdb|cif files, or folder of <target>/ subfolders")
    p.add_argument("--native", required=True,
                   help="native file, folder of <target>.pdb|cif, or a SidechainNet .pkl (trusted files only)")
    p.add_argument("--native-split", help="split of the SidechainNet pickle to use (default: all)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --native to be a SidechainNet .pkl: reading a pickle runs any code it holds, so "
                        "only for files you made or trust")
    p.add_argument("--out", required=True, type=out_folder, help="output folder")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--align", dest="align", action="store_const", const=True, default=None,
                     help="always match residues by sequence alignment (default: by number where the numbering "
                          "agrees, else by alignment)")
    how.add_argument("--by-number", dest="align", action="store_const", const=False,
                     help="always match residues by residue number (an error where the numbering differs)")
    p.add_argument("--jobs", type=int_in(1, 1024), default=1, help="parallel worker processes")
    p.add_argument("--no-plots", action="store_true", help="skip PNG plots")
    p.add_argument("--force", action="store_true", help="score every model again, not only new or changed ones")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("evaluate")
    try:
        s = evaluate(args.pred, args.native, args.out, align=args.align, jobs=args.jobs,
                     native_split=args.native_split, plots=not args.no_plots, progress=not args.quiet,
                     trust_pickle=args.trust_pickle, force=args.force)
    except (EvaluationError, ValueError, OSError) as exc:
        log.error("%s", exc)
        return 1
    g = s["groups"]["first model"]
    log.info("%d/%d models scored over %d targets; first models: mean GDT_TS %.2f, TM %.3f, lDDT-CA %.3f -> %s",
             s["n_scored"], s["n_models"], s["n_targets"], g["gdt_ts"]["mean"], g["tm_score"]["mean"],
             g["lddt_ca"]["mean"], args.out)
    return 0 if not s["failures"] else 3


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("evaluate", argv)

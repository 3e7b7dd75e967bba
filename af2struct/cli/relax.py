"""``af2struct relax`` / ``scripts/relax.py``: refinement-only reruns of PDB/mmCIF structures."""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import HelpFormatter, int_in, out_folder
from af2struct.common.runner import closing_line, failed_count
from refine.batch import relax_batch
from refine.cli import add_relax_arguments, relax_config_from_args

DESCRIPTION = (
    "Relax protein structures to remove clashes and broken geometry without moving them away from the "
    "input: Amber minimisation after AlphaFold2's protocol (PDBFixer cleanup, harmonic restraints on heavy "
    "atoms, L-BFGS, rounds that act on what is still in violation; --violation-policy release is AlphaFold2's "
    "rule, the default repel holds clashing pairs apart instead) or PyRosetta FastRelax with coordinate "
    "constraints. Writes DIR/<name>_relaxed.pdb and DIR/relax_report.csv/.json; a rerun skips structures "
    "finished with the same input and settings (--force: all); one run writes into DIR at a time. Status "
    "'ok' means clean; 'violations' means the structure was written but violations remain (said in the log; "
    "the same rule as predict's). Exit code 1: the run could not start; 3: some structures failed."
)


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct relax")
    p.description = DESCRIPTION
    p.formatter_class = HelpFormatter
    p.add_argument("inputs", nargs="+", help="PDB/mmCIF files (.gz allowed), folders, or glob patterns")
    p.add_argument("--out", required=True, type=out_folder, help="output folder")
    p.add_argument("--format", choices=("pdb", "cif"), default="pdb", help="output structure format")
    p.add_argument("--amber-out", action="store_true", help="also write <name>_relaxed.prmtop/.inpcrd (parmed)")
    p.add_argument("--jobs", type=int_in(1, 1024), default=1, help="structures relaxed in parallel (processes)")
    p.add_argument("--force", action="store_true",
                   help="relax every input again; by default a rerun skips structures finished from the same file "
                        "content and settings, and redoes the rest (failed ones included)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_relax_arguments(p.add_argument_group("relax settings (refine.RelaxConfig)"))
    return p


def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("relax")
    try:
        config = relax_config_from_args(args)
        records = relax_batch(args.inputs, args.out, config, jobs=args.jobs, fmt=args.format,
                              amber=args.amber_out, force=args.force, progress=not args.quiet)
    except (ValueError, FileNotFoundError, OSError) as exc:
        log.error("%s", exc)
        return 1
    # one rule with predict: violations left are said (status and a warning line) but are not a
    # failure: the structure is written; exit code 3 only when some structure failed
    log.info("%s", closing_line(records, "relaxed clean", args.out / "relax_report.csv"))
    return 3 if failed_count(records) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("relax", argv)

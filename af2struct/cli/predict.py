"""``af2struct predict`` / ``scripts/predict.py``: sequence (+MSA) in, refined all-atom structure out."""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import HelpFormatter, out_folder
from af2struct.common.runner import closing_line, failed_count
from af2struct.predict.batch import predict_batch
from af2struct.predict.options import add_predict_arguments, options_from_arguments
from af2struct.predict.targets import read_targets

DESCRIPTION = (
    "Predict structures with af2struct: (templates ->) trunk -> distogram -> MDS -> SE(3) refinement -> side "
    "chains -> Amber relax. Writes DIR/<name>/ (unrelaxed.pdb, relaxed.pdb with pLDDT in the B-factor column, "
    "distogram.npz, confidence.json, pae.json, pLDDT.png, pae.png, distogram.png, timings.json, result.json; "
    "templates.json with --templates; .cif with --format cif) and DIR/summary.csv. Targets "
    "run shortest first; a rerun skips targets finished with the same input and options and redoes the rest "
    "(--force: all). One run writes into DIR at a time. Status 'ok' means relaxed clean (as `af2struct relax` "
    "says it); 'violations': written, but relax left violations (a warning line says which; not a failure); "
    "'relax_failed': the unrelaxed model only. Exit code 1: the run could not start; 3: some targets failed "
    "(error or relax_failed), the others finished."
)


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The command line: the inputs and the output folder here; every option of the run generated
    from its group in :mod:`af2struct.predict.options`."""
    p = p or argparse.ArgumentParser(prog="af2struct predict")
    p.description = DESCRIPTION
    p.formatter_class = HelpFormatter
    p.add_argument("input", nargs="?", help="FASTA file with one or more sequences")
    p.add_argument("--sequence", help="a single sequence instead of a FASTA file")
    p.add_argument("--name", default="query", help="name (output folder) for --sequence")
    p.add_argument("--out", required=True, type=out_folder, help="output folder")
    p.add_argument("--force", action="store_true",
                   help="redo every target; by default a rerun skips targets finished with the same sequence, "
                        "MSA, native, weights and options, and redoes the rest")
    add_predict_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("predict")
    try:
        targets = read_targets(args.input, args.sequence, args.name)
        opts = options_from_arguments(args)
        records = predict_batch(targets, args.out, opts, force=args.force)
    except Exception as exc:  # run-level problems (bad input, missing weights): one message, no traceback
        log.error("%s", exc)
        return 1
    if opts.outputs.native:
        print(score_table(records))
    # one rule with relax: violations left are said (status, a warning line), not a failure
    log.info("%s", closing_line(records, "predicted (relaxed clean or not relaxed)", args.out / "summary.csv"))
    return 3 if failed_count(records) else 0


def score_table(records) -> str:
    """The scores against the natives as a small plain-text table (what --native computed)."""
    cols = [("name", "target", "{}"), ("length", "L", "{}"), ("mean_plddt", "pLDDT", "{:.1f}"),
            ("lddt_ca", "lDDT-CA", "{:.3f}"), ("gdt_ts", "GDT_TS", "{:.1f}"), ("tm_score", "TM", "{:.3f}"),
            ("relax_rmsd", "relax RMSD", "{:.2f}"), ("status", "status", "{}")]
    rows = [[h for _, h, _ in cols]]
    for r in records:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("-" if v in (None, "") else fmt.format(float(v) if fmt != "{}" else v))
        if r.get("status") in ("error", "not run"):
            cells[2:] = ["failed" if r.get("status") == "error" else "not run"] + [""] * (len(cols) - 3)
        elif r.get("native_error"):
            cells[3:6] = ["no score"] + [""] * 2
        rows.append(cells)
    width = [max(len(str(row[i])) for row in rows) for i in range(len(cols))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, width)).rstrip() for row in rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("predict", argv)

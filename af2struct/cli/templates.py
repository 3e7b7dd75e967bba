"""``af2struct templates build DIR --out DB.npz``: a template database from PDB/mmCIF files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import HelpFormatter, int_in
from af2struct.data.template_db import TemplateBuildError, build_template_db, describe


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct templates")
    p.description = (
        "Template databases for `af2struct predict --templates DB`. `build` reads a folder of PDB/mmCIF files "
        "(.gz too; e.g. a local PDB mirror, as AlphaFold's --template_mmcif_dir) and writes one .npz in the "
        "chains_backbone.npz layout: each protein chain's gap-free stretches with N, CA, C, O, the PDB id from "
        "the file name, the release date where the file has one (used by --max-template-date). Unreadable "
        "files are reported and skipped. ../shared/data/pdb2018_backbone/chains_backbone.npz is usable as it is.")
    p.formatter_class = HelpFormatter
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                           help="build: a template database from PDB/mmCIF files")
    b = sub.add_parser("build", help="build a template database from structure files",
                       formatter_class=HelpFormatter)
    b.add_argument("inputs", nargs="+", help="folders or files (PDB/mmCIF, .gz allowed)")
    b.add_argument("--out", required=True, type=Path, help="the database file to write (.npz)")
    b.add_argument("--min-length", type=int_in(1), default=10, help="shortest gap-free stretch kept (residues)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("templates")
    out = args.out if str(args.out).endswith(".npz") else Path(str(args.out) + ".npz")
    try:
        report = build_template_db(args.inputs, out, args.min_length, progress=not args.quiet)
    except (TemplateBuildError, OSError) as exc:
        log.error("%s", exc)
        return 1
    log.info("%s", describe(report, out))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("templates", argv)

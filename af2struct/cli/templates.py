"""``af2struct templates build DIR --out DB.npz``: a template database from PDB/mmCIF files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from af2struct.cli import run_command
from af2struct.common.argtypes import HelpFormatter, int_in
from af2struct.data.pdb_mirror import DEFAULT_MIRROR, MirrorError, PdbMirror
from af2struct.data.seqres_db import SeqresDB
from af2struct.data.template_db import TemplateBuildError, build_template_db, describe
from af2struct.data.templates import TemplateError


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct templates")
    p.description = (
        "Template databases for `af2struct predict --templates DB`. `build` reads a folder of PDB/mmCIF files "
        "(.gz too; e.g. a local PDB mirror, as AlphaFold's --template_mmcif_dir) and writes one .npz in the "
        "chains_backbone.npz layout: each protein chain whole (missing residues are gaps), the PDB id the file "
        "states, the release date where the file has one (used by --max-template-date), each chain once. "
        "Unreadable files are reported and skipped. ../shared/data/pdb2018_backbone/chains_backbone.npz is usable "
        "as it is. `update` refreshes the PDB's pdb_seqres.txt for predict --templates pdb.")
    p.formatter_class = HelpFormatter
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                           help="build: a template database from PDB/mmCIF files; update: refresh the PDB's "
                                "pdb_seqres.txt in the cache (predict --templates pdb)")
    b = sub.add_parser("build", help="build a template database from structure files",
                       formatter_class=HelpFormatter)
    b.add_argument("inputs", nargs="+", help="folders or files (PDB/mmCIF, .gz allowed)")
    b.add_argument("--out", required=True, type=Path, help="the database file to write (.npz)")
    b.add_argument("--min-length", type=int_in(1), default=10,
                   help="fewest residues with N, CA, C and O a chain needs to be kept")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    u = sub.add_parser("update", help="download the PDB's current pdb_seqres.txt into the template cache",
                       formatter_class=HelpFormatter,
                       description="Refresh pdb_seqres.txt (~270 MB) for predict --templates pdb. Predictions made "
                                   "against the previous version are redone by their next rerun (their fingerprint "
                                   "names the version searched).")
    u.add_argument("--pdb-mirror", metavar="URL|DIR", default=DEFAULT_MIRROR, help="the mirror (wwPDB layout)")
    u.add_argument("--template-cache", metavar="DIR", type=Path, help="default: ~/.cache/af2struct/pdb")
    u.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    log = logging.getLogger("templates")
    if args.action == "update":
        try:
            mirror = PdbMirror(args.pdb_mirror, args.template_cache, progress=not args.quiet)
            if mirror.local is not None:
                log.error("--pdb-mirror %s is a local folder: it is read in place, there is nothing to update "
                          "(update the mirror itself)", args.pdb_mirror)
                return 1
            path = mirror.seqres(refresh=True)
            SeqresDB(path)  # parsed now: checked, and the next prediction starts at once
        except (MirrorError, TemplateError, OSError) as exc:
            log.error("%s", exc)
            return 1
        log.info("pdb_seqres.txt updated: %s (%.0f MB)", path, path.stat().st_size / 1e6)
        return 0
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

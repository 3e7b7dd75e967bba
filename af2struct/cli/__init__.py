"""The ``af2struct`` command: one entry point with subcommands, each sharing its argument
definition with the matching scripts/*.py.

    af2struct predict seqs.fasta --out folds
    af2struct relax model.pdb --out relaxed
    af2struct evaluate --pred folds --native natives --out scores
    af2struct train --backbone-db chains_backbone.npz --data chains/ --out runs/x
    af2struct make-dataset chains/ --out train.pkl
    af2struct templates build pdb_mirror/ --out templates.npz
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from af2struct.version import __version__

COMMANDS = {
    "predict": ("af2struct.cli.predict", "fold sequences: structure, confidence and relax"),
    "relax": ("af2struct.cli.relax", "refinement-only reruns: Amber (OpenMM) or PyRosetta"),
    "evaluate": ("af2struct.cli.evaluate", "CASP-style scores against natives"),
    "train": ("af2struct.cli.train", "train the network (resumable, DDP with torchrun)"),
    "make-dataset": ("af2struct.cli.make_dataset", "structure folder -> SidechainNet-format pickle"),
    "templates": ("af2struct.cli.templates", "build a template database from PDB/mmCIF files"),
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command with every subcommand's options (imports every subcommand's module)."""
    p = argparse.ArgumentParser(prog="af2struct", description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"af2struct {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, summary) in COMMANDS.items():
        mod = importlib.import_module(module)
        sp = sub.add_parser(name, help=summary)
        mod.build_parser(sp)
        sp.set_defaults(_run=mod.run)
    return p


def configure_logging(command: str) -> None:
    """INFO logging to stderr; training lines carry the time of day."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=("%(asctime)s " + fmt) if command == "train" else fmt)


def run_command(command: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run one subcommand as its own program (what ``scripts/<command>.py`` does)."""
    mod = importlib.import_module(COMMANDS[command][0])
    args = mod.build_parser().parse_args(argv)
    configure_logging(command)
    return _interruptible(command, mod.run, args)


def _interruptible(command: str, run, args) -> int:
    """``run(args)``; Ctrl-C ends it with one line (exit 130), no traceback: whatever finished is
    kept, and the same command resumes."""
    try:
        return run(args)
    except KeyboardInterrupt:
        logging.getLogger(command).error("interrupted: finished items are kept; run the same command again to "
                                         "resume")
        return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:  # import only what this command needs (relax and evaluate: no torch)
        return run_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)  # --help, --version, errors
    configure_logging(args.command)
    return _interruptible(args.command, args._run, args)


if __name__ == "__main__":
    sys.exit(main())

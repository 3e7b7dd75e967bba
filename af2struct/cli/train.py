"""``af2struct train`` / ``scripts/train.py``: train the network (single process or torchrun DDP).

Single process:   af2struct train --backbone-db chains_backbone.npz --data CHAINS --out runs/x
Several (DDP):    torchrun --nproc_per_node 2 scripts/train.py ... --out runs/x
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Optional, Sequence

import torch

from af2struct.cli import run_command
from af2struct.common.argtypes import HelpFormatter, int_in
from af2struct.common.options import add_dataclass_arguments, from_arguments
from af2struct.train.config import TrainConfig
from af2struct.train.loop import train


def build_parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="af2struct train")
    p.description = (
        "Train the af2struct network on all-atom chains (--data: a SidechainNet-format .pkl with splits "
        "train/valid-*, or a folder of PDB/mmCIF chains) and/or a backbone-only chain database "
        "(--backbone-db). Writes OUT/last.pt (resume point; a rerun resumes exactly), OUT/best.pt (best "
        "validation), OUT/metrics.jsonl and OUT/loss.png. Stage 'distogram' trains trunk and heads; stage "
        "'full' adds MDS + SE(3) refinement with structure and pLDDT losses; stage 'plddt' refits only the "
        "pLDDT head of a trained model (--init-from) on whole chains of up to --crop-size residues, predicted "
        "once as predict does (cached in OUT/plddt_inputs.pt), selected on --max-valid validation chains; "
        "stage 'pae' refits the PAE head the same way on the structures predict writes (cached in "
        "OUT/pae_inputs.pt; --set heads.pae_context=true gives an older head the structure's context)."
    )
    p.formatter_class = HelpFormatter
    add_dataclass_arguments(p, TrainConfig)  # every setting, from the dataclass (train/config.py)
    p.add_argument("--threads", type=int_in(1, 1024), default=None,
                   help="CPU threads for torch, set once at start (default: OMP_NUM_THREADS if set, else every "
                        "core this process may use). Leave a core free for anything else you run: a thread "
                        "that has to share its core stalls the others (measured 30x slower steps)")
    return p


def _set_threads(threads: Optional[int]) -> int:
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def run(args: argparse.Namespace) -> int:
    logging.getLogger("train").info("%d CPU thread(s) for torch", _set_threads(args.threads))
    try:
        cfg = from_arguments(TrainConfig, args)
        result = train(cfg)
    except (ValueError, KeyError, OSError) as exc:  # bad data or options, an --out that cannot be written
        msg = str(exc) if not isinstance(exc, OSError) or not exc.filename else \
            f"{exc.filename}: {exc.strerror or exc}"
        logging.getLogger("train").error("%s", msg)
        return 1
    logging.getLogger("train").info("finished: %s", result)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command("train", argv)

#!/usr/bin/env python
"""Train af2struct on SidechainNet pickles or structure folders (see --help).

Single process:   python scripts/train.py --data train.pkl --out runs/x
Several (DDP):    torchrun --nproc_per_node 2 scripts/train.py --data train.pkl --out runs/x
"""

import argparse
import dataclasses
import logging
import sys

from af2struct.model.config import PRESETS
from af2struct.train.loop import TrainConfig, train


def main(argv=None) -> int:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    p = argparse.ArgumentParser(
        description=(
            "Train the af2struct network. --data is a SidechainNet-format .pkl (splits train/valid-*) "
            "or a folder of PDB/mmCIF chains (with --manifest for a cluster-aware validation split). "
            "Writes OUT/last.pt (resume point; a rerun resumes exactly), OUT/best.pt, "
            "OUT/metrics.jsonl and OUT/loss.png. Stage 'distogram' trains trunk and heads; stage "
            "'full' adds MDS + SE(3) refinement with structure and pLDDT losses."
        )
    )
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--stage", choices=("distogram", "full"), default="distogram")
    for name in ("valid_data", "manifest", "init_from"):
        p.add_argument("--" + name.replace("_", "-"), default=None)
    for name in ("valid_fraction", "steps", "time_limit_min", "crop_size", "batch_size", "max_residues", "accum", "lr",
                 "warmup", "weight_decay", "clip", "seed", "w_distogram", "w_structure", "w_plddt", "w_chi",
                 "eval_every", "ckpt_every", "log_every", "max_valid", "mds_iters", "mds_lbfgs_iters"):
        f = fields[name]
        typ = float if isinstance(f.default, float) else int
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=f.default)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on GPU")
    p.add_argument("--freeze-trunk", action="store_true",
                   help="train only the structure module and heads on a frozen trunk (fast second stage)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kw = {k: getattr(args, k) for k in fields if hasattr(args, k) and k not in ("resume", "amp", "progress", "freeze_trunk")}
    try:
        cfg = TrainConfig(**kw, resume=not args.no_resume, amp=not args.no_amp, progress=not args.quiet,
                          freeze_trunk=args.freeze_trunk)
        result = train(cfg)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        logging.getLogger("train").error("%s", exc)
        return 1
    logging.getLogger("train").info("finished: %s", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

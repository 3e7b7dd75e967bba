#!/usr/bin/env python
"""Combine two checkpoints into one whose model has a trunk for each kind of input
(``templates.own_trunk``): inputs without a template fold with ``--base``'s trunk and
distogram head, inputs with one with ``--templated``'s (a run trained with templates, e.g.
``scripts/train.py --stage distogram --template-hits ... --min-templates 1``). Heads, SE(3)
refiner and the rest of the config come from ``--base``.

    python scripts/combine_trunks.py --base af2struct/weights/default.pt \\
        --templated runs/tpl_trunk/best.pt --out combined.pt
"""

from __future__ import annotations

import argparse
import logging
import sys

from af2struct.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    with_templated_trunk,
    write_checkpoint,
)

log = logging.getLogger("combine_trunks")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="checkpoint whose trunk folds inputs without a template, "
                    "and whose heads, SE(3) refiner and config the result keeps")
    ap.add_argument("--templated", required=True, help="checkpoint whose trunk and distogram head fold inputs "
                    "with a template")
    ap.add_argument("--out", required=True, help="the combined checkpoint (written atomically)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        write_checkpoint(args.out, with_templated_trunk(load_checkpoint(args.base), load_checkpoint(args.templated)))
        load_model(args.out)  # the result loads as a model
    except CheckpointError as exc:
        log.error("%s", exc)
        return 2
    log.info("wrote %s (templated trunk from %s)", args.out, args.templated)
    return 0


if __name__ == "__main__":
    sys.exit(main())

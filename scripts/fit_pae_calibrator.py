#!/usr/bin/env python
"""Fit the PAE calibrator of templated models (``heads.pae_calibrator``) and write a checkpoint
that carries it: training-split chains of the template library with a template from another
cluster are predicted with ``--weights``, and a small network is fitted to turn the head's PAE
and the spread of the distogram's structures into the true aligned error of the written model
(:mod:`af2struct.train.pae_calibrate`). The held-out clusters are never read. ``--cache`` keeps
the collected chains, so a refit skips the predictions.

    python scripts/fit_pae_calibrator.py --weights af2struct/weights/default.pt \\
        --library ../shared/data/pdb2018_backbone/chains_backbone.npz \\
        --train-chains ../shared/data/train/chains --chains 90 --out calibrated.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from af2struct.data.template_search import TemplateDB
from af2struct.model.checkpoint import CheckpointError, load_checkpoint, load_model, write_checkpoint
from af2struct.train.pae_calibrate import collect, fit, training_chains, within_chain_r

log = logging.getLogger("fit_pae_calibrator")
CLUSTERS = Path(__file__).resolve().parent.parent / "af2struct" / "data" / "splits" / "pdb2018_train_clusters30.tsv.gz"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="the checkpoint to calibrate (its model predicts the chains)")
    ap.add_argument("--library", type=Path, help="the template library (backbone database .npz); needed unless "
                    "--cache holds the chains")
    ap.add_argument("--train-chains", nargs="*", type=Path, default=[],
                    help="the training structures' folders: their names join the cluster split, as in training")
    ap.add_argument("--clusters", type=Path, default=CLUSTERS, help="sequence clusters defining the split")
    ap.add_argument("--chains", type=int, default=90, help="training-split chains to predict (default 90)")
    ap.add_argument("--max-len", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=5, help="which chains (default 5) and the fit's seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, help="collected chains: read if present, else written")
    ap.add_argument("--out", required=True, help="the checkpoint with the calibrator (written atomically)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        payload = load_checkpoint(args.weights)
        model, _ = load_model(args.weights)
        config = model.config
    except CheckpointError as exc:
        log.error("%s", exc)
        return 2
    if args.cache is not None and args.cache.exists():
        data = torch.load(args.cache, weights_only=True)
    elif args.library is None:
        log.error("--library is needed to collect chains (no --cache file to read)")
        return 2
    else:
        db = TemplateDB(args.library)
        chains = training_chains(db, args.clusters, args.train_chains, args.chains, args.seed, args.max_len)
        log.info("%d training-split chains with a template", len(chains))
        data = collect(model, db, chains)
        if args.cache is not None:
            torch.save(data, args.cache)
    calibrator = fit(data, epochs=args.epochs, seed=args.seed)
    log.info("within-chain r on the fitted chains: %.3f", within_chain_r(calibrator, data))
    config = dataclasses.replace(config, heads=dataclasses.replace(config.heads, pae_calibrator=True))
    state = {k: v for k, v in payload["model"].items() if not k.startswith("pae_calibrator.")}
    state.update({f"pae_calibrator.{k}": v for k, v in calibrator.state_dict().items()})
    payload = dict(payload, config=config.to_dict(), model=state)
    payload["train_state"] = dict(payload.get("train_state") or {}, pae_calibrator={
        "chains": len(data), "epochs": args.epochs, "seed": args.seed})
    write_checkpoint(args.out, payload)
    load_model(args.out)  # the result loads as a model
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

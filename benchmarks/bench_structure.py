#!/usr/bin/env python
"""The structure stage against the network, per target and summed, on held-out chains.

Held-out validation chains of ``--min-len``..``--max-len`` residues (the training run's held-out
30 %-identity clusters, as ``bench_templates.py``), with their library templates where a search
finds one (never the chain itself or its cluster), single sequence, no relax: the shipped model's
trunk time (the network) against the structure stage (MDS or the template trace, the distogram
refinement, SE(3), the pLDDT/PAE heads, then the backbone cleanup and the side chains), that
stage split into its steps, and the quality of each model (TM-score, lDDT-CA) so that a faster
stage can be checked against an earlier run's per-target figures (``--compare OLD.json``).

    python benchmarks/bench_structure.py [--n-hit 20 --n-nohit 10] [--threads 1] [--out F.json] [--compare OLD.json]
"""

import argparse
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_templates import LIBRARY, scores, validation_targets  # noqa: E402

import af2struct.geometry.decode as decode  # noqa: E402
import af2struct.model.network as network  # noqa: E402
import af2struct.model.potential as potential  # noqa: E402
from af2struct.data.template_search import TemplateDB  # noqa: E402
from af2struct.data.templates import template_features  # noqa: E402
from af2struct.predict.pipeline import load_default_model, predict_structure  # noqa: E402

STEPS = defaultdict(float)


def _timed(module, name: str, label: str) -> None:
    """Accumulate the seconds spent in ``module.name`` under ``label`` (measurement only)."""
    fn = getattr(module, name)

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            STEPS[label] += time.perf_counter() - t0
    setattr(module, name, wrapper)


def instrument(model) -> None:
    _timed(network, "weighted_mds", "mds")
    _timed(potential.DistogramLikelihood, "__init__", "distogram_refine")  # its pair tables
    _timed(potential.DistogramLikelihood, "refine", "distogram_refine")
    _timed(potential.DistogramLikelihood, "nll", "distogram_refine")
    _timed(network, "structure_agreement", "plddt")
    _timed(decode, "clean_backbone", "backbone_cleanup")
    _timed(decode, "pack_side_chains", "side_chains")
    _timed(decode, "outputs_to_protein", "atoms")
    if model._refiner is not None:
        _timed(model._refiner, "forward", "se3")
    _timed(model.plddt_head, "forward", "plddt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--n-hit", type=int, default=20, help="held-out chains with a usable template")
    ap.add_argument("--n-nohit", type=int, default=10, help="held-out chains without one")
    ap.add_argument("--min-len", type=int, default=100)
    ap.add_argument("--max-len", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="per-target JSON")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier --out: quality differences per target")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_default_model(args.weights)
    instrument(model)
    db = TemplateDB(LIBRARY)
    # the validation set's order, restricted to these lengths (more drawn, then filtered)
    targets = [t for t in validation_targets(db, 4 * args.n_hit, 4 * args.n_nohit, args.max_len, args.seed)
               if len(t[1]) >= args.min_len]
    targets = [t for t in targets if t[3]][:args.n_hit] + [t for t in targets if not t[3]][:args.n_nohit]
    predict_structure(model, targets[0][1][:50])  # warm-up (first-call allocations)
    rows = []
    for name, seq, native, hits in targets:
        feats = template_features(hits, db, len(seq)) if hits else None
        STEPS.clear()
        pred = predict_structure(model, seq, None, templates=feats)
        s = scores(pred.protein.ca_positions, np.ones(len(seq), bool), native[:, 1])
        row = {"target": name, "length": len(seq), "templates": min(len(hits), 4),
               "trunk_s": round(pred.timings["trunk"], 3), "structure_s": round(pred.timings["structure"], 3),
               **{f"{k}_s": round(v, 3) for k, v in sorted(STEPS.items())}, **s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    steps = sorted({k for r in rows for k in r if k.endswith("_s") and k not in ("trunk_s", "structure_s")})
    print(f"\nmachine: {platform.processor() or platform.machine()}, {args.threads} torch thread(s); "
          f"{len(rows)} held-out chains of {args.min_len}-{args.max_len} residues")
    print("| chains | network s | structure s | ratio | " + " | ".join(s[:-2] for s in steps) + " | TM | lDDT-CA |")
    print("|---" * (6 + len(steps)) + "|")
    for label, group in (("with templates", [r for r in rows if r["templates"]]),
                         ("without", [r for r in rows if not r["templates"]]), ("all", rows)):
        if not group:
            continue
        trunk, struct = sum(r["trunk_s"] for r in group), sum(r["structure_s"] for r in group)
        cells = " | ".join(f"{sum(r.get(s, 0.0) for r in group):.1f}" for s in steps)
        print(f"| {len(group)} {label} | {trunk:.1f} | {struct:.1f} | {struct / trunk:.2f} | {cells} | "
              f"{np.mean([r['tm'] for r in group]):.4f} | {np.mean([r['lddt_ca'] for r in group]):.4f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    if args.compare:
        old = {r["target"]: r for r in json.loads(args.compare.read_text())}
        d_tm = [r["tm"] - old[r["target"]]["tm"] for r in rows if r["target"] in old]
        d_l = [r["lddt_ca"] - old[r["target"]]["lddt_ca"] for r in rows if r["target"] in old]
        if d_tm:
            print(f"against {args.compare.name} ({len(d_tm)} chains): TM change mean {np.mean(d_tm):+.4f}, "
                  f"range {min(d_tm):+.4f}..{max(d_tm):+.4f}; lDDT-CA mean {np.mean(d_l):+.4f}, "
                  f"range {min(d_l):+.4f}..{max(d_l):+.4f}")


if __name__ == "__main__":
    main()

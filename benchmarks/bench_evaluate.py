#!/usr/bin/env python
"""Time CASP-style scoring: one ~400-residue pair, and the whole CASP14 set in ../shared/data.

Models are the natives with Gaussian noise (1 A per coordinate) and a rigid motion, so every
metric does its full search. Prints a markdown table.

    python benchmarks/bench_evaluate.py [--casp-dir ../shared/data/casp_eval/casp14] [--jobs 2]
"""

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from af2struct import load_structure, save_structure
from af2struct.eval.evaluate import evaluate
from af2struct.eval.metrics import score_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--casp-dir", type=Path, default=ROOT.parent / "shared/data/casp_eval/casp14")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    files = sorted(args.casp_dir.glob("*.pdb"))
    natives = {f.stem: load_structure(f) for f in files}

    def noisy(p):
        return p.replace(atom_positions=(p.atom_positions + rng.normal(0, 1.0, p.atom_positions.shape)).astype(np.float32))

    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, numpy {np.__version__}")
    print("| case | residues | seconds |")
    print("|---|---|---|")
    for name in ("T1024", "T1037"):
        nat = natives[name]
        model = noisy(nat)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            score_model(model, nat)
            times.append(time.perf_counter() - t)
        print(f"| score_model {name} (one pair) | {len(nat)} | {min(times):.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "pred"
        for name, nat in natives.items():
            save_structure(noisy(nat), pred / f"{name}.pdb")
        for jobs in sorted({1, args.jobs}):
            t = time.perf_counter()
            s = evaluate(pred, args.casp_dir, Path(tmp) / f"out{jobs}", jobs=jobs, progress=False)
            dt = time.perf_counter() - t
            n_res = sum(len(p) for p in natives.values())
            print(f"| evaluate.py, all {s['n_scored']} CASP14 natives, --jobs {jobs} (incl. plots) | {n_res} | {dt:.1f} |")


if __name__ == "__main__":
    main()

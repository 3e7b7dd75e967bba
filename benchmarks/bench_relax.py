#!/usr/bin/env python
"""Relax models of the CASP14 natives and report per-structure time, atoms, energy, RMSD and
clashscore/violations before and after. Two model sets (``--decoys``):

- ``noisy``: the native with 0.2 A Gaussian noise on every heavy atom;
- ``predicted``: a predicted-quality model (``af2struct.geometry.decoys``): ideal geometry on a
  Calpha trace with 0.5 A error, side chains from the native chi angles + 20 deg error.

    python benchmarks/bench_relax.py [--decoys noisy|predicted] [--max-residues 800] [--solvent vacuum]
"""

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from af2struct import load_structure
from refine import RelaxConfig, relax

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--casp-dir", type=Path, default=ROOT.parent / "shared/data/casp_eval/casp14")
    ap.add_argument("--max-residues", type=int, default=10_000)
    ap.add_argument("--solvent", default="vacuum")
    ap.add_argument("--sigma", type=float, default=0.2, help="noise for --decoys noisy")
    ap.add_argument("--decoys", choices=("noisy", "predicted"), default="noisy")
    ap.add_argument("--targets", nargs="*", help="only these targets (default: all)")
    ap.add_argument("--policy", choices=("repel", "release"), default="repel",
                    help="violation policy between rounds (release = AlphaFold2's rule)")
    args = ap.parse_args()
    what = f"sigma {args.sigma} A" if args.decoys == "noisy" else "predicted-quality models"
    print(f"machine: {platform.machine()} {platform.system()}; {what}; solvent {args.solvent}; "
          f"policy {args.policy}")
    print("| target | residues | heavy atoms | seconds | E before | E after (kcal/mol) | RMSD to input | clashscore before -> after | violations before -> after | rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for f in sorted(args.casp_dir.glob("*.pdb")):
        if args.targets and f.stem not in args.targets:
            continue
        nat = load_structure(f)
        if len(nat) > args.max_residues:
            continue
        if args.decoys == "noisy":
            rng = np.random.default_rng(0)
            noisy = nat.replace(atom_positions=(nat.atom_positions
                                                + rng.normal(0, args.sigma, nat.atom_positions.shape)).astype(np.float32))
        else:
            from af2struct.geometry.decoys import predicted_quality_model

            noisy = predicted_quality_model(nat, seed=0)
        t = time.perf_counter()
        r = relax(noisy, RelaxConfig(solvent=args.solvent, violation_policy=args.policy))
        dt = time.perf_counter() - t
        rows.append((r, dt))
        print(f"| {f.stem} | {len(nat)} | {int(nat.atom_mask.sum())} | {dt:.1f} | {r.initial_energy:.0f} | {r.final_energy:.0f} | "
              f"{r.rmsd_heavy:.3f} | {r.clashscore_before:.1f} -> {r.clashscore_after:.1f} | "
              f"{r.violations_before} -> {r.violations_after} | {r.outer_iterations} |", flush=True)
    n = len(rows)
    clean = sum(r.violations_after == 0 for r, _ in rows)
    down = sum(r.final_energy < r.initial_energy for r, _ in rows)
    print()
    close = sum(r.rmsd_heavy <= 0.5 for r, _ in rows)
    print(f"structures: {n}; energy lowered: {down}/{n}; no clash/peptide violation left: {clean}/{n} "
          f"({100 * clean / max(n, 1):.0f}%); heavy-atom RMSD to input <= 0.5 A: {close}/{n}, "
          f"max {max(r.rmsd_heavy for r, _ in rows):.3f} A; "
          f"total time {sum(t for _, t in rows):.0f} s")


if __name__ == "__main__":
    main()

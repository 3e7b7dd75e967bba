#!/usr/bin/env python
"""Refinement-only reruns: relax PDB/mmCIF structures with OpenMM Amber or PyRosetta (see --help)."""

import argparse
import logging
import sys
from pathlib import Path

from refine.batch import relax_batch
from refine.types import BACKENDS, FORCEFIELDS, PLATFORMS, SOLVENTS, VIOLATION_POLICIES, RelaxConfig


def main(argv=None) -> int:
    d = RelaxConfig()
    p = argparse.ArgumentParser(
        description=(
            "Relax protein structures to remove clashes and broken geometry without moving them away "
            "from the input: Amber minimisation after AlphaFold2's protocol (PDBFixer cleanup, harmonic "
            "restraints on heavy atoms, L-BFGS, rounds that deal with what is still in violation: by "
            "default clashing atom pairs are held apart and trapped side chains turned to a free "
            "rotamer, and a model that still ended far from the input is pulled back; --violation-policy "
            "release is AlphaFold2's rule of releasing those residues) or "
            "PyRosetta FastRelax with coordinate constraints. Writes DIR/<name>_relaxed.pdb "
            "and DIR/relax_report.csv/.json; a rerun skips structures already done."
        )
    )
    p.add_argument("inputs", nargs="+", help="PDB/mmCIF files (.gz allowed), folders, or glob patterns")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--backend", choices=BACKENDS, default=d.backend)
    p.add_argument("--forcefield", choices=FORCEFIELDS, default=d.forcefield)
    p.add_argument("--solvent", choices=SOLVENTS, default=d.solvent, help="vacuum (fast) or obc implicit solvent")
    p.add_argument("--stiffness", type=float, default=d.stiffness, help="restraint stiffness, kcal/mol/A^2")
    p.add_argument("--tolerance", type=float, default=d.tolerance, help="minimiser tolerance, kcal/mol")
    p.add_argument("--max-outer-iterations", type=int, default=d.max_outer_iterations)
    p.add_argument("--violation-policy", choices=VIOLATION_POLICIES, default=d.violation_policy,
                   help="between rounds: repel clashing pairs, keep restraints (default; moves the model "
                        "least) or release violating residues' restraints (AlphaFold2)")
    p.add_argument("--target-rmsd", type=float, default=d.target_rmsd,
                   help="with repel: a model that ends clean but further than this from the input (heavy-atom "
                        "RMSD, A) is pulled back by stiffer restraints, clashes held apart (0: off)")
    p.add_argument("--pull-back-stiffness-max", type=float, default=d.pull_back_stiffness_max,
                   help="stiffest restraint of the pull-back, kcal/mol/A^2")
    p.add_argument("--max-attempts", type=int, default=d.max_attempts, help="retries after a failed minimisation")
    p.add_argument("--platform", choices=PLATFORMS, default=d.platform, help="OpenMM platform (auto: CUDA, OpenCL, CPU)")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="OpenMM CPU threads per structure (1: bit-reproducible; 0: all cores, faster on big "
                        "chains but reruns may differ); use --jobs for parallelism")
    p.add_argument("--rosetta-scorefxn", default=d.rosetta_scorefxn)
    p.add_argument("--rosetta-rounds", type=int, default=d.rosetta_rounds)
    p.add_argument("--format", choices=("pdb", "cif"), default="pdb", help="output structure format")
    p.add_argument("--keep-hydrogens", action="store_true", help="also write <name>_relaxed_with_h.pdb")
    p.add_argument("--amber-out", action="store_true", help="also write <name>_relaxed.prmtop/.inpcrd (parmed)")
    p.add_argument("--jobs", type=int, default=1, help="structures relaxed in parallel (processes)")
    p.add_argument("--retry-failed", action="store_true", help="retry structures that failed in an earlier run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("relax")
    try:
        config = RelaxConfig(
            backend=args.backend, forcefield=args.forcefield, solvent=args.solvent, stiffness=args.stiffness,
            tolerance=args.tolerance, max_outer_iterations=args.max_outer_iterations,
            violation_policy=args.violation_policy, target_rmsd=args.target_rmsd,
            pull_back_stiffness_max=args.pull_back_stiffness_max,
            max_attempts=args.max_attempts, platform=args.platform, threads=args.threads,
            keep_hydrogens=args.keep_hydrogens, rosetta_scorefxn=args.rosetta_scorefxn,
            rosetta_rounds=args.rosetta_rounds,
        )
        records = relax_batch(args.inputs, args.out, config, jobs=args.jobs, fmt=args.format,
                              amber=args.amber_out, retry_failed=args.retry_failed, progress=not args.quiet)
    except (ValueError, FileNotFoundError, OSError) as exc:
        log.error("%s", exc)
        return 1
    failed = [r for r in records if r["status"] != "ok"]
    unclean = sum(r["status"] == "violations" for r in records)
    log.info("%d relaxed clean, %d left with violations, %d failed -> %s", len(records) - len(failed), unclean,
             len(failed) - unclean, args.out / "relax_report.csv")
    return 0 if not failed else 3


if __name__ == "__main__":
    sys.exit(main())

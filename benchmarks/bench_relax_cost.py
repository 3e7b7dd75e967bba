#!/usr/bin/env python
"""Relax time against the bare AlphaFold2 protocol, same inputs, same process, interleaved.

The bare protocol is AlphaFold2's ``amber_minimize.run_pipeline`` as ``run_alphafold.py`` calls it
(``AmberRelaxation(max_iterations=0, tolerance=2.39, stiffness=10.0, max_outer_iterations=3)``):
per round PDBFixer (missing atoms, hydrogens), amber99sb in vacuum without cutoff, HBonds
constraints, harmonic restraints of 10 kcal/mol/A^2 on heavy atoms not excluded, L-BFGS to 2.39
kcal/mol, then the violation check; residues in violation are excluded from the restraints for the
next round, until none is left or 3 rounds ran. Here it runs on OpenMM's CPU platform with one
thread and deterministic forces, as af2struct's relax does, and uses af2struct's violation model
for its check with AlphaFold's clash tolerance (1.5 A overlap; af2struct counts 0.4 A).

Inputs: AlphaFold's three relax test structures (``tests/fixtures/af2_relax``) and af2struct's own
unrelaxed predictions of 100/200/400 residues (first N residues of the shortest CASP14 target with
at least N, as ``bench_predict.py``; predicted once with ``--relax none`` into ``--preds``).

    python benchmarks/bench_relax_cost.py [--preds DIR] [--lengths 100 200 400] [--only NAME ...]
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from af2struct import load_structure  # noqa: E402
from af2struct.data.msa import read_fasta  # noqa: E402
from af2struct.geometry.stereo import find_violations  # noqa: E402
from af2struct.geometry.superposition import heavy_atom_rmsd  # noqa: E402
from refine import RelaxConfig, relax  # noqa: E402
from refine.cleanup import fix_with_pdbfixer, segment_ids  # noqa: E402
from refine.openmm_system import KJ_PER_KCAL  # noqa: E402
from refine.openmm_system import heavy_protein as _heavy_protein  # noqa: E402


def bare_alphafold_relax(protein, stiffness=10.0, tolerance=2.39, max_outer_iterations=3, seed=0):
    """AlphaFold2's relax protocol, nothing added; returns (relaxed heavy atoms, violations, rounds)."""
    import openmm
    from openmm import app, unit

    seg, _ = segment_ids(protein)
    kept_breaks = seg[1:] != seg[:-1]
    current = protein.replace(chain_id=seg)
    excluded: set = set()
    found = None
    for rounds in range(1, max_outer_iterations + 1):
        topology, positions = fix_with_pdbfixer(current, seed=seed)  # hydrogens placed every round, as AF
        system = app.ForceField("amber99sb.xml").createSystem(topology, nonbondedMethod=app.NoCutoff,
                                                              constraints=app.HBonds)
        force = openmm.CustomExternalForce("0.5 * k * ((x - x0)^2 + (y - y0)^2 + (z - z0)^2)")
        force.addGlobalParameter("k", stiffness * KJ_PER_KCAL * 100.0)
        for p in ("x0", "y0", "z0"):
            force.addPerParticleParameter(p)
        xyz = positions.value_in_unit(unit.nanometer)
        for i, res in enumerate(topology.residues()):
            if i in excluded:
                continue
            for a in res.atoms():
                if a.element.symbol != "H":
                    force.addParticle(a.index, list(xyz[a.index]))
        system.addForce(force)
        platform = openmm.Platform.getPlatformByName("CPU")
        ctx = openmm.Context(system, openmm.LangevinIntegrator(0, 0.01, 0.0), platform,
                             {"Threads": "1", "DeterministicForces": "true"})
        ctx.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(ctx, tolerance * KJ_PER_KCAL, 0)
        pos = np.asarray(ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        del ctx
        current = _heavy_protein(topology, pos, current)
        found = find_violations(current, 1.5, kept_breaks)
        if not found.residues():
            break
        excluded |= found.residues()
    return current.replace(chain_id=protein.chain_id), found, rounds


def predictions(preds: Path, lengths):
    seqs = sorted(read_fasta(ROOT.parent / "shared/data/casp_eval/casp14_target_sequences.fasta"), key=lambda r: len(r[1]))
    out = []
    for n in lengths:
        path = preds / f"L{n}" / "unrelaxed.pdb"
        if not path.exists():
            name, seq = next(((k, s) for k, s in seqs if len(s) >= n), seqs[-1])
            subprocess.run([sys.executable, str(ROOT / "scripts/predict.py"), "--sequence", seq[:n], "--name", f"L{n}",
                            "--out", str(preds), "--relax", "none", "--no-plots", "--quiet", "--max-length", "2048"],
                           check=True)
        out.append((f"prediction L{n}", path))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preds", type=Path, default=ROOT / "benchmarks/.relax_cost_preds")
    ap.add_argument("--lengths", type=int, nargs="*", default=[100, 200, 400])
    ap.add_argument("--only", nargs="*", help="only inputs whose label contains one of these")
    args = ap.parse_args()
    inputs = [(p.name.split(".")[0], p) for p in sorted((ROOT / "tests/fixtures/af2_relax").glob("*.pdb.gz"))]
    inputs += predictions(args.preds, args.lengths)
    if args.only:
        inputs = [(k, p) for k, p in inputs if any(o in k for o in args.only)]
    print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs; OpenMM CPU, 1 thread each")
    print("| input | residues | af2struct s | bare AF2 s | ratio | violations left: af2struct / bare at 1.5 A "
          "clash overlap (at af2struct's 0.4 A) | RMSD to input A (af2struct / bare) | rounds (af2struct / bare) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, path in inputs:
        prot = load_structure(path)
        t = time.perf_counter()
        ours = relax(prot, RelaxConfig())
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        bare, found, bare_rounds = bare_alphafold_relax(prot)
        t_bare = time.perf_counter() - t
        strict = find_violations(bare, RelaxConfig().clash_overlap)  # the bare result, judged as af2struct's is
        print(f"| {label} | {len(prot)} | {t_ours:.1f} | {t_bare:.1f} | {t_ours / t_bare:.2f} | "
              f"{ours.violations_after} / {found.actionable} ({strict.actionable}) | "
              f"{ours.rmsd_heavy:.2f} / {heavy_atom_rmsd(bare, prot):.2f} | {ours.outer_iterations} / {bare_rounds} |",
              flush=True)


if __name__ == "__main__":
    main()

"""Typed configuration and result of a relaxation (no torch, no model)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from af2struct.common.protein import Protein
from af2struct.geometry.stereo import CLASH_OVERLAP, StructureViolations, clashscore
from af2struct.geometry.superposition import heavy_atom_rmsd

BACKENDS = ("openmm", "rosetta")
FORCEFIELDS = ("amber99sb", "amber14")
SOLVENTS = ("vacuum", "obc")
PLATFORMS = ("auto", "CUDA", "OpenCL", "CPU", "Reference")
VIOLATION_POLICIES = ("repel", "release")


class RelaxError(RuntimeError):
    """A structure that could not be relaxed (bad input, minimiser failure after all attempts)."""


@dataclasses.dataclass(frozen=True)
class RelaxConfig:
    """How to relax a structure. Defaults follow AlphaFold2's Amber relax.

    Attributes:
        backend: ``openmm`` (Amber force field) or ``rosetta`` (PyRosetta FastRelax).
        forcefield: ``amber99sb`` (AlphaFold's choice) or ``amber14``.
        solvent: ``vacuum`` (default; fast) or ``obc`` (implicit solvent through OpenMM's native
            OBC force for amber99sb; roughly 15x slower on a CPU).
        stiffness: harmonic restraint on heavy atoms, kcal/mol/A^2.
        tolerance: minimiser convergence, kcal/mol (AlphaFold's 2.39).
        max_iterations: minimiser iteration cap per round (0 = until converged).
        max_outer_iterations: rounds of minimise -> check violations -> act on them
            (``violation_policy``); rounds stop as soon as nothing is in violation. 8 by default:
            a stubborn clash goes through three repulsion stiffnesses, then softened side chains,
            then released residues (AlphaFold2 uses 3 rounds of its release rule).
        violation_policy: what a violation left after a round changes for the next: ``repel``
            (default: clashing atom pairs are held apart, restraints stay; residues of a broken
            peptide bond are released) or ``release`` (AlphaFold2: every violating residue loses
            its restraints).
        repel_stiffness: flat-bottom repulsion on clashing pairs, kcal/mol/A^2 (``repel``);
            10x stiffer each round a pair still clashes, up to ``repel_stiffness_max``.
        repel_stiffness_max: the stiffest repulsion a clashing pair reaches, kcal/mol/A^2.
        repel_margin: how far beyond the clash distance a repelled pair is held, A.
        rescue_overlap: with ``repel``, a side chain still overlapping another atom by more than
            this (A) after a round is trapped (threaded through a ring or a backbone) and is
            turned to the chi1/chi2 rotamer that clashes least (``refine.repack``).
        soften_factor: with ``repel``, a clash that outlasts the stiffest repulsion scales the
            restraints of both residues' side chains by this; one that outlasts that too
            releases the residues (AlphaFold's rule).
        target_rmsd: with ``repel``, a model that ends clean but further than this (heavy-atom
            RMSD to the input, A; and within 0.25 A of it) is pulled back: restraints 3x stiffer
            per step, up to ``pull_back_stiffness_max``, every atom pair within 0.3 A of a clash
            held apart, a step kept only if it leaves no violation and a lower energy than the
            input (0 = off).
        pull_back_stiffness_max: stiffest restraint of the pull-back, kcal/mol/A^2.
        max_attempts: tries per round after a failed minimisation (NaN energy, exception).
        platform: ``auto`` (CUDA, then OpenCL, then CPU) or a name.
        threads: CPU threads for OpenMM. 1 (the default) makes a relax bit-reproducible: with more
            threads OpenMM's CPU platform sums forces in thread order, so reruns differ in the last
            digits and the rounds can take another path; run structures in parallel instead
            (``relax.py --jobs``). 0 = OpenMM's default (all cores).
        clash_overlap: vdW overlap (A) that counts as a violation in the outer loop
            (AlphaFold uses 1.5; 0.4 is the stricter MolProbity-style clash).
        nonbonded_cutoff: nonbonded cutoff, nm, for systems of 1000 atoms or more (about 65
            residues with hydrogens; smaller ones are cheap without): Coulomb and Lennard-Jones as they are
            within it, nothing beyond (OpenMM's ``CutoffNonPeriodic``, dielectric 1); 0 = none
            (AlphaFold2's ``NoCutoff``). Each minimiser step costs O(N) instead of O(N^2).
        keep_hydrogens: also write the relaxed model with its hydrogens (relax:
            <name>_relaxed_with_h.pdb; predict: relaxed_with_h.pdb).
        rosetta_scorefxn, rosetta_rounds: PyRosetta FastRelax settings.
        seed: seed for atoms PDBFixer has to build.
    """

    backend: str = "openmm"
    forcefield: str = "amber99sb"
    solvent: str = "vacuum"
    stiffness: float = 10.0
    tolerance: float = 2.39
    max_iterations: int = 0
    max_outer_iterations: int = 8
    violation_policy: str = "repel"
    repel_stiffness: float = 100.0
    repel_stiffness_max: float = 10000.0
    repel_margin: float = 0.1
    rescue_overlap: float = 0.8
    soften_factor: float = 0.1
    target_rmsd: float = 0.5
    pull_back_stiffness_max: float = 100.0
    max_attempts: int = 3
    platform: str = "auto"
    threads: int = 1
    clash_overlap: float = CLASH_OVERLAP
    nonbonded_cutoff: float = 1.0
    keep_hydrogens: bool = False
    rosetta_scorefxn: str = "ref2015"
    rosetta_rounds: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.backend in BACKENDS, f"backend must be one of {BACKENDS}"),
            (self.forcefield in FORCEFIELDS, f"forcefield must be one of {FORCEFIELDS}"),
            (self.solvent in SOLVENTS, f"solvent must be one of {SOLVENTS}"),
            (self.platform in PLATFORMS, f"platform must be one of {PLATFORMS}"),
            (self.stiffness >= 0, "stiffness must be >= 0"),
            (self.violation_policy in VIOLATION_POLICIES, f"violation_policy must be one of {VIOLATION_POLICIES}"),
            (0 < self.repel_stiffness <= self.repel_stiffness_max,
             "repel_stiffness must be > 0 and <= repel_stiffness_max"),
            (self.repel_margin >= 0, "repel_margin must be >= 0"),
            (self.rescue_overlap > 0, "rescue_overlap must be > 0"),
            (0 <= self.soften_factor <= 1, "soften_factor must be in [0, 1]"),
            (self.target_rmsd >= 0, "target_rmsd must be >= 0"),
            (self.nonbonded_cutoff == 0 or self.nonbonded_cutoff >= 0.5,
             "nonbonded_cutoff must be 0 (none) or >= 0.5 nm"),
            (self.pull_back_stiffness_max > 0, "pull_back_stiffness_max must be > 0"),
            (self.tolerance > 0, "tolerance must be > 0"),
            (self.max_outer_iterations >= 1, "max_outer_iterations must be >= 1"),
            (self.max_attempts >= 1, "max_attempts must be >= 1"),
            (self.rosetta_rounds >= 1, "rosetta_rounds must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"RelaxConfig: {msg}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RelaxConfig:
        """Build from a mapping; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"RelaxConfig: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(d))


@dataclasses.dataclass
class RelaxResult:
    """What a relaxation did. Energies in kcal/mol (OpenMM: force field only, restraints
    excluded) or Rosetta energy units (rosetta backend)."""

    protein: Protein
    initial_energy: float
    final_energy: float
    rmsd_heavy: float  # heavy-atom RMSD to the input over the input's atoms, no superposition
    violations_before: int  # actionable violations (geometry.stereo.find_violations)
    violations_after: int
    clashscore_before: float
    clashscore_after: float
    outer_iterations: int
    attempts: int
    wall_time: float
    backend: str
    platform: str
    energy_unit: str = "kcal/mol"
    pdb_with_hydrogens: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    # every kind of violation, actionable or not (clash, peptide_bond, bond, angle, disulfide,
    # cis_peptide, chirality): what was there before and what is left
    violation_counts_before: dict[str, int] = dataclasses.field(default_factory=dict)
    violation_counts_after: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def measured(cls, start: Protein, relaxed: Protein, before: StructureViolations, after: StructureViolations,
                 initial_energy: float, final_energy: float, **run: Any) -> "RelaxResult":
        """A result whose measurements are made one way for every backend: the heavy-atom RMSD of
        ``relaxed`` to ``start``, the violations (``before``/``after``: ``find_violations`` of
        each) and the clashscores; ``run`` gives the rest (backend, platform, rounds, ...)."""
        return cls(protein=relaxed, initial_energy=float(initial_energy), final_energy=float(final_energy),
                   rmsd_heavy=heavy_atom_rmsd(relaxed, start), violations_before=before.actionable,
                   violations_after=after.actionable, violation_counts_before=before.counts(),
                   violation_counts_after=after.counts(), clashscore_before=clashscore(start),
                   clashscore_after=clashscore(relaxed), **run)

    @property
    def clean(self) -> bool:
        """Nothing left of any kind: relax's status is "ok" only then."""
        return self.violations_after == 0 and not any(self.violation_counts_after.values())

    def remark(self) -> str:
        """The relax record a model file carries (a PDB ``REMARK 999`` line, ModelCIF details)."""
        kinds = ", ".join(f"{k} {v}" for k, v in self.violation_counts_after.items() if v)
        return (f"relaxed: {self.backend} ({self.violations_after} violations left{': ' + kinds if kinds else ''}, "
                f"heavy-atom RMSD {self.rmsd_heavy:.2f} A to the unrelaxed model)")

    def as_row(self) -> dict[str, Any]:
        """The figures (no structures) for reports."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("protein", "pdb_with_hydrogens", "notes")}
        for when in ("before", "after"):
            counts = out.pop(f"violation_counts_{when}")
            out[f"violation_kinds_{when}"] = " ".join(f"{k}={v}" for k, v in counts.items() if v) or "none"
        out["n_residues"] = len(self.protein)
        out["notes"] = "; ".join(self.notes)
        return out

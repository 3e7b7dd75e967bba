"""AlphaFold2-style Amber relax with OpenMM (:class:`AmberRelaxation`).

The protocol: PDBFixer adds missing atoms and hydrogens; harmonic restraints (``stiffness``) hold
heavy atoms at the input; L-BFGS minimises amber99sb to ``tolerance`` (no bond constraints: a
minimisation needs none); the violation model
(:func:`af2struct.geometry.stereo.find_violations`) decides the next round, until nothing is left,
a round changes nothing, or ``max_outer_iterations`` rounds ran. ``violation_policy`` says what a
violation changes for the next round:

* ``release`` (AlphaFold2's rule): the residues in violation lose their restraints.
* ``repel`` (default): side chains the input has trapped deep in another part of the chain
  are turned to a free rotamer before the first round; after a round, residues with broken
  geometry are released, clashing heavy-atom pairs are held apart by a flat-bottom repulsion
  that stiffens 10x per round they persist, then softens their side chains' restraints, then
  releases them; trapped or jammed side chains move to another rotamer once; a released side
  chain that stays distorted has the residues crowding it (within 4 A) released, once. A model that ends
  clean but slightly further than ``target_rmsd`` from the input is pulled back with stiffer
  restraints, each step kept only if it stays clean.

A failed minimisation is retried from coordinates jittered by 0.01 A (``max_attempts``).
Measurements: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit
from scipy.spatial import cKDTree

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.stereo import StructureViolations, find_clashes, find_violations
from af2struct.geometry.superposition import heavy_atom_rmsd
from refine.cleanup import check_input, fix_with_pdbfixer, segment_ids
from refine.openmm_system import (
    KJ_PER_KCAL,
    Restraints,
    add_repulsion,
    add_restraints,
    build_system,
    clash_pairs,
    context,
    energy_kcal,
    export_amber,
    heavy_index,
    heavy_protein,
)
from refine.repack import BACKBONE_AND_CB, repackable, rescue_rotamers, threaded_rings, trapped_residues
from refine.types import RelaxConfig, RelaxError, RelaxResult

logger = logging.getLogger(__name__)

NEAR_CONTACT = 0.3  # A: pairs this close to a clash are held apart while a model is pulled back
PULL_BACK_FACTOR = 3.0  # restraint stiffness multiplier per pull-back step
PULL_BACK_TRIES = 2  # minimisations per pull-back step (new clashes held apart after each)
PULL_BACK_SCOUT_ITERATIONS = 100  # a pull-back step's first minimisations are capped (then converged if kept)
PULL_BACK_MIN_GAIN = 0.05  # A: a pull-back step must bring the model at least this much closer
PULL_BACK_WINDOW = 0.25  # A: only models within target_rmsd + this are pulled back
NEIGHBOURHOOD = 24.0  # A: residues whose Calpha is this close can touch each other's side chains
CROWDING = 4.0  # A: residues this close to a free side chain that stays distorted make room for it
UNCHANGED = 0.05  # A: a round whose atoms all moved less than this (same violations) changed nothing


class AmberRelaxation:
    """AlphaFold-style Amber relax with af2struct's violation handling (module doc), the shape
    AlphaFold's ``AmberRelaxation(...).process(prot=...)`` has::

        result = AmberRelaxation(RelaxConfig()).process(protein)   # -> RelaxResult
    """

    def __init__(self, config: RelaxConfig | None = None) -> None:
        self.config = config or RelaxConfig()

    def process(self, protein: Protein, amber_prefix: Path | None = None) -> RelaxResult:
        """Relax ``protein``; ``amber_prefix`` also writes ``.prmtop``/``.inpcrd``."""
        return _RelaxRun.start(protein, self.config).run(amber_prefix)


def wants_pull_back(config: RelaxConfig, rmsd: float) -> bool:
    """Whether a clean model ``rmsd`` A (heavy atoms) from its input is pulled back: with the
    ``repel`` policy, restraints and a ``target_rmsd``, when it ended further than ``target_rmsd``
    but within ``PULL_BACK_WINDOW`` of it (further: the rounds moved it for a reason)."""
    c = config
    return (c.violation_policy == "repel" and c.target_rmsd > 0 and c.stiffness > 0
            and c.target_rmsd < rmsd <= c.target_rmsd + PULL_BACK_WINDOW)


@dataclasses.dataclass(frozen=True)
class _Minimised:
    """Where the protocol stands after a minimisation: positions (nm, all atoms of the topology),
    their heavy atoms on the input's residues, the energy (kcal/mol, restraints excluded) and
    whether the violation model found nothing left."""

    positions: np.ndarray
    protein: Protein
    energy: float
    clean: bool


class _RelaxRun:
    """One relax of one structure: its topology, restraint state and the steps of the protocol
    (:meth:`run` reads as the protocol; each step is one method)."""

    def __init__(self, protein: Protein, config: RelaxConfig, topology, positions_nm: np.ndarray,
                 segments: np.ndarray | None = None, notes: list[str] | None = None) -> None:
        self.t0 = time.perf_counter()
        self.protein = protein  # the input (heavy atoms, atom37)
        self.config = config
        self.topology = topology  # PDBFixer's, with hydrogens; residues one-to-one with ``protein``
        self.start_nm = positions_nm
        self.segments = np.zeros(len(protein), int) if segments is None else segments  # [L] Amber chains
        self.kept_breaks = self.segments[1:] != self.segments[:-1]  # [L-1] chain breaks: not violations
        self.notes = list(notes or [])
        self.state = Restraints(reference=positions_nm.copy(), weight=np.ones(len(positions_nm)))
        self.system = build_system(topology, config)  # the force field's; restraints come and go per minimisation
        self.heavy_index = heavy_index(topology)
        self.rng = np.random.default_rng(config.seed)
        self.attempts = 0
        self.platform = "?"
        self.initial_energy: float | None = None  # the input's energy (before the first minimisation)

    @classmethod
    def start(cls, protein: Protein, config: RelaxConfig) -> "_RelaxRun":
        """Check the input, split it at chain breaks, add missing atoms and hydrogens (PDBFixer)."""
        t0 = time.perf_counter()
        notes = check_input(protein)
        seg, breaks = segment_ids(protein)
        if breaks:
            notes.append(f"chain break(s) before residue(s) {breaks[:10]}: kept (segments relaxed as separate chains)")
        topology, positions = fix_with_pdbfixer(protein.replace(chain_id=seg), seed=config.seed)
        run = cls(protein, config, topology, np.asarray(positions.value_in_unit(unit.nanometer)), seg, notes)
        run.t0 = t0
        return run

    # -- one step each ------------------------------------------------------------------------------
    def model(self, positions_nm: np.ndarray) -> Protein:
        """Heavy atoms of ``positions_nm`` on the input's residues."""
        return heavy_protein(self.topology, positions_nm, self.protein, self.heavy_index)

    def violations(self, model: Protein) -> StructureViolations:
        return find_violations(model, self.config.clash_overlap, self.kept_breaks)

    def minimise(self, start_nm: np.ndarray, config: RelaxConfig | None = None,
                 repel: dict[tuple[int, int], tuple[float, float]] | None = None) -> tuple[np.ndarray, float, float]:
        """One restrained minimisation from ``start_nm``, retried from coordinates jittered by
        0.01 A when OpenMM fails; returns (positions nm, E before, E after kcal/mol)."""
        config = config or self.config
        repel = self.state.repel if repel is None else repel
        for attempt in range(1, config.max_attempts + 1):
            self.attempts += 1
            trial = start_nm if attempt == 1 else start_nm + self.rng.normal(0, 0.001, start_nm.shape)
            try:
                pos, e0, e1 = self.minimise_once(trial, config, repel)
                if self.initial_energy is None:
                    self.initial_energy = e0
                return pos, e0, e1
            except Exception as exc:  # OpenMM raises plain Exceptions
                self.notes.append(f"minimisation attempt {attempt} failed: {exc}")
                logger.warning("minimisation attempt %d failed: %s", attempt, exc)
        raise RelaxError(f"minimisation failed {config.max_attempts} times: {self.notes[-1]}")

    def minimise_once(self, start_nm: np.ndarray, config: RelaxConfig,
                      repel: dict[tuple[int, int], tuple[float, float]]) -> tuple[np.ndarray, float, float]:
        """One restrained minimisation (the force field's system with this run's restraints and
        ``repel`` pairs, added for it and removed after: copying the system cost more than small
        chains' minimisations); returns (positions nm, E before, E after kcal/mol)."""
        system, forces = self.system, self.system.getNumForces()
        try:
            add_restraints(system, self.topology, self.state.reference, self.state.weight, config.stiffness)
            add_repulsion(system, repel)
            ctx, self.platform = context(system, start_nm * unit.nanometer, config)
            try:
                e0 = energy_kcal(ctx)
                openmm.LocalEnergyMinimizer.minimize(ctx, config.tolerance * KJ_PER_KCAL, config.max_iterations)
                pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
                e1 = energy_kcal(ctx)
            finally:
                del ctx
        finally:
            while system.getNumForces() > forces:
                system.removeForce(system.getNumForces() - 1)
        pos = np.asarray(pos)
        if not (np.isfinite(e1) and np.isfinite(pos).all()):
            raise RelaxError(f"minimiser diverged (energy {e1})")
        return pos, e0, e1

    def prepare(self) -> np.ndarray:
        """Before the first round (``repel``): an aromatic ring with another residue's atom through it
        (:func:`threaded_rings`) cannot be untangled by minimisation; those side chains are turned
        to a free rotamer at once. Everything else is left to the first minimisation, which mends
        most faults under restraints. Returns the positions to start from."""
        return self._rescue(self.start_nm, threaded_rings(self.protein), set())

    def repel_step(self, current: np.ndarray, found: StructureViolations) -> np.ndarray:
        """``repel`` policy after a round that left violations (``found``, in the round's model);
        returns the positions to go on from.

        Broken peptide bond, bond length or angle inside a residue, squashed disulfide: the
        residues' restraints released (the force field restores their geometry); a side chain
        still distorted although released is jammed (a ring threaded through another) and moves
        to its least-clashing other rotamer, once. Trapped side chain (overlap > ``rescue_overlap``):
        turned to its least-clashing rotamer, once. Other clashes: the pair is repelled; a pair
        still clashing after a round with repulsion is repelled 10x more stiffly, up to
        ``repel_stiffness_max``; past that it softens its residues' side-chain restraints
        (x ``soften_factor``), and after that frees the whole residues (AlphaFold's rule, as a
        last resort). A residue released in an earlier round whose side chain is still distorted
        (and not jammed) is crowded: its neighbours within ``CROWDING`` are released, once."""
        state, config = self.state, self.config
        geometry = found.geometry_residues()
        jammed = {i for i in (geometry & state.released) - state.moved_out
                  if repackable(rc.resnames[int(self.protein.aatype[i])])
                  and any(i in v.residues and set(v.atoms) - BACKBONE_AND_CB for v in found.bonds + found.angles)}
        crowded = self._crowding(current, found, geometry & state.released - jammed)
        logger.debug("repel step: %s; geometry %s; jammed %s; crowding %s", found.counts(), sorted(geometry),
                     sorted(jammed), sorted(crowded))
        state.release(self.topology, geometry | crowded)
        trapped = trapped_residues(found.clashes, self.protein.aatype, config.rescue_overlap) - state.rescue_tried
        current = self._rescue(current, trapped - jammed, jammed)
        clashes = found.clashes if not (trapped or jammed) else find_clashes(self.model(current), config.clash_overlap)
        stuck = set()
        for pair, (d0, residues) in clash_pairs(self.topology, clashes, config).items():
            k = config.repel_stiffness
            if pair in state.repel:
                k = min(10.0 * state.repel[pair][1], config.repel_stiffness_max)
                if state.repel[pair][1] >= config.repel_stiffness_max:
                    stuck.update(residues)
            state.repel[pair] = (d0, k)
        state.release(self.topology, stuck & state.side_chains_released)
        state.release(self.topology, stuck - state.side_chains_released, side_chain_factor=config.soften_factor)
        return current

    def _crowding(self, current: np.ndarray, found: StructureViolations, distorted: set[int]) -> set[int]:
        """Residues crowding a side chain that stays distorted although it is free (released
        in an earlier round, not jammed by its rotamer): those with a heavy atom within
        ``CROWDING`` of its distorted atoms beyond CB, released once per distorted residue so
        the neighbourhood can make room."""
        distorted = distorted - self.state.crowding_released
        if not distorted:
            return set()
        model = self.model(current)
        pos, mask = model.atom_positions, model.atom_mask > 0
        atoms = [pos[v.residues[0], [rc.atom_order[a] for a in v.atoms if a not in BACKBONE_AND_CB]]
                 for v in found.bonds + found.angles if len(v.residues) == 1 and v.residues[0] in distorted]
        self.state.crowding_released |= distorted
        atoms = [a for a in atoms if len(a)]
        if not atoms:
            return set()
        res_of = np.nonzero(mask)[0]
        near = cKDTree(pos[mask]).query_ball_point(np.concatenate(atoms), CROWDING)
        return {int(res_of[j]) for hits in near for j in hits} - distorted

    def _rescue(self, current: np.ndarray, trapped: set[int], jammed: set[int]) -> np.ndarray:
        """Turn ``trapped`` side chains to their least-clashing rotamer (if better) and ``jammed``
        ones to their least-clashing other rotamer; each residue once. Restraints then hold the
        new rotamer, and repulsions of the old one are dropped."""
        state = self.state
        state.rescue_tried |= trapped
        state.moved_out |= jammed
        if not (trapped or jammed):
            return current

        ca = self.protein.atom_positions[:, rc.atom_order["CA"]]

        def clash_score(pos_nm: np.ndarray, residue: int) -> float:
            """Overlap of ``residue``'s clashes, among the residues near it (a side chain reaches < 12 A)."""
            near = np.nonzero(np.linalg.norm(ca - ca[residue], axis=-1) < NEIGHBOURHOOD)[0]
            found = find_clashes(self.model(pos_nm).select(near), self.config.clash_overlap)
            me = int(np.searchsorted(near, residue))
            return float(sum(c.overlap for c in found if me in (c.residue_a, c.residue_b)))

        current, turned = rescue_rotamers(self.topology, current, trapped, clash_score)
        current, moved_out = rescue_rotamers(self.topology, current, jammed, clash_score, must_move=True)
        turned.update(moved_out)
        moved = [a.index for i, res in enumerate(self.topology.residues()) if i in turned for a in res.atoms()]
        state.reference[moved] = current[moved]  # restrain the new rotamer, not the trapped one
        moved_set = set(moved)
        state.repel = {pair: v for pair, v in state.repel.items() if not moved_set & set(pair)}
        state.rescued.update(turned)
        return current


    def pull_back(self, end: _Minimised) -> _Minimised:
        """Bring a clean model that ended further than ``target_rmsd`` from the input back towards
        it (module doc). A step is kept only if it ends with no violation, below the input's
        energy and at least ``PULL_BACK_MIN_GAIN`` closer (stiffer restraints strain the model: a
        marginal gain is not worth it)."""
        current, relaxed, energy, initial_energy = end.positions, end.protein, end.energy, self.initial_energy
        config, protein = self.config, self.protein
        rmsd0 = rmsd = heavy_atom_rmsd(relaxed, protein)
        energy0 = energy
        repel = {pair: (d0, config.repel_stiffness_max) for pair, (d0, _) in self.state.repel.items()}
        input_clashes = find_clashes(protein, config.clash_overlap)  # what stiffer restraints pull back into
        stiffness = config.stiffness
        kept = None

        def worth(clean: bool, trial_energy: float, trial_rmsd: float) -> bool:
            """A step worth keeping: clean, below the input's energy, and closer by the minimum gain."""
            return clean and trial_energy < initial_energy and trial_rmsd <= rmsd - PULL_BACK_MIN_GAIN

        while rmsd > config.target_rmsd and stiffness * PULL_BACK_FACTOR <= config.pull_back_stiffness_max + 1e-9:
            stiffness *= PULL_BACK_FACTOR
            step_config = dataclasses.replace(config, stiffness=stiffness, max_attempts=1)
            # scouted with a capped minimisation (most steps that fail, fail at once); a step
            # worth keeping is then minimised to convergence and judged again
            scout = dataclasses.replace(step_config, max_iterations=PULL_BACK_SCOUT_ITERATIONS) \
                if not 0 < config.max_iterations <= PULL_BACK_SCOUT_ITERATIONS else step_config
            trial, trial_model, clean, trial_energy, trial_rmsd = current, relaxed, False, np.inf, np.inf
            for _ in range(PULL_BACK_TRIES):
                near = find_clashes(trial_model, config.clash_overlap - NEAR_CONTACT) + input_clashes
                for pair, (d0, _) in clash_pairs(self.topology, near, config).items():
                    repel.setdefault(pair, (d0, config.repel_stiffness_max))
                try:
                    trial, _, trial_energy = self.minimise(trial, scout, repel)
                except RelaxError as exc:  # keep the last clean step
                    logger.warning("pull-back at %g kcal/mol/A^2 failed: %s", stiffness, exc)
                    self.notes.append(f"pull-back at {stiffness:g} kcal/mol/A^2 failed ({exc}); not used")
                    break
                trial_model = self.model(trial)
                trial_rmsd = heavy_atom_rmsd(trial_model, protein)
                left = self.violations(trial_model).actionable
                logger.debug("pull-back at %g: RMSD %.3f A, E=%.1f kcal/mol, %d violation(s), %d pair(s) held",
                             stiffness, trial_rmsd, trial_energy, left, len(repel))
                if left == 0:
                    clean = True
                    break
            if scout is not step_config and worth(clean, trial_energy, trial_rmsd):
                clean, trial, trial_model, trial_energy, trial_rmsd = self._converge(trial, step_config, repel)
            if not worth(clean, trial_energy, trial_rmsd):
                break  # this stiffness costs a violation or more than the input's energy, or gains too little
            current, relaxed, energy, rmsd, kept = trial, trial_model, trial_energy, trial_rmsd, stiffness
        if kept is not None:
            self.notes.append(f"pulled back towards the input at {kept:g} kcal/mol/A^2: heavy-atom RMSD "
                              f"{rmsd0:.2f} -> {rmsd:.2f} A, energy {energy0:.0f} -> {energy:.0f} kcal/mol")
        return _Minimised(current, relaxed, energy, clean=True)

    def _converge(self, start: np.ndarray, config: RelaxConfig, repel) -> tuple:
        """A scouted pull-back step minimised to convergence: ``(clean, positions, model, energy,
        RMSD to the input)`` (not clean when the minimisation fails or leaves a violation)."""
        try:
            pos, _, e = self.minimise(start, config, repel)
        except RelaxError as exc:
            logger.warning("pull-back at %g kcal/mol/A^2 failed: %s", config.stiffness, exc)
            return False, start, None, np.inf, np.inf
        model = self.model(pos)
        return self.violations(model).actionable == 0, pos, model, e, heavy_atom_rmsd(model, self.protein)

    # -- the protocol ---------------------------------------------------------------------------------
    def run(self, amber_prefix: Path | None = None) -> RelaxResult:
        """Rounds of minimise -> check -> act (:meth:`rounds`); a clean model a little too far
        from the input pulled back (:meth:`pull_back`); then the result (:meth:`result`)."""
        before = self.violations(self.protein)
        end, rounds = self.rounds(self.prepare() if self.config.violation_policy == "repel" else self.start_nm)
        if end.clean and wants_pull_back(self.config, heavy_atom_rmsd(end.protein, self.protein)):
            end = self.pull_back(end)
        return self.result(end, before, rounds, amber_prefix)

    def rounds(self, current: np.ndarray) -> tuple[_Minimised, int]:
        """Minimise, check, act (``release`` or :meth:`repel_step`) until nothing is left, a round
        changes nothing or ``max_outer_iterations`` ran; returns the last minimised model and the
        number of rounds."""
        config = self.config
        previous = None
        for rounds in range(1, config.max_outer_iterations + 1):
            minimised, _, energy = self.minimise(current)
            moved = np.inf if previous is None else float(np.abs(minimised - previous[1]).max()) * 10.0  # A
            relaxed = self.model(minimised)
            found = self.violations(relaxed)
            bad = found.residues()
            logger.info("relax round %d of at most %d: E=%.1f kcal/mol, %d residue(s) in violation", rounds,
                        config.max_outer_iterations, energy, len(bad))
            if not bad:
                break
            if previous is not None and previous[0] == bad and moved < UNCHANGED:
                self.notes.append(f"round {rounds} changed nothing (same residues in violation, no atom moved "
                                  f"{UNCHANGED} A, nothing new to act on): stopped")
                break
            before_step = self.state.signature()
            if config.violation_policy == "release":
                self.state.release(self.topology, bad)
                current = minimised
            else:
                current = self.repel_step(minimised, found)
            # a round that acted on something new (stiffer repulsion, softened or released
            # residues, a new rotamer) is never the last for lack of movement
            previous = (bad, current) if self.state.signature() == before_step else None
        return _Minimised(minimised, relaxed, energy, clean=not bad), rounds

    def export(self, positions_nm: np.ndarray, amber_prefix: Path | None) -> str | None:
        """With ``keep_hydrogens``: the model with hydrogens as PDB text (returned); with
        ``amber_prefix``: ``.prmtop``/``.inpcrd`` files. Chains keep the input's ids."""
        config = self.config
        if not (config.keep_hydrogens or amber_prefix is not None):
            return None
        for chain, cid in zip(self.topology.chains(), _chain_ids_per_segment(self.protein, self.segments)):
            chain.id = cid
        pdb_h = None
        if config.keep_hydrogens:
            buf = io.StringIO()
            app.PDBFile.writeFile(self.topology, positions_nm * 10.0 * unit.angstrom, buf, keepIds=True)
            pdb_h = buf.getvalue()
        if amber_prefix is not None:
            export_amber(self.topology, positions_nm, config, amber_prefix)
        return pdb_h

    def result(self, end: _Minimised, before: StructureViolations, rounds: int,
               amber_prefix: Path | None) -> RelaxResult:
        """The :class:`RelaxResult` of the run ending at ``end`` (``before``: the input's violations)."""
        protein = self.protein
        relaxed = end.protein.replace(chain_id=protein.chain_id)
        pdb_h = self.export(end.positions, amber_prefix)
        after = self.violations(relaxed)
        return RelaxResult.measured(
            protein, relaxed, before, after, self.initial_energy, end.energy, outer_iterations=rounds,
            attempts=self.attempts, wall_time=time.perf_counter() - self.t0, backend="openmm",
            platform=self.platform, pdb_with_hydrogens=pdb_h, notes=self.notes + self.state.notes(protein))


def _chain_ids_per_segment(protein: Protein, seg: np.ndarray) -> list[str]:
    out, seen = [], set()
    for s, c in zip(seg, protein.chain_id):
        if s not in seen:
            seen.add(s)
            out.append(str(c))
    return out

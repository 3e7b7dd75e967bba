"""AlphaFold2-style Amber relax with OpenMM: restrained L-BFGS minimisation in rounds.

Each round: harmonic restraints (``stiffness``) on heavy atoms, ``LocalEnergyMinimizer`` to
``tolerance``; then clashes and peptide-bond violations are checked and the next round starts
from the minimised coordinates, until no violation remains or ``max_outer_iterations`` rounds ran.
What a violation changes for the next round is ``violation_policy``:

* ``release`` (AlphaFold2's rule): every residue in a clash or a violated peptide bond loses its
  positional restraints. Those residues then move freely, often far (side chains swing into
  vacuum salt bridges), so the model drifts from the input.
* ``repel`` (default): each clashing heavy-atom pair gets a flat-bottom repulsion (stiffness
  ``repel_stiffness``) that holds it ``repel_margin`` beyond the clash distance, and positional
  restraints stay; a pair still clashing after a round is repelled 10x more stiffly (up to
  ``repel_stiffness_max``), then its side chains' restraints are softened, then (last resort)
  its residues are released. A side chain trapped in another part of the chain is turned to a
  free rotamer (``refine.repack``). Residues of a violated peptide bond are released (their
  restraints hold the broken bond). Clashes left after a restrained minimisation are mostly
  contacts the vacuum force field itself pulls together (a carbonyl O against a Lys CE); this
  removes them with the least movement.

  A model that ends clean but further from the input than ``target_rmsd`` (densely clashing
  models, a side chain turned out of a trap) is then pulled back: the restraints are made 3x
  stiffer per step (up to ``pull_back_stiffness_max``) while the input's clashes, the pairs the
  rounds repelled and every heavy-atom pair within ``NEAR_CONTACT`` of a clash are held apart at
  the stiffest repulsion (at most ``PULL_BACK_TRIES`` minimisations per step, the clashes of one
  held apart in the next), so atoms that drifted for the vacuum force field's sake (lost salt
  bridges and hydrogen bonds, vdW contacts) return without a clash coming back. A step is kept
  only if it ends with no violation and below the input's energy. Only models within
  ``PULL_BACK_WINDOW`` of the target are pulled back: one
  that moved further moved for clashes its input really has (af2struct's own over-packed traces
  end 0.7-1.0 A away), and stiffer restraints only push it back into them (measured on a
  400-residue prediction: 0.90 -> 0.80 A for 5000 kcal/mol, still 2 clashes after two
  minimisations of 40-80 s, so nothing kept). (No pull-back with ``stiffness`` 0: nothing to stiffen.)

A failed minimisation (exception or non-finite energy) is retried up to ``max_attempts`` times from
coordinates jittered by 0.01 A, and recorded in the result's notes.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from pathlib import Path

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.stereo import (Clash, StructureViolations, clashscore, find_clashes, find_violations,
                                       violation_count)
from af2struct.geometry.superposition import heavy_atom_rmsd
from refine.cleanup import check_input, fix_with_pdbfixer, segment_ids
from refine.repack import BACKBONE_AND_CB, repackable, rescue_rotamers, trapped_residues
from refine.types import RelaxConfig, RelaxError, RelaxResult

logger = logging.getLogger(__name__)

KJ_PER_KCAL = 4.184
RESTRAINT_GROUP = 31
NEAR_CONTACT = 0.3  # A: pairs this close to a clash are held apart while a model is pulled back
PULL_BACK_FACTOR = 3.0  # restraint stiffness multiplier per pull-back step
PULL_BACK_TRIES = 2  # minimisations per pull-back step (new clashes held apart after each)
PULL_BACK_WINDOW = 0.25  # A: only models within target_rmsd + this are pulled back
_FF_FILES = {
    ("amber99sb", "vacuum"): ["amber99sb.xml"],
    ("amber99sb", "obc"): ["amber99sb.xml", "amber99_obc.xml"],
    ("amber14", "vacuum"): ["amber14-all.xml"],
    ("amber14", "obc"): ["amber14-all.xml", "implicit/obc2.xml"],
}


def _platforms(name: str) -> list[str]:
    import openmm

    available = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    if name != "auto":
        if name not in available:
            raise RelaxError(f"OpenMM platform {name!r} not available; available: {sorted(available)}")
        return [name]
    return [p for p in ("CUDA", "OpenCL", "CPU", "Reference") if p in available]


def _context(system, topology_positions, config: RelaxConfig):
    """A Context on the first platform that works, and that platform's name."""
    import openmm

    errors = []
    for name in _platforms(config.platform):
        platform = openmm.Platform.getPlatformByName(name)
        props = {}
        if name == "CPU":
            props["DeterministicForces"] = "true"
            if config.threads > 0:
                props["Threads"] = str(config.threads)
        elif name == "CUDA":
            props["DeterministicForces"] = "true"
        try:
            integrator = openmm.LangevinIntegrator(0, 0.01, 0.0)
            ctx = openmm.Context(system, integrator, platform, props)
            ctx.setPositions(topology_positions)
            return ctx, name
        except Exception as exc:  # a platform that is listed but has no device
            errors.append(f"{name}: {exc}")
    raise RelaxError("no OpenMM platform could start: " + "; ".join(errors))


def _heavy_protein(topology, positions_nm: np.ndarray, template: Protein) -> Protein:
    """Heavy atoms of the OpenMM system laid back onto ``template``'s residues (atom37)."""
    n = len(template)
    pos = np.zeros((n, rc.atom_type_num, 3), np.float32)
    mask = np.zeros((n, rc.atom_type_num), np.float32)
    for i, res in enumerate(topology.residues()):
        for atom in res.atoms():
            if atom.element is None or atom.element.symbol == "H":
                continue
            j = rc.atom_order.get(atom.name)
            if j is None:
                continue
            pos[i, j] = positions_nm[atom.index] * 10.0
            mask[i, j] = 1.0
    res_b = template.residue_b_factors
    b = np.where(template.atom_mask > 0, template.b_factors, res_b[:, None]).astype(np.float32)
    return template.replace(atom_positions=pos, atom_mask=mask, b_factors=b)


def _build_system(topology, config: RelaxConfig, constraints=True):
    from openmm import app

    ff = app.ForceField(*_FF_FILES[(config.forcefield, config.solvent)])
    return ff.createSystem(topology, nonbondedMethod=app.NoCutoff,
                           constraints=app.HBonds if constraints else None)


def _add_repulsion(system, pairs: dict[tuple[int, int], tuple[float, float]]) -> None:
    """Flat-bottom repulsion between atom pairs: 0.5 k (d0 - r)^2 for r < d0; ``pairs`` maps an
    atom-index pair to (d0 in nm, k in kcal/mol/A^2)."""
    import openmm

    if not pairs:
        return
    force = openmm.CustomBondForce("step(d0 - r) * 0.5 * kr * (d0 - r)^2")
    force.addPerBondParameter("d0")
    force.addPerBondParameter("kr")
    for (a, b), (d0, k) in sorted(pairs.items()):
        force.addBond(a, b, [d0, k * KJ_PER_KCAL * 100.0])
    force.setForceGroup(RESTRAINT_GROUP)
    system.addForce(force)


def _clash_pairs(topology, clashes: list[Clash], config: RelaxConfig
                 ) -> dict[tuple[int, int], tuple[float, tuple[int, int]]]:
    """OpenMM atom-index pair of each clash -> (distance to hold it at in nm, its two residues)."""
    index = {(i, a.name): a.index for i, res in enumerate(topology.residues()) for a in res.atoms()}
    out = {}
    for c in clashes:
        a, b = index.get((c.residue_a, c.atom_a)), index.get((c.residue_b, c.atom_b))
        if a is None or b is None:
            continue
        clear = c.distance + c.overlap - config.clash_overlap + config.repel_margin  # A
        out[(min(a, b), max(a, b))] = (clear / 10.0, (c.residue_a, c.residue_b))
    return out


def _add_restraints(system, topology, reference_nm: np.ndarray, weight: np.ndarray, stiffness: float) -> int:
    """Harmonic positional restraints on heavy atoms, stiffness scaled per atom by ``weight [N]``
    (0: unrestrained)."""
    import openmm

    force = openmm.CustomExternalForce("0.5 * k * w * ((x - x0)^2 + (y - y0)^2 + (z - z0)^2)")
    force.addGlobalParameter("k", stiffness * KJ_PER_KCAL * 100.0)  # kcal/mol/A^2 -> kJ/mol/nm^2
    for p in ("w", "x0", "y0", "z0"):
        force.addPerParticleParameter(p)
    count = 0
    for atom in topology.atoms():
        if weight[atom.index] > 0 and atom.element is not None and atom.element.symbol != "H":
            force.addParticle(atom.index, [float(weight[atom.index])] + reference_nm[atom.index].tolist())
            count += 1
    force.setForceGroup(RESTRAINT_GROUP)
    system.addForce(force)
    return count


@dataclasses.dataclass
class _Restraints:
    """What the next round restrains, and how it got there (see the module doc)."""

    reference: np.ndarray  # [N_atoms, 3] nm: where restrained atoms are held
    weight: np.ndarray  # [N_atoms] restraint stiffness factor (0: free)
    repel: dict[tuple[int, int], tuple[float, float]] = dataclasses.field(default_factory=dict)  # -> (d0 nm, k)
    released: set[int] = dataclasses.field(default_factory=set)  # residues
    side_chains_released: set[int] = dataclasses.field(default_factory=set)  # residues
    rescued: dict[int, tuple[float, ...]] = dataclasses.field(default_factory=dict)  # residue -> chi (deg)
    rescue_tried: set[int] = dataclasses.field(default_factory=set)  # residues
    moved_out: set[int] = dataclasses.field(default_factory=set)  # jammed residues sent to another rotamer

    def release(self, topology, residues: set[int], side_chain_factor: float | None = None) -> None:
        """Free ``residues`` (AlphaFold's rule) or, with ``side_chain_factor``, scale the restraints
        of their side-chain atoms beyond CB by it."""
        for i, res in enumerate(topology.residues()):
            if i in residues:
                for a in res.atoms():
                    if side_chain_factor is None:
                        self.weight[a.index] = 0.0
                    elif a.name not in BACKBONE_AND_CB:
                        self.weight[a.index] = min(self.weight[a.index], side_chain_factor)
        (self.released if side_chain_factor is None else self.side_chains_released).update(residues)

    def notes(self, protein: Protein) -> list[str]:
        out = []
        if self.released:
            out.append(f"restraints released on {len(self.released)} residue(s) in violation")
        if self.rescued:
            turned = sorted(self.rescued.items())[:10]
            where = ", ".join(f"{protein.residue_index[i]} (chi {list(c)})" for i, c in turned)
            out.append(f"{len(self.rescued)} trapped side chain(s) turned to a free rotamer: {where}")
        if self.repel:
            out.append(f"{len(self.repel)} clashing atom pair(s) held apart")
        if self.side_chains_released - self.released:
            out.append(f"side-chain restraints softened on {len(self.side_chains_released - self.released)} "
                       "residue(s) whose clash outlasted the repulsion")
        return out


def _repel_step(state: _Restraints, topology, protein: Protein, current: np.ndarray, found: StructureViolations,
                config: RelaxConfig) -> np.ndarray:
    """``repel`` policy after a round that left violations (``found``, in the round's model);
    returns the positions to go on from.

    Broken peptide bond, bond length or angle inside a residue, squashed disulfide: the residues'
    restraints released (the force field restores their geometry). Trapped side chain (overlap > ``rescue_overlap``):
    turned to its least-clashing rotamer, once. Other clashes: the pair is repelled; a pair
    still clashing after a round with repulsion is repelled 10x more stiffly, up to
    ``repel_stiffness_max``; past that it softens its residues' side-chain restraints
    (x ``soften_factor``), and after that frees the whole residues (AlphaFold's rule, as a last
    resort).
    """
    geometry = found.geometry_residues()
    # side chains still distorted although free since an earlier round are jammed (a ring
    # threaded through another): they move to their least-clashing other rotamer, once
    jammed = {i for i in (geometry & state.released) - state.moved_out
              if repackable(rc.resnames[int(protein.aatype[i])])
              and any(i in v.residues and set(v.atoms) - BACKBONE_AND_CB for v in found.bonds + found.angles)}
    logger.debug("repel step: %s; geometry %s; jammed %s", found.counts(), sorted(geometry), sorted(jammed))
    state.release(topology, geometry)
    clashes = found.clashes
    trapped = trapped_residues(clashes, protein.aatype, config.rescue_overlap) - state.rescue_tried - jammed
    state.rescue_tried |= trapped
    state.moved_out |= jammed
    if trapped or jammed:
        def clash_score(pos_nm: np.ndarray, residue: int) -> float:
            found = find_clashes(_heavy_protein(topology, pos_nm, protein), config.clash_overlap)
            return float(sum(c.overlap for c in found if residue in (c.residue_a, c.residue_b)))

        current, turned = rescue_rotamers(topology, current, trapped, clash_score)
        current, moved_out = rescue_rotamers(topology, current, jammed, clash_score, must_move=True)
        turned.update(moved_out)
        moved = [a.index for i, res in enumerate(topology.residues()) if i in turned for a in res.atoms()]
        state.reference[moved] = current[moved]  # restrain the new rotamer, not the trapped one
        state.rescued.update(turned)
        if turned:
            clashes = find_clashes(_heavy_protein(topology, current, protein), config.clash_overlap)
    stuck = set()
    for pair, (d0, residues) in _clash_pairs(topology, clashes, config).items():
        k = config.repel_stiffness
        if pair in state.repel:
            k = min(10.0 * state.repel[pair][1], config.repel_stiffness_max)
            if state.repel[pair][1] >= config.repel_stiffness_max:
                stuck.update(residues)
        state.repel[pair] = (d0, k)
    state.release(topology, stuck & state.side_chains_released)
    state.release(topology, stuck - state.side_chains_released, side_chain_factor=config.soften_factor)
    return current


def _pull_back(state: _Restraints, topology, protein: Protein, current: np.ndarray, relaxed: Protein,
               energy: float, initial_energy: float, kept_breaks: np.ndarray, config: RelaxConfig
               ) -> tuple[np.ndarray, Protein, float, list[str]]:
    """Bring a clean model (``current`` nm, its heavy atoms ``relaxed``) that ended further than
    ``target_rmsd`` from the input back towards it (see the module doc). A step is kept only if it
    ends with no violation and below ``initial_energy`` (the input's); returns (positions nm, their
    heavy atoms, energy kcal/mol, notes)."""
    rmsd0 = rmsd = heavy_atom_rmsd(relaxed, protein)
    energy0 = energy
    repel = {pair: (d0, config.repel_stiffness_max) for pair, (d0, _) in state.repel.items()}
    input_clashes = find_clashes(protein, config.clash_overlap)  # what stiffer restraints pull back into
    stiffness = config.stiffness
    kept, notes = None, []
    while rmsd > config.target_rmsd and stiffness * PULL_BACK_FACTOR <= config.pull_back_stiffness_max + 1e-9:
        stiffness *= PULL_BACK_FACTOR
        step_config = dataclasses.replace(config, stiffness=stiffness)
        trial, trial_model, clean = current, relaxed, False
        for _ in range(PULL_BACK_TRIES):
            near = find_clashes(trial_model, config.clash_overlap - NEAR_CONTACT) + input_clashes
            for pair, (d0, _) in _clash_pairs(topology, near, config).items():
                repel.setdefault(pair, (d0, config.repel_stiffness_max))
            try:
                trial, _, trial_energy, _ = _minimize_round(topology, trial, state.reference, state.weight,
                                                            step_config, repel)
            except Exception as exc:  # OpenMM raises plain Exceptions; keep the last clean step
                logger.warning("pull-back at %g kcal/mol/A^2 failed: %s", stiffness, exc)
                notes.append(f"pull-back at {stiffness:g} kcal/mol/A^2 failed ({exc}); not used")
                break
            trial_model = _heavy_protein(topology, trial, protein)
            trial_rmsd = heavy_atom_rmsd(trial_model, protein)
            left = violation_count(trial_model, config.clash_overlap, kept_breaks)
            logger.debug("pull-back at %g: RMSD %.3f A, E=%.1f kcal/mol, %d violation(s), %d pair(s) held",
                         stiffness, trial_rmsd, trial_energy, left, len(repel))
            if left == 0:
                clean = True
                break
        if not clean or trial_energy >= initial_energy:
            break  # this stiffness costs a violation (or more than the input's energy)
        current, relaxed, energy, rmsd, kept = trial, trial_model, trial_energy, trial_rmsd, stiffness
    if kept is not None:
        notes.append(f"pulled back towards the input at {kept:g} kcal/mol/A^2: heavy-atom RMSD "
                     f"{rmsd0:.2f} -> {rmsd:.2f} A, energy {energy0:.0f} -> {energy:.0f} kcal/mol")
    return current, relaxed, energy, notes


def _energy_kcal(ctx) -> float:
    groups = sum(1 << g for g in range(32) if g != RESTRAINT_GROUP)
    e = ctx.getState(getEnergy=True, groups=groups).getPotentialEnergy()
    return e.value_in_unit(e.unit) / KJ_PER_KCAL  # kJ/mol -> kcal/mol


def _minimize_round(topology, start_nm, reference_nm, weight, config,
                    repel: dict[tuple[int, int], tuple[float, float]] | None = None
                    ) -> tuple[np.ndarray, float, float, str]:
    """One restrained minimisation; returns (positions nm, E before, E after, platform)."""
    import openmm
    from openmm import unit

    system = _build_system(topology, config)
    _add_restraints(system, topology, reference_nm, weight, config.stiffness)
    _add_repulsion(system, repel or {})
    ctx, platform = _context(system, start_nm * unit.nanometer, config)
    try:
        e0 = _energy_kcal(ctx)
        openmm.LocalEnergyMinimizer.minimize(ctx, config.tolerance * KJ_PER_KCAL, config.max_iterations)
        state = ctx.getState(getPositions=True)
        pos = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        e1 = _energy_kcal(ctx)
    finally:
        del ctx
    if not (np.isfinite(e1) and np.isfinite(pos).all()):
        raise RelaxError(f"minimiser diverged (energy {e1})")
    return pos, e0, e1, platform


def relax_openmm(protein: Protein, config: RelaxConfig, amber_prefix: Path | None = None) -> RelaxResult:
    """Relax ``protein`` (see module doc). ``amber_prefix`` also writes ``.prmtop``/``.inpcrd``."""
    from openmm import unit

    t0 = time.perf_counter()
    notes = check_input(protein)
    seg, breaks = segment_ids(protein)
    if breaks:
        notes.append(f"chain break(s) before residue(s) {breaks[:10]}: kept (segments relaxed as separate chains)")
    segmented = protein.replace(chain_id=seg)
    kept_breaks = seg[1:] != seg[:-1]  # bonds relax does not make: not violations
    topology, positions = fix_with_pdbfixer(segmented, seed=config.seed)
    start = np.asarray(positions.value_in_unit(unit.nanometer))
    state = _Restraints(reference=start.copy(), weight=np.ones(len(start)))
    violations_before = find_violations(protein, config.clash_overlap, kept_breaks)
    clash_before = clashscore(protein)
    rng = np.random.default_rng(config.seed)
    attempts = 0
    initial_energy = None
    energy = float("nan")
    platform = "?"
    current = start
    rounds = 0
    for rounds in range(1, config.max_outer_iterations + 1):
        for attempt in range(1, config.max_attempts + 1):
            attempts += 1
            try:
                trial = current if attempt == 1 else current + rng.normal(0, 0.001, current.shape)
                current, e0, energy, platform = _minimize_round(topology, trial, state.reference, state.weight, config,
                                                                state.repel)
                break
            except Exception as exc:  # OpenMM raises plain Exceptions
                notes.append(f"round {rounds} attempt {attempt} failed: {exc}")
                logger.warning("minimisation round %d attempt %d failed: %s", rounds, attempt, exc)
        else:
            raise RelaxError(f"minimisation failed {config.max_attempts} times in round {rounds}: {notes[-1]}")
        if initial_energy is None:
            initial_energy = e0
        relaxed = _heavy_protein(topology, current, protein)
        found = find_violations(relaxed, config.clash_overlap, kept_breaks)
        bad = found.residues()
        logger.info("relax round %d of at most %d: E=%.1f kcal/mol, %d residue(s) in violation", rounds,
                    config.max_outer_iterations, energy, len(bad))
        if not bad:
            break
        if config.violation_policy == "release":
            state.release(topology, bad)  # another round even if all were released: may not be done
        else:
            current = _repel_step(state, topology, protein, current, found, config)
    if (config.violation_policy == "repel" and config.target_rmsd > 0 and config.stiffness > 0 and not bad
            and config.target_rmsd < heavy_atom_rmsd(relaxed, protein) <= config.target_rmsd + PULL_BACK_WINDOW):
        current, relaxed, energy, pulled = _pull_back(state, topology, protein, current, relaxed, energy,
                                                      initial_energy, kept_breaks, config)
        notes.extend(pulled)
    relaxed = relaxed.replace(chain_id=protein.chain_id)
    rmsd = heavy_atom_rmsd(relaxed, protein)
    pdb_h = None
    if config.keep_hydrogens or amber_prefix is not None:
        for chain, cid in zip(topology.chains(), _chain_ids_per_segment(protein, seg)):
            chain.id = cid
    if config.keep_hydrogens:
        from openmm import app

        buf = io.StringIO()
        app.PDBFile.writeFile(topology, current * 10.0 * unit.angstrom, buf, keepIds=True)
        pdb_h = buf.getvalue()
    if amber_prefix is not None:
        export_amber(topology, current, config, amber_prefix)
    notes.extend(state.notes(protein))
    violations_after = find_violations(relaxed, config.clash_overlap, kept_breaks)
    return RelaxResult(
        protein=relaxed,
        initial_energy=float(initial_energy),
        final_energy=float(energy),
        rmsd_heavy=rmsd,
        violations_before=violations_before.actionable,
        violations_after=violations_after.actionable,
        violation_counts_before=violations_before.counts(),
        violation_counts_after=violations_after.counts(),
        clashscore_before=clash_before,
        clashscore_after=clashscore(relaxed),
        outer_iterations=rounds,
        attempts=attempts,
        wall_time=time.perf_counter() - t0,
        backend="openmm",
        platform=platform,
        pdb_with_hydrogens=pdb_h,
        notes=notes,
    )


def _chain_ids_per_segment(protein: Protein, seg: np.ndarray) -> list[str]:
    out, seen = [], set()
    for s, c in zip(seg, protein.chain_ids):
        if s not in seen:
            seen.add(s)
            out.append(str(c))
    return out


def export_amber(topology, positions_nm: np.ndarray, config: RelaxConfig, prefix: Path) -> tuple[Path, Path]:
    """Write ``prefix.prmtop`` and ``prefix.inpcrd`` (Amber) through parmed, atomically."""
    import parmed

    from af2struct.common.files import atomic_path

    system = _build_system(topology, config, constraints=False)
    structure = parmed.openmm.load_topology(topology, system, xyz=positions_nm * 10.0)
    prefix = Path(prefix)
    paths = (Path(f"{prefix}.prmtop"), Path(f"{prefix}.inpcrd"))  # not with_suffix: names may hold dots
    for path, fmt in zip(paths, ("amber", "rst7")):
        with atomic_path(path) as tmp:
            structure.save(str(tmp), format=fmt, overwrite=True)
    return paths

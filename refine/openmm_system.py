"""The OpenMM side of relax: force fields, the system with its restraints and repulsions, the
context on the best platform, energies, heavy atoms back to a :class:`Protein`, and Amber files.
The protocol that uses them is :mod:`refine.openmm_backend`."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from af2struct.common import residue_constants as rc
from af2struct.common.files import atomic_path
from af2struct.common.protein import Protein
from af2struct.geometry.stereo import Clash
from refine.repack import BACKBONE_AND_CB
from refine.types import RelaxConfig, RelaxError

KJ_PER_KCAL = 4.184
RESTRAINT_GROUP = 31
CUTOFF_MIN_ATOMS = 1000  # smaller systems (< ~65 residues) are cheap without a nonbonded cutoff
FF_FILES = {
    ("amber99sb", "vacuum"): ["amber99sb.xml"],
    ("amber99sb", "obc"): ["amber99sb.xml", "amber99_obc.xml"],
    ("amber14", "vacuum"): ["amber14-all.xml"],
    ("amber14", "obc"): ["amber14-all.xml", "implicit/obc2.xml"],
}



def platforms(name: str) -> list[str]:
    available = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    if name != "auto":
        if name not in available:
            raise RelaxError(f"OpenMM platform {name!r} not available; available: {sorted(available)}")
        return [name]
    return [p for p in ("CUDA", "OpenCL", "CPU", "Reference") if p in available]


def context(system, topology_positions, config: RelaxConfig):
    """A Context on the first platform that works, and that platform's name."""
    errors = []
    for name in platforms(config.platform):
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


def heavy_index(topology) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(atom index, residue, atom37 slot)`` of every heavy atom of ``topology`` with an atom37 name."""
    rows = [(atom.index, i, rc.atom_order[atom.name]) for i, res in enumerate(topology.residues())
            for atom in res.atoms()
            if atom.element is not None and atom.element.symbol != "H" and atom.name in rc.atom_order]
    return tuple(np.array(c, dtype=np.int64) for c in zip(*rows))


def heavy_protein(topology, positions_nm: np.ndarray, template: Protein, index=None) -> Protein:
    """Heavy atoms of the OpenMM system laid back onto ``template``'s residues (atom37);
    ``index``: :func:`heavy_index` of ``topology`` (computed if not given)."""
    atom, res, slot = heavy_index(topology) if index is None else index
    n = len(template)
    pos = np.zeros((n, rc.atom_type_num, 3), np.float32)
    mask = np.zeros((n, rc.atom_type_num), np.float32)
    pos[res, slot] = positions_nm[atom] * 10.0
    mask[res, slot] = 1.0
    res_b = template.residue_b_factors
    b = np.where(template.atom_mask > 0, template.b_factors, res_b[:, None]).astype(np.float32)
    return template.replace(atom_positions=pos, atom_mask=mask, b_factors=b)


@functools.lru_cache(maxsize=4)
def force_field(forcefield: str, solvent: str):
    """The OpenMM force field (parsed once per process; ``createSystem`` does not change it)."""
    return app.ForceField(*FF_FILES[(forcefield, solvent)])


def build_system(topology, config: RelaxConfig):
    """The force field's system for ``topology``, without constraints: a minimisation needs
    none (AlphaFold2 constrains bonds to hydrogen, which OpenMM's minimiser enforces by
    re-minimising with stiffer penalties: 3-5x the time, for the same heavy atoms; the X-H
    bonds end at the force field's lengths either way)."""
    use_cutoff = config.nonbonded_cutoff > 0 and topology.getNumAtoms() >= CUTOFF_MIN_ATOMS
    cutoff = ({"nonbondedMethod": app.CutoffNonPeriodic, "nonbondedCutoff": config.nonbonded_cutoff * unit.nanometer}
              if use_cutoff else {"nonbondedMethod": app.NoCutoff})
    system = force_field(config.forcefield, config.solvent).createSystem(
        topology, constraints=None, **cutoff)
    if use_cutoff:  # vacuum inside and out: forces within the cutoff are Coulomb's own
        for force in system.getForces():
            if isinstance(force, openmm.NonbondedForce):
                force.setReactionFieldDielectric(1.0)
    return system


def add_repulsion(system, pairs: dict[tuple[int, int], tuple[float, float]]) -> None:
    """Flat-bottom repulsion between atom pairs: 0.5 k (d0 - r)^2 for r < d0; ``pairs`` maps an
    atom-index pair to (d0 in nm, k in kcal/mol/A^2)."""
    if not pairs:
        return
    force = openmm.CustomBondForce("step(d0 - r) * 0.5 * kr * (d0 - r)^2")
    force.addPerBondParameter("d0")
    force.addPerBondParameter("kr")
    for (a, b), (d0, k) in sorted(pairs.items()):
        force.addBond(a, b, [d0, k * KJ_PER_KCAL * 100.0])
    force.setForceGroup(RESTRAINT_GROUP)
    system.addForce(force)


def clash_pairs(topology, clashes: list[Clash], config: RelaxConfig
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


def add_restraints(system, topology, reference_nm: np.ndarray, weight: np.ndarray, stiffness: float) -> int:
    """Harmonic positional restraints on heavy atoms, stiffness scaled per atom by ``weight [N]``
    (0: unrestrained)."""
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
class Restraints:
    """What the next round restrains, and how it got there (see the module doc)."""

    reference: np.ndarray  # [N_atoms, 3] nm: where restrained atoms are held
    weight: np.ndarray  # [N_atoms] restraint stiffness factor (0: free)
    repel: dict[tuple[int, int], tuple[float, float]] = dataclasses.field(default_factory=dict)  # -> (d0 nm, k)
    released: set[int] = dataclasses.field(default_factory=set)  # residues
    side_chains_released: set[int] = dataclasses.field(default_factory=set)  # residues
    rescued: dict[int, tuple[float, ...]] = dataclasses.field(default_factory=dict)  # residue -> chi (deg)
    rescue_tried: set[int] = dataclasses.field(default_factory=set)  # residues
    moved_out: set[int] = dataclasses.field(default_factory=set)  # jammed residues sent to another rotamer
    crowding_released: set[int] = dataclasses.field(default_factory=set)  # distorted; their neighbours freed

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

    def signature(self) -> tuple:
        """What the next round restrains (equal signatures: a round with nothing new to act on)."""
        return (tuple(sorted(self.repel.items())), self.weight.tobytes(), self.reference.tobytes())

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


def energy_kcal(ctx) -> float:
    groups = sum(1 << g for g in range(32) if g != RESTRAINT_GROUP)
    e = ctx.getState(getEnergy=True, groups=groups).getPotentialEnergy()
    return e.value_in_unit(e.unit) / KJ_PER_KCAL  # kJ/mol -> kcal/mol


def export_amber(topology, positions_nm: np.ndarray, config: RelaxConfig, prefix: Path) -> tuple[Path, Path]:
    """Write ``prefix.prmtop`` and ``prefix.inpcrd`` (Amber) through parmed, atomically."""
    import parmed  # lazy: only --amber-out needs it (0.3-0.5 s at every relax process's start otherwise)

    system = build_system(topology, config)
    structure = parmed.openmm.load_topology(topology, system, xyz=positions_nm * 10.0)
    prefix = Path(prefix)
    paths = (Path(f"{prefix}.prmtop"), Path(f"{prefix}.inpcrd"))  # not with_suffix: names may hold dots
    for path, fmt in zip(paths, ("amber", "rst7")):
        with atomic_path(path) as tmp:
            structure.save(str(tmp), format=fmt, overwrite=True)
    return paths

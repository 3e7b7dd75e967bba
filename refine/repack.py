"""Rotamer rescue for side chains a restrained minimisation cannot free.

A side chain built through another part of the chain (a Phe ring threaded by a backbone, two
side chains interlocked) is a topological trap: restraints hold it, and even released it cannot
pass through the atoms it pierces, so minimisation leaves overlaps of ~1 A. For such residues the
side chain is turned, rigidly with its hydrogens, about its chi1/chi2 bonds to the staggered
rotamer that clashes least with the rest of the structure; chi3/chi4 keep their values. Numpy on
an OpenMM topology's positions; no torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.angles import dihedral
from af2struct.geometry.stereo import Clash

BACKBONE_AND_CB = rc.backbone_and_cb_atoms
THREADED = 1.5  # A: another residue's atom this close to an aromatic ring's centre is threaded through it


def repackable(resname: str) -> bool:
    """Whether rotamers can be set for this residue type (it has chi angles and no ring onto N)."""
    return rc.rotamers_settable(resname)


def trapped_residues(clashes: Sequence[Clash], aatype: np.ndarray, min_overlap: float) -> set[int]:
    """Residues with a side-chain atom beyond CB in a clash overlapping by more than ``min_overlap``."""
    out: set[int] = set()
    for c in clashes:
        if c.overlap <= min_overlap:
            continue
        for res, atom in ((c.residue_a, c.atom_a), (c.residue_b, c.atom_b)):
            name = rc.resnames[int(aatype[res])]
            if atom not in BACKBONE_AND_CB and repackable(name):
                out.add(int(res))
    return out


def bond_graph(topology) -> dict[int, set[int]]:
    """Bonded neighbours of every atom, within its residue (one pass over the topology's bonds:
    ``Residue.bonds()`` scans them all on every call)."""
    nbrs: dict[int, set[int]] = {a.index: set() for a in topology.atoms()}
    for a, b in topology.bonds():
        if a.residue.index == b.residue.index:
            nbrs[a.index].add(b.index)
            nbrs[b.index].add(a.index)
    return nbrs


def _moving_atoms(residue, axis_from: str, axis_to: str, nbrs: dict[int, set[int]] | None = None) -> list[int]:
    """Atom indices of ``residue`` on the ``axis_to`` side of the bond axis_from-axis_to."""
    atoms = {a.name: a for a in residue.atoms()}
    if nbrs is None:
        nbrs = {a.index: set() for a in atoms.values()}
        for b in residue.bonds():
            if b[0].index in nbrs and b[1].index in nbrs:
                nbrs[b[0].index].add(b[1].index)
                nbrs[b[1].index].add(b[0].index)
    start, stop = atoms[axis_to].index, atoms[axis_from].index
    seen, todo = {start}, [start]
    while todo:
        for j in nbrs[todo.pop()]:
            if j != stop and j not in seen:
                seen.add(j)
                todo.append(j)
    seen.discard(start)
    return sorted(seen)


def _rotate(pos: np.ndarray, idx: list[int], origin: np.ndarray, axis: np.ndarray, angle: float) -> None:
    """Rotate ``pos[idx]`` in place by ``angle`` about ``axis`` through ``origin`` (Rodrigues)."""
    k = axis / np.linalg.norm(axis)
    v = pos[idx] - origin
    c, s = np.cos(angle), np.sin(angle)
    pos[idx] = origin + v * c + np.cross(k, v) * s + np.outer(v @ k, k) * (1 - c)


def set_chi(pos: np.ndarray, residue, chi_atoms: Sequence[Sequence[str]], targets: Sequence[float],
            nbrs: dict[int, set[int]] | None = None) -> None:
    """Set the first ``len(targets)`` chi angles (radians) of ``residue`` in ``pos`` (in place);
    ``nbrs``: :func:`bond_graph` of the topology (computed here if not given)."""
    atoms = {a.name: a.index for a in residue.atoms()}
    for quad, target in zip(chi_atoms, targets):
        i0, i1, i2, i3 = (atoms[a] for a in quad)
        now = float(dihedral(pos[i0], pos[i1], pos[i2], pos[i3]))
        _rotate(pos, _moving_atoms(residue, quad[1], quad[2], nbrs), pos[i1], pos[i2] - pos[i1], target - now)


def rescue_rotamers(topology, positions: np.ndarray, residues: set[int],
                    clashes_of: Callable[[np.ndarray, int], float], must_move: bool = False
                    ) -> tuple[np.ndarray, dict[int, tuple[float, ...]]]:
    """Turn each residue in ``residues``, one at a time in order, to the chi1/chi2 rotamer that
    minimises ``clashes_of(positions, residue)`` (a clash score of that residue against the rest),
    if that beats its current side chain (with ``must_move``: the best other rotamer even if it
    does not, for a side chain whose current place is itself the fault, e.g. a ring threaded
    through another). ``positions [N_atoms, 3]`` (any unit). Returns the new positions and, per
    residue changed, its new chi angles in degrees."""
    pos = positions.copy()
    res_list = list(topology.residues())
    nbrs = bond_graph(topology) if residues else {}
    changed: dict[int, tuple[float, ...]] = {}
    for i in sorted(residues):
        residue = res_list[i]
        chis = rc.chi_angles_atoms[residue.name][:2]
        atoms = {a.name: a.index for a in residue.atoms()}
        current = [float(dihedral(*(pos[atoms[a]] for a in quad))) for quad in chis]
        best, best_score = None, np.inf if must_move else clashes_of(pos, i)
        options = [[np.radians(a) for a in rc.staggered_chi1_deg] + [current[0]]]
        if len(chis) > 1:
            options.append([np.radians(a) for a in rc.staggered_chi2_deg] + [current[1]])
        for combo in itertools.product(*options):
            if must_move and list(combo) == current[:len(combo)]:
                continue
            trial = pos.copy()
            set_chi(trial, residue, chis, combo, nbrs)
            score = clashes_of(trial, i)
            if score < best_score - 1e-6:
                best, best_score = trial, score
        if best is not None:
            pos = best
            changed[i] = tuple(round(float(np.degrees(
                dihedral(*(pos[atoms[a]] for a in quad)))), 1) for quad in chis)
    return pos, changed


def threaded_rings(protein: Protein) -> set[int]:
    """Residues in a threaded ring: an aromatic ring with a heavy atom of another residue within
    ``THREADED`` of its centre (never so in a real structure: atoms stay ~3.4 A from a ring's
    face), and the residues whose side chains pass through it."""
    pos, mask = protein.atom_positions, protein.atom_mask > 0
    res, atom = np.nonzero(mask)
    tree = cKDTree(pos[res, atom])
    out: set[int] = set()
    for i, a in enumerate(protein.aatype):
        name = rc.resnames[int(a)] if a < len(rc.resnames) else "UNK"
        for ring in rc.aromatic_ring_atoms.get(name, ()):
            idx = [rc.atom_order[x] for x in ring]
            if not mask[i, idx].all():
                continue
            for k in tree.query_ball_point(pos[i, idx].mean(0), THREADED):
                j = int(res[k])
                if j == i:
                    continue
                out.add(i)  # the ring moves; a side chain through it moves too
                if rc.atom_types[atom[k]] not in BACKBONE_AND_CB and repackable(rc.resnames[int(protein.aatype[j])]):
                    out.add(j)
    return out

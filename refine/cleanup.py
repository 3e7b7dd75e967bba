"""Input checks and PDBFixer cleanup before minimisation.

PDBFixer adds missing heavy atoms and hydrogens (pH 7), replaces non-standard residues and drops
waters and heterogens; it never moves an atom that is already there. Chain breaks are kept:
each unbroken segment becomes its own chain, so no bond is made across a gap.
"""

from __future__ import annotations

import io
import random
import string
from typing import List, Tuple

import numpy as np
import openmm
from pdbfixer import PDBFixer

from af2struct.common import residue_constants as rc
from af2struct.common.io import to_pdb_string
from af2struct.common.protein import Protein
from af2struct.geometry.backbone import CHAIN_BREAK_DISTANCE
from refine.types import RelaxError

SEGMENT_IDS = string.ascii_uppercase + string.ascii_lowercase + string.digits


def check_input(protein: Protein) -> List[str]:
    """Raise :class:`RelaxError` for what cannot be relaxed; return notes on what was noticed."""
    if len(protein) == 0:
        raise RelaxError("no residues to relax")
    unk = np.nonzero(protein.aatype == rc.unk_restype_index)[0]
    if len(unk):
        where = ", ".join(str(protein.residue_index[i]) for i in unk[:10])
        raise RelaxError(f"unknown residue type (X) at residue number(s) {where}: cannot build a force field")
    _check_coordinates(protein)
    notes = []
    ca = protein.atom_mask[:, rc.ca_index] > 0
    if not ca.all():
        missing = [int(protein.residue_index[i]) for i in np.nonzero(~ca)[0][:10]]
        notes.append(f"{int((~ca).sum())} residue(s) lack CA (e.g. {missing}); PDBFixer builds them")
    bb = [rc.atom_order[a] for a in ("N", "CA", "C", "O")]
    partial = (protein.atom_mask[:, bb].sum(-1) < 4).sum()
    if partial:
        notes.append(f"{int(partial)} residue(s) with missing backbone atoms; PDBFixer adds them")
    return notes


MAX_COORDINATE = 9999.0  # A: beyond what a PDB file can hold
MAX_FROM_CA = 15.0  # A: no heavy atom of a residue is this far from its CA (Arg/Lys reach ~7.5)


def _check_coordinates(protein: Protein) -> None:
    """Absurd coordinates are an input error, not something to minimise."""
    pos, mask = protein.atom_positions, protein.atom_mask > 0
    big = mask & (np.abs(pos) > MAX_COORDINATE).any(-1)
    if big.any():
        i, j = (int(x[0]) for x in np.nonzero(big))
        raise RelaxError(f"residue {protein.residue_index[i]} atom {rc.atom_types[j]} at "
                         f"{np.round(pos[i, j], 1).tolist()} A: coordinates beyond {MAX_COORDINATE:.0f} A")
    ca = protein.atom_mask[:, rc.ca_index] > 0
    d = np.linalg.norm(pos - pos[:, rc.ca_index][:, None], axis=-1)
    far = mask & ca[:, None] & (d > MAX_FROM_CA)
    if far.any():
        i, j = (int(x[0]) for x in np.nonzero(far))
        raise RelaxError(f"residue {protein.residue_index[i]} ({rc.resnames[int(protein.aatype[i])]}) atom "
                         f"{rc.atom_types[j]} is {d[i, j]:.1f} A from its CA (at most {MAX_FROM_CA:.0f} A is "
                         f"possible): broken input coordinates")


PEPTIDE_BOND_MAX = 2.0  # A: a C-N this short is a peptide bond (1.33 A), whatever the numbering says


def input_breaks(protein: Protein) -> Tuple[np.ndarray, np.ndarray]:
    """``[L-1]`` bool masks of the chain breaks in an input: ``hard`` (a chain change, or a
    numbering step other than +1 without a peptide bond) and ``long_bond`` (C-N longer than
    ``CHAIN_BREAK_DISTANCE`` between consecutive numbers: residues missing without a numbering
    gap). Residues joined by a peptide bond (C-N within ``PEPTIDE_BOND_MAX``) stay joined
    whatever their numbers say: insertion codes (30, 30A, 30B) and renumbered or reversed
    numbering are not breaks."""
    n_, c_ = rc.atom_order["N"], rc.atom_order["C"]
    p, m = protein.atom_positions, protein.atom_mask
    d = np.linalg.norm(p[1:, n_] - p[:-1, c_], axis=-1)
    has_both = (m[1:, n_] > 0) & (m[:-1, c_] > 0)
    bonded = has_both & (d <= PEPTIDE_BOND_MAX)
    long_bond = has_both & (d > CHAIN_BREAK_DISTANCE)
    other_chain = protein.chain_id[1:] != protein.chain_id[:-1]
    hard = other_chain | ((np.diff(protein.residue_index) != 1) & ~bonded)
    return hard, long_bond & ~hard


def segment_ids(protein: Protein) -> Tuple[np.ndarray, List[int]]:
    """Per-residue segment ids for Amber (new segment at each of :func:`input_breaks`)."""
    hard, long_bond = input_breaks(protein)
    new = hard | long_bond
    # Amber has no template for a lone amino acid (N- and C-terminal at once): a residue cut off
    # on both sides only by long C-N distances (consecutive numbering) is bonded back to its
    # neighbours instead, and relax pulls the bond together.
    for i in range(len(protein)):
        left = i == 0 or new[i - 1]
        right = i == len(protein) - 1 or new[i]
        if left and right:
            if i > 0 and not hard[i - 1]:
                new[i - 1] = False
            if i < len(protein) - 1 and not hard[i]:
                new[i] = False
            if (i == 0 or new[i - 1]) and (i == len(protein) - 1 or new[i]):
                raise RelaxError(f"residue {protein.residue_index[i]} ({rc.resnames[int(protein.aatype[i])]}) is "
                                 "a single residue between chain breaks; Amber has no template for it")
    seg = np.concatenate([[0], np.cumsum(new)])
    if seg[-1] >= len(SEGMENT_IDS):
        raise RelaxError(f"{seg[-1] + 1} chain segments; at most {len(SEGMENT_IDS)} are supported")
    breaks = [int(protein.residue_index[i + 1]) for i in np.nonzero(new)[0]]
    return np.array([SEGMENT_IDS[s] for s in seg]), breaks


def fix_with_pdbfixer(protein: Protein, seed: int = 0):
    """PDBFixer on ``protein`` (segments as chains): returns ``(topology, positions)`` with
    hydrogens; residues stay one-to-one and in order with ``protein``."""
    # Modeller places new hydrogens at random (Python's global ``random``) before minimising
    # them: seed it (and restore it after) and minimise on the serial Reference platform, so the
    # same input gives the same atoms.
    saved = random.getstate()
    random.seed(seed)
    try:
        fixer = PDBFixer(pdbfile=io.StringIO(to_pdb_string(protein)),
                         platform=openmm.Platform.getPlatformByName("Reference"))
        return _fix(fixer, protein, seed)
    finally:
        random.setstate(saved)


def _fix(fixer, protein: Protein, seed: int):
    fixer.findNonstandardResidues()
    fixer.replaceNonstandardResidues()
    fixer.removeHeterogens(keepWater=False)
    fixer.findMissingResidues()
    fixer.missingResidues = {}  # never invent residues: gaps stay gaps
    fixer.findMissingAtoms()
    fixer.addMissingAtoms(seed=seed)
    fixer.addMissingHydrogens(7.0)
    residues = list(fixer.topology.residues())
    if len(residues) != len(protein):
        raise RelaxError(f"PDBFixer returned {len(residues)} residues for {len(protein)}")
    for i, res in enumerate(residues):
        if res.name != rc.resnames[int(protein.aatype[i])]:
            raise RelaxError(f"PDBFixer changed residue {i} to {res.name}")
    return fixer.topology, fixer.positions

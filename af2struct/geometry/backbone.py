"""Backbone connectivity and SidechainNet-style internal angles from atom37 coordinates."""

from __future__ import annotations

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.angles import bond_angle, dihedral

_N, _CA, _C = rc.atom_order["N"], rc.atom_order["CA"], rc.atom_order["C"]
PEPTIDE_BOND_MAX = 2.0  # Angstrom: a C(i)-N(i+1) longer than this is a chain break
# A C(i)-N(i+1) this long is a real break even between consecutively numbered residues (deposited
# structures with unnumbered missing residues); relax keeps it, and does not count it a violation.
CHAIN_BREAK_DISTANCE = 4.0


def peptide_connected(protein: Protein) -> np.ndarray:
    """``[L-1]`` bool: residue i+1 is peptide-bonded to residue i (C-N <= 2.0 A, same chain)."""
    p, m = protein.atom_positions, protein.atom_mask
    d = np.linalg.norm(p[1:, _N] - p[:-1, _C], axis=-1)
    same_chain = protein.chain_id[1:] == protein.chain_id[:-1]
    return (m[1:, _N] > 0) & (m[:-1, _C] > 0) & (d <= PEPTIDE_BOND_MAX) & same_chain


def _atoms(protein: Protein, names) -> np.ndarray:
    """[L, 3] positions of per-residue atom names (NaN where absent)."""
    out = np.full((len(protein), 3), np.nan, np.float64)
    for i, name in enumerate(names):
        if name is None:
            continue
        j = rc.atom_order[name]
        if protein.atom_mask[i, j] > 0:
            out[i] = protein.atom_positions[i, j]
    return out


def scn_angles(protein: Protein) -> np.ndarray:
    """``[L, 12]`` SidechainNet angle vector per residue (radians, NaN where undefined).

    ``[phi, psi, omega, N-CA-C, CA-C-N, C-N-CA, x0, chi1, chi2, chi3, chi4, x5]`` with
    psi_i = N_i-CA_i-C_i-N_i+1, omega_i = CA_i-C_i-N_i+1-CA_i+1, CA-C-N and C-N-CA across the
    bond to residue i+1 (the angles that place the next residue), x0 = C_i-1-N-CA-CB, and x5 the
    ARG NE-CZ-NH1 placement torsion. Angles across a chain break are NaN.
    """
    n = len(protein)
    pos, mask = protein.atom_positions.astype(np.float64), protein.atom_mask
    bb = np.where(mask[..., None] > 0, pos, np.nan)
    N, CA, C = bb[:, _N], bb[:, _CA], bb[:, _C]
    conn = peptide_connected(protein)
    nan3 = np.full((1, 3), np.nan)
    prev_c = np.concatenate([nan3, np.where(conn[:, None], C[:-1], np.nan)])
    next_n = np.concatenate([np.where(conn[:, None], N[1:], np.nan), nan3])
    next_ca = np.concatenate([np.where(conn[:, None], CA[1:], np.nan), nan3])
    ang = np.full((n, 12), np.nan)
    ang[:, 0] = dihedral(prev_c, N, CA, C)
    ang[:, 1] = dihedral(N, CA, C, next_n)
    ang[:, 2] = dihedral(CA, C, next_n, next_ca)
    ang[:, 3] = bond_angle(N, CA, C)
    ang[:, 4] = bond_angle(CA, C, next_n)
    ang[:, 5] = bond_angle(C, next_n, next_ca)
    cb = np.where(mask[:, rc.atom_order["CB"], None] > 0, pos[:, rc.atom_order["CB"]], np.nan)
    ang[:, 6] = dihedral(prev_c, N, CA, cb)
    resn = [rc.resnames[a] for a in protein.aatype]
    for k in range(4):
        quads = [rc.chi_angles_atoms.get(r, []) for r in resn]
        pts = [
            _atoms(protein, [q[k][t] if len(q) > k else None for q in quads]) for t in range(4)
        ]
        ang[:, 7 + k] = dihedral(*pts)
    x5 = [("CD", "NE", "CZ", "NH1") if r == "ARG" else None for r in resn]
    pts = [_atoms(protein, [q[t] if q else None for q in x5]) for t in range(4)]
    ang[:, 11] = dihedral(*pts)
    return ang

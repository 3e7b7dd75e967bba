"""Stereochemistry checks shared by evaluation and refinement (numpy; no torch).

* Steric clashes: heavy-atom pairs overlapping their van der Waals radii by more than 0.4 A,
  excluding pairs within three covalent bonds (same residue, across the peptide bond, across a
  disulfide) and the peptide's O(i)-C(i+1) pair; N/O pairs that can hydrogen bond count only
  below 2.5 A. Clashscore = clashes per 1000 heavy atoms (MolProbity's definition counts
  hydrogens too, so values here are on a heavy-atom scale).
* Peptide-bond violations: C-N length, CA-C-N and C-N-CA angles outside AlphaFold's
  12-sigma tolerance (Engh & Huber means and deviations).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Set

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.backbone import peptide_connected

CLASH_OVERLAP = 0.4
VIOLATION_TOLERANCE_SIGMA = 12.0
_PRO = rc.restype_order["P"]

# Atom pairs (residue i, residue i+1) within three bonds across the peptide bond.
_PEPTIDE_EXCLUDED = {
    ("C", "N"), ("C", "CA"), ("C", "CD"), ("C", "C"), ("C", "CB"), ("C", "CG"),
    ("O", "N"), ("O", "CA"), ("O", "CD"),
    ("CA", "N"), ("CA", "CA"), ("CA", "CD"),
    ("N", "N"), ("CB", "N"),
    ("O", "C"),  # 1-5, but pinned by the planar peptide: 2.7-2.9 A is normal for phi near -60
}
# Polar pairs (N/O donors and acceptors) may be hydrogen-bonded: a clash only below this distance.
HBOND_MIN_DISTANCE = 2.5
_DISULFIDE_ATOMS = ("CA", "CB", "SG")


@dataclasses.dataclass(frozen=True)
class Clash:
    residue_a: int  # position (0-based) in the Protein
    atom_a: str
    residue_b: int
    atom_b: str
    distance: float
    overlap: float


def _atom_table(protein: Protein):
    res, atom = np.nonzero(protein.atom_mask > 0)
    pos = protein.atom_positions[res, atom].astype(np.float64)
    names = [rc.atom_types[a] for a in atom]
    radii = np.array([rc.van_der_waals_radius[n[0]] for n in names])
    return res, atom, pos, names, radii


def find_clashes(protein: Protein, overlap: float = CLASH_OVERLAP) -> List[Clash]:
    """All steric clashes (see module doc), each reported once."""
    from scipy.spatial import cKDTree

    res, _, pos, names, radii = _atom_table(protein)
    if len(pos) < 2:
        return []
    tree = cKDTree(pos)
    pairs = tree.query_pairs(r=2 * max(radii) - overlap, output_type="ndarray")
    if len(pairs) == 0:
        return []
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.linalg.norm(pos[i] - pos[j], axis=-1)
    ov = radii[i] + radii[j] - d
    keep = (ov > overlap) & (res[i] != res[j])
    conn = np.zeros(len(protein) + 1, bool)
    conn[:-2] = peptide_connected(protein)
    seq = protein.aatype
    out = []
    for a, b, dist, o in zip(i[keep], j[keep], d[keep], ov[keep]):
        ra, rb = res[a], res[b]
        na, nb = names[a], names[b]
        if ra > rb:
            ra, rb, na, nb = rb, ra, nb, na
        if rb == ra + 1 and conn[ra]:
            if (na, nb) in _PEPTIDE_EXCLUDED and (nb not in ("CD", "CG") or seq[rb] == _PRO):
                continue
        if na[0] in "NO" and nb[0] in "NO" and dist >= HBOND_MIN_DISTANCE:
            continue
        if na in _DISULFIDE_ATOMS and nb in _DISULFIDE_ATOMS and _is_disulfide(protein, ra, rb):
            if not (na == "CA" and nb == "CA"):
                continue
        out.append(Clash(int(ra), na, int(rb), nb, float(dist), float(o)))
    return out


def _is_disulfide(protein: Protein, a: int, b: int) -> bool:
    sg = rc.atom_order["SG"]
    cys = rc.restype_order["C"]
    if protein.aatype[a] != cys or protein.aatype[b] != cys:
        return False
    if not (protein.atom_mask[a, sg] and protein.atom_mask[b, sg]):
        return False
    return float(np.linalg.norm(protein.atom_positions[a, sg] - protein.atom_positions[b, sg])) < 2.5


def clashscore(protein: Protein, clashes: List[Clash] = None) -> float:
    """Clashes per 1000 heavy atoms."""
    clashes = find_clashes(protein) if clashes is None else clashes
    n = float(protein.atom_mask.sum())
    return 1000.0 * len(clashes) / n if n else 0.0


@dataclasses.dataclass(frozen=True)
class PeptideViolations:
    """Peptide-bond geometry outside tolerance, per bond (i -> i+1) position arrays."""

    bond_length: np.ndarray  # [L-1] bool
    angle_ca_c_n: np.ndarray
    angle_c_n_ca: np.ndarray
    checked: np.ndarray  # [L-1] bool: bond present (consecutive residue numbers, atoms present)

    @property
    def any(self) -> np.ndarray:
        return (self.bond_length | self.angle_ca_c_n | self.angle_c_n_ca) & self.checked

    @property
    def count(self) -> int:
        return int(self.any.sum())


def peptide_violations(protein: Protein, tolerance: float = VIOLATION_TOLERANCE_SIGMA,
                       breaks: Optional[np.ndarray] = None) -> PeptideViolations:
    """Check every peptide bond between residues with consecutive numbers in the same chain.

    Consecutive numbering (not distance) decides which bonds should exist, so a stretched or
    broken bond in a model is a violation rather than a chain break. ``breaks [L-1]`` (bool):
    bonds known to be chain breaks, not checked (relax keeps the unnumbered breaks of deposited
    structures, C-N > 4 A in its input, and does not count them as violations).
    """
    p, m = protein.atom_positions.astype(np.float64), protein.atom_mask
    n_, ca, c = rc.atom_order["N"], rc.atom_order["CA"], rc.atom_order["C"]
    same_chain = protein.chain_ids[1:] == protein.chain_ids[:-1]
    consecutive = (np.diff(protein.residue_index) == 1) & same_chain
    present = (m[:-1, ca] > 0) & (m[:-1, c] > 0) & (m[1:, n_] > 0) & (m[1:, ca] > 0)
    v_c_n = p[1:, n_] - p[:-1, c]
    d = np.linalg.norm(v_c_n, axis=-1)
    checked = consecutive & present
    if breaks is not None:
        checked &= ~np.asarray(breaks, bool)
    is_pro = protein.aatype[1:] == _PRO
    mean = np.where(is_pro, rc.between_res_bond_length_c_n[1], rc.between_res_bond_length_c_n[0])
    sd = np.where(is_pro, rc.between_res_bond_length_stddev_c_n[1], rc.between_res_bond_length_stddev_c_n[0])
    bad_len = np.abs(d - mean) > tolerance * sd

    def cos(u, v):
        return (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-8)

    cos_cacn = cos(p[:-1, ca] - p[:-1, c], v_c_n)
    cos_cnca = cos(-v_c_n, p[1:, ca] - p[1:, n_])
    bad_cacn = np.abs(cos_cacn - rc.between_res_cos_angles_ca_c_n[0]) > tolerance * rc.between_res_cos_angles_ca_c_n[1]
    bad_cnca = np.abs(cos_cnca - rc.between_res_cos_angles_c_n_ca[0]) > tolerance * rc.between_res_cos_angles_c_n_ca[1]
    return PeptideViolations(bad_len & checked, bad_cacn & checked, bad_cnca & checked, checked)


def peptide_violation_residues(protein: Protein, breaks: Optional[np.ndarray] = None) -> Set[int]:
    """Positions of the residues on either side of a violated peptide bond."""
    bonds = np.nonzero(peptide_violations(protein, breaks=breaks).any)[0]
    return {int(i) for i in bonds} | {int(i) + 1 for i in bonds}


def violating_residues(protein: Protein, clash_overlap: float, breaks: Optional[np.ndarray] = None) -> Set[int]:
    """Positions of residues in a clash (> ``clash_overlap``) or a violated peptide bond."""
    bad = peptide_violation_residues(protein, breaks)
    for c in find_clashes(protein, clash_overlap):
        bad.update((c.residue_a, c.residue_b))
    return bad


def violation_count(protein: Protein, clash_overlap: float, breaks: Optional[np.ndarray] = None) -> int:
    """Clashes (> ``clash_overlap``) plus violated peptide bonds."""
    return len(find_clashes(protein, clash_overlap)) + peptide_violations(protein, breaks=breaks).count


def stereo_report(protein: Protein) -> Dict[str, float]:
    """Clash and peptide-bond figures for a structure."""
    clashes = find_clashes(protein)
    viol = peptide_violations(protein)
    return {
        "n_heavy_atoms": int(protein.atom_mask.sum()),
        "n_clashes": len(clashes),
        "clashscore": clashscore(protein, clashes),
        "bond_violations": viol.count,
        "bonds_checked": int(viol.checked.sum()),
    }

"""Stereochemistry checks shared by evaluation and refinement (numpy; no torch): one violation
model, ``find_violations``, that relax uses to decide its next round and evaluation reports.

* Steric clashes: heavy-atom pairs overlapping their van der Waals radii by more than 0.4 A,
  excluding pairs within three covalent bonds (same residue, across the peptide bond, across a
  disulfide) and the peptide's O(i)-C(i+1) pair; N/O pairs that can hydrogen bond count only
  below 2.5 A. Clashscore = clashes per 1000 heavy atoms (MolProbity's definition counts
  hydrogens too, so values here are on a heavy-atom scale).
* Peptide-bond violations: C-N length, CA-C-N and C-N-CA angles outside AlphaFold's
  12-sigma tolerance (Engh & Huber means and deviations).
* Bond lengths and bond angles inside each residue more than ``BOND_TOLERANCE`` (0.1 A) or
  ``ANGLE_TOLERANCE`` (15 degrees) from ideal (Engh & Huber geometry, as built from
  ``residue_constants.rigid_group_atom_positions``; the proline ring closure from Engh & Huber).
  AlphaFold's check allows 12 sigma (0.2-0.3 A, 20-40 degrees); these are tighter and close to
  what a force field allows after minimisation.
* Disulfides (two Cys SG closer than 2.5 A): SG-SG outside 2.03 +- ``DISULFIDE_TOLERANCE`` or a
  CB-SG-SG angle more than ``ANGLE_TOLERANCE`` from 104.2 degrees (squashed bridges pass the
  clash check, so they are checked here).
* Cis peptides before a residue other than proline (omega within 30 degrees of 0) and inverted
  CA chirality (N, C, CB around CA on the D side), as MolProbity reports them; minimisation
  cannot change either, so relax reports them but does not spend rounds on them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
from scipy.spatial import cKDTree

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.angles import bond_angle, dihedral
from af2struct.geometry.backbone import peptide_connected
from af2struct.geometry.sidechains import build_atom37

CLASH_OVERLAP = 0.4
VIOLATION_TOLERANCE_SIGMA = 12.0
BOND_TOLERANCE = 0.1  # A
ANGLE_TOLERANCE = 15.0  # degrees
DISULFIDE_TOLERANCE = 0.1  # A around rc.disulfide_bond_length
DISULFIDE_ANGLE = 104.2  # CB-SG-SG', degrees
CIS_OMEGA = 30.0  # |omega| below this (degrees): cis
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
    same_chain = protein.chain_id[1:] == protein.chain_id[:-1]
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


def violating_residues(protein: Protein, clash_overlap: float, breaks: Optional[np.ndarray] = None) -> Set[int]:
    """Positions of residues in an actionable violation (clash > ``clash_overlap``, peptide bond,
    bond length or angle, disulfide)."""
    return find_violations(protein, clash_overlap, breaks).residues()


def violation_count(protein: Protein, clash_overlap: float, breaks: Optional[np.ndarray] = None) -> int:
    """Actionable violations (see :func:`violating_residues`)."""
    return find_violations(protein, clash_overlap, breaks).actionable


def stereo_report(protein: Protein) -> Dict[str, float]:
    """Clash, peptide-bond and residue-geometry figures for a structure."""
    v = find_violations(protein)
    counts = v.counts()
    return {
        "n_heavy_atoms": int(protein.atom_mask.sum()),
        "n_clashes": counts["clash"],
        "clashscore": clashscore(protein, v.clashes),
        "bond_violations": counts["peptide_bond"],
        "bonds_checked": int(v.peptide.checked.sum()),
        "bond_length_outliers": counts["bond"],
        "bond_angle_outliers": counts["angle"],
        "disulfide_outliers": counts["disulfide"],
        "cis_nonproline": counts["cis_peptide"],
        "chirality_inversions": counts["chirality"],
    }


# ------------------------------------------------------------------ the full violation model
@dataclasses.dataclass(frozen=True)
class Violation:
    """One geometry outlier: ``kind`` (bond, angle, disulfide, cis_peptide, chirality),
    residue positions (0-based) and atom names involved, the measured value and its ideal
    (A or degrees)."""

    kind: str
    residues: tuple
    atoms: tuple
    value: float
    ideal: float


# proline's ring closure (not fixed by the rigid groups, which leave chi free): Engh & Huber
_PRO_RING = {"bonds": {("CD", "N"): 1.473}, "angles": {("CG", "CD", "N"): 103.2, ("CA", "N", "CD"): 111.7}}


@functools.lru_cache(maxsize=None)
def ideal_residue_geometry() -> Dict[int, Tuple[list, list]]:
    """Per residue type (aatype index): intra-residue heavy-atom bonds ``[(atom_a, atom_b,
    length)]`` and bond angles ``[(a, b, c, degrees)]`` (b the vertex), read off an ideal residue
    built from the rigid groups (bonded = closer than 1.9 A, 2.0 A with sulfur)."""
    out = {}
    for r in range(rc.restype_num):
        name = rc.resnames[r]
        group0 = {a: np.array(p) for a, g, p in rc.rigid_group_atom_positions[name] if g == 0}
        backbone = np.stack([group0["N"], group0["CA"], group0["C"]])[None]
        pos, mask = build_atom37(np.array([r]), backbone, np.radians([[-60.0, 180.0, 180.0, 180.0]]))
        atoms = [rc.atom_types[j] for j in np.nonzero(mask[0])[0]]
        xyz = {a: pos[0, rc.atom_order[a]].astype(np.float64) for a in atoms}
        bonds, neighbours = [], {a: [] for a in atoms}
        for i, a in enumerate(atoms):
            for b in atoms[i + 1:]:
                cutoff = 2.0 if "S" in (a[0], b[0]) else 1.9
                d = float(np.linalg.norm(xyz[a] - xyz[b]))
                if d < cutoff:
                    bonds.append((a, b, d))
        if name == "PRO":
            bonds.extend((a, b, d) for (a, b), d in _PRO_RING["bonds"].items())
        for a, b, _ in bonds:
            neighbours[a].append(b)
            neighbours[b].append(a)
        angles = []
        for v in atoms:
            nb = neighbours[v]
            for i, a in enumerate(nb):
                for c in nb[i + 1:]:
                    ring = None
                    if name == "PRO":
                        ring = _PRO_RING["angles"].get((a, v, c), _PRO_RING["angles"].get((c, v, a)))
                    ideal = ring if ring is not None else float(np.degrees(bond_angle(xyz[a], xyz[v], xyz[c])))
                    angles.append((a, v, c, ideal))
        out[r] = (bonds, angles)
    return out


def _residue_geometry_violations(protein: Protein) -> Tuple[List[Violation], List[Violation]]:
    pos, m = protein.atom_positions.astype(np.float64), protein.atom_mask > 0
    table = ideal_residue_geometry()
    bonds, angles = [], []
    for r in range(rc.restype_num):
        idx = np.nonzero(protein.aatype == r)[0]
        if len(idx) == 0:
            continue
        bond_list, angle_list = table[r]
        for a, b, ideal in bond_list:
            ja, jb = rc.atom_order[a], rc.atom_order[b]
            ok = m[idx, ja] & m[idx, jb]
            d = np.linalg.norm(pos[idx, ja] - pos[idx, jb], axis=-1)
            for i in np.nonzero(ok & (np.abs(d - ideal) > BOND_TOLERANCE))[0]:
                bonds.append(Violation("bond", (int(idx[i]),), (a, b), float(d[i]), float(ideal)))
        for a, v, c, ideal in angle_list:
            ja, jv, jc = rc.atom_order[a], rc.atom_order[v], rc.atom_order[c]
            ok = m[idx, ja] & m[idx, jv] & m[idx, jc]
            ang = np.degrees(bond_angle(pos[idx, ja], pos[idx, jv], pos[idx, jc]))
            for i in np.nonzero(ok & (np.abs(ang - ideal) > ANGLE_TOLERANCE))[0]:
                angles.append(Violation("angle", (int(idx[i]),), (a, v, c), float(ang[i]), float(ideal)))
    return bonds, angles


def disulfide_violations(protein: Protein) -> List[Violation]:
    """Bridged cysteines (SG-SG < 2.5 A) with a bond length or CB-SG-SG angle off (module doc)."""
    cys = np.nonzero((protein.aatype == rc.restype_order["C"]) & (protein.atom_mask[:, rc.atom_order["SG"]] > 0))[0]
    if len(cys) < 2:
        return []
    sg = protein.atom_positions[cys, rc.atom_order["SG"]].astype(np.float64)
    cb = protein.atom_positions[cys, rc.atom_order["CB"]].astype(np.float64)
    cb_ok = protein.atom_mask[cys, rc.atom_order["CB"]] > 0
    d = np.linalg.norm(sg[:, None] - sg[None], axis=-1)
    out = []
    for i, j in zip(*np.nonzero(np.triu(d < 2.5, k=1))):
        pair = (int(cys[i]), int(cys[j]))
        if abs(d[i, j] - rc.disulfide_bond_length) > DISULFIDE_TOLERANCE:
            out.append(Violation("disulfide", pair, ("SG", "SG"), float(d[i, j]), rc.disulfide_bond_length))
        for x, y in ((i, j), (j, i)):
            if cb_ok[x]:
                ang = float(np.degrees(bond_angle(cb[x], sg[x], sg[y])))
                if abs(ang - DISULFIDE_ANGLE) > ANGLE_TOLERANCE:
                    out.append(Violation("disulfide", (int(cys[x]), int(cys[y])), ("CB", "SG", "SG"), ang,
                                         DISULFIDE_ANGLE))
    return out


def cis_nonproline_peptides(protein: Protein, breaks: Optional[np.ndarray] = None,
                            peptide: Optional[PeptideViolations] = None) -> List[Violation]:
    """Peptide bonds i -> i+1 with |omega(CA, C, N, CA)| < 30 degrees where i+1 is not proline
    (the bonds ``peptide_violations`` checks; pass its result as ``peptide`` if at hand)."""
    viol = peptide if peptide is not None else peptide_violations(protein, breaks=breaks)
    p = protein.atom_positions.astype(np.float64)
    ca, c, n = rc.atom_order["CA"], rc.atom_order["C"], rc.atom_order["N"]
    omega = np.degrees(dihedral(p[:-1, ca], p[:-1, c], p[1:, n], p[1:, ca]))
    bad = viol.checked & (np.abs(omega) < CIS_OMEGA) & (protein.aatype[1:] != _PRO)
    return [Violation("cis_peptide", (int(i), int(i) + 1), ("CA", "C", "N", "CA"), float(omega[i]), 180.0)
            for i in np.nonzero(bad)[0]]


@functools.lru_cache(maxsize=None)
def _ideal_chiral_volume() -> float:
    pos = {a: np.array(p) for a, g, p in rc.rigid_group_atom_positions["ALA"] if g == 0}
    return float(np.dot(pos["N"] - pos["CA"], np.cross(pos["C"] - pos["CA"], pos["CB"] - pos["CA"])))


def chirality_inversions(protein: Protein) -> List[Violation]:
    """Residues whose N, C and CB sit around CA with the opposite handedness of L-amino acids."""
    j = [rc.atom_order[a] for a in ("N", "CA", "C", "CB")]
    p = protein.atom_positions.astype(np.float64)
    ok = (protein.atom_mask[:, j] > 0).all(-1)
    n, ca, c, cb = (p[:, k] for k in j)
    vol = np.einsum("ij,ij->i", n - ca, np.cross(c - ca, cb - ca))
    ideal = _ideal_chiral_volume()
    return [Violation("chirality", (int(i),), ("N", "CA", "C", "CB"), float(vol[i]), ideal)
            for i in np.nonzero(ok & (np.sign(vol) != np.sign(ideal)) & (np.abs(vol) > 0.3))[0]]


# violations minimisation can act on (release restraints, hold clashing pairs apart); cis
# peptides and chirality are reported but not acted on
ACTIONABLE = ("clash", "peptide_bond", "bond", "angle", "disulfide")


@dataclasses.dataclass(frozen=True)
class StructureViolations:
    """Everything :func:`find_violations` found."""

    clashes: List[Clash]
    peptide: PeptideViolations
    bonds: List[Violation]
    angles: List[Violation]
    disulfides: List[Violation]
    cis_peptides: List[Violation]
    chirality: List[Violation]

    def counts(self) -> Dict[str, int]:
        """Violations by kind (``peptide_bond`` counts bonds i -> i+1 with any fault)."""
        return {"clash": len(self.clashes), "peptide_bond": self.peptide.count, "bond": len(self.bonds),
                "angle": len(self.angles), "disulfide": len(self.disulfides),
                "cis_peptide": len(self.cis_peptides), "chirality": len(self.chirality)}

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    @property
    def actionable(self) -> int:
        counts = self.counts()
        return sum(counts[k] for k in ACTIONABLE)

    def geometry_residues(self) -> Set[int]:
        """Residues with a bond, angle, peptide-bond or disulfide fault (fixed by letting the
        force field act: relax releases their restraints)."""
        bonds = np.nonzero(self.peptide.any)[0]
        out = {int(i) for i in bonds} | {int(i) + 1 for i in bonds}
        for v in self.bonds + self.angles + self.disulfides:
            out.update(v.residues)
        return out

    def residues(self) -> Set[int]:
        """Residues in any actionable violation."""
        out = self.geometry_residues()
        for c in self.clashes:
            out.update((c.residue_a, c.residue_b))
        return out


def find_violations(protein: Protein, clash_overlap: float = CLASH_OVERLAP,
                    breaks: Optional[np.ndarray] = None) -> StructureViolations:
    """The full violation model (module doc). ``breaks [L-1]``: peptide bonds known to be chain
    breaks (not checked)."""
    bonds, angles = _residue_geometry_violations(protein)
    peptide = peptide_violations(protein, breaks=breaks)
    return StructureViolations(
        clashes=find_clashes(protein, clash_overlap),
        peptide=peptide,
        bonds=bonds,
        angles=angles,
        disulfides=disulfide_violations(protein),
        cis_peptides=cis_nonproline_peptides(protein, peptide=peptide),
        chirality=chirality_inversions(protein),
    )

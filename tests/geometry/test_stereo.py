"""The violation model on AlphaFold's relax test structures and on hand-made faults."""

from pathlib import Path

import numpy as np
import pytest

from af2struct.common import residue_constants as rc
from af2struct.common.io import load_structure
from af2struct.geometry.stereo import (
    ANGLE_TOLERANCE,
    BOND_TOLERANCE,
    find_violations,
    ideal_residue_geometry,
    stereo_report,
)

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def _load(name):
    return load_structure(DATA / "af2_relax" / f"{name}.pdb.gz")


def test_ideal_geometry_tables_are_complete():
    table = ideal_residue_geometry()
    bonds = {rc.resnames[r]: {frozenset(b[:2]) for b in table[r][0]} for r in table}
    assert frozenset(("N", "CA")) in bonds["GLY"] and frozenset(("CA", "CB")) in bonds["ALA"]
    assert frozenset(("CD", "N")) in bonds["PRO"]  # the ring closure
    assert frozenset(("CE1", "CZ")) in bonds["PHE"] and frozenset(("CZ", "OH")) in bonds["TYR"]
    assert frozenset(("CD1", "NE1")) in bonds["TRP"] and frozenset(("SD", "CE")) in bonds["MET"]
    # heavy atoms minus one per residue = bonds in a tree; rings add one each (PRO, PHE, TYR, HIS: 1; TRP: 2)
    rings = {"PRO": 1, "PHE": 1, "TYR": 1, "HIS": 1, "TRP": 2}
    for r, (bond_list, _) in table.items():
        name = rc.resnames[r]
        n_atoms = len(rc.rigid_group_atom_positions[name])
        assert len(bond_list) == n_atoms - 1 + rings.get(name, 0), name


def test_a_native_structure_has_no_residue_geometry_outliers():
    v = find_violations(load_structure(DATA / "openfold_1psm_A.pdb.gz"))
    assert v.counts()["bond"] == 0 and v.counts()["angle"] == 0
    assert v.counts()["chirality"] == 0 and v.counts()["disulfide"] == 0


def test_squashed_disulfides_and_the_broken_peptide_are_found():
    """AlphaFold's ``multiple_disulfides_target``: several bridges squashed to SG-SG 1.1-1.7 A and
    a peptide-bond violation between residues 135 and 136."""
    prot = _load("multiple_disulfides_target")
    v = find_violations(prot)
    lengths = [d.value for d in v.disulfides if d.atoms == ("SG", "SG")]
    assert all(abs(x - 2.03) > 0.1 for x in lengths)
    assert sum(x < 1.8 for x in lengths) >= 2  # squashed bridges, which the clash check lets pass
    assert {int(i) for i in np.nonzero(v.peptide.any)[0]} == {135}
    assert {135, 136} <= v.geometry_residues()
    assert v.counts()["clash"] > 0


def test_threaded_rings_and_distorted_side_chains_are_found():
    """``with_violations_casp14``: rings threaded through each other and distorted side chains."""
    v = find_violations(_load("with_violations_casp14"))
    assert v.counts()["clash"] > 0
    assert v.actionable > 0


@pytest.mark.parametrize("fault", ["stretch", "bend", "invert", "cis"])
def test_each_fault_is_reported_where_it_is(fault):
    prot = load_structure(DATA / "openfold_1psm_A.pdb.gz")
    pos = prot.atom_positions.copy()
    i = int(np.nonzero((prot.aatype == rc.restype_order["L"]))[0][0])  # a leucine
    cb, cg, ca, n = (rc.atom_order[a] for a in ("CB", "CG", "CA", "N"))
    if fault == "stretch":  # CB-CG 0.2 A too long: the CG and what hangs on it move out
        u = pos[i, cg] - pos[i, cb]
        shift = 0.2 * u / np.linalg.norm(u)
        for a in ("CG", "CD1", "CD2"):
            pos[i, rc.atom_order[a]] += shift
    elif fault == "bend":  # the side chain rotated 25 degrees about CB, out of the CA-CB-CG plane
        axis = np.cross(pos[i, ca] - pos[i, cb], pos[i, cg] - pos[i, cb])
        axis /= np.linalg.norm(axis)
        t = np.radians(25.0)
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k
        for a in ("CG", "CD1", "CD2"):
            j = rc.atom_order[a]
            pos[i, j] = pos[i, cb] + rot @ (pos[i, j] - pos[i, cb])
    elif fault == "invert":  # CB mirrored through the N-CA-C plane: a D-amino acid
        c = rc.atom_order["C"]
        normal = np.cross(pos[i, n] - pos[i, ca], pos[i, c] - pos[i, ca])
        normal /= np.linalg.norm(normal)
        for j in np.nonzero(prot.atom_mask[i])[0]:
            if rc.atom_types[j] not in ("N", "CA", "C", "O"):
                pos[i, j] -= 2 * np.dot(pos[i, j] - pos[i, ca], normal) * normal
    fake = prot.replace(atom_positions=pos)
    if fault == "cis":  # rotate everything after residue i's C about C-N by 180 degrees (omega 180 -> 0)
        c = rc.atom_order["C"]
        axis_o, axis_e = pos[i, c], pos[i + 1, n]
        u = (axis_e - axis_o) / np.linalg.norm(axis_e - axis_o)
        k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
        rot = np.eye(3) + 2 * k @ k  # 180 degrees
        moved = pos.copy()
        moved[i + 1:] = (pos[i + 1:] - axis_o) @ rot.T + axis_o
        fake = prot.replace(atom_positions=moved.astype(np.float32))
        if prot.aatype[i + 1] == rc.restype_order["P"]:
            pytest.skip("residue after the leucine is a proline")
    v = find_violations(fake)
    kind = {"stretch": "bond", "bend": "angle", "invert": "chirality", "cis": "cis_peptide"}[fault]
    found = {"bond": v.bonds, "angle": v.angles, "chirality": v.chirality, "cis_peptide": v.cis_peptides}[kind]
    assert found, v.counts()
    assert all(i in f.residues for f in found)
    if kind == "bond":
        assert any(f.atoms == ("CB", "CG") and abs(f.value - f.ideal) > BOND_TOLERANCE for f in found)
    if kind == "angle":
        assert any(f.atoms[1] == "CB" and abs(f.value - f.ideal) > ANGLE_TOLERANCE for f in found)
    report = stereo_report(fake)
    key = {"bond": "bond_length_outliers", "angle": "bond_angle_outliers", "chirality": "chirality_inversions",
           "cis_peptide": "cis_nonproline"}[kind]
    assert report[key] == len(found)

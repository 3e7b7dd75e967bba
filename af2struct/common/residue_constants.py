"""Residue constants: the project's only residue tables.

Layouts
-------
* ``restypes``: the 20 standard amino acids in AlphaFold's order (``ARNDCQEGHILKMFPSTWYV``);
  index 20 is ``X`` (unknown), index 21 is the gap ``-`` (MSA only).
* atom37: AlphaFold's fixed list of 37 heavy-atom names (``atom_types``); every residue's atoms
  live at fixed slots, absent atoms are masked.
* atom14: AlphaFold's dense per-residue layout (``restype_name_to_atom14_names``).
* SidechainNet 14: SidechainNet's per-residue 14-atom layout (backbone N, CA, C, O followed by the
  side chain in SidechainNet's build order), ``restype_name_to_scn14_names``.

Geometry values (Engh & Huber 1991 via AlphaFold) are in Angstroms and radians.
"""

from __future__ import annotations

import functools
from typing import Dict, FrozenSet, List, Tuple

import numpy as np

# --------------------------------------------------------------------------------------------
# Residue types
# --------------------------------------------------------------------------------------------
restypes: List[str] = list("ARNDCQEGHILKMFPSTWYV")
restype_order: Dict[str, int] = {r: i for i, r in enumerate(restypes)}
restype_num = len(restypes)  # 20
unk_restype_index = restype_num  # 20 == 'X'
gap_index = restype_num + 1  # 21 == '-' (MSA gap)
restypes_with_x: List[str] = restypes + ["X"]
restypes_with_x_and_gap: List[str] = restypes + ["X", "-"]

restype_1to3: Dict[str, str] = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
restype_3to1: Dict[str, str] = {v: k for k, v in restype_1to3.items()}
resnames: List[str] = [restype_1to3[r] for r in restypes] + ["UNK"]
unk_resname = "UNK"

# Modified residues that are read as their parent standard residue. Anything else that is not
# standard is reported and skipped by the structure reader.
modified_to_standard: Dict[str, str] = {"MSE": "MET"}
# Atom renames applied with the residue mapping above (selenium -> sulfur).
modified_atom_renames: Dict[str, Dict[str, str]] = {"MSE": {"SE": "SD"}}

# --------------------------------------------------------------------------------------------
# atom37
# --------------------------------------------------------------------------------------------
atom_types: List[str] = [
    "N", "CA", "C", "CB", "O", "CG", "CG1", "CG2", "OG", "OG1", "SG", "CD", "CD1", "CD2",
    "ND1", "ND2", "OD1", "OD2", "SD", "CE", "CE1", "CE2", "CE3", "NE", "NE1", "NE2", "OE1",
    "OE2", "CH2", "NH1", "NH2", "OH", "CZ", "CZ2", "CZ3", "NZ", "OXT",
]
atom_order: Dict[str, int] = {a: i for i, a in enumerate(atom_types)}
atom_type_num = len(atom_types)  # 37
backbone_atoms: List[str] = ["N", "CA", "C", "O"]
ca_index = atom_order["CA"]

# --------------------------------------------------------------------------------------------
# atom14 (AlphaFold) and SidechainNet's 14-atom layout
# --------------------------------------------------------------------------------------------
_atom14_sidechains: Dict[str, List[str]] = {
    "ALA": ["CB"],
    "ARG": ["CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"],
    "ASN": ["CB", "CG", "OD1", "ND2"],
    "ASP": ["CB", "CG", "OD1", "OD2"],
    "CYS": ["CB", "SG"],
    "GLN": ["CB", "CG", "CD", "OE1", "NE2"],
    "GLU": ["CB", "CG", "CD", "OE1", "OE2"],
    "GLY": [],
    "HIS": ["CB", "CG", "ND1", "CD2", "CE1", "NE2"],
    "ILE": ["CB", "CG1", "CG2", "CD1"],
    "LEU": ["CB", "CG", "CD1", "CD2"],
    "LYS": ["CB", "CG", "CD", "CE", "NZ"],
    "MET": ["CB", "CG", "SD", "CE"],
    "PHE": ["CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ"],
    "PRO": ["CB", "CG", "CD"],
    "SER": ["CB", "OG"],
    "THR": ["CB", "OG1", "CG2"],
    "TRP": ["CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"],
    "TYR": ["CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH"],
    "VAL": ["CB", "CG1", "CG2"],
    "UNK": [],
}

# SidechainNet builds side chains atom by atom along the chain of bonds, so its order differs
# from atom14 for branched residues (checked against sidechainnet.structure.build_info in tests).
_scn14_sidechains: Dict[str, List[str]] = {
    "ALA": ["CB"],
    "ARG": ["CB", "CG", "CD", "NE", "CZ", "NH1", "NH2"],
    "ASN": ["CB", "CG", "OD1", "ND2"],
    "ASP": ["CB", "CG", "OD1", "OD2"],
    "CYS": ["CB", "SG"],
    "GLN": ["CB", "CG", "CD", "OE1", "NE2"],
    "GLU": ["CB", "CG", "CD", "OE1", "OE2"],
    "GLY": [],
    "HIS": ["CB", "CG", "ND1", "CE1", "NE2", "CD2"],
    "ILE": ["CB", "CG1", "CD1", "CG2"],
    "LEU": ["CB", "CG", "CD1", "CD2"],
    "LYS": ["CB", "CG", "CD", "CE", "NZ"],
    "MET": ["CB", "CG", "SD", "CE"],
    "PHE": ["CB", "CG", "CD1", "CE1", "CZ", "CE2", "CD2"],
    "PRO": ["CB", "CG", "CD"],
    "SER": ["CB", "OG"],
    "THR": ["CB", "OG1", "CG2"],
    "TRP": ["CB", "CG", "CD1", "NE1", "CE2", "CZ2", "CH2", "CZ3", "CE3", "CD2"],
    "TYR": ["CB", "CG", "CD1", "CE1", "CZ", "OH", "CE2", "CD2"],
    "VAL": ["CB", "CG1", "CG2"],
    "UNK": [],
}


def _pad14(names: List[str]) -> List[str]:
    full = backbone_atoms + names
    return full + [""] * (14 - len(full))


restype_name_to_atom14_names: Dict[str, List[str]] = {
    k: _pad14(v) for k, v in _atom14_sidechains.items()
}
restype_name_to_scn14_names: Dict[str, List[str]] = {
    k: _pad14(v) for k, v in _scn14_sidechains.items()
}

# Heavy atoms of each residue (atom37 names, without OXT).
residue_atoms: Dict[str, List[str]] = {
    k: [a for a in v if a] for k, v in restype_name_to_atom14_names.items()
}

# --------------------------------------------------------------------------------------------
# Index tables (numpy), computed lazily so that importing the module does no work.
# --------------------------------------------------------------------------------------------


def _layout_to_atom37(table: Dict[str, List[str]]) -> np.ndarray:
    """[21, 14] int: atom37 index of each slot of a 14-atom layout (-1 where empty)."""
    out = np.full((restype_num + 1, 14), -1, dtype=np.int64)
    for i, name in enumerate(resnames):
        for j, atom in enumerate(table[name]):
            if atom:
                out[i, j] = atom_order[atom]
    return out


@functools.lru_cache(maxsize=None)
def atom14_to_atom37_index() -> np.ndarray:
    """[21, 14]: atom37 slot of each atom14 slot per residue type; -1 for padding."""
    return _layout_to_atom37(restype_name_to_atom14_names)


@functools.lru_cache(maxsize=None)
def scn14_to_atom37_index() -> np.ndarray:
    """[21, 14]: atom37 slot of each SidechainNet slot per residue type; -1 for padding."""
    return _layout_to_atom37(restype_name_to_scn14_names)


@functools.lru_cache(maxsize=None)
def restype_atom37_mask() -> np.ndarray:
    """[21, 37] float32: 1 where the residue type has that heavy atom (OXT excluded)."""
    out = np.zeros((restype_num + 1, atom_type_num), dtype=np.float32)
    for i, name in enumerate(resnames):
        for atom in residue_atoms[name]:
            out[i, atom_order[atom]] = 1.0
    return out


def atom_element(atom_name: str) -> str:
    """Element of a (protein heavy-atom) PDB atom name: its first letter."""
    return atom_name[0]


# --------------------------------------------------------------------------------------------
# Sequence helpers
# --------------------------------------------------------------------------------------------


class SequenceError(ValueError):
    """A sequence that cannot be turned into residue types (empty, unknown letters)."""


# One-letter codes beyond the 20 and what a prediction models them as: X (unknown) and the
# ambiguous B (Asx), Z (Glx) and J (Xle) become the unknown type (backbone only, written as UNK,
# as AlphaFold and ColabFold do); selenocysteine U is modelled as cysteine and pyrrolysine O as
# lysine (their nearest standard residues, as MSE is read as MET).
EXTRA_LETTERS: Dict[str, str] = {"X": "X", "B": "X", "Z": "X", "J": "X", "U": "C", "O": "K"}


def sequence_to_aatype(sequence: str, allow_unknown: bool = False) -> np.ndarray:
    """One-letter sequence -> ``aatype [L]`` int32 in ``restypes`` order.

    Whitespace is ignored; letters are case-insensitive. The 20 standard letters and
    :data:`EXTRA_LETTERS` are read; any other character raises :class:`SequenceError` naming
    each and its 1-based position, unless ``allow_unknown`` (then it maps to index 20).
    """
    seq = "".join(sequence.split()).upper()
    if not seq:
        raise SequenceError("empty sequence")
    seq = "".join(EXTRA_LETTERS.get(c, c) for c in seq)
    bad = [(i + 1, c) for i, c in enumerate(seq) if c not in restype_order and c != "X"]
    if bad and not allow_unknown:
        shown = ", ".join(f"{c!r} at {i}" for i, c in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise SequenceError(
            f"unknown residue letter(s): {shown}{more}; expected one of {''.join(restypes)} "
            f"or {''.join(EXTRA_LETTERS)}"
        )
    return np.array([restype_order.get(c, unk_restype_index) for c in seq], dtype=np.int32)


def aatype_to_sequence(aatype: np.ndarray) -> str:
    """``aatype [L]`` -> one-letter sequence (``X`` for unknown)."""
    return "".join(restypes_with_x_and_gap[int(a)] for a in aatype)


# --------------------------------------------------------------------------------------------
# Chemistry and ideal geometry
# --------------------------------------------------------------------------------------------

# van der Waals radii (Bondi 1964), Angstrom.
van_der_waals_radius: Dict[str, float] = {"C": 1.7, "N": 1.55, "O": 1.52, "S": 1.8}

# Atoms a change of chi angles never moves (rotamer packing and rescue move the rest).
backbone_and_cb_atoms: FrozenSet[str] = frozenset(("N", "CA", "C", "O", "OXT", "CB"))
# Aromatic rings (atoms of each planar ring), for finding a ring threaded by another residue.
aromatic_ring_atoms: Dict[str, Tuple[Tuple[str, ...], ...]] = {
    "PHE": (("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),),
    "TYR": (("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),),
    "HIS": (("CG", "ND1", "CD2", "CE1", "NE2"),),
    "TRP": (("CG", "CD1", "NE1", "CE2", "CD2"), ("CD2", "CE2", "CZ2", "CH2", "CZ3", "CE3")),
}

# Ideal backbone geometry (Engh & Huber 1991), as AlphaFold uses it for violation checks.
ca_ca_distance = 3.80209737096  # trans peptide Calpha-Calpha
between_res_bond_length_c_n: Tuple[float, float] = (1.329, 1.341)  # (non-PRO, PRO)
between_res_bond_length_stddev_c_n: Tuple[float, float] = (0.014, 0.016)
between_res_cos_angles_c_n_ca: Tuple[float, float] = (-0.5203, 0.0353)  # (mean cos, stddev)
between_res_cos_angles_ca_c_n: Tuple[float, float] = (-0.4473, 0.0311)
# Intra-residue ideal backbone bonds (Angstrom) and angles (degrees).
ideal_bond_length: Dict[Tuple[str, str], float] = {
    ("N", "CA"): 1.458, ("CA", "C"): 1.525, ("C", "O"): 1.231, ("CA", "CB"): 1.530,
}
ideal_bond_angle_deg: Dict[Tuple[str, str, str], float] = {
    ("N", "CA", "C"): 111.2, ("CA", "C", "N"): 116.2, ("C", "N", "CA"): 121.7,
    ("CA", "C", "O"): 120.8, ("N", "CA", "CB"): 110.5,
}
disulfide_bond_length = 2.03

# Staggered rotamers (degrees) tried when a side chain has to be turned out of a clash
# (gauche+, trans, gauche- for chi1; the common chi2 values of the rotamer libraries).
staggered_chi1_deg: Tuple[float, ...] = (-65.0, 180.0, 60.0)
staggered_chi2_deg: Tuple[float, ...] = (-90.0, -60.0, 60.0, 90.0, 180.0)


def rotamers_settable(resname: str) -> bool:
    """Whether a side chain can be turned to other rotamers: it has chi angles and no ring
    closing onto the backbone N (proline)."""
    return resname != "PRO" and bool(chi_angles_atoms.get(resname))

# Side-chain torsions (chi1..chi4) by the four atoms that define each.
chi_angles_atoms: Dict[str, List[List[str]]] = {
    "ALA": [],
    "ARG": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD"], ["CB", "CG", "CD", "NE"],
            ["CG", "CD", "NE", "CZ"]],
    "ASN": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "OD1"]],
    "ASP": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "OD1"]],
    "CYS": [["N", "CA", "CB", "SG"]],
    "GLN": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD"], ["CB", "CG", "CD", "OE1"]],
    "GLU": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD"], ["CB", "CG", "CD", "OE1"]],
    "GLY": [],
    "HIS": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "ND1"]],
    "ILE": [["N", "CA", "CB", "CG1"], ["CA", "CB", "CG1", "CD1"]],
    "LEU": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD1"]],
    "LYS": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD"], ["CB", "CG", "CD", "CE"],
            ["CG", "CD", "CE", "NZ"]],
    "MET": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "SD"], ["CB", "CG", "SD", "CE"]],
    "PHE": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD1"]],
    "PRO": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD"]],
    "SER": [["N", "CA", "CB", "OG"]],
    "THR": [["N", "CA", "CB", "OG1"]],
    "TRP": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD1"]],
    "TYR": [["N", "CA", "CB", "CG"], ["CA", "CB", "CG", "CD1"]],
    "VAL": [["N", "CA", "CB", "CG1"]],
}

# Atoms whose names are ambiguous under symmetry (swap to the better-matching naming).
residue_atom_renaming_swaps: Dict[str, Dict[str, str]] = {
    "ASP": {"OD1": "OD2"},
    "GLU": {"OE1": "OE2"},
    "PHE": {"CD1": "CD2", "CE1": "CE2"},
    "TYR": {"CD1": "CD2", "CE1": "CE2"},
}

# DSSP codes as SidechainNet stores them in ``sec``: 8 states with L for loop; " " pads missing residues.
dssp_codes = "BEGHILST"

# Ideal atom positions per rigid group (AlphaFold's literature values, Engh & Huber geometry).
# Group 0: backbone frame (origin CA, x along CA->C, N in the xy-plane); 3: psi frame (O);
# 4..7: chi1..chi4 frames. Positions are relative to the group's axis-end atom, x along the
# rotation axis, y such that the dihedral-defining atom lies in the xy-plane (y > 0).
rigid_group_atom_positions: Dict[str, List[Tuple[str, int, Tuple[float, float, float]]]] = {
    "ALA": [("N", 0, (-0.525, 1.363, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.526, 0.0, 0.0)),
            ("CB", 0, (-0.529, -0.774, -1.205)), ("O", 3, (0.627, 1.062, 0.0))],
    "ARG": [("N", 0, (-0.524, 1.362, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.525, 0.0, 0.0)),
            ("CB", 0, (-0.524, -0.778, -1.209)), ("O", 3, (0.626, 1.062, 0.0)), ("CG", 4, (0.616, 1.390, 0.0)),
            ("CD", 5, (0.564, 1.414, 0.0)), ("NE", 6, (0.539, 1.357, 0.0)), ("NH1", 7, (0.206, 2.301, 0.0)),
            ("NH2", 7, (2.078, 0.978, 0.0)), ("CZ", 7, (0.758, 1.093, 0.0))],
    "ASN": [("N", 0, (-0.536, 1.357, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.526, 0.0, 0.0)),
            ("CB", 0, (-0.531, -0.787, -1.200)), ("O", 3, (0.625, 1.062, 0.0)), ("CG", 4, (0.584, 1.399, 0.0)),
            ("ND2", 5, (0.593, -1.188, 0.001)), ("OD1", 5, (0.633, 1.059, 0.0))],
    "ASP": [("N", 0, (-0.525, 1.362, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.527, 0.0, 0.0)),
            ("CB", 0, (-0.526, -0.778, -1.208)), ("O", 3, (0.626, 1.062, 0.0)), ("CG", 4, (0.593, 1.398, 0.0)),
            ("OD1", 5, (0.610, 1.091, 0.0)), ("OD2", 5, (0.592, -1.101, -0.003))],
    "CYS": [("N", 0, (-0.522, 1.362, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.524, 0.0, 0.0)),
            ("CB", 0, (-0.519, -0.773, -1.212)), ("O", 3, (0.625, 1.062, 0.0)), ("SG", 4, (0.728, 1.653, 0.0))],
    "GLN": [("N", 0, (-0.526, 1.361, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.526, 0.0, 0.0)),
            ("CB", 0, (-0.525, -0.779, -1.207)), ("O", 3, (0.626, 1.062, 0.0)), ("CG", 4, (0.615, 1.393, 0.0)),
            ("CD", 5, (0.587, 1.399, 0.0)), ("NE2", 6, (0.593, -1.189, -0.001)), ("OE1", 6, (0.634, 1.060, 0.0))],
    "GLU": [("N", 0, (-0.528, 1.361, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.526, 0.0, 0.0)),
            ("CB", 0, (-0.526, -0.781, -1.207)), ("O", 3, (0.626, 1.062, 0.0)), ("CG", 4, (0.615, 1.392, 0.0)),
            ("CD", 5, (0.600, 1.397, 0.0)), ("OE1", 6, (0.607, 1.095, 0.0)), ("OE2", 6, (0.589, -1.104, -0.001))],
    "GLY": [("N", 0, (-0.572, 1.337, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.517, 0.0, 0.0)),
            ("O", 3, (0.626, 1.062, 0.0))],
    "HIS": [("N", 0, (-0.527, 1.360, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.525, 0.0, 0.0)),
            ("CB", 0, (-0.525, -0.778, -1.208)), ("O", 3, (0.625, 1.063, 0.0)), ("CG", 4, (0.600, 1.370, 0.0)),
            ("CD2", 5, (0.889, -1.021, 0.003)), ("ND1", 5, (0.744, 1.160, 0.0)), ("CE1", 5, (2.030, 0.851, 0.002)),
            ("NE2", 5, (2.145, -0.466, 0.004))],
    "ILE": [("N", 0, (-0.493, 1.373, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.527, 0.0, 0.0)),
            ("CB", 0, (-0.536, -0.793, -1.213)), ("O", 3, (0.627, 1.062, 0.0)), ("CG1", 4, (0.534, 1.437, 0.0)),
            ("CG2", 4, (0.540, -0.785, -1.199)), ("CD1", 5, (0.619, 1.391, 0.0))],
    "LEU": [("N", 0, (-0.520, 1.363, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.525, 0.0, 0.0)),
            ("CB", 0, (-0.522, -0.773, -1.214)), ("O", 3, (0.625, 1.063, 0.0)), ("CG", 4, (0.678, 1.371, 0.0)),
            ("CD1", 5, (0.530, 1.430, 0.0)), ("CD2", 5, (0.535, -0.774, 1.200))],
    "LYS": [("N", 0, (-0.526, 1.362, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.526, 0.0, 0.0)),
            ("CB", 0, (-0.524, -0.778, -1.208)), ("O", 3, (0.626, 1.062, 0.0)), ("CG", 4, (0.619, 1.390, 0.0)),
            ("CD", 5, (0.559, 1.417, 0.0)), ("CE", 6, (0.560, 1.416, 0.0)), ("NZ", 7, (0.554, 1.387, 0.0))],
    "MET": [("N", 0, (-0.521, 1.364, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.525, 0.0, 0.0)),
            ("CB", 0, (-0.523, -0.776, -1.210)), ("O", 3, (0.625, 1.062, 0.0)), ("CG", 4, (0.613, 1.391, 0.0)),
            ("SD", 5, (0.703, 1.695, 0.0)), ("CE", 6, (0.320, 1.786, 0.0))],
    "PHE": [("N", 0, (-0.518, 1.363, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.524, 0.0, 0.0)),
            ("CB", 0, (-0.525, -0.776, -1.212)), ("O", 3, (0.626, 1.062, 0.0)), ("CG", 4, (0.607, 1.377, 0.0)),
            ("CD1", 5, (0.709, 1.195, 0.0)), ("CD2", 5, (0.706, -1.196, 0.0)), ("CE1", 5, (2.102, 1.198, 0.0)),
            ("CE2", 5, (2.098, -1.201, 0.0)), ("CZ", 5, (2.794, -0.003, -0.001))],
    "PRO": [("N", 0, (-0.566, 1.351, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.527, 0.0, 0.0)),
            ("CB", 0, (-0.546, -0.611, -1.293)), ("O", 3, (0.621, 1.066, 0.0)), ("CG", 4, (0.382, 1.445, 0.0)),
            ("CD", 5, (0.477, 1.424, 0.0))],
    "SER": [("N", 0, (-0.529, 1.360, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.525, 0.0, 0.0)),
            ("CB", 0, (-0.518, -0.777, -1.211)), ("O", 3, (0.626, 1.062, 0.0)), ("OG", 4, (0.503, 1.325, 0.0))],
    "THR": [("N", 0, (-0.517, 1.364, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.526, 0.0, 0.0)),
            ("CB", 0, (-0.516, -0.793, -1.215)), ("O", 3, (0.626, 1.062, 0.0)), ("CG2", 4, (0.550, -0.718, -1.228)),
            ("OG1", 4, (0.472, 1.353, 0.0))],
    "TRP": [("N", 0, (-0.521, 1.363, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.525, 0.0, 0.0)),
            ("CB", 0, (-0.523, -0.776, -1.212)), ("O", 3, (0.627, 1.062, 0.0)), ("CG", 4, (0.609, 1.370, 0.0)),
            ("CD1", 5, (0.824, 1.091, 0.0)), ("CD2", 5, (0.854, -1.148, -0.005)), ("CE2", 5, (2.186, -0.678, -0.007)),
            ("CE3", 5, (0.622, -2.530, -0.007)), ("NE1", 5, (2.140, 0.690, -0.004)),
            ("CH2", 5, (3.028, -2.890, -0.013)),
            ("CZ2", 5, (3.283, -1.543, -0.011)), ("CZ3", 5, (1.715, -3.389, -0.011))],
    "TYR": [("N", 0, (-0.522, 1.362, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.524, 0.0, 0.0)),
            ("CB", 0, (-0.522, -0.776, -1.213)), ("O", 3, (0.627, 1.062, 0.0)), ("CG", 4, (0.607, 1.382, 0.0)),
            ("CD1", 5, (0.716, 1.195, 0.0)), ("CD2", 5, (0.713, -1.194, -0.001)), ("CE1", 5, (2.107, 1.200, -0.002)),
            ("CE2", 5, (2.104, -1.201, -0.003)), ("OH", 5, (4.168, -0.002, -0.005)),
            ("CZ", 5, (2.791, -0.001, -0.003))],
    "VAL": [("N", 0, (-0.494, 1.373, 0.0)), ("CA", 0, (0.0, 0.0, 0.0)), ("C", 0, (1.527, 0.0, 0.0)),
            ("CB", 0, (-0.533, -0.795, -1.213)), ("O", 3, (0.627, 1.062, 0.0)), ("CG1", 4, (0.540, 1.429, 0.0)),
            ("CG2", 4, (0.533, -0.776, 1.203))],
}

"""Model outputs -> an all-atom :class:`~af2struct.common.protein.Protein` (numpy).

The last step of a prediction: the refined backbone is regularised (:mod:`af2struct.geometry.ca_trace`),
side chains are built from the predicted chi angles (:mod:`af2struct.geometry.sidechains`), those
that clash turned to staggered rotamers (:mod:`af2struct.geometry.packing`), and pLDDT goes into
the B-factor column.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.ca_trace import clean_backbone
from af2struct.geometry.packing import pack_side_chains
from af2struct.geometry.sidechains import build_atom37


def decode_structure(aatype: np.ndarray, backbone: np.ndarray, chi: np.ndarray, plddt: np.ndarray,
                     residue_index: Optional[np.ndarray] = None, chain_id: str = "A", clean: bool = True,
                     pack: bool = True) -> Protein:
    """One chain's model outputs as an all-atom protein.

    ``backbone [L, 3, 3]`` (N, CA, C), ``chi [L, 4, 2]`` (sin, cos) or ``[L, 4]`` radians,
    ``plddt [L]`` (0-100). ``clean``: regularise the Calpha trace (3.80 A virtual bonds, no
    overlapping Calphas) and rebuild the backbone from ideal peptide units on it first (turned
    towards favoured backbone torsions).
    ``pack``: turn side chains that clash to the staggered rotamer that clashes least.
    """
    oxygen = None
    if clean:
        backbone, oxygen = clean_backbone(backbone, aatype=aatype)
    if pack:
        chi = pack_side_chains(aatype, backbone, _chi_radians(chi), oxygen)
    return outputs_to_protein(aatype, backbone, chi, plddt, residue_index, chain_id, oxygen)


def _chi_radians(chi: np.ndarray) -> np.ndarray:
    """``[L, 4, 2]`` (sin, cos) or ``[L, 4]`` radians -> ``[L, 4]`` radians."""
    chi = np.asarray(chi, np.float64)
    return np.arctan2(chi[..., 0], chi[..., 1]) if chi.ndim == 3 else chi


def outputs_to_protein(aatype: np.ndarray, backbone: np.ndarray, chi: np.ndarray, plddt: np.ndarray,
                       residue_index: Optional[np.ndarray] = None, chain_id: str = "A",
                       oxygen: Optional[np.ndarray] = None) -> Protein:
    """Model outputs (numpy, one chain) -> an all-atom :class:`Protein` with pLDDT as B-factors.

    ``backbone [L, 3, 3]`` (N, CA, C), ``chi [L, 4, 2]`` (sin, cos) or ``[L, 4]`` radians,
    ``plddt [L]`` (0-100); ``oxygen [L, 3]`` replaces the carbonyl oxygens placed from psi.
    """
    pos, mask = build_atom37(aatype, np.asarray(backbone, np.float64), _chi_radians(chi))
    pos[:, :3] = backbone  # N, CA, C as given (the builder re-idealises them around each frame)
    if oxygen is not None:
        pos[:, rc.atom_order["O"]] = oxygen
    allowed = rc.restype_atom37_mask()[np.asarray(aatype).clip(0, rc.restype_num)].copy()
    allowed[np.asarray(aatype) >= rc.restype_num, :3] = 1.0  # unknown (X): the backbone, as UNK
    allowed[np.asarray(aatype) >= rc.restype_num, rc.atom_order["O"]] = 1.0
    mask = mask * allowed
    n = len(aatype)
    ridx = np.arange(1, n + 1, dtype=np.int32) if residue_index is None else np.asarray(residue_index, np.int32)
    p = Protein(aatype=np.asarray(aatype, np.int32), atom_positions=pos, atom_mask=mask, residue_index=ridx,
                chain_id=chain_id)
    return p.with_residue_b_factors(np.asarray(plddt, np.float32))

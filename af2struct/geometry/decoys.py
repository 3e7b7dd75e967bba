"""Predicted-quality models made from a native structure, for testing and benchmarking relax.

A structure predictor's full-atom output has ideal covalent geometry, a backbone within about
half an angstrom of the truth where it is right, and side chains built from predicted torsions
that are often a rotamer off, so they clash. :func:`predicted_quality_model` makes such a model
from a native the way af2struct builds its own outputs: a Calpha trace with error
(:func:`~af2struct.geometry.ca_trace.regularize_ca_trace`), ideal peptide units on it
(:func:`~af2struct.geometry.ca_trace.backbone_from_trace`, oriented by the native's N/C
directions as a trained structure module would), and side chains from the native chi angles
plus Gaussian error (:func:`~af2struct.geometry.sidechains.build_atom37`).
"""

from __future__ import annotations

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.geometry.angles import chi_angles
from af2struct.geometry.backbone import peptide_connected
from af2struct.geometry.ca_trace import backbone_from_trace, regularize_ca_trace
from af2struct.geometry.sidechains import build_atom37


def predicted_quality_model(native: Protein, seed: int = 0, ca_sigma: float = 0.5, chi_sigma_deg: float = 20.0
                            ) -> Protein:
    """A full-atom model of ``native`` with predictor-like errors (same residues and numbering).

    Residues without all backbone atoms keep the native's atoms; chain breaks (numbering gaps or
    no peptide bond, C-N > 2 A) are built segment by segment.
    """
    rng = np.random.default_rng(seed)
    pos = native.atom_positions.astype(np.float64)
    bb = pos[:, :3]  # N, CA, C
    gap = (np.diff(native.residue_index) != 1) | ~peptide_connected(native)
    starts = np.concatenate([[0], np.nonzero(gap)[0] + 1, [len(native)]])
    backbone = bb.copy()
    oxygen = pos[:, rc.atom_order["O"]].copy()
    for a, b in zip(starts[:-1], starts[1:]):
        if b - a < 2:
            continue
        ca = regularize_ca_trace(bb[a:b, 1] + rng.normal(0, ca_sigma, (b - a, 3)))
        backbone[a:b], oxygen[a:b] = backbone_from_trace(ca, bb[a:b, 2] - bb[a:b, 1], bb[a:b, 0] - bb[a:b, 1])
    chi, _ = chi_angles(native)
    chi = chi + np.radians(chi_sigma_deg) * rng.normal(size=chi.shape)
    out, mask = build_atom37(native.aatype, backbone, chi)
    out[:, rc.atom_order["O"]] = oxygen
    mask = mask * native.atom_mask  # the native's atoms only (missing atoms stay missing)
    keep = native.atom_mask[:, :3].min(-1) == 0  # incomplete backbone: the native's atoms
    out[keep] = pos[keep]
    return native.replace(atom_positions=(out * mask[..., None]).astype(np.float32), atom_mask=mask.astype(np.float32))

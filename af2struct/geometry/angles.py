"""Bond angles, dihedral angles and side-chain chi angles (numpy, radians)."""

from __future__ import annotations

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein


def bond_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle a-b-c in radians; inputs ``[..., 3]``; NaN where an input is NaN or ``b`` coincides
    with ``a`` or ``c`` (the angle is undefined there)."""
    u = a - b
    v = c - b
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def dihedral(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """IUPAC dihedral p0-p1-p2-p3 in radians in (-pi, pi]; inputs ``[..., 3]`` (NaN where p1 and
    p2 coincide, e.g. absent atoms at the origin, without a RuntimeWarning)."""
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    with np.errstate(invalid="ignore", divide="ignore"):
        b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
        v = b0 - (b0 * b1n).sum(-1, keepdims=True) * b1n
        w = b2 - (b2 * b1n).sum(-1, keepdims=True) * b1n
        x = (v * w).sum(-1)
        y = (_cross(b1n, v) * w).sum(-1)
        return np.arctan2(y, x)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross`` of ``[..., 3]`` vectors, the same arithmetic without its axis handling
    (which costs more than the products on the small arrays of the backbone builder)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], -1)


def chi_angles(protein: Protein):
    """``[L, 4]`` chi1..chi4 (radians, 0 where undefined) and ``[L, 4]`` mask from atom37."""
    n = len(protein)
    chi = np.zeros((n, 4), np.float32)
    mask = np.zeros((n, 4), np.float32)
    pos, m = protein.atom_positions.astype(np.float64), protein.atom_mask
    for i, a in enumerate(protein.aatype):
        for k, names in enumerate(rc.chi_angles_atoms.get(rc.resnames[int(a)], [])):
            idx = [rc.atom_order[x] for x in names]
            if m[i, idx].min() > 0:
                chi[i, k] = dihedral(*[pos[i, j] for j in idx])
                mask[i, k] = 1.0
    return chi, mask

"""All-atom construction from a backbone (N, CA, C) and side-chain torsions, with ideal geometry.

AlphaFold's rigid-group scheme in numpy: the backbone frame places N, CA, C, CB; the psi frame
places O; chi1..chi4 frames, chained from CB outwards and rotated by each chi about its bond,
place the side chain (ideal positions from ``residue_constants.rigid_group_atom_positions``).
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.geometry.angles import dihedral

_DEFAULT_PSI = np.radians(-40.0)


def _rigid(ex: np.ndarray, ey: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 transform with x along ``ex`` and ``ey`` in the xy-plane (batched over leading dims)."""
    ex = ex / np.linalg.norm(ex, axis=-1, keepdims=True)
    ey = ey - (ey * ex).sum(-1, keepdims=True) * ex
    ey = ey / np.linalg.norm(ey, axis=-1, keepdims=True)
    ez = np.cross(ex, ey)
    m = np.zeros(ex.shape[:-1] + (4, 4))
    m[..., :3, 0], m[..., :3, 1], m[..., :3, 2], m[..., :3, 3] = ex, ey, ez, translation
    m[..., 3, 3] = 1.0
    return m


def _rot_x(angle: np.ndarray) -> np.ndarray:
    m = np.zeros(angle.shape + (4, 4))
    c, s = np.cos(angle), np.sin(angle)
    m[..., 0, 0] = 1
    m[..., 1, 1], m[..., 1, 2], m[..., 2, 1], m[..., 2, 2] = c, -s, s, c
    m[..., 3, 3] = 1
    return m


@functools.lru_cache(maxsize=None)
def _tables():
    """Per residue type: default frames [21, 8, 4, 4], atom37 group [21, 37], local positions
    [21, 37, 3], atom37 mask [21, 37]."""
    frames = np.tile(np.eye(4), (rc.restype_num + 1, 8, 1, 1))
    group = np.zeros((rc.restype_num + 1, rc.atom_type_num), np.int64)
    local = np.zeros((rc.restype_num + 1, rc.atom_type_num, 3))
    mask = np.zeros((rc.restype_num + 1, rc.atom_type_num))
    for r, name in enumerate(rc.resnames[:-1]):
        pos = {a: np.array(p) for a, g, p in rc.rigid_group_atom_positions[name]}
        for a, g, p in rc.rigid_group_atom_positions[name]:
            j = rc.atom_order[a]
            group[r, j], local[r, j], mask[r, j] = g, p, 1
        frames[r, 3] = _rigid(pos["C"] - pos["CA"], pos["CA"] - pos["N"], pos["C"])
        chis = rc.chi_angles_atoms[name]
        if chis:
            a0, a1, a2, _ = chis[0]
            frames[r, 4] = _rigid(pos[a2] - pos[a1], pos[a0] - pos[a1], pos[a2])
        for k in range(1, len(chis)):
            end = pos[chis[k][2]]
            frames[r, 4 + k] = _rigid(end, np.array([-1.0, 0.0, 0.0]), end)
    # unknown (X, written as UNK): the backbone only, placed as glycine's
    gly, unk = rc.restype_order["G"], rc.restype_num
    frames[unk] = frames[gly]
    for a in ("N", "CA", "C", "O"):
        j = rc.atom_order[a]
        group[unk, j], local[unk, j], mask[unk, j] = group[gly, j], local[gly, j], 1
    return frames, group, local, mask


def backbone_frames(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``[L, 4, 4]`` frames: origin CA, x along CA->C, N in the xy-plane."""
    return _rigid(c - ca, n - ca, ca)


def build_atom37(aatype: np.ndarray, backbone: np.ndarray, chi: np.ndarray,
                 psi: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``aatype [L]``, ``backbone [L, 3, 3]`` (N, CA, C), ``chi [L, 4]`` radians -> atom37
    positions ``[L, 37, 3]`` and mask ``[L, 37]`` (OXT not built). ``psi [L]`` places O
    (default: from the next residue's N, or -40 degrees at a chain end)."""
    frames, group, local, mask = _tables()
    aatype = np.asarray(aatype).clip(0, rc.restype_num)
    n_res = len(aatype)
    n, ca, c = backbone[:, 0].astype(np.float64), backbone[:, 1].astype(np.float64), backbone[:, 2].astype(np.float64)
    if psi is None:
        psi = np.full(n_res, _DEFAULT_PSI)
        if n_res > 1:
            psi[:-1] = dihedral(n[:-1], ca[:-1], c[:-1], n[1:])
    bb = backbone_frames(n, ca, c)  # [L, 4, 4]
    default = frames[aatype]  # [L, 8, 4, 4]
    angles = np.zeros((n_res, 8))
    angles[:, 3] = psi  # rotating the psi frame by psi puts O trans to N(i+1) (checked in tests)
    angles[:, 4:8] = chi
    local_frames = default @ _rot_x(angles)  # [L, 8, 4, 4]
    to_bb = local_frames.copy()
    for k in range(5, 8):  # chi2..4 chain onto the previous chi frame
        to_bb[:, k] = to_bb[:, k - 1] @ local_frames[:, k]
    to_bb[:, 0] = np.eye(4)
    global_frames = bb[:, None] @ to_bb  # [L, 8, 4, 4]
    g = group[aatype]  # [L, 37]
    f = np.take_along_axis(global_frames, g[..., None, None], axis=1)  # [L, 37, 4, 4]
    p = local[aatype]
    pos = np.einsum("lakj,laj->lak", f[..., :3, :3], p) + f[..., :3, 3]
    m = mask[aatype]
    return (pos * m[..., None]).astype(np.float32), m.astype(np.float32)

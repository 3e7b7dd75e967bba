"""Side chains turned out of steric clashes before the model is written (numpy, inference only).

The network predicts chi angles residue by residue, without seeing where the neighbouring side
chains go, so a predicted model has side chains built through each other and through the
backbone. Amber relax then has to pull them apart (or turn them over a torsion barrier), which
is most of how far relax moves a prediction. :func:`pack_side_chains` does the cheap part first:
for each side chain that clashes, it tries the staggered chi1/chi2 rotamers (chi3/chi4 as
predicted) and keeps the one with the least clash against everything else, near the prediction
among equals; residues in the worst clashes go first, and the whole pass repeats while it helps.

Clashes are scored as :func:`af2struct.geometry.stereo.find_clashes` counts them: heavy atoms of
different residues overlapping their van der Waals radii by more than ``CLASH_OVERLAP``, polar
pairs (N/O) only below hydrogen-bonding distance, a disulfide's SG-SG pair not at all.
"""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
from scipy.spatial import cKDTree

from af2struct.common import residue_constants as rc
from af2struct.geometry.sidechains import build_atom37
from af2struct.geometry.stereo import CLASH_OVERLAP, HBOND_MIN_DISTANCE

PRIOR_WEIGHT = 0.05  # A of clash overlap per unit of (1 - cos) away from the predicted chi
_FIXED = rc.backbone_and_cb_atoms
_CYS = rc.restype_order["C"]
_RADIUS = np.array([rc.van_der_waals_radius[a[0]] for a in rc.atom_types])
_POLAR = np.array([a[0] in "NO" for a in rc.atom_types])
_SG = rc.atom_order["SG"]


def _moving_atoms(aatype: int) -> np.ndarray:
    """atom37 indices of the side-chain atoms that chi1/chi2 move (beyond CB)."""
    name = rc.restype_1to3[rc.restypes[aatype]]
    names = [a for a in rc.restype_name_to_atom14_names[name] if a and a not in _FIXED]
    return np.array([rc.atom_order[a] for a in names], dtype=int)


def _clash(cand: np.ndarray, atoms: np.ndarray, i: int, env: np.ndarray, env_res: np.ndarray,
           env_atom: np.ndarray, env_cys_sg: np.ndarray, tree: cKDTree, is_cys: bool) -> np.ndarray:
    """Summed clash overlap (beyond ``CLASH_OVERLAP``) of candidate side chains of residue ``i``
    against the atoms of every other residue: ``cand [K, A, 3]`` (atom37 indices ``atoms [A]``)
    -> ``[K]``. ``env [N, 3]`` with residue ``env_res [N]`` and atom37 index ``env_atom [N]``."""
    k, a = cand.shape[:2]
    flat = cand.reshape(-1, 3)
    hits = tree.query_ball_point(flat, 2 * _RADIUS.max() - CLASH_OVERLAP)
    counts = np.fromiter(map(len, hits), dtype=int, count=len(hits))
    point = np.repeat(np.arange(len(flat)), counts)  # [P] candidate atom of each neighbour pair
    idx = np.fromiter(itertools.chain.from_iterable(hits), dtype=int, count=int(counts.sum()))
    other = env_res[idx] != i
    point, idx = point[other], idx[other]
    d = np.linalg.norm(env[idx] - flat[point], axis=-1)
    atom, env_type = atoms[point % a], env_atom[idx]
    over = _RADIUS[atom] + _RADIUS[env_type] - d - CLASH_OVERLAP
    over = np.where(_POLAR[atom] & _POLAR[env_type] & (d >= HBOND_MIN_DISTANCE), 0.0, over)  # H-bonds
    if is_cys:
        over = np.where((atom == _SG) & env_cys_sg[idx], 0.0, over)  # disulfides
    return np.bincount(point, np.clip(over, 0.0, None), k * a).reshape(k, a).sum(1)


def _candidates(chi: np.ndarray, n_chi: int) -> np.ndarray:
    """The predicted chi and every staggered chi1 (x chi2) combination: ``[K, 4]`` radians,
    the prediction first."""
    options = [[chi[0]] + [np.radians(x) for x in rc.staggered_chi1_deg]]
    if n_chi > 1:
        options.append([chi[1]] + [np.radians(x) for x in rc.staggered_chi2_deg])
    combos = np.array(list(itertools.product(*options)))
    out = np.repeat(chi[None], len(combos), axis=0)
    out[:, :combos.shape[1]] = combos
    return out


def pack_side_chains(aatype: np.ndarray, backbone: np.ndarray, chi: np.ndarray,
                     oxygen: Optional[np.ndarray] = None, sweeps: int = 3) -> np.ndarray:
    """Chi angles ``[L, 4]`` (radians) with clashing side chains turned to staggered rotamers.

    ``aatype [L]``, ``backbone [L, 3, 3]`` (N, CA, C), ``chi [L, 4]`` radians (the prediction),
    ``oxygen [L, 3]`` (carbonyl oxygens, if placed apart from the builder's). Side chains that
    clash with nothing keep their predicted chi; a change is kept only if it lowers the
    residue's clash plus a small pull towards the prediction (``PRIOR_WEIGHT``).
    """
    aatype = np.asarray(aatype).clip(0, rc.restype_num)
    chi = np.array(chi, np.float64)
    backbone = np.asarray(backbone, np.float64)
    pos, mask = build_atom37(aatype, backbone, chi)
    pos = pos.astype(np.float64)
    if oxygen is not None:
        pos[:, rc.atom_order["O"]] = oxygen
    env_res, env_atom = np.nonzero(mask > 0)
    slot = -np.ones(mask.shape, dtype=int)  # atom37 -> row of env
    slot[env_res, env_atom] = np.arange(len(env_res))
    env = pos[env_res, env_atom]
    cys_sg = (aatype[env_res] == _CYS) & (env_atom == _SG)
    n_chi = np.array([len(rc.chi_angles_atoms[rc.restype_1to3[rc.restypes[a]]]) if a < rc.restype_num else 0
                      for a in aatype])
    packable = [i for i in range(len(aatype)) if rc.rotamers_settable(rc.resnames[int(aatype[i])])]
    moving = {i: _moving_atoms(aatype[i]) for i in packable}
    for _ in range(sweeps):
        tree = cKDTree(env)
        clash = {i: _clash(env[slot[i, moving[i]]][None], moving[i], i, env, env_res, env_atom, cys_sg, tree,
                           aatype[i] == _CYS)[0] for i in packable}
        changed = False
        for i in sorted((i for i in packable if clash[i] > 0), key=lambda i: -clash[i]):
            cands = _candidates(chi[i], n_chi[i])
            k = len(cands)
            cpos, _ = build_atom37(np.full(k, aatype[i]), np.repeat(backbone[i][None], k, 0), cands, psi=np.zeros(k))
            cpos = cpos[:, moving[i]].astype(np.float64)
            scores = _clash(cpos, moving[i], i, env, env_res, env_atom, cys_sg, tree, aatype[i] == _CYS)
            scores = scores + PRIOR_WEIGHT * (1 - np.cos(cands[:, :2] - chi[i, :2])).sum(1)
            best = int(np.argmin(scores))
            if scores[best] < scores[0] - 1e-6:
                chi[i] = cands[best]
                env[slot[i, moving[i]]] = cpos[best]
                tree = cKDTree(env)
                changed = True
        if not changed:
            break
    return chi

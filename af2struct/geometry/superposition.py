"""Optimal rigid superposition (Kabsch) in numpy."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def kabsch(
    mobile: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Rotation ``R [3, 3]`` and translation ``t [3]`` minimising ``|mobile @ R.T + t - target|``.

    Args:
        mobile, target: ``[N, 3]`` corresponding points.
        weights: optional ``[N]`` non-negative weights.
    Returns a proper rotation (det +1), never a reflection.
    """
    mobile = np.asarray(mobile, np.float64)
    target = np.asarray(target, np.float64)
    w = np.ones(len(mobile)) if weights is None else np.asarray(weights, np.float64)
    if w.sum() <= 0:
        raise ValueError("kabsch: no points with positive weight")
    w = w / w.sum()
    mc = (w[:, None] * mobile).sum(0)
    tc = (w[:, None] * target).sum(0)
    h = ((mobile - mc) * w[:, None]).T @ (target - tc)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, tc - mc @ r.T


def superpose(
    mobile: np.ndarray, target: np.ndarray, weights: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, float]:
    """Superpose ``mobile`` onto ``target``; return moved coordinates and the (weighted) RMSD."""
    r, t = kabsch(mobile, target, weights)
    moved = np.asarray(mobile, np.float64) @ r.T + t
    d2 = ((moved - target) ** 2).sum(-1)
    w = np.ones(len(d2)) if weights is None else np.asarray(weights, np.float64)
    return moved, float(np.sqrt((w * d2).sum() / w.sum()))


def heavy_atom_rmsd(model, reference) -> float:
    """RMSD (A) between two :class:`~af2struct.common.protein.Protein` of the same residues over
    the atoms present in both, without superposition (how far relax moved a model)."""
    both = (reference.atom_mask > 0) & (model.atom_mask > 0)
    diff = model.atom_positions[both].astype(np.float64) - reference.atom_positions[both]
    return float(np.sqrt((diff ** 2).sum(-1).mean())) if both.any() else float("nan")

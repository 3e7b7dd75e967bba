"""Superposition searches that maximise GDT and TM-score (LGA / TM-score program style).

Both start from many seed superpositions (contiguous fragments of several lengths along the
chain), then iterate: superpose on the residues currently close, re-select, repeat. Everything
is batched over seeds in numpy.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np


def batched_kabsch(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Rotations ``[S, 3, 3]`` and translations ``[S, 3]`` superposing ``x [L, 3]`` onto ``y``
    under each weight row ``w [S, L]`` (rows must have positive sums)."""
    w = w / w.sum(-1, keepdims=True)
    xc = w @ x
    yc = w @ y
    h = np.einsum("sl,li,lj->sij", w, x, y) - xc[:, :, None] * yc[:, None, :]
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    d = np.sign(np.linalg.det(v @ ut))
    d[d == 0] = 1.0
    diag = np.zeros((len(w), 3, 3))
    diag[:, 0, 0] = 1
    diag[:, 1, 1] = 1
    diag[:, 2, 2] = d
    r = v @ diag @ ut
    t = yc - np.einsum("sj,sij->si", xc, r)
    return r, t


def _distances(x, y, r, t) -> np.ndarray:
    """``[S, L]`` distances after applying each transform to ``x``."""
    moved = np.einsum("sij,lj->sli", r, x) + t[:, None, :]
    return np.linalg.norm(moved - y[None], axis=-1)


def fragment_seeds(n: int, lengths: Sequence[int] = None, min_len: int = 4) -> np.ndarray:
    """``[S, n]`` boolean masks of contiguous fragments: lengths n, n/2, n/4, ... >= min_len."""
    if lengths is None:
        lengths, k = [], n
        while k >= min_len and len(lengths) < 8:
            lengths.append(k)
            k //= 2
        if not lengths:
            lengths = [n]
    seeds: List[np.ndarray] = []
    for length in lengths:
        length = min(length, n)
        step = max(1, length // 2)
        starts = list(range(0, n - length + 1, step))
        if starts[-1] != n - length:
            starts.append(n - length)
        for s in starts:
            m = np.zeros(n, bool)
            m[s:s + length] = True
            seeds.append(m)
    return np.unique(np.array(seeds), axis=0)


def _ensure_three(sel: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Rows with fewer than 3 selected residues take their 3 closest instead."""
    few = sel.sum(-1) < 3
    if few.any():
        closest = np.argsort(d[few], axis=-1)[:, :3]
        rows = np.zeros_like(sel[few])
        np.put_along_axis(rows, closest, True, axis=-1)
        sel = sel.copy()
        sel[few] = rows
    return sel


def max_tm_score(x: np.ndarray, y: np.ndarray, l_norm: int, n_iter: int = 20) -> float:
    """Maximum TM-score over superpositions of corresponding CA sets ``x``, ``y`` ``[N, 3]``,
    normalised by ``l_norm`` residues (the native length)."""
    n = len(x)
    if n < 3:
        return 0.0
    d0 = 1.24 * np.cbrt(l_norm - 15) - 1.8 if l_norm > 21 else 0.5
    d0 = max(d0, 0.5)
    d_search = float(np.clip(d0, 4.5, 8.0))
    sel = fragment_seeds(n)
    best = 0.0
    for _ in range(n_iter):
        r, t = batched_kabsch(x, y, sel.astype(np.float64))
        d = _distances(x, y, r, t)
        tm = (1.0 / (1.0 + (d / d0) ** 2)).sum(-1) / l_norm
        best = max(best, float(tm.max()))
        new = _ensure_three(d < d_search, d)
        if np.array_equal(new, sel):
            break
        sel = np.unique(new, axis=0)
    return best


def max_fraction_within(x: np.ndarray, y: np.ndarray, cutoffs: Sequence[float], l_norm: int,
                        n_iter: int = 10) -> List[float]:
    """For each cutoff, the largest fraction (of ``l_norm``) of residues within it over
    superpositions (LGA's GDT search: fragment seeds, then iterate on the residues within the
    cutoff)."""
    n = len(x)
    if n < 3:
        return [0.0 for _ in cutoffs]
    seeds = fragment_seeds(n)
    out = []
    for c in cutoffs:
        sel = seeds
        best = 0
        for _ in range(n_iter):
            r, t = batched_kabsch(x, y, sel.astype(np.float64))
            d = _distances(x, y, r, t)
            within = d < c
            best = max(best, int(within.sum(-1).max()))
            new = _ensure_three(within, d)
            if np.array_equal(new, sel):
                break
            sel = np.unique(new, axis=0)
        out.append(best / l_norm)
    return out

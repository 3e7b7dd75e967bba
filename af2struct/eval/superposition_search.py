"""Superposition searches that maximise GDT and TM-score (LGA / TM-score program style).

Both start from many seed superpositions (contiguous fragments of several lengths along the
chain), then iterate: superpose on the residues currently close, re-select, repeat. Everything
is batched over seeds in numpy. The GDT search is the denser one (every window start, selection
beyond the cutoff, every superposition counted for every cutoff): GDT is a maximum, and a
thinner search underestimates it by up to a few GDT points on noisy models.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np


def fragment_seeds(n: int, lengths: Sequence[int] = None, min_len: int = 4) -> np.ndarray:
    """``[S, n]`` boolean masks of contiguous fragments: lengths n, n/2, n/4, ... >= min_len."""
    if lengths is None:
        lengths, k = [], n
        while k >= min_len and len(lengths) < 8:
            lengths.append(k)
            k //= 2
        if not lengths:
            lengths = [n]
    seeds = [w for length in lengths for w in _windows(n, min(length, n), max(1, min(length, n) // 2))]
    return np.unique(np.array(seeds), axis=0)


def _windows(n: int, length: int, step: int) -> List[np.ndarray]:
    """Masks of the windows of ``length`` residues starting every ``step`` (and at the end)."""
    starts = list(range(0, n - length + 1, step))
    if starts[-1] != n - length:
        starts.append(n - length)
    out = []
    for s in starts:
        m = np.zeros(n, bool)
        m[s:s + length] = True
        out.append(m)
    return out


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
        d = kabsch_distances(x, y, sel.astype(np.float64))
        tm = (1.0 / (1.0 + (d / d0) ** 2)).sum(-1) / l_norm
        best = max(best, float(tm.max()))
        new = _ensure_three(d < d_search, d)
        if np.array_equal(new, sel):
            break
        sel = np.unique(new, axis=0)
    return best


def kabsch_distances(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``[S, L]`` distances to ``y`` of ``x [L, 3]`` superposed on it under each weight row
    ``w [S, L]`` (BLAS products, fast for thousands of rows)."""
    w = w / w.sum(-1, keepdims=True)
    xc, yc = w @ x, w @ y
    h = (w @ (x[:, :, None] * y[:, None, :]).reshape(len(x), 9)).reshape(-1, 3, 3) - xc[:, :, None] * yc[:, None, :]
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    d[d == 0] = 1.0
    u[:, :, 2] *= d[:, None]
    moved = np.matmul(x[None] - xc[:, None], u @ vt) + yc[:, None]
    return np.sqrt(((moved - y[None]) ** 2).sum(-1))


def gdt_seed_lengths(n: int) -> List[int]:
    """Window lengths of the GDT seeds: 3-8, then x1.5 up to the whole chain."""
    lengths, k = [3, 4, 5, 6, 7, 8], 8
    while k < n:
        k = int(k * 1.5)
        lengths.append(min(k, n))
    return sorted({length for length in lengths if length <= n} | {n})


def window_seeds(n: int, lengths: Sequence[int], max_seeds: int = 1500) -> np.ndarray:
    """``[S, n]`` masks of contiguous windows of each length starting at every residue (every
    k-th one on chains long enough for more than ``max_seeds`` windows)."""
    step = max(1, int(np.ceil(len(lengths) * n / max_seeds)))
    return np.array([w for length in lengths for w in _windows(n, length, step)])


def unique_rows(sel: np.ndarray) -> np.ndarray:
    """The distinct rows of a boolean ``[S, n]`` array, in first-seen order."""
    packed = np.ascontiguousarray(np.packbits(sel, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, idx = np.unique(keys, return_index=True)
    return sel[np.sort(idx)]


GDT_SELECTION_MARGINS = (0.0, 0.5, 1.0, 2.0)
SEED_RESIDUE_BUDGET = 600_000


def max_fraction_within(x: np.ndarray, y: np.ndarray, cutoffs: Sequence[float], l_norm: int,
                        n_iter: int = 20, margins: Sequence[float] = GDT_SELECTION_MARGINS,
                        max_seeds: int = 1500) -> List[float]:
    """For each cutoff, the largest fraction (of ``l_norm``) of residues within it over the
    superpositions of a dense search (LGA's GDT search, made denser):

    * seeds: windows of 3-8 residues and x1.5 longer up to the whole chain, at every start
      (every k-th start on chains with more than ``max_seeds`` windows, or more than 600,000
      window-residues: about 1,500 windows at 400 residues, 280 at 2,000), and the halving
      fragments of :func:`fragment_seeds`;
    * from each seed, iterate: superpose on the residues within ``cutoff + margin`` (margins
      0, 0.5, 1, 2 A: selecting beyond the cutoff escapes local optima), re-select, until the
      selection repeats;
    * every superposition met is counted for every cutoff (one found for 2 A may be the best
      at 1 A). Each distinct selection is superposed once.
    """
    n = len(x)
    if n < 3:
        return [0.0 for _ in cutoffs]
    cut = np.asarray(cutoffs, np.float64)
    best = np.zeros(len(cut), np.int64)
    seen: dict = {}

    def distances(sel: np.ndarray) -> np.ndarray:
        packed = np.packbits(sel, axis=1)
        keys = [row.tobytes() for row in packed]
        todo = [i for i, k in enumerate(keys) if k not in seen]
        if todo:
            d = kabsch_distances(x, y, sel[todo].astype(np.float64))
            np.maximum(best, (d[None] < cut[:, None, None]).sum(-1).max(-1), out=best)
            for i, row in zip(todo, d):
                seen[keys[i]] = row
        return np.array([seen[k] for k in keys])

    # every window start up to max_seeds windows; on long chains fewer, so that seeds x residues
    # (the cost of each superposition pass) stays bounded
    budget = max(200, min(max_seeds, SEED_RESIDUE_BUDGET // n))
    seeds = np.concatenate([window_seeds(n, gdt_seed_lengths(n), budget), fragment_seeds(n)])
    d0 = distances(unique_rows(seeds))
    for radius in sorted({float(c + m) for c in cut for m in margins}):
        sel = unique_rows(_ensure_three(d0 < radius, d0))
        for _ in range(n_iter):
            d = distances(sel)
            new = unique_rows(_ensure_three(d < radius, d))
            if new.shape == sel.shape and np.array_equal(new, sel):
                break
            sel = new
    return [int(b) / l_norm for b in best]

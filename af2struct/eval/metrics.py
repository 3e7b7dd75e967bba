"""CASP metrics on :class:`Protein` pairs: lDDT, GDT_TS/HA, TM-score, RMSD, stereochemistry.

Residues correspond by residue number (and insertion code, chain) by default, or by a global
sequence alignment (``align=True``). Scores are computed over the residues observed in the
native; native residues the model lacks count as not reproduced. Before all-atom scores, the
model's symmetry-equivalent side-chain atoms (Asp OD1/OD2, Glu OE1/OE2, Phe/Tyr ring atoms) take
the naming that matches the native better (:func:`resolve_symmetric_atoms`), as CASP does.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from Bio import Align
from scipy.spatial.distance import cdist

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.eval.superposition_search import max_fraction_within, max_tm_score
from af2struct.geometry.stereo import stereo_report
from af2struct.geometry.superposition import kabsch

LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
LDDT_RADIUS = 15.0
GDT_TS_CUTOFFS = (1.0, 2.0, 4.0, 8.0)
GDT_HA_CUTOFFS = (0.5, 1.0, 2.0, 4.0)
_CA = rc.ca_index


logger = logging.getLogger(__name__)
LOW_IDENTITY = 0.5  # below: a warning that model and native may be different proteins


class CorrespondenceError(ValueError):
    """Model and native residues do not correspond (different sequence at the same number)."""


# ------------------------------------------------------------------------------------------
# residue correspondence
# ------------------------------------------------------------------------------------------


def _keys(p: Protein) -> List[Tuple[str, int, str]]:
    return list(zip(p.chain_id.tolist(), p.residue_index.tolist(), p.insertion_code.tolist()))


def match_residues(model: Protein, native: Protein, align: Optional[bool] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Indices ``(model_idx, native_idx)`` of corresponding residues.

    ``align=False``, by number: residues with equal (chain, number, insertion code); a different
    residue type at the same number raises :class:`CorrespondenceError` naming the residues.
    ``align=True``: a global alignment of the two sequences (Biopython), identical residues only.
    ``None`` (predict and evaluate): by number where the numbering corresponds (some residue
    shared, no type differs), else by alignment (a model numbered 1-72 against a CASP native
    numbered 244-315) when it matches at least half of the native's residues; otherwise the
    numbering's error, which says the proteins differ. When the model has a single chain and the
    native another single chain id, chains are matched regardless of their ids.
    """
    if align is None:
        try:
            return match_residues(model, native, align=False)
        except CorrespondenceError as exc:
            mi, ni = _align_sequences(model.sequence, native.sequence)
            if len(ni) < LOW_IDENTITY * len(native):  # not the same protein renumbered: the numbering's own error
                raise CorrespondenceError(f"{exc} (aligned by sequence, {len(ni)} of the native's {len(native)} "
                                          "residues match: different proteins?)") from None
            logger.info("residue numbers do not correspond (%s); matched by sequence alignment", str(exc).split(";")[0])
            return mi, ni
    if align:
        return _align_sequences(model.sequence, native.sequence)
    mk, nk = _keys(model), _keys(native)
    if len(model.chains) == 1 and len(native.chains) == 1:
        mk = [(native.chains[0], r, i) for _, r, i in mk]
    where = {k: i for i, k in enumerate(mk)}
    mi, ni, bad = [], [], []
    for j, k in enumerate(nk):
        i = where.get(k)
        if i is None:
            continue
        if model.aatype[i] != native.aatype[j]:
            bad.append(f"{k[1]}{k[2]}: model {rc.resnames[model.aatype[i]]}, native {rc.resnames[native.aatype[j]]}")
            continue
        mi.append(i)
        ni.append(j)
    if not mi and len(model) and len(native):
        span = lambda p: f"{int(p.residue_index.min())}-{int(p.residue_index.max())}"
        raise CorrespondenceError(
            f"model (residues {span(model)}) and native (residues {span(native)}) share no residue number; "
            "use alignment (--align) to match them by sequence"
        )
    if bad:
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise CorrespondenceError(
            f"{len(bad)} residue(s) differ at the same number: {'; '.join(bad[:5])}{more}; "
            "use alignment (--align) if the numbering differs"
        )
    return np.array(mi, np.int64), np.array(ni, np.int64)


def _align_sequences(a: str, b: str) -> Tuple[np.ndarray, np.ndarray]:
    aligner = Align.PairwiseAligner()
    aligner.mode = "global"
    aligner.match_score = 2
    aligner.mismatch_score = -1
    aligner.open_gap_score = -4
    aligner.extend_gap_score = -0.5
    aln = aligner.align(a, b)[0]
    ai, bi = [], []
    for (s1, e1), (s2, e2) in zip(*aln.aligned):
        for i, j in zip(range(s1, e1), range(s2, e2)):
            if a[i] == b[j]:
                ai.append(i)
                bi.append(j)
    return np.array(ai, np.int64), np.array(bi, np.int64)


def _paired_arrays(model: Protein, native: Protein, mi: np.ndarray, ni: np.ndarray):
    """Model coordinates/masks laid out on the native's residues ([Ln, 37, 3], [Ln, 37])."""
    pos = np.zeros_like(native.atom_positions, dtype=np.float64)
    mask = np.zeros_like(native.atom_mask)
    pos[ni] = model.atom_positions[mi]
    mask[ni] = model.atom_mask[mi] * native.atom_mask[ni]
    return pos, mask


def _swap_pairs() -> Dict[int, List[Tuple[int, int]]]:
    """aatype -> atom37 index pairs whose names are interchangeable (Asp OD1/OD2, Phe CD1/CD2...)."""
    out = {}
    for resname, swaps in rc.residue_atom_renaming_swaps.items():
        aa = rc.restype_order[rc.restype_3to1[resname]]
        out[aa] = [(rc.atom_order[a], rc.atom_order[b]) for a, b in swaps.items()]
    return out


def resolve_symmetric_atoms(pos: np.ndarray, mask: np.ndarray, true: np.ndarray, true_mask: np.ndarray,
                            aatype: np.ndarray, radius: float = LDDT_RADIUS) -> np.ndarray:
    """Rename the model's symmetry-equivalent atoms (Asp OD1/OD2, Glu OE1/OE2, Phe and Tyr
    CD1/CD2 + CE1/CE2) to the naming that matches the native better, as CASP's lDDT and
    AlphaFold's loss do: for each such residue, the naming with the smaller summed distance error
    (model vs native) from its swappable atoms to every atom of other residues within ``radius``.

    Args: ``pos [L, 37, 3]`` model and ``mask [L, 37]`` laid out on the native's residues;
    ``true [L, 37, 3]``, ``true_mask [L, 37]``, ``aatype [L]`` of the native.
    Returns the model positions ``[L, 37, 3]`` with swaps applied; only pairs whose two atoms are
    present in both model and native are considered, so the masks need no change.
    """
    pos = np.array(pos, dtype=np.float64)
    both = (mask > 0) & (true_mask > 0)
    flat_ok = both.reshape(-1)
    residue = np.repeat(np.arange(len(pos)), pos.shape[1])[flat_ok]
    model_atoms = pos.reshape(-1, 3)[flat_ok]
    true_atoms = true.reshape(-1, 3)[flat_ok].astype(np.float64)
    swaps = _swap_pairs()
    for i in np.nonzero(np.isin(aatype, list(swaps)))[0]:
        pairs = [(a, b) for a, b in swaps[int(aatype[i])] if both[i, a] and both[i, b]]
        if not pairs:
            continue
        idx = np.array([a for a, _ in pairs] + [b for _, b in pairs])
        other = residue != i
        dt = cdist(true[i, idx], true_atoms[other])
        near = dt < radius
        err_kept = np.abs(cdist(pos[i, idx], model_atoms[other]) - dt)[near].sum()
        swapped = np.concatenate([idx[len(pairs):], idx[:len(pairs)]])
        err_swapped = np.abs(cdist(pos[i, swapped], model_atoms[other]) - dt)[near].sum()
        if err_swapped < err_kept:
            pos[i, idx] = pos[i, swapped].copy()
    return pos


# ------------------------------------------------------------------------------------------
# metrics on arrays laid out on the native residues
# ------------------------------------------------------------------------------------------


def lddt(
    pred: np.ndarray, true: np.ndarray, true_mask: np.ndarray, pred_mask: Optional[np.ndarray] = None,
    residue: Optional[np.ndarray] = None, radius: float = LDDT_RADIUS,
    thresholds: Sequence[float] = LDDT_THRESHOLDS,
) -> Tuple[float, np.ndarray]:
    """Superposition-free lDDT over atoms ``[N, 3]``.

    Pairs: atoms of different residues (``residue [N]``; every atom its own residue when None)
    closer than ``radius`` in ``true``. Each pair scores the fraction of ``thresholds`` its
    distance error stays under; pairs with an atom absent from ``pred`` score 0.
    Returns the global score (mean over pairs) and the per-residue score (mean over the pairs of
    each residue's atoms; NaN for residues with no pairs).
    """
    true_mask = true_mask.astype(bool)
    pred_mask = true_mask if pred_mask is None else (pred_mask.astype(bool) & true_mask)
    n = len(true)
    residue = np.arange(n) if residue is None else np.asarray(residue)
    n_res = int(residue.max()) + 1 if n else 0
    num = np.zeros(n_res)
    den = np.zeros(n_res)
    idx = np.nonzero(true_mask)[0]
    chunk = max(1, 2_000_000 // max(len(idx), 1))
    for start in range(0, len(idx), chunk):
        rows = idx[start:start + chunk]
        dt = cdist(true[rows], true[idx])
        dp = cdist(pred[rows], pred[idx])
        include = (dt < radius) & (residue[rows, None] != residue[None, idx])
        ok = pred_mask[rows, None] & pred_mask[None, idx]
        err = np.abs(dp - dt)
        score = sum((err < t).astype(np.float32) for t in thresholds) / len(thresholds) * ok
        np.add.at(num, residue[rows], (score * include).sum(-1))
        np.add.at(den, residue[rows], include.sum(-1))
    total = den.sum()
    glob = float(num.sum() / total) if total else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    return glob, per


def rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Plain RMSD between corresponding points (no superposition)."""
    return float(np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).sum(-1).mean())) if len(a) else float("nan")


def gdt(pred_ca: np.ndarray, true_ca: np.ndarray, l_native: int, cutoffs=GDT_TS_CUTOFFS) -> float:
    """GDT (0-100) of corresponding CA sets ``[N, 3]`` over ``l_native`` native residues."""
    return 100.0 * float(np.mean(max_fraction_within(np.asarray(pred_ca, np.float64),
                                                     np.asarray(true_ca, np.float64), cutoffs, l_native)))


def gdt_ts_ha(pred_ca: np.ndarray, true_ca: np.ndarray, l_native: int) -> Tuple[float, float]:
    """``(GDT_TS, GDT_HA)`` from one superposition search over the five cutoffs they use."""
    cutoffs = sorted(set(GDT_TS_CUTOFFS) | set(GDT_HA_CUTOFFS))
    frac = dict(zip(cutoffs, max_fraction_within(np.asarray(pred_ca, np.float64),
                                                 np.asarray(true_ca, np.float64), cutoffs, l_native)))
    return (100.0 * float(np.mean([frac[c] for c in GDT_TS_CUTOFFS])),
            100.0 * float(np.mean([frac[c] for c in GDT_HA_CUTOFFS])))


def tm_score(pred_ca: np.ndarray, true_ca: np.ndarray, l_native: int) -> float:
    """TM-score of corresponding CA sets normalised by the native length."""
    return max_tm_score(np.asarray(pred_ca, np.float64), np.asarray(true_ca, np.float64), l_native)


# ------------------------------------------------------------------------------------------
# the full report for one model
# ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ModelScores:
    n_residues: int  # native residues observed (CA present): the normalisation length
    n_matched: int  # of those, present in the model
    lddt_ca: float
    lddt: float
    gdt_ts: float
    gdt_ha: float
    tm_score: float
    rmsd_ca: float
    rmsd_all: float
    clashscore: float
    bond_violations: int
    per_residue_lddt_ca: np.ndarray = dataclasses.field(repr=False)
    residue_index: np.ndarray = dataclasses.field(repr=False)
    # identical matched residues / native residues (sequence alignment or numbering): low means the
    # model is not of this native's protein
    sequence_identity: float = 1.0
    unmatched_native: List[str] = dataclasses.field(default_factory=list, repr=False)
    unmatched_model: List[str] = dataclasses.field(default_factory=list, repr=False)

    def as_row(self) -> Dict[str, float]:
        keys = ["n_residues", "n_matched", "sequence_identity", "lddt_ca", "lddt", "gdt_ts", "gdt_ha", "tm_score",
                "rmsd_ca", "rmsd_all", "clashscore", "bond_violations"]
        return {k: getattr(self, k) for k in keys}


def score_model(model: Protein, native: Protein, align: Optional[bool] = None) -> ModelScores:
    """All CASP metrics for ``model`` against ``native`` (see module doc); residues matched as
    :func:`match_residues` does (default: by number where it corresponds, else by alignment)."""
    native = native.select(native.ca_mask > 0)
    if len(native) == 0:
        raise ValueError("native has no residues with a CA atom")
    mi, ni = match_residues(model, native, align=align)
    if len(mi) == 0:
        raise CorrespondenceError(f"no residue of the model matches the native (model {model.sequence[:30]}..., "
                                  f"native {native.sequence[:30]}...): different proteins?")
    identity = len(mi) / len(native)
    if identity < LOW_IDENTITY:
        logger.warning("model and native sequences differ: %.0f%% of the native's %d residues matched by an identical "
                       "residue; are they the same protein?", 100 * identity, len(native))
    pos, mask = _paired_arrays(model, native, mi, ni)
    pos = resolve_symmetric_atoms(pos, mask, native.atom_positions, native.atom_mask, native.aatype)
    ca_ok = mask[:, _CA] > 0
    ln = len(native)

    ca_l, per_ca = lddt(pos[:, _CA], native.atom_positions[:, _CA].astype(np.float64),
                        np.ones(ln, bool), ca_ok)
    res_of_atom = np.repeat(np.arange(ln), rc.atom_type_num)
    aa_l, _ = lddt(pos.reshape(-1, 3), native.atom_positions.reshape(-1, 3).astype(np.float64),
                   native.atom_mask.reshape(-1) > 0, mask.reshape(-1) > 0, residue=res_of_atom)

    x = pos[ca_ok, _CA]
    y = native.atom_positions[ca_ok, _CA].astype(np.float64)
    if len(x) >= 3:
        r, t = kabsch(x, y)
        rmsd_ca = rmsd(x @ r.T + t, y)
        both = mask > 0
        # a Calpha-only model has no all-atom RMSD (NaN: reported empty, not 0)
        ca_only = not (both.sum(0)[np.arange(rc.atom_type_num) != _CA] > 0).any()
        rmsd_all = float("nan") if ca_only else rmsd(pos[both] @ r.T + t, native.atom_positions[both])
        gdt_ts, gdt_ha = gdt_ts_ha(x, y, ln)
        tm = tm_score(x, y, ln)
    else:
        rmsd_ca = rmsd_all = float("nan")
        gdt_ts = gdt_ha = tm = 0.0
    stereo = stereo_report(model)

    matched_native = set(ni.tolist())
    matched_model = set(mi.tolist())
    fmt = lambda p, i: f"{rc.restypes_with_x[p.aatype[i]]}{p.residue_index[i]}{p.insertion_code[i]}"
    return ModelScores(
        n_residues=ln,
        n_matched=int(ca_ok.sum()),
        lddt_ca=ca_l,
        lddt=aa_l,
        gdt_ts=gdt_ts,
        gdt_ha=gdt_ha,
        tm_score=tm,
        rmsd_ca=rmsd_ca,
        rmsd_all=rmsd_all,
        clashscore=stereo["clashscore"],
        bond_violations=stereo["bond_violations"],
        per_residue_lddt_ca=per_ca,
        residue_index=native.residue_index.copy(),
        sequence_identity=round(identity, 4),
        unmatched_native=[fmt(native, i) for i in range(ln) if i not in matched_native],
        unmatched_model=[fmt(model, i) for i in range(len(model)) if i not in matched_model],
    )

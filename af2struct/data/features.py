"""Protein/sequence/MSA -> model features, and numpy <-> torch: the one place for that boundary.

An *example* is a dict of numpy arrays for one chain:

=================  ==================  ==========================================
aatype             [L] int64           residue types (20 = unknown)
residue_index      [L] int64           residue numbers (gaps mark chain breaks)
seq_mask           [L] float32         1 for real residues
msa                [N, L] int64        aligned rows (20 unknown, 21 gap); row 0 = query
msa_mask           [N, L] float32      1 for real MSA cells
deletion_value     [N, L] float32      2/pi * arctan(deletions / 3) as in AlphaFold
all_atom_positions [L, 37, 3] float32  targets (zeros when unknown)
all_atom_mask      [L, 37] float32
chi_angles         [L, 4] float32      chi1..chi4 of the structure (radians)
chi_mask           [L, 4] float32      1 where the chi exists and its atoms are present
template_*         [T, L, ...]         optional: template features (af2struct.data.templates)
=================  ==================  ==========================================

A *batch* (from :func:`collate`) is the same keys as torch tensors padded to ``[B, ...]``.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.data.msa import Msa, MsaError
from af2struct.data.templates import empty_template_features
from af2struct.geometry.angles import chi_angles

Example = Dict[str, np.ndarray]


def make_example(
    protein: Protein, msa: Optional[Msa] = None, max_msa_rows: Optional[int] = None,
    rng: Optional[np.random.Generator] = None,
) -> Example:
    """Features (and structure targets) for one chain; single-sequence MSA when ``msa`` is None.

    With ``max_msa_rows``, the query is kept and other rows are sampled (``rng``) without
    replacement.
    """
    n = len(protein)
    aatype = protein.aatype.astype(np.int64)
    if msa is None:
        rows = aatype[None].copy()
        dels = np.zeros((1, n), np.float32)
    else:
        if len(msa.sequences[0]) != n:
            raise MsaError(f"MSA has {len(msa.sequences[0])} columns for a {n}-residue chain")
        rows = msa.to_array().astype(np.int64)
        dels = msa.deletion_matrix.astype(np.float32)
    if max_msa_rows is not None and rows.shape[0] > max_msa_rows:
        rng = rng or np.random.default_rng(0)
        pick = np.concatenate([[0], 1 + rng.choice(rows.shape[0] - 1, max_msa_rows - 1, replace=False)])
        rows, dels = rows[pick], dels[pick]
    chi, chi_mask = chi_angles(protein)
    return {
        "aatype": aatype,
        "residue_index": protein.residue_index.astype(np.int64),
        "seq_mask": np.ones(n, np.float32),
        "msa": rows,
        "msa_mask": np.ones(rows.shape, np.float32),
        "deletion_value": (2 / np.pi * np.arctan(dels / 3.0)).astype(np.float32),
        "all_atom_positions": protein.atom_positions.astype(np.float32),
        "all_atom_mask": protein.atom_mask.astype(np.float32),
        "chi_angles": chi,
        "chi_mask": chi_mask,
    }


def crop_example(example: Example, start: int, size: int) -> Example:
    """Contiguous crop ``[start, start + size)`` along the residue axis of every feature."""
    out = {}
    for k, v in example.items():
        if k == "template_mask":
            out[k] = v
        elif k in ("msa", "msa_mask", "deletion_value") or k.startswith("template_"):
            out[k] = v[:, start:start + size]
        else:
            out[k] = v[start:start + size]
    return out


def random_crop(example: Example, crop_size: int, rng: np.random.Generator) -> Example:
    """A random contiguous crop of at most ``crop_size`` residues (biased to observed atoms)."""
    n = len(example["aatype"])
    if n <= crop_size:
        return example
    start = int(rng.integers(0, n - crop_size + 1))
    return crop_example(example, start, crop_size)


def collate(examples: Sequence[Example]):
    """Pad examples to a batch of torch tensors ``[B, ...]`` (masks are 0 on padding)."""
    import torch  # lazy: the backbone and template databases read Examples without torch

    if not examples:
        raise ValueError("collate: empty batch")
    if any(k.startswith("template_") for e in examples for k in e):  # some have templates: all get the keys
        examples = [e if "template_mask" in e else {**e, **empty_template_features(len(e["aatype"]))}
                    for e in examples]
    batch = {}
    for key in examples[0]:
        arrays = [e[key] for e in examples]
        shape = np.max([a.shape for a in arrays], axis=0)
        fill = rc.gap_index if key in ("msa", "template_aatype") else 0
        out = np.full((len(arrays),) + tuple(shape), fill, dtype=arrays[0].dtype)
        for i, a in enumerate(arrays):
            out[(i,) + tuple(slice(0, s) for s in a.shape)] = a
        batch[key] = torch.from_numpy(out)
    return batch


def to_numpy(tensor) -> np.ndarray:
    """A torch tensor (any device, any grad state) as a numpy array."""
    return tensor.detach().float().cpu().numpy() if tensor.is_floating_point() else tensor.detach().cpu().numpy()


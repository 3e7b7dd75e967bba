"""Conversions between atom layouts: atom37 <-> atom14 (AlphaFold) <-> SidechainNet 14.

All functions are numpy, batched over any leading dimensions: positions ``[..., L, A, 3]``,
masks ``[..., L, A]``, aatype ``[..., L]``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from af2struct.common import residue_constants as rc


def _dense_from_atom37(
    aatype: np.ndarray, pos37: np.ndarray, mask37: np.ndarray, index: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    idx = index[aatype]  # [..., L, 14]
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    pos = np.take_along_axis(pos37, safe[..., None], axis=-2)
    mask = np.take_along_axis(mask37, safe, axis=-1) * valid
    pos = np.where(mask[..., None] > 0, pos, 0.0)
    return pos.astype(np.float32), mask.astype(np.float32)


def _atom37_from_dense(
    aatype: np.ndarray, pos14: np.ndarray, mask14: np.ndarray, index: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    idx = index[aatype]  # [..., L, 14]
    lead = aatype.shape
    pos37 = np.zeros(lead + (rc.atom_type_num, 3), np.float32)
    mask37 = np.zeros(lead + (rc.atom_type_num,), np.float32)
    valid = (idx >= 0) & (mask14 > 0)
    where = np.nonzero(valid)
    target = where[:-1] + (idx[where],)
    pos37[target] = pos14[where]
    mask37[target] = 1.0
    return pos37, mask37


def atom37_to_atom14(aatype, pos37, mask37) -> Tuple[np.ndarray, np.ndarray]:
    """atom37 ``[..., L, 37, 3]`` -> AlphaFold atom14 ``[..., L, 14, 3]`` (+ mask)."""
    return _dense_from_atom37(np.asarray(aatype), pos37, mask37, rc.atom14_to_atom37_index())


def atom14_to_atom37(aatype, pos14, mask14) -> Tuple[np.ndarray, np.ndarray]:
    """AlphaFold atom14 ``[..., L, 14, 3]`` -> atom37 ``[..., L, 37, 3]`` (+ mask)."""
    return _atom37_from_dense(np.asarray(aatype), pos14, mask14, rc.atom14_to_atom37_index())


def atom37_to_scn14(aatype, pos37, mask37) -> Tuple[np.ndarray, np.ndarray]:
    """atom37 -> SidechainNet 14-atom layout ``[..., L, 14, 3]`` (+ mask)."""
    return _dense_from_atom37(np.asarray(aatype), pos37, mask37, rc.scn14_to_atom37_index())


def scn14_to_atom37(aatype, pos14, mask14) -> Tuple[np.ndarray, np.ndarray]:
    """SidechainNet 14-atom layout -> atom37 (+ mask)."""
    return _atom37_from_dense(np.asarray(aatype), pos14, mask14, rc.scn14_to_atom37_index())


def atom14_to_scn14(aatype, pos14, mask14) -> Tuple[np.ndarray, np.ndarray]:
    """AlphaFold atom14 -> SidechainNet 14 (through atom37)."""
    return atom37_to_scn14(aatype, *atom14_to_atom37(aatype, pos14, mask14))


def scn14_to_atom14(aatype, pos14, mask14) -> Tuple[np.ndarray, np.ndarray]:
    """SidechainNet 14 -> AlphaFold atom14 (through atom37)."""
    return atom37_to_atom14(aatype, *scn14_to_atom37(aatype, pos14, mask14))

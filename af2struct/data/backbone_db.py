"""A backbone-only chain database in one numpy file (``chains_backbone.npz``), read without pickle.

The layout is the one of ``shared/data/pdb2018_backbone`` (21,118 PDB chains, N/CA/C/O):

==================  ================  ================================================
coords_centiA       [R, 4, 3] int16   N, CA, C, O in 0.01 A, relative to the chain centre
chain_center        [C, 3] float32    added back to get Angstrom
offsets, lengths    [C] int64         chain ``i`` is rows ``offsets[i] : offsets[i] + lengths[i]``
pdb_ids, chain_ids  [C] bytes         chain ``i`` is named ``<pdb_id>_<chain_id>``
start_resnum        [C] int64         residue number of the first residue
sequence, dssp      [R] uint8         one ASCII letter per residue
residue_mask        [R] uint8         optional: 1 where the residue's N, CA, C, O were observed
==================  ================  ================================================

``pdb2018_backbone``'s records are gap-free (no ``residue_mask``: every residue observed); a
template database built from PDB/mmCIF files holds whole chains, unobserved residues masked.

Chains are addressed by index; examples (see :mod:`af2struct.data.features`) are built for a
crop only, so the whole database stays as compact int16 in memory (~110 MB).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.protein import Protein
from af2struct.data.features import Example

BACKBONE_ATOMS = ("N", "CA", "C", "O")
_REQUIRED = ("coords_centiA", "chain_center", "offsets", "lengths", "pdb_ids", "chain_ids", "start_resnum", "sequence")


class BackboneDBError(ValueError):
    """A backbone database file that is missing, unreadable or inconsistent."""


def _load(path: Path) -> Dict[str, np.ndarray]:
    if not path.is_file():
        raise BackboneDBError(f"{path}: no such backbone database file")
    try:
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # numpy's own message would suggest allow_pickle=True: never say that
        what = "truncated or corrupt .npz archive" if isinstance(exc, (zipfile.BadZipFile, EOFError)) \
            else "not a numpy .npz archive of plain arrays"
        raise BackboneDBError(f"{path}: {what}") from None


class BackboneDB:
    """Read-only view of a ``chains_backbone.npz`` file.

    Args:
        path: the ``.npz`` file (loaded with ``allow_pickle=False``), or, with ``arrays`` (the
            same layout, made in memory), only the name it goes by.
    """

    def __init__(self, path: Union[str, Path], arrays: Optional[Dict[str, np.ndarray]] = None) -> None:
        path = Path(path)
        if arrays is None:
            arrays = _load(path)
        missing = [k for k in _REQUIRED if k not in arrays]
        if missing:
            raise BackboneDBError(f"{path}: not a backbone database (missing arrays {missing})")
        self.path = path
        self.coords = arrays["coords_centiA"]
        self.center = arrays["chain_center"].astype(np.float32)
        self.offsets = arrays["offsets"].astype(np.int64)
        self.lengths = arrays["lengths"].astype(np.int64)
        self.start_resnum = arrays["start_resnum"].astype(np.int64)
        self._sequence = arrays["sequence"]
        self._dssp = arrays.get("dssp")
        mask = arrays.get("residue_mask")
        self.observed = np.ones(len(self._sequence), bool) if mask is None else mask.astype(bool)
        # arrays beyond the layout (e.g. a template library's release_dates), per chain
        self.extra = {k: v for k, v in arrays.items() if k not in _REQUIRED + ("dssp", "atom_order", "residue_mask")}
        order = arrays.get("atom_order")
        if order is not None and tuple(x.decode() for x in order) != BACKBONE_ATOMS:
            raise BackboneDBError(f"{path}: atom order {order} is not {BACKBONE_ATOMS}")
        r, c = len(self._sequence), len(self.offsets)
        if self.coords.shape != (r, 4, 3) or self.center.shape != (c, 3) or len(self.lengths) != c \
                or self.observed.shape != (r,):
            raise BackboneDBError(f"{path}: array shapes disagree (coords {self.coords.shape}, {c} chains, "
                                  f"{r} residues)")
        if c and (self.offsets.min() < 0 or (self.offsets + self.lengths).max() > r or self.lengths.min() < 1):
            raise BackboneDBError(f"{path}: chain offsets/lengths point outside the {r} residues")
        self.names: List[str] = [f"{p.decode()}_{ch.decode()}" for p, ch in zip(arrays["pdb_ids"], arrays["chain_ids"])]
        self._check_coordinates()
        # ASCII letter -> aatype (anything not among the 20 is unknown)
        self._lut = np.full(256, rc.unk_restype_index, np.int64)
        for letter, i in rc.restype_order.items():
            self._lut[ord(letter)] = i

    def _check_coordinates(self) -> None:
        """Refuse a database whose coordinates cannot be a protein backbone: non-finite chain
        centres, or a chain whose N-CA bonds are not about 1.46 A (median outside 1.3-1.6 A; a
        chain of all-zero coordinates has 0)."""
        bad = np.nonzero(~np.isfinite(self.center).all(-1))[0]
        if len(bad):
            raise BackboneDBError(f"{self.path}: chain {self.names[bad[0]]} (index {bad[0]}) has a non-finite centre; "
                                  f"{len(bad)} chain(s) in all")
        if not len(self.offsets):
            return
        n_ca = np.linalg.norm((self.coords[:, 1].astype(np.float32) - self.coords[:, 0]) / 100.0, axis=-1)
        n_ca = np.where(self.observed, n_ca, np.nan)  # unobserved residues have no coordinates
        order = np.argsort(self.offsets)
        starts = self.offsets[order]
        with np.errstate(all="ignore"):
            medians = np.array([np.nanmedian(n_ca[o:o + n]) if self.observed[o:o + n].any() else 0.0
                                for o, n in zip(starts, self.lengths[order])])
        wrong = order[(medians < 1.3) | (medians > 1.6)]
        if len(wrong):
            i = int(wrong[0])
            raise BackboneDBError(f"{self.path}: chain {self.names[i]} (index {i}) has N-CA bonds of "
                                  f"{float(medians[np.nonzero(order == i)[0][0]]):.2f} A (median), not a protein "
                                  f"backbone's 1.46 A; {len(wrong)} chain(s) in all")

    def __len__(self) -> int:
        return len(self.offsets)

    def _rows(self, i: int, start: int = 0, size: Optional[int] = None) -> slice:
        n = int(self.lengths[i])
        size = n - start if size is None else min(size, n - start)
        o = int(self.offsets[i]) + start
        return slice(o, o + size)

    def sequence(self, i: int) -> str:
        return self._sequence[self._rows(i)].tobytes().decode("ascii")

    def dssp(self, i: int) -> str:
        """DSSP 8-state string of chain ``i`` ('' when the file has none)."""
        return "" if self._dssp is None else self._dssp[self._rows(i)].tobytes().decode("ascii")

    def backbone(self, i: int, start: int = 0, size: Optional[int] = None) -> np.ndarray:
        """``[n, 4, 3]`` float32 N, CA, C, O in Angstrom (residues ``start : start + size``;
        zeros where a residue was not observed, see :meth:`observed_mask`)."""
        rows = self._rows(i, start, size)
        return np.where(self.observed[rows, None, None],
                        self.coords[rows].astype(np.float32) / 100.0 + self.center[i], 0.0).astype(np.float32)

    def observed_mask(self, i: int, start: int = 0, size: Optional[int] = None) -> np.ndarray:
        """``[n]`` bool: the residue's N, CA, C and O were observed."""
        return self.observed[self._rows(i, start, size)]

    def example(self, i: int, start: int = 0, size: Optional[int] = None) -> Example:
        """Training features for residues ``start : start + size`` of chain ``i`` (single
        sequence; backbone atoms as targets, no side chains, so every chi is masked)."""
        rows = self._rows(i, start, size)
        n = rows.stop - rows.start
        aatype = self._lut[self._sequence[rows]]
        pos = np.zeros((n, rc.atom_type_num, 3), np.float32)
        mask = np.zeros((n, rc.atom_type_num), np.float32)
        idx = [rc.atom_order[a] for a in BACKBONE_ATOMS]
        pos[:, idx] = self.backbone(i, start, n)
        mask[:, idx] = self.observed[rows, None]
        return {
            "aatype": aatype,
            "residue_index": (self.start_resnum[i] + start + np.arange(n)).astype(np.int64),
            "seq_mask": np.ones(n, np.float32),
            "msa": aatype[None].copy(),
            "msa_mask": np.ones((1, n), np.float32),
            "deletion_value": np.zeros((1, n), np.float32),
            "all_atom_positions": pos,
            "all_atom_mask": mask,
            "chi_angles": np.zeros((n, 4), np.float32),
            "chi_mask": np.zeros((n, 4), np.float32),
        }

    def protein(self, i: int) -> Protein:
        """Chain ``i`` as a backbone-only :class:`Protein` (N, CA, C, O)."""
        ex = self.example(i)
        return Protein(aatype=ex["aatype"].astype(np.int32), atom_positions=ex["all_atom_positions"],
                       atom_mask=ex["all_atom_mask"], residue_index=ex["residue_index"].astype(np.int32))

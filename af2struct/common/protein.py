"""The project's one interchange type: a frozen, numpy-only protein chain in atom37 layout.

Model output, relax input/output, evaluation and datasets all speak :class:`Protein`.
Modelled on AlphaFold's ``common/protein.py``.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from af2struct.common import residue_constants as rc


class ProteinError(ValueError):
    """A Protein whose arrays are inconsistent (shape, dtype, NaN, values out of range)."""


@dataclasses.dataclass(frozen=True)
class Protein:
    """A single protein chain (or several chains) in atom37 layout.

    Attributes:
        aatype: ``[L]`` int32 residue types in ``residue_constants.restypes`` order (20 = unknown).
        atom_positions: ``[L, 37, 3]`` float32 Cartesian coordinates in Angstrom.
        atom_mask: ``[L, 37]`` float32, 1 where an atom is present (observed or built).
        residue_index: ``[L]`` int32 residue numbers as in the source file (CASP/PDB numbering).
        chain_id: ``[L]`` str per-residue chain ids (a single string given to the constructor
            is taken for every residue).
        b_factors: ``[L, 37]`` float32 B-factors; model outputs store per-residue pLDDT here.
        insertion_code: ``[L]`` str insertion codes ('' when none); optional.

    Arrays are copied read-only on construction, so a Protein can be shared freely.
    """

    aatype: np.ndarray
    atom_positions: np.ndarray
    atom_mask: np.ndarray
    residue_index: np.ndarray
    chain_id: np.ndarray = "A"  # type: ignore[assignment]  (a str is broadcast to [L])
    b_factors: Optional[np.ndarray] = None
    insertion_code: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        def freeze(name: str, value: np.ndarray) -> None:
            value = np.array(value, copy=True)
            value.flags.writeable = False
            object.__setattr__(self, name, value)

        aatype = np.asarray(self.aatype)
        if aatype.ndim != 1:
            raise ProteinError(f"aatype must be [L], got shape {aatype.shape}")
        if not np.issubdtype(aatype.dtype, np.integer):
            raise ProteinError(f"aatype must be integer, got {aatype.dtype}")
        n = aatype.shape[0]
        if n and (aatype.min() < 0 or aatype.max() > rc.unk_restype_index):
            raise ProteinError(f"aatype values must be in [0, {rc.unk_restype_index}]")
        freeze("aatype", aatype.astype(np.int32))

        pos = np.asarray(self.atom_positions)
        if pos.shape != (n, rc.atom_type_num, 3):
            raise ProteinError(f"atom_positions must be [L={n}, 37, 3], got {pos.shape}")
        if not np.issubdtype(pos.dtype, np.floating):
            raise ProteinError(f"atom_positions must be floating point, got {pos.dtype}")
        mask = np.asarray(self.atom_mask)
        if mask.shape != (n, rc.atom_type_num):
            raise ProteinError(f"atom_mask must be [L={n}, 37], got {mask.shape}")
        mask = mask.astype(np.float32)
        if not np.all((mask == 0) | (mask == 1)):
            raise ProteinError("atom_mask must contain only 0 and 1")
        if not np.all(np.isfinite(pos[mask > 0])):
            bad = sorted(set(np.nonzero(~np.isfinite(pos).all(-1) & (mask > 0))[0].tolist()))
            raise ProteinError(f"non-finite coordinates in residue(s) {', '.join(self._labels(bad[:10]))}"
                               + (f" (+{len(bad) - 10} more)" if len(bad) > 10 else ""))
        # Absent atoms carry zeros so that no NaN ever leaks into arithmetic.
        pos = np.where(mask[..., None] > 0, pos, 0.0).astype(np.float32)
        freeze("atom_positions", pos)
        freeze("atom_mask", mask)

        ridx = np.asarray(self.residue_index)
        if ridx.shape != (n,) or not np.issubdtype(ridx.dtype, np.integer):
            raise ProteinError(f"residue_index must be int [L={n}], got {ridx.dtype} {ridx.shape}")
        freeze("residue_index", ridx.astype(np.int32))

        single = isinstance(self.chain_id, str)
        cid = np.full((n,), self.chain_id, dtype=str) if single else np.asarray(self.chain_id, dtype=str)
        if cid.shape != (n,):
            raise ProteinError(f"chain_id must be one string or [L={n}] strings, got shape {cid.shape}")
        if (single and not self.chain_id) or (cid == "").any():
            raise ProteinError("chain_id must be non-empty")
        freeze("chain_id", cid)

        if self.b_factors is None:
            b = np.zeros((n, rc.atom_type_num), dtype=np.float32)
        else:
            b = np.asarray(self.b_factors, dtype=np.float32)
            if b.shape != (n, rc.atom_type_num):
                raise ProteinError(f"b_factors must be [L={n}, 37], got {b.shape}")
        freeze("b_factors", b)

        if self.insertion_code is None:
            ins = np.full((n,), "", dtype="<U1")
        else:
            ins = np.asarray(self.insertion_code, dtype=str)
            if ins.shape != (n,):
                raise ProteinError(f"insertion_code must be [L={n}], got {ins.shape}")
        freeze("insertion_code", ins)

    def _labels(self, positions) -> List[str]:
        """``"<resname> <chain><number><insertion code>"`` of residues at array ``positions``, as a
        structure file names them (read from the raw fields: used while validating)."""
        ridx = np.asarray(self.residue_index)
        chains = self.chain_id if not isinstance(self.chain_id, str) else [self.chain_id] * len(ridx)
        icode = self.insertion_code if self.insertion_code is not None else [""] * len(ridx)
        names = [rc.restype_1to3.get(rc.restypes_with_x_and_gap[int(a)], "UNK") if int(a) < rc.restype_num
                 else "UNK" for a in np.asarray(self.aatype)]
        return [f"{names[i]} {chains[i]}{int(ridx[i])}{str(icode[i]).strip()}" for i in positions]

    # ---------------------------------------------------------------- convenience
    def __len__(self) -> int:
        return int(self.aatype.shape[0])

    @property
    def sequence(self) -> str:
        """One-letter sequence (``X`` for unknown residues)."""
        return rc.aatype_to_sequence(self.aatype)

    @property
    def chains(self) -> Tuple[str, ...]:
        """The chain ids in order of first appearance (one for a single chain)."""
        return tuple(dict.fromkeys(self.chain_id.tolist()))

    @property
    def ca_positions(self) -> np.ndarray:
        """``[L, 3]`` Calpha coordinates."""
        return self.atom_positions[:, rc.ca_index]

    @property
    def ca_mask(self) -> np.ndarray:
        """``[L]`` Calpha presence."""
        return self.atom_mask[:, rc.ca_index]

    @property
    def residue_b_factors(self) -> np.ndarray:
        """``[L]`` per-residue B-factor (Calpha's, or the mean over present atoms)."""
        ca = self.b_factors[:, rc.ca_index]
        m = self.atom_mask
        mean = (self.b_factors * m).sum(-1) / np.maximum(m.sum(-1), 1)
        return np.where(self.ca_mask > 0, ca, mean).astype(np.float32)

    def replace(self, **changes) -> "Protein":
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_residue_b_factors(self, values: np.ndarray) -> "Protein":
        """A copy whose B-factors are ``values [L]`` on every atom (e.g. pLDDT)."""
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(self),):
            raise ProteinError(f"per-residue values must be [L={len(self)}], got {values.shape}")
        return self.replace(b_factors=np.repeat(values[:, None], rc.atom_type_num, axis=1))

    def select(self, index: np.ndarray) -> "Protein":
        """A copy restricted to residues ``index`` (boolean mask or integer positions)."""
        return Protein(
            aatype=self.aatype[index],
            atom_positions=self.atom_positions[index],
            atom_mask=self.atom_mask[index],
            residue_index=self.residue_index[index],
            chain_id=self.chain_id[index],
            b_factors=self.b_factors[index],
            insertion_code=self.insertion_code[index],
        )

    @classmethod
    def from_sequence(cls, sequence: str, chain_id: str = "A") -> "Protein":
        """A Protein with the given sequence and no atoms (positions zero, mask zero)."""
        aatype = rc.sequence_to_aatype(sequence)
        n = len(aatype)
        return cls(
            aatype=aatype,
            atom_positions=np.zeros((n, rc.atom_type_num, 3), np.float32),
            atom_mask=np.zeros((n, rc.atom_type_num), np.float32),
            residue_index=np.arange(1, n + 1, dtype=np.int32),
            chain_id=chain_id,
        )

"""SidechainNet-format datasets: build them from structures, read them back into Proteins.

The format is the dict that ``sidechainnet.load(local_scn_path=...)`` reads: splits
(``train``, ``valid-<name>``, ``test``) each holding parallel lists

======  ==========================================================================================
seq     str [L]: one-letter sequence (the full sequence when known, else the observed residues)
ang     float [L, 12]: angles from the coordinates (see ``geometry.backbone.scn_angles``), NaN pad
ids     str: entry name
evo     float [L, 21]: profile (20 amino-acid frequencies + information content); one-hot of the
        sequence with information 0 when no MSA is given
msk     str [L]: ``+`` residue observed, ``-`` missing
crd     float [L*14, 3]: coordinates in SidechainNet's 14-atom layout, NaN where absent
sec     str [L]: DSSP 8-state codes (``BEGHILST``), ``" "`` where missing
res     float: resolution in Angstrom (0 when unknown)
ums     str: space-separated three-letter names as in the file (``MSE`` for seleno-Met)
mod     int [L]: 1 where the residue was read from a modified residue
======  ==========================================================================================

plus ``settings`` and ``description``. Pickles are code: load only files you trust
(SidechainNet's own downloads, or files this project wrote).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.files import atomic_path
from af2struct.common.io import StructureRecord
from af2struct.common.layouts import atom37_to_scn14, scn14_to_atom37
from af2struct.common.protein import Protein
from af2struct.data.dssp import dssp
from af2struct.geometry.backbone import scn_angles

logger = logging.getLogger(__name__)

SCN_KEYS = ("seq", "ang", "ids", "evo", "msk", "crd", "sec", "res", "ums", "mod")
SCN_ATOMS = 14
EVO_DIM = 21


class DatasetError(ValueError):
    """A file that is not a SidechainNet-shaped dataset, or an entry that cannot be built."""


def _full_sequence_alignment(
    protein: Protein, full_sequence: str, name: str
) -> np.ndarray:
    """Position of each observed residue in ``full_sequence`` by residue number (``num - 1``)."""
    pos = protein.residue_index.astype(np.int64) - 1
    if (protein.insertion_code != "").any():
        raise DatasetError(f"{name}: insertion codes present; cannot place residues by number")
    if pos.min() < 0 or pos.max() >= len(full_sequence) or len(set(pos.tolist())) != len(pos):
        raise DatasetError(
            f"{name}: residue numbers {int(pos.min()) + 1}..{int(pos.max()) + 1} do not fit the "
            f"full sequence of length {len(full_sequence)}"
        )
    obs = protein.sequence
    bad = [f"{obs[i]}{p + 1}!={full_sequence[p]}" for i, p in enumerate(pos) if full_sequence[p] != obs[i]]
    if bad:
        raise DatasetError(f"{name}: observed residues differ from the full sequence: {bad[:5]}")
    return pos


def make_entry(
    record: StructureRecord,
    name: str,
    full_sequence: Optional[str] = None,
    profile: Optional[np.ndarray] = None,
) -> Dict[str, object]:
    """One SidechainNet entry (a dict with ``SCN_KEYS``) from a structure record.

    Args:
        record: what :func:`af2struct.common.io.read_structure` returned for one chain.
        name: the entry id.
        full_sequence: the full (SEQRES/target) sequence; observed residues are placed by
            residue number (``sequence[num - 1]``, CASP numbering) and the rest marked missing.
        profile: optional ``[L_full, 21]`` MSA profile for ``evo``.
    """
    protein = record.protein
    if len(protein.chains) > 1:
        raise DatasetError(f"{name}: one chain per entry; got chains {sorted(protein.chains)}")
    if full_sequence is not None:
        rc.sequence_to_aatype(full_sequence)  # validates letters
        full_sequence = "".join(full_sequence.split()).upper()
        place = _full_sequence_alignment(protein, full_sequence, name)
        n = len(full_sequence)
    else:
        place = np.arange(len(protein))
        n = len(protein)
        full_sequence = protein.sequence
        gaps = int((np.diff(protein.residue_index) > 1).sum())
        if gaps:
            logger.warning(
                "%s: residue numbering has %d gap(s); without a full sequence (--sequences) the "
                "missing residues cannot be marked in 'msk'", name, gaps)
    if "X" in protein.sequence:
        raise DatasetError(f"{name}: unknown residues cannot be written in SidechainNet format")

    crd14, m14 = atom37_to_scn14(protein.aatype, protein.atom_positions, protein.atom_mask)
    crd = np.full((n, SCN_ATOMS, 3), np.nan, np.float32)
    crd[place] = np.where(m14[..., None] > 0, crd14, np.nan)
    ang = np.full((n, 12), np.nan, np.float32)
    ang[place] = scn_angles(protein)
    sec = np.full(n, " ", "<U1")
    sec[place] = list(dssp(protein))
    msk = np.full(n, "-", "<U1")
    msk[place] = "+"
    mod = np.zeros(n, np.int64)
    mod[place] = record.is_modified.astype(np.int64)
    ums = [rc.restype_1to3[c] for c in full_sequence]
    for i, p in enumerate(place):
        ums[p] = record.source_resnames[i]
    if profile is None:
        evo = np.zeros((n, EVO_DIM), np.float32)
        evo[np.arange(n), rc.sequence_to_aatype(full_sequence)] = 1.0
    else:
        evo = np.asarray(profile, np.float32)
        if evo.shape != (n, EVO_DIM):
            raise DatasetError(f"{name}: profile must be [{n}, {EVO_DIM}], got {evo.shape}")
    return {
        "seq": full_sequence,
        "ang": ang,
        "ids": name,
        "evo": evo,
        "msk": "".join(msk),
        "crd": crd.reshape(n * SCN_ATOMS, 3),
        "sec": "".join(sec),
        "res": float(record.resolution or 0.0),
        "ums": " ".join(ums),
        "mod": mod,
    }


def empty_split() -> Dict[str, list]:
    return {k: [] for k in SCN_KEYS}


def build_dataset(
    splits: Mapping[str, Sequence[Dict[str, object]]], description: str = ""
) -> Dict[str, object]:
    """Assemble entries per split into the SidechainNet dict (splits + settings)."""
    data: Dict[str, object] = {}
    for split, entries in splits.items():
        if not (split == "train" or split == "test" or split.startswith("valid-")):
            raise DatasetError(f"split {split!r}: use 'train', 'test' or 'valid-<name>'")
        d = empty_split()
        for e in entries:
            for k in SCN_KEYS:
                d[k].append(e[k])
        data[split] = d
    lengths = [len(s) for e in splits.values() for s in (x["seq"] for x in e)]
    data["settings"] = {
        "n_proteins": sum(len(e) for e in splits.values()),
        "max_len": max(lengths) if lengths else 0,
        "crd_atoms_per_residue": SCN_ATOMS,
        "angles": "phi psi omega N-CA-C CA-C-N C-N-CA x0 chi1 chi2 chi3 chi4 x5",
        "written_by": "af2struct",
    }
    data["description"] = description or "SidechainNet-format dataset written by af2struct"
    return data


def save_dataset(data: Mapping[str, object], path: Union[str, Path]) -> Path:
    """Validate and pickle a SidechainNet dict atomically."""
    validate_dataset(data, str(path))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(dict(data), fh, protocol=4)
    return Path(path)


def split_names(data: Mapping[str, object]) -> List[str]:
    """The data splits present (``train``, ``valid-*``, ``test``)."""
    return [k for k in data if isinstance(k, str) and (k in ("train", "test") or k.startswith("valid"))]


def validate_dataset(data: object, source: str = "dataset") -> None:
    """Raise :class:`DatasetError` unless ``data`` is SidechainNet-shaped."""
    if not isinstance(data, Mapping):
        raise DatasetError(f"{source}: not a SidechainNet dataset (a {type(data).__name__}, not a dict)")
    splits = split_names(data)
    if not splits:
        raise DatasetError(f"{source}: no 'train', 'valid-*' or 'test' split found (keys: {list(data)[:8]})")
    for split in splits:
        d = data[split]
        if not isinstance(d, Mapping):
            raise DatasetError(f"{source}: split {split!r} is not a dict")
        missing = [k for k in ("seq", "crd", "ids") if k not in d]
        if missing:
            raise DatasetError(f"{source}: split {split!r} lacks {missing}")
        n = len(d["seq"])
        for k in SCN_KEYS:
            if k in d and len(d[k]) != n:
                raise DatasetError(f"{source}: split {split!r}: {len(d[k])} {k!r} for {n} sequences")
        for i, (seq, crd) in enumerate(zip(d["seq"], d["crd"])):
            arr = np.asarray(crd)
            if arr.size % (len(seq) * 3) or arr.size // (len(seq) * 3) not in (14, 15):
                raise DatasetError(
                    f"{source}: split {split!r} entry {i} ({d['ids'][i]}): crd of shape "
                    f"{arr.shape} does not hold 14 (or 15) atoms for {len(seq)} residues"
                )


def load_dataset(path: Union[str, Path]) -> Dict[str, object]:
    """Read and validate a SidechainNet pickle (trusted files only: pickles run code)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a SidechainNet pickle ({type(exc).__name__}: {exc})") from None
    validate_dataset(data, str(path))
    return data


def entry_to_protein(split: Mapping[str, Sequence], i: int, observed_only: bool = True) -> Protein:
    """Entry ``i`` of a split as a :class:`Protein`.

    Residues are numbered 1..L along ``seq``; with ``observed_only`` the residues marked ``-``
    in ``msk`` (or without coordinates) are dropped, keeping their numbers, so chain breaks
    remain visible in ``residue_index``. Accepts 14-atom and SidechainNet-1.0 15-atom (with OXT)
    coordinates, NaN- or zero-padded.
    """
    seq = "".join(split["seq"][i].split())
    n = len(seq)
    aatype = rc.sequence_to_aatype(seq, allow_unknown=True)
    crd = np.asarray(split["crd"][i], np.float32).reshape(n, -1, 3)
    if crd.shape[1] == 15:  # SidechainNet 1.0 layout: N CA C O OXT side chain...
        crd = np.concatenate([crd[:, :4], crd[:, 5:]], axis=1)
    present = np.isfinite(crd).all(-1) & (np.abs(np.nan_to_num(crd)).sum(-1) > 0)
    pos37, mask37 = scn14_to_atom37(aatype, np.nan_to_num(crd), present.astype(np.float32))
    keep = mask37.any(-1)
    if "msk" in split and split["msk"][i] is not None:
        keep &= np.array([c == "+" for c in split["msk"][i]], bool)
    if not observed_only:
        keep = np.ones(n, bool)
    idx = np.nonzero(keep)[0]
    return Protein(
        aatype=aatype[idx],
        atom_positions=pos37[idx],
        atom_mask=mask37[idx],
        residue_index=(idx + 1).astype(np.int32),
        chain_id="A",
    )


def iter_proteins(
    data: Mapping[str, object], splits: Optional[Sequence[str]] = None
) -> Iterator[Tuple[str, str, Protein]]:
    """Yield ``(split, id, Protein)`` over a SidechainNet dict."""
    for split in splits or split_names(data):
        d = data[split]
        for i, pid in enumerate(d["ids"]):
            yield split, str(pid), entry_to_protein(d, i)

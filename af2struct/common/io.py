"""Structure IO through gemmi: PDB / mmCIF (optionally gzipped) <-> :class:`Protein`.

Reading rules
-------------
* Model 1 only; alternate locations: the first conformer; hydrogens dropped.
* The 20 standard amino acids are read; MSE is read as MET (SE -> SD).
* UNK is read as the unknown type (``X``, atoms as found, usually the backbone).
* Other non-standard residues (modified amino acids) are reported in a warning with their
  positions and skipped; waters and ligands are skipped (counted at debug level).
* Missing atoms are masked, never invented.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import logging
import os
import textwrap
import zlib
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import gemmi
import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.files import atomic_write_text
from af2struct.common.protein import Protein

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

_WATERS = {"HOH", "WAT", "DOD", "H2O"}
PDB_SUFFIXES = (".pdb", ".ent", ".pdb.gz", ".ent.gz")
CIF_SUFFIXES = (".cif", ".mmcif", ".cif.gz", ".mmcif.gz")
STRUCTURE_SUFFIXES = PDB_SUFFIXES + CIF_SUFFIXES


class StructureError(ValueError):
    """A file that cannot be read as a protein structure, or a bad request (unknown chain)."""


def is_structure_file(path: PathLike) -> bool:
    """Whether ``path`` has a PDB/mmCIF extension (optionally ``.gz``)."""
    return str(path).lower().endswith(STRUCTURE_SUFFIXES)


def find_structure_files(inputs, recursive: bool = False) -> List[Path]:
    """Structure files from files, folders and glob patterns; sorted, unique. Folders are read
    one level deep, or with ``recursive`` through their subfolders too (the wwPDB's divided
    layout: ``mmCIF/ak/1aki.cif.gz``).

    Raises ``FileNotFoundError`` for an input that is none of these.
    """
    found: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            listing = sorted(p.rglob("*")) if recursive else sorted(p.iterdir())
            found += [x for x in listing if x.is_file() and is_structure_file(x)]
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(glob.glob(str(item)))
            if not matches:
                raise FileNotFoundError(f"{item}: no such file or folder (or matching files)")
            found += [Path(m) for m in matches if Path(m).is_file()]
    seen, unique = set(), []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def structure_name(path: PathLike) -> str:
    """File name without structure extensions: ``x/T1024.pdb.gz`` -> ``T1024``."""
    name = Path(path).name
    for suffix in sorted(STRUCTURE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise StructureError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise StructureError(f"{path}: empty file")
    if path.suffix == ".gz":
        # Check the gzip stream ourselves: a truncated member must not pass as a short file.
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(1 << 20):
                    pass
        except (OSError, EOFError, zlib.error) as exc:
            raise StructureError(f"{path}: corrupt or truncated gzip ({exc})") from None


def _cleaned(st, path: Path):
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise StructureError(f"{path}: no atoms found; is this a PDB/mmCIF structure?")
    st.remove_hydrogens()
    st.remove_alternative_conformations()
    return st


def read_gemmi(path: Path):
    """A gemmi Structure of ``path`` (chain parts merged, hydrogens and alternative locations
    removed); :class:`StructureError` for a missing, empty, truncated or unreadable file."""
    _check_readable(path)
    try:
        st = gemmi.read_structure(str(path), merge_chain_parts=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise StructureError(f"{path}: not a readable PDB/mmCIF file ({exc})") from None
    return _cleaned(st, path)


def read_gemmi_with_block(path: Path):
    """``(structure, mmCIF block)``: :func:`read_gemmi`, the file parsed once, its mmCIF block
    kept for the items a Structure does not carry (the block is ``None`` for a PDB file)."""
    if ".cif" not in path.name.lower():
        return read_gemmi(path), None
    _check_readable(path)
    try:
        block = gemmi.cif.read(str(path)).sole_block()
        st = gemmi.make_structure_from_block(block)
        st.merge_chain_parts()
    except (RuntimeError, ValueError, OSError) as exc:
        raise StructureError(f"{path}: not a readable PDB/mmCIF file ({exc})") from None
    return _cleaned(st, path), block


@dataclasses.dataclass(frozen=True)
class StructureRecord:
    """A :class:`Protein` plus what the reader saw in the file.

    Attributes:
        protein: the protein residues read.
        source_resnames: ``[L]`` residue names as written in the file (``MSE`` where read as MET).
        resolution: resolution in Angstrom from the header, or ``None``.
        skipped: non-standard residues that were skipped, as ``"NAME chainNUM"`` strings.
    """

    protein: Protein
    source_resnames: Tuple[str, ...]
    resolution: Optional[float]
    skipped: Tuple[str, ...]

    @property
    def is_modified(self) -> np.ndarray:
        """``[L]`` bool: residue read from a modified residue (e.g. MSE)."""
        return np.array([n in rc.modified_to_standard for n in self.source_resnames], bool)


def load_structure(path: PathLike, chain: Optional[str] = None) -> Protein:
    """Read a PDB or mmCIF file (``.gz`` allowed) into a :class:`Protein`.

    Args:
        path: the structure file.
        chain: author chain id to read; ``None`` reads every protein chain (a multi-chain
            Protein then carries per-residue chain ids).

    Raises:
        StructureError: unreadable/corrupt file, no protein residues, or unknown chain id.
    """
    return read_structure(path, chain).protein


def _residue_atoms(res: gemmi.Residue, renames: Dict[str, str]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """atom37 ``(positions [37, 3], mask [37], b-factors [37])`` of one residue (the first
    alternate location of each atom; modified residues' atoms renamed to the standard ones)."""
    pos = np.zeros((rc.atom_type_num, 3), np.float32)
    mask = np.zeros((rc.atom_type_num,), np.float32)
    bf = np.zeros((rc.atom_type_num,), np.float32)
    for atom in res:
        aname = renames.get(atom.name.strip().upper(), atom.name.strip().upper())
        idx = rc.atom_order.get(aname)
        if idx is None or mask[idx]:
            continue
        pos[idx] = (atom.pos.x, atom.pos.y, atom.pos.z)
        mask[idx] = 1.0
        bf[idx] = atom.b_iso
    return pos, mask, bf


def read_structure(path: PathLike, chain: Optional[str] = None) -> StructureRecord:
    """Like :func:`load_structure`, returning a :class:`StructureRecord` with file details."""
    path = Path(path)
    st = read_gemmi(path)
    model = st[0]
    chain_names = [c.name for c in model]
    if chain is not None and chain not in chain_names:
        raise StructureError(
            f"{path}: chain {chain!r} not found; chains present: {', '.join(chain_names) or 'none'}"
        )

    aatype: List[int] = []
    positions: List[np.ndarray] = []
    masks: List[np.ndarray] = []
    bfacs: List[np.ndarray] = []
    resnums: List[int] = []
    icodes: List[str] = []
    chains: List[str] = []
    source_names: List[str] = []
    skipped: List[str] = []
    hetero = Counter()

    for ch in model:
        if chain is not None and ch.name != chain:
            continue
        for res in ch:
            name = res.name.strip().upper()
            if name in _WATERS:
                hetero[name] += 1
                continue
            std = rc.modified_to_standard.get(name, name)
            if std not in rc.restype_3to1 and std != "UNK":
                if res.het_flag == "H" and not _looks_like_polymer(res):
                    hetero[name] += 1
                else:
                    skipped.append(f"{name} {ch.name}{res.seqid.num}{res.seqid.icode.strip()}")
                continue
            pos, mask, bf = _residue_atoms(res, rc.modified_atom_renames.get(name, {}))
            if not mask.any():
                continue
            aatype.append(rc.unk_restype_index if std == "UNK" else rc.restype_order[rc.restype_3to1[std]])
            positions.append(pos)
            masks.append(mask)
            bfacs.append(bf)
            resnums.append(res.seqid.num)
            icodes.append(res.seqid.icode.strip())
            chains.append(ch.name)
            source_names.append(name)

    if skipped:
        shown = ", ".join(skipped[:10]) + (f" (+{len(skipped) - 10} more)" if len(skipped) > 10 else "")
        logger.warning("%s: skipped %d non-standard residue(s): %s", path, len(skipped), shown)
    if hetero:
        logger.debug("%s: skipped hetero groups %s", path, dict(hetero))
    if not aatype:
        where = f" in chain {chain!r}" if chain is not None else ""
        raise StructureError(f"{path}: no protein residues found{where}")

    protein = Protein(
        aatype=np.array(aatype, np.int32),
        atom_positions=np.stack(positions),
        atom_mask=np.stack(masks),
        residue_index=np.array(resnums, np.int32),
        chain_id=np.array(chains),
        b_factors=np.stack(bfacs),
        insertion_code=np.array(icodes, dtype="<U1"),
    )
    resolution = float(st.resolution) if st.resolution and st.resolution > 0 else None
    return StructureRecord(protein, tuple(source_names), resolution, tuple(skipped))


def _looks_like_polymer(res) -> bool:
    """A HETATM residue bonded into the chain (a modified amino acid) has backbone atoms."""
    names = {a.name.strip() for a in res}
    return {"N", "CA", "C"} <= names


def _to_gemmi(protein: Protein, name: str = "af2struct"):

    st = gemmi.Structure()
    st.name = name
    model = gemmi.Model("1")
    current = None
    chain_ids = protein.chain_id
    for i in range(len(protein)):
        cid = str(chain_ids[i])
        if current is None or current.name != cid:
            if current is not None:
                model.add_chain(current)
            current = gemmi.Chain(cid)
        res = gemmi.Residue()
        res.name = rc.resnames[int(protein.aatype[i])]
        res.seqid = gemmi.SeqId(int(protein.residue_index[i]), protein.insertion_code[i] or " ")
        res.het_flag = "A"
        res.entity_type = gemmi.EntityType.Polymer
        res.subchain = cid
        for j, aname in enumerate(rc.atom_types):
            if protein.atom_mask[i, j] <= 0:
                continue
            atom = gemmi.Atom()
            atom.name = aname
            atom.element = gemmi.Element(rc.atom_element(aname))
            x, y, z = (round(float(v), 3) for v in protein.atom_positions[i, j])
            atom.pos = gemmi.Position(x, y, z)
            atom.occ = 1.0
            atom.b_iso = round(float(protein.b_factors[i, j]), 2)
            res.add_atom(atom)
        current.add_residue(res)
    if current is not None:
        model.add_chain(current)
    st.add_model(model)
    st.setup_entities()
    for k, ent in enumerate(st.entities, 1):
        ent.name = str(k)
        first = next(ch for ch in st[0] if ch.name == ent.subchains[0])
        ent.full_sequence = [r.name for r in first]  # the modelled residues: label_seq_id 1..n
    st.assign_label_seq_id(force=True)
    return st


def to_pdb_string(protein: Protein, remarks: Sequence[str] = ()) -> str:
    """PDB text of ``protein`` (``REMARK 999`` lines from ``remarks``, ATOM records, TER per
    chain, END)."""
    st = _to_gemmi(protein)
    opts = gemmi.PdbWriteOptions()
    opts.minimal_file = True
    lines = [f"REMARK 999 {part}" for r in remarks for part in textwrap.wrap(r, 69)]
    return "".join(line.ljust(80) + "\n" for line in lines) + st.make_pdb_string(opts)


def read_annotations(path: PathLike) -> Tuple[List[str], bool]:
    """What a model file says about itself: its ``REMARK 999`` lines (PDB) or its
    ``_struct.pdbx_model_details`` lines (mmCIF), and whether it is ModelCIF with per-residue
    QA metrics (``_ma_qa_metric_local``: pLDDT, also in the B-factor column)."""
    path = Path(path)
    try:
        raw = gzip.open(path, "rt", errors="replace").read() if path.suffix == ".gz" else \
            path.read_text(errors="replace")
    except (OSError, EOFError, zlib.error):
        return [], False
    if raw.lstrip().startswith("data_"):
        try:
            block = gemmi.cif.read_string(raw).sole_block()
        except (RuntimeError, ValueError):
            return [], False
        details = block.find_value("_struct.pdbx_model_details")
        notes = [p.strip() for p in gemmi.cif.as_string(details).splitlines()] if details else []
        return [n for n in notes if n], block.find_value("_ma_qa_metric_local.metric_value") is not None or \
            bool(block.find_values("_ma_qa_metric_local.metric_value"))
    return [line[11:80].rstrip() for line in raw.splitlines() if line.startswith("REMARK 999 ")], False


def to_mmcif_string(protein: Protein, name: str = "af2struct") -> str:
    """mmCIF text of ``protein`` (entry ``name``, entity sequences, numeric label_seq_id)."""
    return _to_gemmi(protein, name).make_mmcif_document().as_string()


def save_structure(protein: Protein, path: PathLike, remarks: Sequence[str] = ()) -> Path:
    """Write ``protein`` to ``path`` atomically; PDB or mmCIF chosen by the extension.

    B-factors come from ``protein.b_factors`` (model outputs store per-residue pLDDT there).
    ``remarks`` become ``REMARK 999`` lines of a PDB file. ``.gz`` is not written; use ``.pdb``,
    ``.ent``, ``.cif`` or ``.mmcif``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pdb", ".ent"):
        text = to_pdb_string(protein, remarks)
    elif suffix in (".cif", ".mmcif"):
        text = to_mmcif_string(protein)
    else:
        raise StructureError(f"{path}: unknown structure extension {suffix!r}; use .pdb or .cif")
    atomic_write_text(path, text)
    return path

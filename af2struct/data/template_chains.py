"""A structure file's protein chains as templates: one chain is one template, whole across its gaps.

Real entries rarely have every residue observed: termini, loops and tags are missing. A template
is the chain's whole sequence with its observed backbone placed on it (AlphaFold's
``mmcif_parsing``: SEQRES positions mapped to coordinates through ``label_seq_id``), never one
template per gap-free stretch:

- mmCIF: the entity's sequence (``_entity_poly_seq``) and ``_atom_site.label_seq_id``;
- PDB with ``SEQRES``: gemmi aligns the observed residues to SEQRES (``assign_label_seq_id``);
- PDB without ``SEQRES``: positions from the residue numbers (a jump from 40 to 45 is four
  missing residues, read as ``X``; insertion codes 52, 52A, 52B are consecutive residues).

A residue is *observed* when it has N, CA, C and O. The entry is named by its accession only when
the file states one (mmCIF ``_entry.id``, a PDB ``HEADER``'s id code); otherwise by the file's
name, which is not a PDB id. The release date is the earliest
``_pdbx_audit_revision_history.revision_date`` (what AlphaFold reads), else the deposition date
(mmCIF ``recvd_initial_deposition_date``, PDB ``HEADER``), validated as a calendar date.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from pathlib import Path
from typing import List, Optional, Tuple

import gemmi
import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.common.io import read_gemmi_with_block, structure_name

BACKBONE_ATOMS = ("N", "CA", "C", "O")
MAX_NUMBERING_GAP = 500  # residue-number jumps beyond this are renumbering, not missing residues
ACCESSION = re.compile(r"^(?:[0-9][A-Z0-9]{3}|PDB_[0-9]{4}[0-9][A-Z0-9]{3})$")
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                       "NOV", "DEC"), 1)}


@dataclasses.dataclass(frozen=True)
class TemplateChain:
    """One protein chain of a structure file, whole.

    Attributes:
        entry: the accession (upper case) when ``accession``, else the file's name.
        accession: ``entry`` is a PDB id the file states (``_entry.id`` / ``HEADER``).
        chain: author chain id.
        sequence: one letter per residue of the whole chain (modified residues as their parent,
            others ``X``).
        backbone: ``[n, 4, 3]`` float32 N, CA, C, O (zeros where not observed).
        observed: ``[n]`` bool, the residue has N, CA, C and O.
        first_number: the number of position 0 (``label_seq_id`` 1 for a SEQRES chain, else the
            first residue number); position ``i`` is residue ``first_number + i``.
        release_date: ``YYYY-MM-DD`` or ``""`` (unknown).
        source: the file it was read from.
    """

    entry: str
    accession: bool
    chain: str
    sequence: str
    backbone: np.ndarray
    observed: np.ndarray
    first_number: int
    release_date: str
    source: str

    @property
    def name(self) -> str:
        return f"{self.entry}_{self.chain}"

    def __len__(self) -> int:
        return len(self.sequence)


def valid_date(text: str) -> str:
    """``text`` as ``YYYY-MM-DD`` when it is a real calendar date (ISO, or the PDB HEADER's
    ``19-NOV-97``), else ``""``. ``2021-02-30`` and ``0000-00-00`` are not dates."""
    text = (text or "").strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.date.fromisoformat(text).isoformat()
        m = re.fullmatch(r"(\d{2})-([A-Z]{3})-(\d{2})", text.upper())
        if m and m.group(2) in _MONTHS:
            yy = int(m.group(3))  # the PDB began in 1971: two-digit years from 70 are the 1900s
            return datetime.date(1900 + yy if yy >= 70 else 2000 + yy, _MONTHS[m.group(2)], int(m.group(1))).isoformat()
    except ValueError:
        pass
    return ""


def _release_date(st: gemmi.Structure, block) -> str:
    """The earliest revision date of the mmCIF ``block`` (``None`` for a PDB file), else the
    deposition date."""
    dates = [valid_date(d) for d in block.find_values("_pdbx_audit_revision_history.revision_date")] \
        if block is not None else []
    dates = [d for d in dates if d]
    if dates:
        return min(dates)
    key = "_pdbx_database_status.recvd_initial_deposition_date"
    return valid_date(st.info[key]) if key in st.info else ""


def _accession(st: gemmi.Structure) -> Optional[str]:
    entry = st.info["_entry.id"].strip().upper() if "_entry.id" in st.info else ""
    return entry if ACCESSION.match(entry) else None


def _letter(name: str) -> str:
    """One letter for a residue name: the 20 standard, modified residues as their parent, else X."""
    name = rc.modified_to_standard.get(name, name)
    if name in rc.restype_3to1:
        return rc.restype_3to1[name]
    info = gemmi.find_tabulated_residue(name)
    letter = info.one_letter_code.upper() if info is not None and info.is_amino_acid() else "X"
    return letter if letter in rc.restype_order else "X"


def _backbone(res: gemmi.Residue) -> Optional[np.ndarray]:
    out = np.zeros((4, 3), np.float32)
    for k, atom_name in enumerate(BACKBONE_ATOMS):
        atom = res.find_atom(atom_name, "*")
        if atom is None:
            return None
        out[k] = (atom.pos.x, atom.pos.y, atom.pos.z)
    return out


def _is_amino_acid(res: gemmi.Residue) -> bool:
    info = gemmi.find_tabulated_residue(res.name)
    return (info is not None and info.is_amino_acid()) or _backbone(res) is not None


def _by_label_seq(polymer, full_sequence) -> Optional[Tuple[str, List[Tuple[int, gemmi.Residue]]]]:
    """Positions from SEQRES: ``(sequence, [(position, residue)])``, or ``None`` when the residues
    do not all carry a ``label_seq_id`` inside the sequence."""
    n = len(full_sequence)
    placed, seen = [], set()
    for res in polymer:
        pos = res.label_seq - 1 if res.label_seq is not None else -1
        if not 0 <= pos < n:
            return None
        if pos in seen:  # microheterogeneity: the first residue at a position
            continue
        seen.add(pos)
        placed.append((pos, res))
    sequence = "".join(_letter(gemmi.Entity.first_mon(m)) for m in full_sequence)
    return sequence, placed


def _by_numbering(residues) -> Tuple[str, List[Tuple[int, gemmi.Residue]], int]:
    """Positions from residue numbers (no SEQRES): ``(sequence, [(position, residue)], first number)``."""
    letters: List[str] = []
    placed = []
    prev = None
    for res in residues:
        if prev is not None:
            jump = res.seqid.num - prev.seqid.num
            if 1 < jump <= MAX_NUMBERING_GAP:
                letters += ["X"] * (jump - 1)
        placed.append((len(letters), res))
        letters.append(_letter(res.name))
        prev = res
    return "".join(letters), placed, residues[0].seqid.num


def read_template_chains(path: Path, min_observed: int = 10) -> Tuple[List[TemplateChain], List[str]]:
    """Every protein chain of ``path`` (model 1) with at least ``min_observed`` observed residues,
    and a note for each chain left out. Raises ``StructureError`` for an unreadable file."""
    path = Path(path)
    st, block = read_gemmi_with_block(path)  # the file parsed once: the block has the revision dates
    st.setup_entities()
    has_seqres = any(e.full_sequence for e in st.entities if e.entity_type == gemmi.EntityType.Polymer)
    if block is None and has_seqres:
        st.assign_label_seq_id(False)  # PDB SEQRES: align the observed residues to it
    accession = _accession(st)
    entry = accession or structure_name(path)
    date = _release_date(st, block)
    chains, notes = [], []
    for ch in st[0]:
        polymer = ch.get_polymer()
        residues = [r for r in (polymer if len(polymer) else ch) if _is_amino_acid(r)]
        if not residues:
            continue
        entity = st.get_entity_of(polymer) if len(polymer) else None
        if entity is not None and entity.polymer_type not in (gemmi.PolymerType.PeptideL, gemmi.PolymerType.PeptideD,
                                                              gemmi.PolymerType.Unknown):
            continue
        by_seq = _by_label_seq(residues, entity.full_sequence) if entity is not None and entity.full_sequence else None
        if by_seq is not None:
            sequence, placed = by_seq
            first = 1
        else:
            sequence, placed, first = _by_numbering(residues)
        backbone = np.zeros((len(sequence), 4, 3), np.float32)
        observed = np.zeros(len(sequence), bool)
        for pos, res in placed:
            bb = _backbone(res)
            if bb is not None:
                backbone[pos], observed[pos] = bb, True
        if observed.sum() < min_observed:
            notes.append(f"chain {ch.name}: {int(observed.sum())} residue(s) with N, CA, C, O (< {min_observed})")
            continue
        chains.append(TemplateChain(entry, accession is not None, ch.name, sequence, backbone, observed, first,
                                    date, str(path)))
    return chains, notes

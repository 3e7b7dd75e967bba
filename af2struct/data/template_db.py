"""Build a template database (the ``chains_backbone.npz`` layout) from PDB/mmCIF files.

AlphaFold reads templates from a local PDB mirror (``--template_mmcif_dir``); this turns such a
folder into the one file :class:`~af2struct.data.template_search.TemplateDB` reads: every
protein chain's gap-free stretches (consecutive residues with N, CA, C, O and a C-N bond under
2 A) of at least ``min_length`` residues, named ``<PDB id>_<chain>``, with the entry's release
date where the file has one (mmCIF: the first ``_pdbx_audit_revision_history.revision_date``;
PDB: the deposition date of the HEADER line). A file that cannot be read is reported and
skipped, never silently.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import gemmi
import numpy as np
from tqdm import tqdm

from af2struct.common import residue_constants as rc
from af2struct.common.files import atomic_write_bytes
from af2struct.common.io import StructureError, find_structure_files, read_structure, structure_name
from af2struct.data.backbone_db import BACKBONE_ATOMS

logger = logging.getLogger(__name__)

MAX_PEPTIDE_BOND = 2.0  # A: a longer C-N distance is a chain break


class TemplateBuildError(ValueError):
    """Nothing usable to build a template database from."""


@dataclasses.dataclass
class BuildReport:
    """What a build read: files, chains (stretches) written, and every file skipped with why."""

    files: int = 0
    chains: int = 0
    residues: int = 0
    skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)


def release_date(path: Path) -> str:
    """``YYYY-MM-DD`` the entry was released (mmCIF) or deposited (PDB), ``""`` when unknown."""
    try:
        if ".cif" in path.name.lower():
            block = gemmi.cif.read(str(path)).sole_block()
            dates = [d for d in block.find_values("_pdbx_audit_revision_history.revision_date")
                     if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d)]
            if not dates:
                dates = [d for d in block.find_values("_pdbx_database_status.recvd_initial_deposition_date")
                         if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d)]
            return min(dates) if dates else ""
        st = gemmi.read_structure(str(path))
        key = "_pdbx_database_status.recvd_initial_deposition_date"
        d = st.info[key] if key in st.info else ""
        return d if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) else ""
    except (RuntimeError, ValueError, OSError):
        return ""


def _stretches(protein, min_length: int) -> Iterable[Tuple[str, np.ndarray]]:
    """``(chain id, residue indices)`` of every gap-free stretch with a full backbone."""
    idx = [rc.atom_order[a] for a in BACKBONE_ATOMS]
    full = protein.atom_mask[:, idx].all(-1)
    chain = np.asarray(protein.chain_id) if protein.chain_id is not None else np.full(len(protein), "A")
    n_pos = protein.atom_positions[:, rc.atom_order["N"]]
    c_pos = protein.atom_positions[:, rc.atom_order["C"]]
    bond = np.r_[np.linalg.norm(n_pos[1:] - c_pos[:-1], axis=-1), np.inf]  # residue i -> i + 1
    start = None
    for i in range(len(protein) + 1):
        ok = i < len(protein) and full[i]
        if ok and start is None:
            start = i
        last = not ok or i == len(protein) - 1 or chain[i + 1] != chain[i] or bond[i] > MAX_PEPTIDE_BOND \
            or not full[i + 1]
        if start is not None and (not ok or last):
            end = i + 1 if ok else i
            if end - start >= min_length:
                yield str(chain[start]), np.arange(start, end)
            start = None


def build_template_db(inputs: List[str], out: Path, min_length: int = 10, progress: bool = True) -> BuildReport:
    """Read every PDB/mmCIF file under ``inputs`` and write ``out`` (``.npz``, atomically)."""
    files = find_structure_files(inputs)
    if not files:
        raise TemplateBuildError(f"no PDB/mmCIF files found in {', '.join(map(str, inputs))}")
    report = BuildReport(files=len(files))
    coords, centers, lengths, pdb_ids, chain_ids, starts, seqs, dates = [], [], [], [], [], [], [], []
    for path in tqdm(files, desc="templates", unit="file", disable=not progress):
        try:
            protein = read_structure(path).protein
        except (StructureError, ValueError) as exc:
            report.skipped.append((str(path), str(exc)))
            logger.warning("skipped %s: %s", path, exc)
            continue
        entry = structure_name(path)
        m = re.match(r"(?:pdb)?([0-9][a-z0-9]{3})(?![a-z0-9])", entry, re.I)  # 1abc.cif, pdb1abc.ent, 1abc_A.pdb
        pdb_id = m.group(1).upper() if m else entry
        date = release_date(path)
        found = 0
        for chain, rows in _stretches(protein, min_length):
            bb = protein.atom_positions[rows][:, [rc.atom_order[a] for a in BACKBONE_ATOMS]].astype(np.float64)
            center = bb.reshape(-1, 3).mean(0)
            rel = np.round((bb - center) * 100)
            if np.abs(rel).max() > np.iinfo(np.int16).max:
                report.skipped.append((f"{path} chain {chain}", "wider than 327 A: does not fit the int16 layout"))
                continue
            coords.append(rel.astype(np.int16))
            centers.append(center.astype(np.float32))
            lengths.append(len(rows))
            pdb_ids.append(pdb_id)
            chain_ids.append(chain)
            starts.append(int(protein.residue_index[rows[0]]))
            seqs.append(rc.aatype_to_sequence(protein.aatype[rows]))
            dates.append(date)
            found += 1
        if not found:
            report.skipped.append((str(path), f"no protein stretch of >= {min_length} residues with N, CA, C, O"))
            logger.warning("skipped %s: no protein stretch of >= %d residues with a full backbone", path, min_length)
    if not coords:
        raise TemplateBuildError(f"none of the {len(files)} file(s) gave a usable chain")
    lengths_a = np.array(lengths, np.int64)
    arrays = {
        "coords_centiA": np.concatenate(coords), "chain_center": np.stack(centers),
        "offsets": np.r_[0, np.cumsum(lengths_a)[:-1]].astype(np.int64), "lengths": lengths_a,
        "pdb_ids": np.array([p.encode() for p in pdb_ids]), "chain_ids": np.array([c.encode() for c in chain_ids]),
        "start_resnum": np.array(starts, np.int64),
        "sequence": np.frombuffer("".join(seqs).encode("ascii"), np.uint8).copy(),
        "atom_order": np.array([a.encode() for a in BACKBONE_ATOMS]),
        "release_dates": np.array(dates, dtype="U10"),
    }
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out, buf.getvalue())
    report.chains, report.residues = len(lengths), int(lengths_a.sum())
    return report


def describe(report: BuildReport, out: Optional[Path] = None) -> str:
    """One paragraph for the log: what was written and what was skipped."""
    text = (f"{report.chains} chain stretch(es), {report.residues} residues from "
            f"{report.files - len({p.split(' chain ')[0] for p, _ in report.skipped})} of {report.files} file(s)"
            + (f" -> {out}" if out else ""))
    if report.skipped:
        text += f"; skipped {len(report.skipped)}: " + "; ".join(f"{p} ({why})" for p, why in report.skipped[:20])
    return text

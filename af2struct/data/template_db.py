"""Build a template database (the ``chains_backbone.npz`` layout) from PDB/mmCIF files.

AlphaFold reads templates from a local PDB mirror (``--template_mmcif_dir``); this turns such a
folder (searched through its subfolders: the wwPDB's divided layout ``mmCIF/ak/1aki.cif.gz``)
into the one file :class:`~af2struct.data.template_search.TemplateDB` reads. Each protein chain
is one template, whole across its missing residues (:mod:`af2struct.data.template_chains`):

==================  ================  ================================================
residue_mask        [R] uint8         1 where the residue has N, CA, C, O (else zeros)
release_dates       [C] str           ``YYYY-MM-DD`` or ``""`` (unknown)
accession           [C] bool          the entry id is a PDB id the file states
sources             [C] bytes         the file each chain was read from
==================  ================  ================================================

The same chain in several files (``1aki.cif``, ``1AKI.pdb.gz``, ``pdb1aki.ent.gz``,
``1aki_A.pdb``) is kept once: chains are the same when they share an accession and chain id, or
their observed residues and Calpha positions (0.1 A); the copy kept is the one with an
accession, then a release date, then mmCIF (its date is the release date; a PDB ``HEADER`` has
the deposition date), then the most observed residues, then the first file. A file that
cannot be read is reported and skipped, never silently.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from af2struct.common.files import atomic_write_bytes
from af2struct.common.io import StructureError, find_structure_files
from af2struct.data.backbone_db import BACKBONE_ATOMS
from af2struct.data.template_chains import TemplateChain, read_template_chains
from af2struct.data.template_search import TemplateDB

logger = logging.getLogger(__name__)


class TemplateBuildError(ValueError):
    """Nothing usable to build a template database from, or nowhere to write it."""


@dataclasses.dataclass
class BuildReport:
    """What a build read: files, chains written, duplicates dropped, and every file or chain
    skipped with why."""

    files: int = 0
    chains: int = 0
    residues: int = 0
    observed: int = 0
    duplicates: int = 0
    undated: int = 0
    skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)


def _content_key(c: TemplateChain) -> Tuple:
    ca = np.round(c.backbone[c.observed, 1] * 10).astype(np.int64)
    return ("".join(np.array(list(c.sequence))[c.observed]), ca.tobytes())


def _preference(c: TemplateChain) -> Tuple:
    # mmCIF before PDB: its date is the release date, a PDB HEADER's only the deposition date
    return (not c.accession, not c.release_date, ".cif" not in Path(c.source).name.lower(), -int(c.observed.sum()))


def deduplicate(chains: List[TemplateChain]) -> Tuple[List[TemplateChain], List[Tuple[TemplateChain, TemplateChain]]]:
    """One copy of each chain (module doc), in input order; and ``(dropped, kept)`` pairs."""
    groups: List[List[TemplateChain]] = []
    where: Dict[Tuple, int] = {}
    for c in chains:
        keys = [("content",) + _content_key(c)] + ([("id", c.entry, c.chain)] if c.accession else [])
        g = next((where[k] for k in keys if k in where), None)
        if g is None:
            g = len(groups)
            groups.append([])
        groups[g].append(c)
        for k in keys:
            where.setdefault(k, g)
    kept, dropped = [], []
    for g in groups:
        best = min(g, key=_preference)  # min is stable: the first file among equals
        kept.append(best)
        dropped += [(c, best) for c in g if c is not best]
    return kept, dropped


def _arrays(chains: List[TemplateChain]) -> Dict[str, np.ndarray]:
    coords, centers = [], []
    for c in chains:
        center = c.backbone[c.observed].reshape(-1, 3).astype(np.float64).mean(0)
        rel = np.where(c.observed[:, None, None], np.round((c.backbone - center) * 100), 0)
        coords.append(rel.astype(np.int16))
        centers.append(center.astype(np.float32))
    lengths = np.array([len(c) for c in chains], np.int64)
    return {
        "coords_centiA": np.concatenate(coords), "chain_center": np.stack(centers),
        "offsets": np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64), "lengths": lengths,
        "pdb_ids": np.array([c.entry.encode() for c in chains]),
        "chain_ids": np.array([c.chain.encode() for c in chains]),
        "start_resnum": np.array([c.first_number for c in chains], np.int64),
        "sequence": np.frombuffer("".join(c.sequence for c in chains).encode("ascii"), np.uint8).copy(),
        "residue_mask": np.concatenate([c.observed for c in chains]).astype(np.uint8),
        "atom_order": np.array([a.encode() for a in BACKBONE_ATOMS]),
        "release_dates": np.array([c.release_date for c in chains], dtype="U10"),
        "accession": np.array([c.accession for c in chains], bool),
        "sources": np.array([c.source.encode("utf-8", "backslashreplace") for c in chains]),
    }


def template_set(chains: List[TemplateChain], label: str) -> TemplateDB:
    """``chains`` as an in-memory template database (the PDB's fetched entries, a user's files)."""
    return TemplateDB(label, _arrays(chains))


def build_template_db(inputs: List[str], out: Path, min_length: int = 10, progress: bool = True) -> BuildReport:
    """Read every PDB/mmCIF file under ``inputs`` (folders searched through their subfolders)
    and write ``out`` (``.npz``, atomically). ``min_length``: the fewest observed residues a
    chain needs."""
    out = Path(out)
    if out.is_dir():
        raise TemplateBuildError(f"--out {out} is a folder; give the database file to write, e.g. {out}/templates.npz")
    files = find_structure_files(inputs, recursive=True)
    if not files:
        raise TemplateBuildError(f"no PDB/mmCIF files found in {', '.join(map(str, inputs))} (or their subfolders)")
    report = BuildReport(files=len(files))
    chains: List[TemplateChain] = []
    sizes = [p.stat().st_size for p in files]
    with tqdm(total=sum(sizes), desc="templates", unit="B", unit_scale=True, disable=not progress) as bar:
        for path, size in zip(files, sizes):  # progress in bytes: one large entry moves the bar too
            try:
                found, notes = read_template_chains(path, min_length)
            except (StructureError, ValueError, RuntimeError) as exc:
                report.skipped.append((str(path), str(exc)))
                logger.warning("skipped %s: %s", path, exc)
                bar.update(size)
                continue
            report.skipped += [(f"{path} {n.split(':')[0]}", n.split(": ", 1)[-1]) for n in notes]
            if not found:
                why = f"no protein chain with >= {min_length} residues with N, CA, C, O"
                report.skipped.append((str(path), why))
                logger.warning("skipped %s: %s", path, why)
            chains += found
            bar.update(size)
    if not chains:
        raise TemplateBuildError(f"none of the {len(files)} file(s) gave a usable chain")
    chains, dropped = deduplicate(chains)
    for c, kept in dropped:
        logger.info("%s chain %s: the same chain as %s chain %s; kept once", c.source, c.chain, kept.source, kept.chain)
    wide = [c for c in chains if np.abs(c.backbone[c.observed] - c.backbone[c.observed].reshape(-1, 3).mean(0)).max()
            * 100 > np.iinfo(np.int16).max]
    for c in wide:
        report.skipped.append((f"{c.source} chain {c.chain}", "wider than 327 A: does not fit the int16 layout"))
    chains = [c for c in chains if not any(c is w for w in wide)]
    if not chains:
        raise TemplateBuildError(f"none of the {len(files)} file(s) gave a usable chain")
    buf = io.BytesIO()
    np.savez_compressed(buf, **_arrays(chains))
    atomic_write_bytes(out, buf.getvalue())
    report.chains, report.duplicates = len(chains), len(dropped)
    report.residues = sum(len(c) for c in chains)
    report.observed = sum(int(c.observed.sum()) for c in chains)
    report.undated = sum(not c.release_date for c in chains)
    return report


def describe(report: BuildReport, out: Optional[Path] = None) -> str:
    """One paragraph for the log: what was written and what was skipped."""
    unread = {p for p, why in report.skipped if " chain " not in p}
    text = (f"{report.chains} chain(s), {report.residues} residues ({report.observed} observed) from "
            f"{report.files - len(unread)} of {report.files} file(s)" + (f" -> {out}" if out else ""))
    if report.duplicates:
        text += f"; {report.duplicates} duplicate chain(s) kept once"
    if report.undated:
        text += f"; {report.undated} chain(s) without a release date (never used under --max-template-date)"
    if report.skipped:
        text += f"; skipped {len(report.skipped)}: " + "; ".join(f"{p} ({why})" for p, why in report.skipped[:20])
    return text

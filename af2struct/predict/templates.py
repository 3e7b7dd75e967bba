"""A target's templates in a prediction: the sources opened once per process, the search kept
between runs, every candidate's verdict, the features, and what the outputs say about them.

Sources (:mod:`af2struct.data.template_sources`): ``--templates DB.npz`` (a template database),
``--templates pdb`` (the PDB on demand, :mod:`af2struct.data.pdb_mirror`) and
``--custom-templates`` (the user's files), alone or together.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from af2struct.common.files import file_key
from af2struct.common.io import find_structure_files
from af2struct.common.runner import RunFolder, file_digest, fingerprint
from af2struct.data.backbone_db import BackboneDBError
from af2struct.data.pdb_mirror import MirrorError, PdbMirror
from af2struct.data.seqres_db import SeqresDB
from af2struct.data.template_search import TemplateDB, cached_search
from af2struct.data.template_sources import (
    Candidate,
    CustomTemplates,
    candidate_features,
    choose,
    custom_candidates,
    database_candidates,
    pdb_candidates,
    read_custom,
)
from af2struct.data.templates import TemplateError
from af2struct.predict.errors import InputError

logger = logging.getLogger(__name__)

PDB = "pdb"  # --templates pdb: the PDB itself
# ``tpl`` below: a run's template options (:class:`af2struct.predict.options.TemplateOptions`)


# -- sources, opened once per process --------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _template_db(path: str, key: str) -> TemplateDB:
    t0 = time.perf_counter()
    logger.info("reading the template database %s (%.0f MB)", path, Path(path).stat().st_size / 1e6)
    db = TemplateDB(path)
    logger.info("template database: %d chains, %.1f s", len(db), time.perf_counter() - t0)
    return db


def template_db(path: str) -> TemplateDB:
    """The template database at ``path``, read once per process (again when the file changes)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--templates {p} is a folder, not a template database file (make one with "
                         f"`af2struct templates build {p} --out templates.npz`, or use --templates pdb)")
    if not p.is_file():
        raise InputError(f"--templates {p}: no such template database file"
                         + (" (a pipe or device cannot be read twice; give a file)" if p.exists() else ""))
    try:
        return _template_db(str(p.resolve()), file_key(p))
    except (TemplateError, BackboneDBError) as exc:
        raise InputError(f"--templates: {exc}") from None


def pdb_mirror(tpl) -> PdbMirror:
    """``--pdb-mirror`` with ``--template-cache`` and ``--offline``."""
    try:
        return PdbMirror(tpl.pdb_mirror, Path(tpl.cache) if tpl.cache else None,
                         offline=tpl.offline, progress=tpl.progress)
    except MirrorError as exc:
        raise InputError(str(exc)) from None


_SEQRES: Dict[tuple, object] = {}  # (mirror, cache, offline) -> SeqresDB or the MirrorError it gave


def pdb_seqres(tpl) -> SeqresDB:
    """The mirror's ``pdb_seqres.txt`` (downloaded once into the cache), read once per process.
    An unreachable mirror is remembered: the next target fails at once with the same line."""
    mirror = pdb_mirror(tpl)
    key = (mirror.url, str(mirror.cache), tpl.offline)
    got = _SEQRES.get(key)
    if isinstance(got, SeqresDB) and got.is_current():
        return got
    if isinstance(got, MirrorError):
        raise got
    try:
        path = mirror.seqres()
        db = SeqresDB(path, index_dir=mirror.cache if mirror.local else None)
    except MirrorError as exc:
        _SEQRES[key] = exc
        raise
    _SEQRES[key] = db
    return db


def sources_key(tpl) -> Optional[List]:
    """What the templates depend on, for the fingerprint: the database's content, the
    ``pdb_seqres.txt`` version searched (a rerun after ``templates update`` redoes the target),
    the custom files' content, and every template option."""
    if not (tpl.source or tpl.custom):
        return None
    if tpl.source == PDB:
        source = ["pdb", pdb_mirror(tpl).url, seqres_version(tpl)]
    else:
        source = template_db(tpl.source).content_key() if tpl.source else None
    custom = [_digest(str(p), file_key(p)) for p in custom_files(tpl)] if tpl.custom else None
    return [source, custom, tpl.max_templates, tpl.max_date, tpl.max_identity,
            tpl.search]


@functools.lru_cache(maxsize=1024)
def _digest(path: str, key: str) -> str:
    """A custom template file's content digest, once per process while the file stays the same."""
    return file_digest(path)


def custom_templates(tpl) -> CustomTemplates:
    """The ``--custom-templates`` files read once per process (again when one changes), not per target."""
    files = custom_files(tpl)
    return _read_custom(tuple(str(p) for p in files), tuple(file_key(p) for p in files))


@functools.lru_cache(maxsize=2)
def _read_custom(paths: tuple, keys: tuple) -> CustomTemplates:
    return read_custom(paths)


def custom_files(tpl) -> List[Path]:
    try:
        return find_structure_files(list(tpl.custom), recursive=True)
    except FileNotFoundError as exc:
        raise InputError(f"--custom-templates: {exc}") from None


def check_sources(tpl) -> None:
    """Refuse, before any target runs, what cannot work: a missing database or custom path, a
    cut-off on a database without dates. (A run starts with no remembered mirror failure.)"""
    for key in [k for k, v in _SEQRES.items() if isinstance(v, MirrorError)]:
        del _SEQRES[key]
    if tpl.source and tpl.source != PDB:
        db = template_db(tpl.source)
        if tpl.max_date and db.release_dates is None:
            raise InputError(f"--max-template-date {tpl.max_date}: the template database {tpl.source} "
                             "records no release dates, so no cut-off can be applied (build one from mmCIF files with "
                             "`af2struct templates build`, use --templates pdb, or leave the cut-off out)")
    if tpl.source == PDB:
        pdb_mirror(tpl)
    if tpl.custom and not custom_files(tpl):
        raise InputError(f"--custom-templates {' '.join(tpl.custom)}: no PDB/mmCIF files there")


def search_cache(folder: RunFolder, name: str, sequence: str, tpl) -> Optional[Path]:
    """Where a target's template search is kept between runs (``None`` when nothing is searched)."""
    if not tpl.source:
        return None
    source = seqres_version(tpl) if tpl.source == PDB else template_db(tpl.source).content_key()
    key = fingerprint([sequence, source, tpl.search])
    return folder.cache_path("templates", f"{name}.{key}.json")


def seqres_version(tpl) -> str:
    """The ``pdb_seqres.txt`` a search reads (path, size, modification time; fetched into the
    cache when missing), without reading it; ``unavailable: why`` when it cannot be had (the
    targets then fail with that line)."""
    mirror = pdb_mirror(tpl)
    key = (mirror.url, str(mirror.cache), tpl.offline)
    if isinstance(_SEQRES.get(key), MirrorError):
        return f"unavailable: {_SEQRES[key]}"
    try:
        return file_key(mirror.seqres())
    except MirrorError as exc:  # remembered: the targets fail with it at once, not after more retries
        _SEQRES[key] = exc
        return f"unavailable: {exc}"


# -- one target ------------------------------------------------------------------------------
@dataclasses.dataclass
class TemplateResult:
    """A target's templates: every candidate with its verdict, the ones used (featurised), the
    features, the seconds spent, and where they came from."""

    candidates: List[Candidate]
    used: List[Candidate]
    features: Optional[Dict[str, np.ndarray]]
    seconds: float
    source: str = ""

    def report(self, length: int) -> Dict:
        """``templates.json``: the sources, and every candidate with its verdict."""
        rows = []
        for c in self.candidates:
            row = c.row(length)
            row["used"] = any(c is u for u in self.used)
            rows.append(row)
        return {"source": self.source, "hits": rows, "used": [c.hit.name for c in self.used]}

    def detached(self) -> "TemplateResult":
        """The same result with every candidate :meth:`~af2struct.data.template_sources.Candidate.detached`
        from its database (what a Ray task sends back to the driver)."""
        copies = {id(c): c.detached() for c in self.candidates + self.used}
        return dataclasses.replace(self, candidates=[copies[id(c)] for c in self.candidates],
                                   used=[copies[id(c)] for c in self.used])


def describe_sources(tpl) -> str:
    parts = []
    if tpl.source == PDB:
        parts.append(f"pdb ({pdb_mirror(tpl).describe()})")
    elif tpl.source:
        parts.append(f"database {tpl.source}")
    if tpl.custom:
        parts.append("custom " + " ".join(tpl.custom))
    return "; ".join(parts)


def target_templates(name: str, sequence: str, cache: Optional[Path], tpl, msa) -> Optional[TemplateResult]:
    """Every source searched for the target (searches kept at ``cache``), each candidate judged
    (AlphaFold's filters, the date cut-off), the best ``--max-templates`` featurised; ``None``
    without templates. Raises :class:`~af2struct.data.pdb_mirror.MirrorError` when the PDB's
    mirror cannot be reached (the target fails with that one line)."""
    if not (tpl.source or tpl.custom):
        return None
    t0 = time.perf_counter()
    seq = sequence  # normalised by the target reader (predict.targets.Target)
    candidates: List[Candidate] = []
    if tpl.custom:
        candidates += custom_candidates(custom_templates(tpl), seq, method="phmmer")
    if tpl.source == PDB:
        seqres = pdb_seqres(tpl)
        hits = cached_search(seq, seqres, cache, msa=msa, method=tpl.search, name=name)
        wanted = max(0, tpl.max_templates - sum(c.reason is None for c in candidates))
        candidates += pdb_candidates(hits, seqres, pdb_mirror(tpl), seq, wanted, max_date=tpl.max_date,
                                     max_identity=tpl.max_identity)
    elif tpl.source:
        db = template_db(tpl.source)
        hits = cached_search(seq, db, cache, msa=msa, method=tpl.search, name=name)
        candidates += database_candidates(hits, db, seq, max_date=tpl.max_date,
                                          max_identity=tpl.max_identity)
    used = choose(candidates, tpl.max_templates)
    feats = candidate_features(used, len(seq))
    undated = sum(bool(c.reason) and c.reason.startswith("no known release date") for c in candidates)
    unused_custom = [c for c in candidates if c.source == "custom" and c.reason]
    logger.info("%s: %d template candidate(s), %d used%s%s", name, len(candidates), len(used),
                (": " + ", ".join(c.hit.name for c in used)) if used else "",
                f"; {undated} without a release date left out (--max-template-date)" if undated else "")
    for c in unused_custom:
        logger.warning("%s: custom template %s not used: %s", name, c.file or c.hit.name, c.reason)
    return TemplateResult(candidates, used, feats, time.perf_counter() - t0, describe_sources(tpl))


# -- what the outputs say ---------------------------------------------------------------------
def template_label(c: Candidate) -> str:
    """How a model names a template: ``PDB 1AKI chain A`` when its file stated the accession,
    else the file it came from (never a PDB id made from a file name)."""
    if c.pdb_id:
        return f"PDB {c.pdb_id} chain {c.hit.chain}"
    return f"{Path(c.file).name if c.file else c.hit.pdb_id} chain {c.hit.chain} (not a PDB accession)"


def remark_line(used: List[Candidate], length: int, tpl) -> str:
    if not used:
        return f"templates: none used from {describe_sources(tpl)} (templates.json lists the candidates)"
    return "templates: " + "; ".join(
        f"{template_label(c)} (E {c.hit.evalue:.2g}, identity {c.hit.identity:.2f}, coverage "
        f"{c.hit.coverage(length):.2f})" for c in used)


def template_records(used: Optional[List[Candidate]]) -> Optional[List[Dict]]:
    """The used templates as ModelCIF needs them (:func:`af2struct.common.modelcif.to_modelcif_string`):
    residue numbers are positions in the template sequence given (``template_range`` of
    ``templates.json``); a template whose file stated no accession is a customised one, named by its file."""
    if used is None:
        return None
    out = []
    for c in used:
        h = c.hit
        out.append({"pdb_id": c.pdb_id, "name": c.pdb_id or (Path(c.file).name if c.file else h.pdb_id),
                    "chain": h.chain, "sequence": c.sequence(), "template_begin": h.hit_from,
                    "template_end": h.hit_to, "target_begin": h.query_from, "target_end": h.query_to,
                    "identity": h.identity, "evalue": h.evalue, "query_aln": h.query_aln, "template_aln": h.hit_aln})
    return out

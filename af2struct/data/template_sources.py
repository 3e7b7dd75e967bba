"""Where a target's templates come from, and why each one is or is not used.

Three sources, each giving :class:`Candidate` rows (a hit aligned to a chain whose coordinates a
:class:`~af2struct.data.template_search.TemplateDB` holds, its source, and why it is not used):

- ``database``: a template database file (``--templates DB.npz``);
- ``pdb``: the PDB on demand (``--templates pdb``): ``pdb_seqres.txt`` searched, then only the
  entries of the hits that will be used fetched (:mod:`af2struct.data.pdb_mirror`); a hit whose
  entry is missing, obsolete, unreadable, not cached (``--offline``), lacks the chain or is newer
  than the cut-off is skipped with its reason and the next chain carrying the same sequence,
  then the next hit, is tried; a mirror that cannot be reached fails the target;
- ``custom``: the user's own PDB/mmCIF files (``--custom-templates``): every chain aligned to the
  target; a chain that does not align, aligns too little, or a file that cannot be read is
  reported, never dropped silently. The user chose them: neither the "target itself" filter nor
  the date cut-off applies.

The best ``max_templates`` usable candidates are featurised (custom ones first, then by
E-value) by :func:`candidate_features`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from Bio import Align

from af2struct.common.files import file_key
from af2struct.common.io import StructureError, find_structure_files
from af2struct.data.pdb_mirror import MirrorError, PdbMirror
from af2struct.data.seqres_db import SeqresDB
from af2struct.data.template_chains import TemplateChain, read_template_chains
from af2struct.data.template_db import template_set
from af2struct.data.template_search import TemplateDB, search_templates
from af2struct.data.templates import TemplateHit, features_of, hit_verdict

logger = logging.getLogger(__name__)

PDB_TRIES_PER_HIT = 3  # entries tried for one hit sequence (its chains in file order) before the next hit


@dataclasses.dataclass
class Candidate:
    """One template hit and its verdict (``reason`` ``None``: usable)."""

    hit: TemplateHit
    db: Optional[TemplateDB]  # holds the chain's coordinates (None: never fetched)
    source: str  # "database", "pdb" or "custom"
    reason: Optional[str] = None
    pdb_id: Optional[str] = None  # a PDB accession the file states
    release_date: Optional[str] = None
    file: Optional[str] = None

    chain_sequence: Optional[str] = None  # the template chain's sequence, kept by :meth:`detached`
    first_resnum: Optional[int] = None  # its first residue's number, kept by :meth:`detached`

    def _in_db(self) -> bool:
        return self.db is not None and self.hit.index < len(self.db)

    def sequence(self) -> Optional[str]:
        """The template chain's whole sequence."""
        return self.db.sequence(self.hit.index) if self._in_db() else self.chain_sequence

    def first_residue_number(self) -> Optional[int]:
        return int(self.db.start_resnum[self.hit.index]) if self._in_db() else self.first_resnum

    def detached(self) -> "Candidate":
        """This candidate without its database, what the reports read from it kept: a Ray task
        returns candidates to the driver, and a database (thousands of chains, a pyhmmer
        sequence block) neither can nor should travel with each target."""
        return dataclasses.replace(self, db=None, chain_sequence=self.sequence(),
                                   first_resnum=self.first_residue_number())

    def row(self, length: int) -> Dict:
        """Its ``templates.json`` row."""
        d = self.hit.to_dict(length)
        d.update(source=self.source, pdb_id=self.pdb_id, release_date=self.release_date, file=self.file,
                 used=False, reason=self.reason)
        first = self.first_residue_number()
        if first is not None:
            d["template_residues"] = [first + self.hit.hit_from - 1, first + self.hit.hit_to - 1]
        return d


# -- a database file ------------------------------------------------------------------------
def database_candidates(hits: Sequence[TemplateHit], db: TemplateDB, sequence: str, *,
                        max_date: Optional[str] = None, max_identity: Optional[float] = None) -> List[Candidate]:
    out = []
    for h in hits:
        date = db.release_dates[h.index] if db.release_dates is not None else None
        why = hit_verdict(h, sequence, max_identity=max_identity, max_date=max_date, release_date=date or "")
        out.append(Candidate(h, db, "database", why, db.accession(h.index), date, db.source(h.index)))
    return out


# -- the PDB on demand ----------------------------------------------------------------------
def pdb_candidates(hits: Sequence[TemplateHit], seqres: SeqresDB, mirror: PdbMirror, sequence: str, wanted: int, *,
                   max_date: Optional[str] = None, max_identity: Optional[float] = None) -> List[Candidate]:
    """Verdicts for ``hits`` (against ``seqres``), fetching entries only until ``wanted`` usable
    templates are found (module doc). An unreachable mirror is raised (it would fail every hit)."""
    out: List[Candidate] = []
    found = 0
    for h in hits:
        why = hit_verdict(h, sequence, max_identity=max_identity)
        if why is not None:
            out.append(Candidate(h, None, "pdb", why, h.pdb_id))
            continue
        if found >= wanted:
            out.append(Candidate(h, None, "pdb", f"not fetched: the best {wanted} were found", h.pdb_id))
            continue
        tried = []
        for name in seqres.chains(h.index)[:PDB_TRIES_PER_HIT]:
            cand = _fetch_candidate(h, name, seqres.sequence(h.index), mirror, sequence, max_date)
            if cand.reason is None:
                found += 1
                break
            tried.append(cand)
        else:
            cand = tried[0] if len(tried) == 1 else dataclasses.replace(
                tried[0], reason="; ".join(f"{c.hit.name}: {c.reason}" for c in tried))
        out.append(cand)
    return out


def _fetch_candidate(hit: TemplateHit, name: str, seqres_seq: str, mirror: PdbMirror, sequence: str,
                     max_date: Optional[str]) -> Candidate:
    pdb_id, _, chain_id = name.partition("_")
    hit = dataclasses.replace(hit, name=name)
    try:
        path = mirror.entry(pdb_id)
    except MirrorError as exc:
        if type(exc) is MirrorError:  # unreachable: every other hit would fail the same way
            raise
        return Candidate(hit, None, "pdb", f"entry {pdb_id}: {exc}", pdb_id)  # missing, broken, not cached
    try:
        chains = _entry_chains(str(path), file_key(path))
    except (StructureError, ValueError, RuntimeError) as exc:
        return Candidate(hit, None, "pdb", f"entry {pdb_id} unreadable: {exc}", pdb_id, file=str(path))
    chain = next((c for c in chains if c.chain == chain_id), None)
    if chain is None:
        return Candidate(hit, None, "pdb", f"entry {pdb_id} has no protein chain {chain_id}", pdb_id, file=str(path))
    date = chain.release_date
    if max_date and not date:
        return Candidate(hit, None, "pdb", f"no known release date (cut-off {max_date})", pdb_id, file=str(path))
    if max_date and date > max_date:
        return Candidate(hit, None, "pdb", f"released {date}, after the cut-off {max_date}", pdb_id, date, str(path))
    moved = realign(hit, seqres_seq, chain, sequence)
    if moved is None:
        return Candidate(hit, None, "pdb", f"chain {chain_id} of {pdb_id}: its sequence does not match pdb_seqres",
                         pdb_id, date, str(path))
    db = template_set([chain], f"PDB {pdb_id}")
    return Candidate(dataclasses.replace(moved, index=0), db, "pdb", None, pdb_id, date, str(path))


@functools.lru_cache(maxsize=64)
def _entry_chains(path: str, key: str) -> Tuple[TemplateChain, ...]:
    """An entry's chains, parsed once per process (while the file stays the same): the same
    entries come back as hits of target after target in a large run."""
    return tuple(read_template_chains(Path(path), min_observed=1)[0])


def realign(hit: TemplateHit, hit_sequence: str, chain: TemplateChain, query: str) -> Optional[TemplateHit]:
    """``hit`` (aligned to ``hit_sequence``) moved onto ``chain``'s own sequence: the same when
    they agree (the normal case), else through a global alignment of the two (identical
    residues only). ``None`` when under half of the aligned residues can be placed."""
    qi, ti = hit.mapping()
    if chain.sequence == hit_sequence:
        pairs = list(zip(qi.tolist(), ti.tolist()))
    else:
        aligner = Align.PairwiseAligner(mode="global", match_score=2, mismatch_score=-1, open_gap_score=-4,
                                        extend_gap_score=-0.5)
        aln = aligner.align(hit_sequence, chain.sequence)[0]
        where = {}
        for (a0, a1), (b0, b1) in zip(*aln.aligned):
            for k in range(a1 - a0):
                if hit_sequence[a0 + k] == chain.sequence[b0 + k]:
                    where[a0 + k] = b0 + k
        pairs = [(q, where[t]) for q, t in zip(qi.tolist(), ti.tolist()) if t in where]
        if len(pairs) < 0.5 * len(qi):
            return None
    return hit_from_pairs(hit, pairs, query, chain.sequence)


def hit_from_pairs(hit: TemplateHit, pairs: Sequence[Tuple[int, int]], query: str, template: str) -> TemplateHit:
    """A :class:`TemplateHit` whose match columns are ``pairs`` (0-based query, template positions,
    both increasing), with the residues between them as gaps."""
    q_rows, t_rows = [], []
    for k, (q, t) in enumerate(pairs):
        if k:
            pq, pt = pairs[k - 1]
            q_rows += list(query[pq + 1:q]) + ["-"] * (t - pt - 1)
            t_rows += ["-"] * (q - pq - 1) + list(template[pt + 1:t])
        q_rows.append(query[q])
        t_rows.append(template[t])
    same = sum(query[q] == template[t] for q, t in pairs)
    return dataclasses.replace(hit, identity=same / max(1, len(pairs)), query_from=pairs[0][0] + 1,
                               query_to=pairs[-1][0] + 1, hit_from=pairs[0][1] + 1, hit_to=pairs[-1][1] + 1,
                               query_aln="".join(q_rows), hit_aln="".join(t_rows))


# -- the user's own files -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CustomTemplates:
    """The user's files, read once for a whole run: their chains as a template database, and the
    files that gave none (``(path, why)``)."""

    db: Optional[TemplateDB]
    chains: Tuple[TemplateChain, ...]
    unread: Tuple[Tuple[str, str], ...]


def read_custom(paths: Sequence[str]) -> CustomTemplates:
    """Every chain of the user's files (files or folders, PDB/mmCIF, ``.gz``)."""
    chains: List[TemplateChain] = []
    unread: List[Tuple[str, str]] = []
    for path in find_structure_files(list(paths), recursive=True):
        try:
            found, _ = read_template_chains(path, min_observed=1)
        except (StructureError, ValueError, RuntimeError) as exc:
            unread.append((str(path), f"unreadable: {exc}"))
            continue
        if not found:
            unread.append((str(path), "no protein chain with N, CA, C and O"))
        chains += found
    db = template_set(chains, "custom templates") if chains else None
    return CustomTemplates(db, tuple(chains), tuple(unread))


def custom_candidates(custom: CustomTemplates, sequence: str, *, method: str = "phmmer",
                      min_align_ratio: float = 0.1) -> List[Candidate]:
    """The user's chains aligned to the target; a file that cannot be read and a chain that does
    not align are rows too."""
    out = [_unused_file(Path(path), why) for path, why in custom.unread]
    if custom.db is None:
        return out
    db = custom.db
    hits = {h.index: h for h in search_templates(sequence, db, method=method, name="custom", max_hits=len(db))}
    for i, c in enumerate(custom.chains):
        h = hits.get(i)
        if h is None:
            blank = TemplateHit(c.name, i, float("inf"), 0.0, 0, 0, 0, 0, "", "")
            out.append(Candidate(blank, db, "custom", "no significant alignment to the target",
                                 c.entry if c.accession else None, c.release_date or None, c.source))
            continue
        why = None
        if h.coverage(len(sequence)) < min_align_ratio:
            why = f"too short: aligns {h.coverage(len(sequence)):.0%} of the target (< {min_align_ratio:.0%})"
        out.append(Candidate(h, db, "custom", why, c.entry if c.accession else None, c.release_date or None, c.source))
    return out


def _unused_file(path: Path, why: str) -> Candidate:
    blank = TemplateHit(Path(path).name, 0, float("inf"), 0.0, 0, 0, 0, 0, "", "")
    return Candidate(blank, None, "custom", why, file=str(path))


# -- together -------------------------------------------------------------------------------
def choose(candidates: Sequence[Candidate], max_templates: int) -> List[Candidate]:
    """The used candidates: usable ones, the user's own first, then by E-value, at most
    ``max_templates``; the other usable ones get their reason."""
    usable = sorted((c for c in candidates if c.reason is None),
                    key=lambda c: (c.source != "custom", c.hit.evalue))
    for c in usable[max_templates:]:
        c.reason = f"beyond the best {max_templates} (--max-templates)"
    return usable[:max_templates]


def candidate_features(used: Sequence[Candidate], query_length: int) -> Dict[str, np.ndarray]:
    """AlphaFold's template features (:mod:`af2struct.data.templates`) of the ``used`` candidates."""
    return features_of([(c.hit, c.db) for c in used], query_length)

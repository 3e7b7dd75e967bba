"""Template search: the query against a template database's sequences with pyhmmer.

As AlphaFold: from a single sequence, jackhmmer (iterated profile search; ``phmmer``, one
round, is the cheaper option), or with the query's MSA, ``hmmsearch`` with a profile HMM built
from that MSA. Each hit's best domain becomes a :class:`~af2struct.data.templates.TemplateHit`
(query and template rows aligned on the query's columns); up to 20 are kept, best E-value first,
and the AlphaFold filters of :func:`~af2struct.data.templates.filter_hits` drop the query itself
and hits that align under 10 % of it.

The database is a :class:`TemplateDB`: a ``chains_backbone.npz`` (optionally with
``release_dates``), its sequences digitised once per process (0.2 s for 21k chains).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Collection, Dict, List, Optional, Sequence, Set, Union

import numpy as np
import pyhmmer

from af2struct.common.files import atomic_write_text, file_key
from af2struct.data.backbone_db import BackboneDB
from af2struct.data.clusters import split_by_cluster
from af2struct.data.hmmer import hmmsearch, jackhmmer_rounds
from af2struct.data.msa import Msa
from af2struct.data.template_chains import ACCESSION, valid_date
from af2struct.data.templates import MAX_HITS, TemplateError, TemplateHit, filter_hits

logger = logging.getLogger(__name__)

SEARCH_METHODS = ("jackhmmer", "phmmer")
_ALPHABET = pyhmmer.easel.Alphabet.amino()


def sequence_block(n: int, sequence_of) -> "pyhmmer.easel.DigitalSequenceBlock":
    """Sequences ``sequence_of(0..n-1)`` digitised for pyhmmer, each named by its index (a hit's
    name is then the index into the database searched)."""
    seqs = [pyhmmer.easel.TextSequence(name=str(i).encode(), sequence=sequence_of(i)).digitize(_ALPHABET)
            for i in range(n)]
    return pyhmmer.easel.DigitalSequenceBlock(_ALPHABET, seqs)


class TemplateDB(BackboneDB):
    """A backbone database used as a template library: the chains, their release dates
    (``release_dates`` ``[C]`` strings ``YYYY-MM-DD``, ``""`` unknown; none for
    ``pdb2018_backbone``, whose chains all predate 2018) and a pyhmmer sequence block.

    Checked when opened, so a bad database is named once rather than failing per target: at
    least one chain; sequences of upper-case letters; one release date per chain, each a real
    date or empty."""

    def __init__(self, path: Union[str, Path], arrays: Optional[Dict[str, np.ndarray]] = None) -> None:
        path = Path(path)
        if path.is_dir() and arrays is None:
            raise TemplateError(f"{path} is a folder, not a template database file (make one with "
                                f"`af2struct templates build {path} --out templates.npz`)")
        super().__init__(path, arrays)
        self._content = None if arrays is None else hashlib.sha256(
            b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in sorted(arrays))).hexdigest()
        if not len(self):
            raise TemplateError(f"{path}: the template database holds no chains")
        bad = np.nonzero((self._sequence < ord("A")) | (self._sequence > ord("Z")))[0]
        if len(bad):
            chain = int(np.searchsorted(self.offsets, bad[0], side="right") - 1)
            raise TemplateError(f"{path}: chain {self.names[chain]} has {len(bad)} residue letter(s) that are not "
                                f"upper-case A-Z (e.g. {bytes([self._sequence[bad[0]]])!r}); rebuild the database")
        dates = self.extra.get("release_dates")
        self.release_dates: Optional[List[str]] = None
        if dates is not None:
            self.release_dates = [d.decode() if isinstance(d, bytes) else str(d) for d in np.atleast_1d(dates)]
            if len(self.release_dates) != len(self):
                raise TemplateError(f"{path}: {len(self.release_dates)} release dates for {len(self)} chains")
            wrong = [(n, d) for n, d in zip(self.names, self.release_dates) if d and valid_date(d) != d]
            if wrong:
                raise TemplateError(f"{path}: chain {wrong[0][0]} has release date {wrong[0][1]!r}, not a "
                                    f"YYYY-MM-DD date; {len(wrong)} chain(s) in all")
        acc = self.extra.get("accession")
        # databases without the array (pdb2018_backbone) name chains by their PDB ids
        self._accession = (np.asarray(acc, bool) if acc is not None and len(acc) == len(self)
                           else np.array([bool(ACCESSION.match(n.rsplit("_", 1)[0])) for n in self.names]))
        src = self.extra.get("sources")
        self._sources = ([x.decode("utf-8", "replace") for x in src] if src is not None and len(src) == len(self)
                         else None)
        self._block = None

    def accession(self, i: int) -> Optional[str]:
        """Chain ``i``'s PDB id when its file stated one, else ``None`` (named by its file)."""
        return self.names[i].rsplit("_", 1)[0].upper() if self._accession[i] else None

    def source(self, i: int) -> Optional[str]:
        """The file chain ``i`` was read from, where the database records it."""
        return self._sources[i] if self._sources is not None else None

    @property
    def block(self) -> "pyhmmer.easel.DigitalSequenceBlock":
        """The chains' sequences, digitised (names are the chain indices)."""
        if self._block is None:
            self._block = sequence_block(len(self), self.sequence)
        return self._block

    def content_key(self) -> str:
        """Identifies the database's content (path, size, modification time; a digest of the arrays
        for one made in memory): a search cache or a resume fingerprint made against another
        database is not reused."""
        return self._content or file_key(self.path)


def _hit_from_domain(hit, query: str, name_of) -> Optional[TemplateHit]:
    """A :class:`TemplateHit` from a pyhmmer hit whose HMM columns are the query's positions."""
    dom = hit.best_domain
    aln = dom.alignment
    q_rows, t_rows = [], []
    qpos = aln.hmm_from - 1
    identical = aligned = 0
    for hc, tc in zip(aln.hmm_sequence, aln.target_sequence):
        if hc == ".":  # a template residue in an insert state: no query residue
            q_rows.append("-")
            t_rows.append(tc.upper())
            continue
        qc = query[qpos]
        qpos += 1
        q_rows.append(qc)
        if tc == "-":
            t_rows.append("-")
            continue
        t_rows.append(tc.upper())
        aligned += 1
        identical += qc == tc.upper()
    if aligned == 0:
        return None
    index = int(hit.name.decode() if isinstance(hit.name, bytes) else hit.name)
    return TemplateHit(name=name_of(index), index=index, evalue=float(dom.i_evalue if dom.i_evalue else hit.evalue),
                       identity=identical / aligned, query_from=aln.hmm_from, query_to=aln.hmm_to,
                       hit_from=aln.target_from, hit_to=aln.target_to, query_aln="".join(q_rows),
                       hit_aln="".join(t_rows))


def _hmm_from_msa(msa: Msa, name: str):
    """A profile HMM whose match states are exactly the MSA's columns (the query's residues).

    The reference line (``#=GC RF``, hand architecture: every column a match state) is read with
    the alignment from Stockholm text: pyhmmer 0.12's ``DigitalMSA.reference`` setter allocates
    no room for the terminating NUL, and HMMER's builder then corrupts the heap (seen as
    "free(): invalid next size" aborting a Ray worker)."""
    rows = list(msa.sequences)
    text = "".join(["# STOCKHOLM 1.0\n", *(f"s{i} {r}\n" for i, r in enumerate(rows)),
                    f"#=GC RF {'x' * len(rows[0])}\n//\n"])
    with pyhmmer.easel.MSAFile(io.BytesIO(text.encode()), format="stockholm", digital=True,
                               alphabet=_ALPHABET) as handle:
        digital = handle.read()
    digital.name = name.encode()
    builder = pyhmmer.plan7.Builder(_ALPHABET, architecture="hand")
    background = pyhmmer.plan7.Background(_ALPHABET)
    hmm, _, _ = builder.build_msa(digital, background)
    return hmm


def search_templates(sequence: str, db: TemplateDB, *, msa: Optional[Msa] = None, method: str = "jackhmmer",
                     iterations: int = 3, e_value: float = 1e-3, cpus: int = 0, name: str = "query",
                     max_hits: int = MAX_HITS) -> List[TemplateHit]:
    """Up to ``max_hits`` raw hits (E < ``e_value``, best first) of ``sequence`` in ``db``,
    before the filters. With a ``msa`` of more than one row: hmmsearch with its profile;
    otherwise ``method`` (jackhmmer with ``iterations`` rounds, or phmmer). hmmsearch and jackhmmer
    run on ``cpus`` threads (0: all cores; the database split between them, the hits the same)."""
    if method not in SEARCH_METHODS:
        raise TemplateError(f"template search method must be one of {SEARCH_METHODS}, not {method!r}")
    seq = "".join(sequence.split()).upper()
    try:
        query = pyhmmer.easel.TextSequence(name=name.encode(), sequence=seq).digitize(_ALPHABET)
    except ValueError as exc:
        raise TemplateError(f"{name}: the sequence cannot be searched ({exc})") from None
    hits = None
    if msa is not None and len(msa) > 1:
        hmm = _hmm_from_msa(msa, name)
        if hmm.M == len(seq):
            hits = hmmsearch(hmm, db.block, cpus, E=e_value, domE=e_value)
        else:  # pragma: no cover - the hand architecture keeps every column
            logger.warning("%s: MSA profile has %d states for %d residues; searching the sequence", name, hmm.M,
                           len(seq))
    if hits is None and method == "jackhmmer":
        result = None
        for result in jackhmmer_rounds(query, db.block, max(1, iterations), cpus, E=e_value, domE=e_value,
                                       incE=e_value, incdomE=e_value):
            pass
        if result is not None and result.hmm.M == len(seq):
            hits = result.hits
    if hits is None:
        hits = next(iter(pyhmmer.hmmer.phmmer([query], db.block, cpus=cpus, E=e_value, domE=e_value)))
    out: List[TemplateHit] = []
    for h in sorted(hits, key=lambda h: h.evalue):
        if h.evalue >= e_value or not h.reported:
            continue
        hit = _hit_from_domain(h, seq, lambda i: db.names[i])
        if hit is not None:
            out.append(hit)
        if len(out) >= max_hits:
            break
    return out


def cached_search(sequence: str, db: TemplateDB, cache: Optional[Path], **kwargs) -> List[TemplateHit]:
    """:func:`search_templates`, kept as JSON at ``cache`` (reused only for the same sequence,
    database content and search options)."""
    key = hashlib.sha256(json.dumps([sequence, db.content_key(), kwargs.get("method", "jackhmmer"),
                                     kwargs.get("iterations", 3), kwargs.get("e_value", 1e-3),
                                     _msa_key(kwargs.get("msa"))]).encode()).hexdigest()
    if cache is not None and cache.is_file():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("key") == key:
                hits = [TemplateHit.from_dict(d, d["index"]) for d in saved["hits"]]
                for h in hits:
                    _check_hit(h, db)
                return hits
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, TemplateError) as exc:
            logger.warning("%s: unusable template search cache (%s); discarded, searching again", cache, exc)
            cache.unlink(missing_ok=True)
    hits = search_templates(sequence, db, **kwargs)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        rows = [dict(h.to_dict(len(sequence)), index=h.index) for h in hits]
        atomic_write_text(cache, json.dumps({"key": key, "hits": rows}))
    return hits


def _check_hit(hit: TemplateHit, db: TemplateDB) -> None:
    """A cached hit must name a chain of ``db`` and align residues that chain has."""
    if not 0 <= hit.index < len(db) or db.names[hit.index] != hit.name:
        raise TemplateError(f"hit {hit.name!r} (index {hit.index}) is not a chain of {db.path}")
    if db.sequence(hit.index)[hit.hit_from - 1:hit.hit_to] != hit.hit_aln.replace("-", "") or hit.hit_from < 1:
        raise TemplateError(f"hit {hit.name}: its alignment does not match the database sequence")


def _msa_key(msa: Optional[Msa]) -> Optional[str]:
    if msa is None:
        return None
    return hashlib.sha256("\n".join(msa.sequences).encode()).hexdigest()


def usable_hits(hits: Sequence[TemplateHit], sequence: str, db: TemplateDB, *, max_template_date: Optional[str] = None,
                max_identity: Optional[float] = None, query_pdb_id: Optional[str] = None) -> List[TemplateHit]:
    """The hits a prediction may use (AlphaFold's filters and the date cut-off)."""
    return filter_hits(hits, sequence, query_pdb_id=query_pdb_id, max_identity=max_identity,
                       max_date=max_template_date, release_dates=db.release_dates)


def held_out_chains(db: TemplateDB, clusters: Dict[str, str], other_names: Sequence[str] = (),
                    fraction: float = 0.02, seed: int = 0) -> Set[int]:
    """Indices of ``db``'s chains in the held-out clusters of the training split
    (:func:`~af2struct.data.clusters.split_by_cluster` of ``db``'s names and ``other_names``, the
    training structures', by ``clusters``: the split training and the benchmarks use)."""
    split = split_by_cluster(sorted(set(db.names) | set(other_names)), clusters, fraction, seed)
    return {i for i, name in enumerate(db.names) if split.get(name, "train") != "train"}


def hits_from_other_clusters(db: TemplateDB, i: int, clusters: Dict[str, str], exclude: Collection[int],
                             method: str = "jackhmmer") -> List[TemplateHit]:
    """The usable hits (``method``) of ``db``'s own chain ``i`` in ``db``, none of its cluster
    (``clusters``: name -> cluster; a chain without one is a cluster of its own) nor among the
    indices ``exclude``: the templates a measurement on a library chain may give it."""
    seq, name = db.sequence(i), db.names[i]
    own = clusters.get(name, "_own_" + name)
    hits = usable_hits(search_templates(seq, db, method=method, name=name), seq, db, query_pdb_id=name.split("_")[0])
    return [h for h in hits if h.index not in exclude and clusters.get(h.name, "_own_" + h.name) != own]


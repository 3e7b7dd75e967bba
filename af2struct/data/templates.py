"""Template hits and AlphaFold2's template features for backbone-only templates (numpy).

A *hit* is a chain of a :class:`~af2struct.data.backbone_db.BackboneDB` aligned to the query
(pyhmmer's phmmer/jackhmmer alignment, or a row of ``self_hits_phmmer.tsv.gz``). Features
(AlphaFold2 supplement 1.2.3 and 1.7.1, for templates that have only N, CA, C, O): the
``template_*`` keys of the model's batch contract, :data:`af2struct.model.network.BATCH_FEATURES`
(here per example: without its ``B`` axis).

The pair features (pseudo-beta distogram, unit vectors in the backbone frames, masks) are built
from these in the model (:mod:`af2struct.model.templates`), so an example stays ``O(T L)``.

Filters (AlphaFold's ``TemplateHitFeaturizer``, :func:`hit_verdict` says which one a hit
failed): a hit that aligns less than ``min_align_ratio`` (10 %) of the query is dropped; so is
the query itself (:func:`is_duplicate`: the same PDB entry, or a hit covering more than 95 % of
the query at 95 % identity or more, unknown residues not counted), and with ``max_identity``
(benchmarks) a hit above that sequence identity. With a date cut-off, a hit released later is
dropped, and so is a hit whose release date is unknown.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from af2struct.common import residue_constants as rc
from af2struct.geometry.angles import dihedral

MAX_TEMPLATES = 4  # featurised (AlphaFold: 4)
MAX_PEPTIDE_BOND = 2.0  # A: a longer C-N distance is a chain break
MAX_HITS = 20  # kept per query (AlphaFold: 20)
TEMPLATE_KEYS = ("template_aatype", "template_backbone", "template_backbone_mask", "template_torsions",
                 "template_torsion_mask")  # per residue: cropped along axis 1


class TemplateError(ValueError):
    """A hits file or template database that cannot be read or used."""


@dataclasses.dataclass(frozen=True)
class TemplateHit:
    """One template hit: chain ``index`` (``name`` = ``PDBID_CHAIN``) of the template database,
    aligned to the query. ``query_from``/``hit_from`` are 1-based starts of the aligned stretches
    (inclusive ends ``query_to``/``hit_to``); ``query_aln``/``hit_aln`` the aligned rows (``-`` gaps)."""

    name: str
    index: int
    evalue: float
    identity: float
    query_from: int
    query_to: int
    hit_from: int
    hit_to: int
    query_aln: str
    hit_aln: str

    @property
    def pdb_id(self) -> str:
        """The entry part of the name (``1AKI`` of ``1AKI_A``): a PDB id only where the database
        says so (:meth:`~af2struct.data.template_search.TemplateDB.accession`)."""
        return self.name.rsplit("_", 1)[0].upper()

    @property
    def chain(self) -> str:
        return self.name.rsplit("_", 1)[-1]

    def mapping(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(query_idx, hit_idx)``: 0-based positions aligned to each other (match columns)."""
        q = np.frombuffer(self.query_aln.encode(), np.uint8) != ord("-")
        t = np.frombuffer(self.hit_aln.encode(), np.uint8) != ord("-")
        qi = self.query_from - 1 + np.cumsum(q) - 1
        ti = self.hit_from - 1 + np.cumsum(t) - 1
        both = q & t
        return qi[both].astype(np.int64), ti[both].astype(np.int64)

    def aligned_count(self) -> int:
        return int(len(self.mapping()[0]))

    def coverage(self, query_length: int) -> float:
        """Fraction of the query's residues aligned to a template residue."""
        return self.aligned_count() / max(1, query_length)

    def to_dict(self, query_length: int) -> Dict[str, object]:
        """For ``templates.json`` and the search cache: identity (full precision: a cached search
        gives the same numbers as a fresh one), coverage, E-value, the aligned ranges (1-based)."""
        return {"name": self.name, "chain": self.chain, "evalue": self.evalue, "identity": self.identity,
                "coverage": round(self.coverage(query_length), 3),
                "query_range": [self.query_from, self.query_to], "template_range": [self.hit_from, self.hit_to],
                "query_aln": self.query_aln, "template_aln": self.hit_aln}

    @classmethod
    def from_dict(cls, d: Dict[str, object], index: int) -> "TemplateHit":
        return cls(name=str(d["name"]), index=int(index), evalue=float(d["evalue"]), identity=float(d["identity"]),
                   query_from=int(d["query_range"][0]), query_to=int(d["query_range"][1]),
                   hit_from=int(d["template_range"][0]), hit_to=int(d["template_range"][1]),
                   query_aln=str(d["query_aln"]), hit_aln=str(d["template_aln"]))


def read_hits_table(path: Union[str, Path]) -> Dict[int, List[TemplateHit]]:
    """``{query chain index: hits in E-value order}`` from a ``self_hits_phmmer.tsv.gz`` table
    (columns ``query hit query_id hit_id evalue bitscore identity query_from query_to hit_from
    hit_to query_aln hit_aln``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: Dict[int, List[TemplateHit]] = {}
    try:
        with opener(path, "rt", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                hit = TemplateHit(name=row["hit_id"], index=int(row["hit"]), evalue=float(row["evalue"]),
                                  identity=float(row["identity"]), query_from=int(row["query_from"]),
                                  query_to=int(row["query_to"]), hit_from=int(row["hit_from"]),
                                  hit_to=int(row["hit_to"]), query_aln=row["query_aln"], hit_aln=row["hit_aln"])
                out.setdefault(int(row["query"]), []).append(hit)
    except (OSError, KeyError, ValueError, EOFError) as exc:
        raise TemplateError(f"{path}: not a readable template hits table ({exc})") from None
    for hits in out.values():
        hits.sort(key=lambda h: h.evalue)
    return out


DUPLICATE_COVERAGE = 0.95  # a hit covering more than this of the query ...
DUPLICATE_IDENTITY = 0.95  # ... at this identity or more is the query itself


def is_duplicate(hit: TemplateHit, query_sequence: str, query_pdb_id: Optional[str] = None) -> bool:
    """The query itself: the same PDB entry, or a hit covering more than 95 % of the query with
    at least 95 % of its aligned residues identical (template ``X``, unobserved or unknown
    residues, not counted). This catches the target with missing loops and one-mutation copies;
    AlphaFold's own rule (an exact substring covering > 95 %) is contained in it."""
    if query_pdb_id and hit.pdb_id == query_pdb_id.upper():
        return True
    if hit.coverage(len(query_sequence)) <= DUPLICATE_COVERAGE:
        return False
    q = np.frombuffer(hit.query_aln.encode(), np.uint8)
    t = np.frombuffer(hit.hit_aln.encode(), np.uint8)
    both = (q != ord("-")) & (t != ord("-")) & (t != ord("X"))
    return bool(both.any()) and float((q[both] == t[both]).mean()) >= DUPLICATE_IDENTITY


def hit_verdict(hit: TemplateHit, query_sequence: str, *, query_pdb_id: Optional[str] = None,
                max_identity: Optional[float] = None, min_align_ratio: float = 0.1,
                max_date: Optional[str] = None, release_date: Optional[str] = None) -> Optional[str]:
    """Why ``hit`` may not be used (one line), or ``None`` when it may (module doc's filters;
    ``release_date`` ``""`` is unknown, ``None`` when the database records no dates)."""
    n = len(query_sequence)
    if hit.coverage(n) < min_align_ratio:
        return f"aligns {hit.coverage(n):.0%} of the target (< {min_align_ratio:.0%})"
    if is_duplicate(hit, query_sequence, query_pdb_id):
        return "the target itself (same entry, or > 95 % coverage at >= 95 % identity)"
    if max_identity is not None and hit.identity > max_identity:
        return f"identity {hit.identity:.3f} above --template-max-identity {max_identity}"
    if max_date:
        if not release_date:
            return f"no known release date (cut-off {max_date})"
        if release_date > max_date:
            return f"released {release_date}, after the cut-off {max_date}"
    return None


def filter_hits(hits: Sequence[TemplateHit], query_sequence: str, *, query_pdb_id: Optional[str] = None,
                max_identity: Optional[float] = None, min_align_ratio: float = 0.1,
                exclude: Optional[set] = None, max_hits: int = MAX_HITS,
                max_date: Optional[str] = None, release_dates: Optional[Sequence[str]] = None) -> List[TemplateHit]:
    """The hits a query may use, best E-value first, at most ``max_hits``: those
    :func:`hit_verdict` passes, hits in ``exclude`` (chain indices) dropped; ``release_dates``
    per chain (with ``max_date``, hits of unknown date are dropped)."""
    out = []
    for hit in sorted(hits, key=lambda h: h.evalue):
        if exclude and hit.index in exclude:
            continue
        date = release_dates[hit.index] if release_dates is not None else ""
        if hit_verdict(hit, query_sequence, query_pdb_id=query_pdb_id, max_identity=max_identity,
                       min_align_ratio=min_align_ratio, max_date=max_date, release_date=date) is None:
            out.append(hit)
        if len(out) >= max_hits:
            break
    return out


def backbone_torsions(backbone: np.ndarray, observed: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """phi, psi, omega of a chain ``[n, 3, 3]`` (N, CA, C) as ``sin/cos [n, 3, 2]`` and a mask
    ``[n, 3]`` (phi absent at the first residue, psi and omega at the last). omega_i is the
    CA_i-C_i-N_{i+1}-CA_{i+1} dihedral. An angle that spans two residues exists only where both
    are ``observed`` and bonded (C-N under 2 A): never across a missing loop or a chain break."""
    n = len(backbone)
    out = np.zeros((n, 3, 2), np.float32)
    mask = np.zeros((n, 3), np.float32)
    if n < 2:
        return out, mask
    N, CA, C = backbone[:, 0], backbone[:, 1], backbone[:, 2]
    seen = np.ones(n, bool) if observed is None else np.asarray(observed, bool)
    bonded = seen[:-1] & seen[1:] & (np.linalg.norm(N[1:] - C[:-1], axis=-1) < MAX_PEPTIDE_BOND)  # i -> i + 1
    phi = dihedral(C[:-1], N[1:], CA[1:], C[1:])  # residues 1..n-1
    psi = dihedral(N[:-1], CA[:-1], C[:-1], N[1:])  # residues 0..n-2
    omega = dihedral(CA[:-1], C[:-1], N[1:], CA[1:])
    for k, (ang, rows) in enumerate(((phi, slice(1, n)), (psi, slice(0, n - 1)), (omega, slice(0, n - 1)))):
        ok = np.isfinite(ang) & bonded
        with np.errstate(invalid="ignore"):
            out[rows, k, 0] = np.where(ok, np.sin(ang), 0)
            out[rows, k, 1] = np.where(ok, np.cos(ang), 0)
        mask[rows, k] = ok
    return out, mask


def empty_template_features(length: int) -> Dict[str, np.ndarray]:
    """No templates: every template array with ``T = 0``."""
    return {
        "template_aatype": np.zeros((0, length), np.int64),
        "template_backbone": np.zeros((0, length, 3, 3), np.float32),
        "template_backbone_mask": np.zeros((0, length), np.float32),
        "template_torsions": np.zeros((0, length, 3, 2), np.float32),
        "template_torsion_mask": np.zeros((0, length, 3), np.float32),
        "template_mask": np.zeros((0,), np.float32),
    }


def featurise_hit(hit: TemplateHit, db, query_length: int) -> Dict[str, np.ndarray]:
    """One template's features (the module doc's keys without the ``T`` axis) from chain
    ``hit.index`` of ``db``. A hit whose alignment disagrees with the database is an error."""
    qi, ti = hit.mapping()
    n_t = int(db.lengths[hit.index])
    if len(qi) and (qi.max() >= query_length or qi.min() < 0 or ti.max() >= n_t or ti.min() < 0):
        raise TemplateError(f"template {hit.name}: alignment reaches outside the query ({query_length}) "
                            f"or the template ({n_t} residues)")
    full = db.backbone(hit.index)[:, :3]  # [n_t, 3, 3] N, CA, C (zeros where unobserved)
    seen = db.observed_mask(hit.index)
    seq = db.sequence(hit.index)
    if seq[hit.hit_from - 1:hit.hit_to] != hit.hit_aln.replace("-", ""):
        raise TemplateError(f"template {hit.name}: aligned residues do not match the database sequence")
    tt, tm = backbone_torsions(full, seen)
    out = {"template_aatype": np.full(query_length, rc.gap_index, np.int64),
           "template_backbone": np.zeros((query_length, 3, 3), np.float32),
           "template_backbone_mask": np.zeros(query_length, np.float32),
           "template_torsions": np.zeros((query_length, 3, 2), np.float32),
           "template_torsion_mask": np.zeros((query_length, 3), np.float32)}
    if len(ti):
        out["template_aatype"][qi] = rc.sequence_to_aatype("".join(seq[j] for j in ti), allow_unknown=True)
    out["template_backbone"][qi] = full[ti]
    out["template_backbone_mask"][qi] = seen[ti]  # an aligned residue the template did not observe has no coordinates
    out["template_torsions"][qi] = tt[ti]
    out["template_torsion_mask"][qi] = tm[ti]
    return out


def features_of(pairs: Sequence[Tuple[TemplateHit, object]], query_length: int) -> Dict[str, np.ndarray]:
    """Features (module doc) of templates given as ``(hit, database holding its chain)`` pairs."""
    feats = empty_template_features(query_length)
    if not pairs:
        return feats
    rows = [featurise_hit(h, db, query_length) for h, db in pairs]
    for key in rows[0]:
        feats[key] = np.stack([r[key] for r in rows])
    feats["template_mask"] = np.ones(len(rows), np.float32)
    return feats


def template_features(hits: Sequence[TemplateHit], db, query_length: int,
                      max_templates: int = MAX_TEMPLATES) -> Dict[str, np.ndarray]:
    """Features (module doc) of the first ``max_templates`` ``hits`` against the template
    database ``db`` (a :class:`~af2struct.data.backbone_db.BackboneDB`) for a query of
    ``query_length`` residues. A hit whose alignment disagrees with the database is an error."""
    return features_of([(h, db) for h in list(hits)[:max_templates]], query_length)


def template_copy_ca(hit: TemplateHit, db, query_length: int) -> Tuple[np.ndarray, np.ndarray]:
    """The floor every template method must beat: the hit's Calpha positions copied onto the
    aligned query residues. Returns ``ca [L, 3]`` and ``mask [L]`` (unaligned residues absent)."""
    qi, ti = hit.mapping()
    ca = np.zeros((query_length, 3), np.float32)
    mask = np.zeros(query_length, bool)
    ca[qi] = db.backbone(hit.index)[ti, 1]
    mask[qi] = db.observed_mask(hit.index)[ti]
    return ca, mask

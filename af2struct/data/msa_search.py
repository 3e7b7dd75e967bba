"""MSA search with jackhmmer (pyhmmer) against a user-given protein sequence database.

AlphaFold builds its MSAs with jackhmmer; this is the same search through ``pyhmmer`` (HMMER3
bound in-process, no binaries to install): iterated profile search of the query against a FASTA
database, then every included hit aligned to the final profile HMM together with the query.
Columns where the query has a residue become the MSA's columns; residues of other rows in the
remaining columns become A3M insertions (lower case), which is how AlphaFold turns jackhmmer's
Stockholm output into A3M.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import pyhmmer

from af2struct.common.files import atomic_write_text
from af2struct.data.hmmer import jackhmmer_rounds
from af2struct.data.msa import Msa, MsaError, parse_a3m

logger = logging.getLogger(__name__)


class MsaSearchError(MsaError):
    """The database could not be searched (missing, empty, not protein FASTA)."""


def load_database(path: Union[str, Path]):
    """Read a protein FASTA database into a digital sequence block (kept in memory).

    Raises :class:`MsaSearchError` for a missing, empty or non-FASTA file.
    """
    path = Path(path)
    if not path.is_file():
        raise MsaSearchError(f"{path}: sequence database not found")
    if path.stat().st_size == 0:
        raise MsaSearchError(f"{path}: sequence database is empty")
    alphabet = pyhmmer.easel.Alphabet.amino()
    try:
        with pyhmmer.easel.SequenceFile(path, digital=True, alphabet=alphabet, format="fasta") as fh:
            block = fh.read_block()
    except (ValueError, OSError, EOFError) as exc:
        raise MsaSearchError(f"{path}: not a readable protein FASTA database ({exc})") from None
    if len(block) == 0:
        raise MsaSearchError(f"{path}: no sequences in the database")
    return block


def _to_a3m(rows: Sequence[Tuple[str, str]]) -> str:
    """A3M text from aligned rows (``-``/``.`` gaps) whose first row is the query."""
    query = rows[0][1]
    keep = [c not in "-." for c in query]
    out = []
    for name, row in rows:
        chars = []
        for c, k in zip(row, keep):
            if k:
                chars.append("-" if c in "-." else c.upper())
            elif c not in "-.":
                chars.append(c.lower())
        out.append(f">{name}\n{''.join(chars)}\n")
    return "".join(out)


def jackhmmer_a3m(
    sequence: str,
    database,
    *,
    name: str = "query",
    iterations: int = 3,
    e_value: float = 1e-3,
    max_sequences: int = 5000,
    cpus: int = 0,
) -> str:
    """Search ``sequence`` against ``database`` (a FASTA path or a block from
    :func:`load_database`) with jackhmmer and return the alignment as A3M text (query first).

    Args:
        iterations: jackhmmer rounds (AlphaFold: 1 against UniRef90 with its own E-values; 3 is
            jackhmmer's usual choice for small databases).
        e_value: inclusion threshold (``--incE``) for hits that build the next round's profile and
            enter the MSA.
        max_sequences: keep at most this many hits (best E-value first).
        cpus: threads for pyhmmer (0 = all cores).
    """
    seq = "".join(sequence.split()).upper()
    if not seq:
        raise MsaSearchError("empty query sequence")
    block = load_database(database) if isinstance(database, (str, Path)) else database
    alphabet = pyhmmer.easel.Alphabet.amino()
    try:
        query = pyhmmer.easel.TextSequence(name=name.encode(), sequence=seq).digitize(alphabet)
    except ValueError as exc:
        raise MsaSearchError(f"{name}: query cannot be searched ({exc})") from None
    result = None
    for result in jackhmmer_rounds(query, block, max(1, iterations), cpus, incE=e_value, incdomE=e_value):
        logger.debug("jackhmmer %s: iteration %d, %d hits included", name, result.iteration,
                     len(result.hits.included))
    assert result is not None
    hits: List = []
    seen = set()
    for hit in sorted(result.hits.included, key=lambda h: h.evalue):
        if hit.name in seen or len(hits) >= max_sequences:
            continue
        seen.add(hit.name)
        hits.append(hit)
    by_name = {s.name: s for s in block}
    members = [query] + [by_name[h.name] for h in hits if h.name in by_name]
    rows: List[Tuple[str, str]] = [(name, seq)]
    if len(members) > 1:
        msa = pyhmmer.hmmer.hmmalign(result.hmm, members, trim=False, all_consensus_cols=True)
        aligned = list(msa.alignment)
        query_row = aligned[0]
        if query_row.replace("-", "").replace(".", "").upper() != seq:
            raise MsaSearchError(f"{name}: the query lost residues in the final alignment")
        for hit, row in zip(members[1:], aligned[1:]):
            label = hit.name.decode() if isinstance(hit.name, bytes) else str(hit.name)
            rows.append((label, row))
        rows[0] = (name, query_row)
    logger.info("jackhmmer %s: %d sequences in the MSA after %d iteration(s)", name, len(rows),
                result.iteration)
    return _to_a3m(rows)


def jackhmmer_msa(sequence: str, database, **kwargs) -> Msa:
    """:func:`jackhmmer_a3m`, parsed into an :class:`~af2struct.data.msa.Msa`."""
    return parse_a3m(jackhmmer_a3m(sequence, database, **kwargs), "jackhmmer")


def search_msa(sequence: str, database: Union[str, Path], out_a3m: Optional[Path] = None, **kwargs) -> Msa:
    """Search and keep the A3M (written atomically to ``out_a3m``, reused if already there)."""
    if out_a3m is not None and Path(out_a3m).exists():
        text = Path(out_a3m).read_text()
    else:
        text = jackhmmer_a3m(sequence, database, **kwargs)
        if out_a3m is not None:
            Path(out_a3m).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(out_a3m), text)
    msa = parse_a3m(text, str(out_a3m or "jackhmmer"))
    msa.check_query(sequence, str(out_a3m or "jackhmmer"))
    return msa

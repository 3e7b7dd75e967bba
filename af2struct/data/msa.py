"""Sequence and alignment files: FASTA, A3M and Stockholm.

An :class:`Msa` holds the alignment in query columns: ``sequences`` as strings of the query's
length (A3M insertions, lower-case letters, removed and counted in ``deletion_matrix``).
"""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

from af2struct.common import residue_constants as rc


class MsaError(ValueError):
    """A malformed FASTA/A3M/Stockholm file, or an MSA that does not fit its query."""


def text_lines(text: str) -> List[str]:
    """Lines as FASTA, A3M and Stockholm files end them (``\n`` or ``\r\n``): unlike
    ``str.splitlines``, a form feed, NEL or U+2028 inside a header does not start a new line.
    A UTF-8 byte-order mark at the start is dropped."""
    return [line[:-1] if line.endswith("\r") else line for line in text.lstrip("\ufeff").split("\n")]


def parse_fasta(text: str, source: str = "FASTA", full_headers: bool = False) -> List[Tuple[str, str]]:
    """``[(name, sequence)]`` from FASTA text; names are the first word after ``>`` (the whole
    header line with ``full_headers``).

    Raises :class:`MsaError` for text before the first header, a header with no name, or a
    record with no sequence.
    """
    records: List[Tuple[str, List[str]]] = []
    for lineno, line in enumerate(text_lines(text), 1):
        line = line.strip(" \t\r\n")
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            header = line[1:].strip()
            if not header:
                raise MsaError(f"{source}:{lineno}: header line with no name")
            records.append((header if full_headers else header.split()[0], []))
        else:
            if not records:
                raise MsaError(f"{source}:{lineno}: sequence before the first '>' header; is this FASTA?")
            records[-1][1].append(line)
    out = []
    for name, parts in records:
        seq = "".join("".join(parts).split())
        if not seq:
            raise MsaError(f"{source}: record {name!r} has an empty sequence")
        out.append((name, seq))
    if not out:
        raise MsaError(f"{source}: no FASTA records found")
    return out


def read_text_file(path: Union[str, Path], what: str = "file") -> str:
    """A sequence or alignment file's text: UTF-8 (a byte-order mark allowed), else Latin-1 (old
    headers); a folder, FIFO, device or binary file is refused saying what it is."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MsaError(f"{path}: no such file") from None
    except OSError as exc:
        raise MsaError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise MsaError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        kind = "FIFO (named pipe)" if stat.S_ISFIFO(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "socket" if stat.S_ISSOCK(mode) else "special file"
        raise MsaError(f"{path}: is a {kind}, not a regular {what}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MsaError(f"{path}: cannot be read ({exc.strerror})") from None
    if b"\0" in data:
        raise MsaError(f"{path}: not a text file (binary content)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_fasta(path: Union[str, Path], full_headers: bool = False) -> List[Tuple[str, str]]:
    return parse_fasta(read_text_file(path, "FASTA file"), str(path), full_headers)


@dataclasses.dataclass(frozen=True)
class Msa:
    """An alignment in query columns.

    Attributes:
        sequences: N aligned rows, each of the query's length (``-`` for gaps); row 0 is the query.
        deletion_matrix: ``[N, L]`` int, insertions (A3M lower case) before each column.
        names: N descriptions.
    """

    sequences: Tuple[str, ...]
    deletion_matrix: np.ndarray
    names: Tuple[str, ...]

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def query(self) -> str:
        return self.sequences[0].replace("-", "")

    def to_array(self) -> np.ndarray:
        """``[N, L]`` int: residue types with 20 = unknown, 21 = gap."""
        table = {c: i for i, c in enumerate(rc.restypes_with_x_and_gap)}
        return np.array([[table.get(c, rc.unk_restype_index) for c in s] for s in self.sequences], np.int32)

    def check_query(self, sequence: str, name: str = "MSA") -> None:
        """Raise :class:`MsaError` unless the MSA's first row is ``sequence``."""
        seq = "".join(sequence.split()).upper()
        query = self.query.upper()
        if query != seq:
            pos = next((i for i, (a, b) in enumerate(zip(query, seq)) if a != b), min(len(query), len(seq)))
            where = (f"first difference at residue {pos + 1}: {query[pos]!r} in the MSA, {seq[pos]!r} in the sequence"
                     if pos < min(len(query), len(seq)) else f"one is a prefix of the other up to residue {pos}")
            raise MsaError(f"{name}: query ({len(query)} residues) does not match the sequence "
                           f"({len(seq)} residues); {where}")

    def profile(self) -> np.ndarray:
        """``[L, 21]``: amino-acid frequencies per column (gaps ignored) + information content
        in bits scaled to [0, 1] by log2(20)."""
        arr = self.to_array()
        counts = np.stack([(arr == k).sum(0) for k in range(rc.restype_num)], -1).astype(np.float64)
        freq = counts / np.maximum(counts.sum(-1, keepdims=True), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -(np.where(freq > 0, freq * np.log2(freq), 0.0)).sum(-1)
        info = (np.log2(rc.restype_num) - ent) / np.log2(rc.restype_num)
        return np.concatenate([freq, info[:, None]], -1).astype(np.float32)


def parse_a3m(text: str, source: str = "A3M") -> Msa:
    """Parse A3M (FASTA with lower-case insertions); row 0 defines the columns."""
    records = parse_fasta(text, source)
    seqs, dels, names = [], [], []
    width = None
    for name, raw in records:
        aligned, deletion, count = [], [], 0
        for c in raw:
            if c.islower() or c == ".":
                count += c != "."
                continue
            aligned.append(c)
            deletion.append(count)
            count = 0
        row = "".join(aligned).upper()
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise MsaError(
                f"{source}: row {name!r} has {len(row)} match columns, the query has {width}"
            )
        _check_letters(row, source, name)
        seqs.append(row)
        dels.append(deletion)
        names.append(name)
    return Msa(tuple(seqs), np.array(dels, np.int32), tuple(names))


def parse_stockholm(text: str, source: str = "Stockholm") -> Msa:
    """Parse Stockholm; columns where the query (first row) has a gap become deletions."""
    lines = text_lines(text)
    if not lines or not lines[0].startswith("# STOCKHOLM"):
        raise MsaError(f"{source}: missing '# STOCKHOLM 1.0' header")
    order: List[str] = []
    rows: Dict[str, List[str]] = {}
    for line in lines[1:]:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s == "//":
            break
        parts = s.split()
        if len(parts) != 2:
            raise MsaError(f"{source}: malformed alignment line {s[:60]!r}")
        name, chunk = parts
        if name not in rows:
            order.append(name)
            rows[name] = []
        rows[name].append(chunk)
    if not order:
        raise MsaError(f"{source}: no sequences")
    full = [("".join(rows[n])) for n in order]
    width = len(full[0])
    if any(len(r) != width for r in full):
        raise MsaError(f"{source}: rows of different lengths")
    keep = {i for i, c in enumerate(full[0]) if c not in "-."}
    seqs, dels = [], []
    for r in full:
        out, deletion, count = [], [], 0
        for i, c in enumerate(r):
            if i in keep:
                out.append("-" if c in "-." else c.upper())
                deletion.append(count)
                count = 0
            elif c not in "-.":
                count += 1
        row = "".join(out)
        _check_letters(row, source, "row")
        seqs.append(row)
        dels.append(deletion)
    return Msa(tuple(seqs), np.array(dels, np.int32), tuple(order))


def _check_letters(row: str, source: str, name: str) -> None:
    allowed = set(rc.restypes) | set("XBZUOJ-")
    bad = sorted(set(row) - allowed)
    if bad:
        raise MsaError(f"{source}: row {name!r} has characters that are not residues: {bad}")


def read_msa(path: Union[str, Path]) -> Msa:
    """Read ``.a3m`` or ``.sto``/``.stockholm`` (chosen by extension, else by content)."""
    path = Path(path)
    text = read_text_file(path, "alignment file")
    if path.suffix.lower() in (".sto", ".stockholm") or text.startswith("# STOCKHOLM"):
        return parse_stockholm(text, str(path))
    return parse_a3m(text, str(path))

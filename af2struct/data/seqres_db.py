"""``pdb_seqres.txt`` as a searchable database: protein records only, identical sequences collapsed.

The wwPDB's ``pdb_seqres.txt`` holds one FASTA record per polymer chain
(``>101m_A mol:protein length:154  MYOGLOBIN``; about 850k protein chains, many identical:
copies of a chain in one entry, the same protein in many entries). A search needs each distinct
sequence once: :class:`SeqresDB` keeps the distinct protein sequences (what pyhmmer searches,
index ``i``) and, for each, every chain that carries it (``chains(i)``, in file order), so a hit
can be fetched from its first entry and from the next ones when that one fails.

The parsed form is kept in the cache (``.pdb_seqres.txt.index.npz``, tied to the file's path,
size and modification time), so a process reads it in a second rather than parsing the text again.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pyhmmer  # noqa: F401 - the type of SeqresDB.block

from af2struct.common.files import atomic_path, file_key
from af2struct.data.template_search import sequence_block
from af2struct.data.templates import TemplateError

logger = logging.getLogger(__name__)

_HEADER = re.compile(r"^>(\S+)\s+mol:(\S+)")
INDEX_VERSION = 1


class SeqresDB:
    """Distinct protein sequences of a ``pdb_seqres.txt`` and the chains carrying each.

    Attributes:
        path: the ``pdb_seqres.txt`` read.
        names: ``[S]`` the first chain of each sequence, ``1ABC_A`` (PDB id upper case).
    """

    def __init__(self, path: Path, index_dir: Optional[Path] = None) -> None:
        self.path = Path(path)
        self._key = file_key(self.path)
        t0 = time.perf_counter()
        index = (Path(index_dir) if index_dir else self.path.parent) / f".{self.path.name}.index.npz"
        key = f"{INDEX_VERSION}:{self._key}"
        arrays = _read_index(index, key)
        if arrays is None:
            arrays = _parse(self.path)
            try:
                with atomic_path(index) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, key=np.array(key), **arrays)
            except OSError as exc:  # a read-only mirror: parsed again next time
                logger.debug("%s: index not kept (%s)", index, exc)
        self._seq = arrays["sequence"]
        self._seq_off = arrays["seq_offsets"]
        self._chain_names = arrays["chain_names"]
        self._chain_off = arrays["chain_offsets"]
        if not len(self._seq_off) - 1:
            raise TemplateError(f"{self.path}: no protein record (mol:protein) in this pdb_seqres.txt")
        self.names = [self.chains(i)[0] for i in range(len(self))]
        self._block = None
        logger.info("%s: %d protein chains, %d distinct sequences (%.1f s)", self.path,
                    len(self._chain_names), len(self), time.perf_counter() - t0)

    def __len__(self) -> int:
        return len(self._seq_off) - 1

    def sequence(self, i: int) -> str:
        return self._seq[self._seq_off[i]:self._seq_off[i + 1]].tobytes().decode("ascii")

    def chains(self, i: int) -> List[str]:
        """Every chain with sequence ``i`` (``1ABC_A``), in the file's order."""
        return [c.decode() for c in self._chain_names[self._chain_off[i]:self._chain_off[i + 1]]]

    @property
    def block(self) -> "pyhmmer.easel.DigitalSequenceBlock":
        """The distinct sequences, digitised (names are their indices)."""
        if self._block is None:
            self._block = sequence_block(len(self), self.sequence)
        return self._block

    def content_key(self) -> str:
        """The version of ``pdb_seqres.txt`` searched (path, size, modification time)."""
        return self._key

    def is_current(self) -> bool:
        """The file is still the one read (not replaced by ``templates update``)."""
        try:
            return file_key(self.path) == self._key
        except OSError:
            return False


def _read_index(index: Path, key: str):
    if not index.is_file():
        return None
    try:
        with np.load(index, allow_pickle=False) as d:
            if str(d["key"]) != key:
                return None
            return {k: d[k] for k in ("sequence", "seq_offsets", "chain_names", "chain_offsets")}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _parse(path: Path) -> Dict[str, np.ndarray]:
    """The distinct protein sequences of ``path`` and their chains (module doc)."""
    by_seq: Dict[str, List[str]] = {}
    name, protein, parts = None, False, []

    def flush() -> None:
        if name is not None and protein and parts:
            seq = "".join(parts).upper()
            if not re.fullmatch(r"[A-Z]+", seq):
                raise TemplateError(f"{path}: record {name} has letters other than A-Z")
            by_seq.setdefault(seq, []).append(name)

    try:
        with open(path, "r", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(">"):
                    flush()
                    m = _HEADER.match(line)
                    if not m:
                        raise TemplateError(f"{path}: not a pdb_seqres.txt header: {line[:80].rstrip()!r}")
                    pid, _, chain = m.group(1).partition("_")
                    name, protein, parts = f"{pid.upper()}_{chain}", m.group(2) == "protein", []
                else:
                    parts.append(line.strip())
            flush()
    except OSError as exc:
        raise TemplateError(f"{path}: cannot be read ({exc})") from None
    seqs = list(by_seq)
    lengths = np.array([len(s) for s in seqs], np.int64)
    counts = np.array([len(by_seq[s]) for s in seqs], np.int64)
    return {"sequence": np.frombuffer("".join(seqs).encode("ascii"), np.uint8).copy(),
            "seq_offsets": np.r_[0, np.cumsum(lengths)].astype(np.int64),
            "chain_names": np.array([c.encode() for s in seqs for c in by_seq[s]], dtype="S"),
            "chain_offsets": np.r_[0, np.cumsum(counts)].astype(np.int64)}

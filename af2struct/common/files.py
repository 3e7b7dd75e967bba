"""Atomic file writes: write to a temporary file in the target folder, then rename.

A reader (or a resumed batch run) never sees a half-written output: the file either exists
complete or not at all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]

# every temporary file or folder af2struct makes carries this in its name, so a cleanup removes
# only its own leftovers (never a user's ``.draft.tmp``)
TEMP_MARK = "af2struct-tmp"


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{TEMP_MARK}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give outputs the usual permissions (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def file_key(path: PathLike) -> str:
    """A file's identity for caches and fingerprints without reading it: resolved path, size and
    modification time (a file replaced at the same path is another file)."""
    p = Path(path)
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def csv_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with ``= + - @``, a tab or a carriage
    return gets a leading ``'`` (OWASP's advice on CSV injection); numbers, including negative
    ones, are left as they are."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def write_csv(path: PathLike, columns: Sequence[str], rows: Sequence[Dict],
              cell: Callable[[object], object] = lambda v: v) -> None:
    """A CSV report, atomically: a header of ``columns``, then each row's values (``""`` where it
    has none), each through ``cell`` (formatting) and :func:`csv_cell` (no formula)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_cell(cell(r.get(c, ""))) for c in columns])
    atomic_write_text(path, buf.getvalue())

"""The PDB itself as a template source: ``pdb_seqres.txt`` and the mmCIF files, on demand, cached.

Files come from a *mirror* in the wwPDB's layout (the wwPDB's HTTPS file server by default, any
URL serving that layout, or a local folder such as an institute's rsync mirror, read in place)::

    pub/pdb/derived_data/pdb_seqres.txt                              (~270 MB, ~850k chains)
    pub/pdb/data/structures/divided/mmCIF/<id[1:3]>/<id>.cif.gz      (one entry, lower-case id)

Downloads go to a cache (default ``$XDG_CACHE_HOME/af2struct/pdb``) in the same layout, written
atomically under a per-file lock (concurrent runs and Ray workers share one cache and download
each file once). A download is checked before it is kept: the gzip stream read to its end and
the mmCIF parsed (``pdb_seqres.txt``: at least one record); a truncated or corrupt file is never
kept. A cached file is used without asking the network again, so a rerun whose files are all
cached runs with the network down. ``offline`` never touches the network and names the file it
lacks. Network access has a timeout and a bounded retry (a 404 is not retried: the entry is not
there, e.g. obsolete).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Iterator, Optional

import gemmi
from tqdm import tqdm

from af2struct.common.files import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_MIRROR = "https://files.wwpdb.org"
SEQRES = "pub/pdb/derived_data/pdb_seqres.txt"
USER_AGENT = "af2struct (templates from the PDB)"


class MirrorError(RuntimeError):
    """The mirror cannot be reached (after the retries), or a file needed offline is not cached."""


class EntryMissing(MirrorError):
    """The mirror has no such file (HTTP 404, or absent from a local mirror)."""


class BadDownload(MirrorError):
    """A file came back truncated or corrupt (never kept)."""


class NotCached(MirrorError):
    """``offline`` and the file is not in the cache."""


def entry_path(pdb_id: str) -> str:
    """``pub/pdb/data/structures/divided/mmCIF/ak/1aki.cif.gz`` for ``1AKI``."""
    pid = pdb_id.lower()
    return f"pub/pdb/data/structures/divided/mmCIF/{pid[1:3]}/{pid}.cif.gz"


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/af2struct/pdb`` (``~/.cache/af2struct/pdb``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "af2struct" / "pdb"


class PdbMirror:
    """Files of the PDB from ``location`` (URL or folder in the wwPDB layout), cached in ``cache``.

    Args:
        location: ``https://...``/``http://...`` (``file://`` and plain paths are local folders).
        cache: where downloads are kept (ignored for a local mirror, which is read in place).
        offline: never use the network; a file not in the cache is a :class:`MirrorError`.
        timeout: seconds per network operation; ``retries``: attempts per file (backoff 1, 2, 4 s).
    """

    def __init__(self, location: str = DEFAULT_MIRROR, cache: Optional[Path] = None, offline: bool = False,
                 timeout: float = 30.0, retries: int = 3, progress: bool = True) -> None:
        parsed = urllib.parse.urlparse(location)
        self.local: Optional[Path] = None
        if parsed.scheme in ("http", "https"):
            self.url = location.rstrip("/")
        elif parsed.scheme in ("", "file"):
            self.local = Path(parsed.path if parsed.scheme == "file" else location).expanduser()
            if not self.local.is_dir():
                raise MirrorError(f"--pdb-mirror {location}: no such folder (give a URL or a folder in the wwPDB "
                                  "layout, with pub/pdb/...)")
            self.url = str(self.local.resolve())
        else:
            raise MirrorError(f"--pdb-mirror {location}: not an http(s) URL or a folder")
        self.cache = Path(cache) if cache is not None else default_cache()
        self.offline, self.timeout, self.retries, self.progress = offline, timeout, max(1, retries), progress

    def describe(self) -> str:
        return f"{'local mirror' if self.local else 'mirror'} {self.url}"

    # -- files ------------------------------------------------------------------------------
    def path(self, rel: str, refresh: bool = False) -> Path:
        """The local file for ``rel`` (in the local mirror, or cached: downloaded when missing or
        ``refresh``). Raises :class:`EntryMissing`, :class:`BadDownload` or :class:`MirrorError`."""
        if self.local is not None:
            p = self.local / rel
            if not p.is_file():
                raise EntryMissing(f"{p}: not in the local mirror")
            return p
        dest = self.cache / rel
        if dest.is_file() and not refresh:
            return dest
        if self.offline:
            raise NotCached(f"--offline: {dest} is not cached (it comes from {self.url}/{rel})")
        with self._lock(dest):
            if dest.is_file() and not refresh:  # another run fetched it while we waited
                return dest
            self._download(rel, dest)
        return dest

    def seqres(self, refresh: bool = False) -> Path:
        return self.path(SEQRES, refresh)

    def entry(self, pdb_id: str) -> Path:
        return self.path(entry_path(pdb_id))

    @contextlib.contextmanager
    def _lock(self, dest: Path) -> Iterator[None]:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = dest.with_name(f".{dest.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for another run downloading the same file
            yield
        finally:
            os.close(fd)

    def _download(self, rel: str, dest: Path) -> None:
        url = f"{self.url}/{rel}"
        last: Optional[Exception] = None
        for attempt in range(self.retries):
            if attempt:
                time.sleep(2 ** (attempt - 1))
            try:
                with atomic_path(dest) as tmp:
                    self._fetch(url, tmp, rel == SEQRES)
                    check_file(tmp, rel)
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise EntryMissing(f"{url}: not on the mirror (HTTP 404)") from None
                last = exc
            except BadDownload as exc:
                last = exc
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last = exc
            logger.info("%s: attempt %d of %d failed (%s)", url, attempt + 1, self.retries, _reason(last))
        if isinstance(last, BadDownload):
            raise last
        raise MirrorError(f"cannot reach {url}: {_reason(last)} (after {self.retries} attempts)")

    def _fetch(self, url: str, tmp: Path, show: bool) -> None:
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp, open(tmp, "wb") as out:
            size = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=Path(url).name,
                      disable=None if (show and self.progress) else True) as bar:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
            if size is not None and out.tell() != size:
                raise BadDownload(f"{url}: {out.tell()} of {size} bytes arrived (truncated)")


def _reason(exc: Optional[Exception]) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}" if exc else "unknown error"


def check_file(path: Path, rel: str) -> None:
    """Raise :class:`BadDownload` unless ``path`` is a whole file of its kind: a ``.gz`` read to
    the end of its stream, an mmCIF that parses, a ``pdb_seqres.txt`` with a record."""
    try:
        if rel.endswith(".gz"):
            with gzip.open(path, "rb") as fh:  # to the end of the stream: a truncated member raises
                data = fh.read()
        if ".cif" in rel:
            gemmi.cif.read_string(data if rel.endswith(".gz") else Path(path).read_bytes())
        elif rel == SEQRES:
            with open(path, "rb") as fh:
                if not fh.read(1).startswith(b">"):
                    raise BadDownload(f"{rel}: not a pdb_seqres.txt (no FASTA record)")
    except BadDownload:
        raise
    except (OSError, EOFError, zlib.error, RuntimeError, ValueError) as exc:
        raise BadDownload(f"{rel}: truncated or corrupt ({type(exc).__name__}: {exc})") from None

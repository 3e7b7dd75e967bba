"""The batch runner behind ``predict``, ``relax`` and ``evaluate``: one output folder, many items.

- **Lock.** :class:`RunFolder` holds an exclusive lock on ``OUT/.af2struct/lock`` while a run
  writes into ``OUT``; a second run into the same folder stops at once with a message naming the
  process that holds it (the lock dies with its process, so a killed run never blocks the next).
- **Records.** An item is finished when its record ``OUT/.af2struct/records/<name>.json`` exists,
  can be read, carries the same *fingerprint* (a hash of the item's input content and of every
  option that changes its output) and every output file it lists is still there with the size it
  had. Anything else and a rerun redoes the item, saying why; ``force`` redoes everything; items
  that failed are always retried. The record is written last and removed first, so a kill at any
  moment leaves either a finished item or one that will be redone.
- **Names.** Item outputs are named after the item; the run's own files (``.af2struct/``, reports
  such as ``summary.csv``) are *reserved*, and an item whose name is reserved gets a ``_item``
  suffix, so no item can overwrite a run file. Temporary files and folders have names unique to
  the process and marked as af2struct's (``.<name>.af2struct-tmp-<random>.partial``); leftovers
  of killed runs, and only those, are removed under the lock.
- **Ownership.** A run removes only what it can prove is its own: files an item's record lists
  (or temporary files with af2struct's mark). When an item's folder is replaced, any other file
  in it (a user's notes) is carried into the new folder; a user's file in the way of a new output
  is kept beside it as ``<file>.orig``, and so is a report file (``summary.csv``) the run did
  not write (its size and modification time are noted in ``.af2struct/reports.json``). A rerun
  that fails leaves the finished result it would have replaced, set apart as
  ``<name>.previous`` (never deleted).
- **One loop.** :func:`run_batch` is the run of all three commands: lock the folder, plan
  (finished items are kept), hand the rest to an *executor* (items here, in worker processes with
  :func:`run_items`, or on a Ray cluster), record each item as it comes back, and write the
  command's reports as it goes and once more however the run stops (``finally``).
- **Workers.** :func:`~af2struct.common.workers.run_items` runs items in worker processes
  (``jobs > 1``): a worker that dies costs only the item it held (:mod:`af2struct.common.workers`).
- **Home.** Nothing is written to the home folder: matplotlib's font cache goes to
  ``$TMPDIR/af2struct-matplotlib-<uid>`` (unless ``MPLCONFIGDIR`` is set), built once, quietly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from tqdm import tqdm

from af2struct.common.files import TEMP_MARK, atomic_write_text, file_key

logger = logging.getLogger(__name__)

STATE_DIR = ".af2struct"
RESERVED_SUFFIX = "_item"


class RunLockedError(OSError):
    """Another run is writing into the same output folder."""


def fingerprint(value: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``value`` as canonical JSON (dataclasses via ``repr``)."""
    text = json.dumps(value, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class RunFolder:
    """An output folder owned by one run at a time (use as a context manager).

    ``reserved`` are the names of the run's own files in the folder (reports); item outputs never
    take them (:meth:`item_name`).
    """

    def __init__(self, out_dir: os.PathLike, reserved: Iterable[str] = ()) -> None:
        self.out = Path(out_dir)
        self.state = self.out / STATE_DIR
        self.records = self.state / "records"
        self.reserved = {r.lower() for r in reserved} | {STATE_DIR}
        self._lock_fd: Optional[int] = None

    # -- lock ---------------------------------------------------------------------------------
    def __enter__(self) -> "RunFolder":
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"{self.out}: exists and is not a folder")
        self.records.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLockedError(f"{self.out} is in use by another run ({holder}); wait for it to finish "
                                     "or write into another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._lock_fd = fd
        self._remove_leftovers()
        # matplotlib's font cache: built once per user in the temporary folder (not in the home
        # folder, not once per output folder), quietly
        os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / f"af2struct-matplotlib-{os.getuid()}"))
        logging.getLogger("matplotlib.font_manager").setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None

    def _remove_leftovers(self) -> None:
        """Temporary files and folders of killed runs (nothing else writes here while we hold the lock)."""
        for folder in (self.out, self.state, self.records):
            for p in folder.glob(f".*.{TEMP_MARK}-*.partial"):
                shutil.rmtree(p, ignore_errors=True)
            for p in folder.glob(f".*.{TEMP_MARK}-*.tmp"):
                with contextlib.suppress(OSError):
                    p.unlink()

    # -- names --------------------------------------------------------------------------------
    def item_name(self, name: str) -> str:
        """The name ``name``'s outputs take in the folder: ``name``, or ``name_item`` if reserved."""
        return name + RESERVED_SUFFIX if name.lower() in self.reserved else name

    def item_path(self, name: str, suffix: str = "") -> Path:
        return self.out / (self.item_name(name) + suffix)

    def cache_path(self, *parts: str) -> Path:
        """A path for the run's caches (e.g. MSAs) under ``.af2struct/``."""
        return self.state.joinpath(*parts)

    def temp_dir(self, name: str) -> Path:
        """A new empty folder for one item's outputs, unique to this process (permissions as
        ``mkdir`` gives under the user's umask, not ``mkdtemp``'s 0700)."""
        path = Path(tempfile.mkdtemp(prefix=f".{self.item_name(name)}.{TEMP_MARK}-", suffix=".partial", dir=self.out))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o777 & ~umask)
        return path

    # -- records ------------------------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.records / f"{name}.json"

    def finished(self, name: str, fp: str, force: bool = False) -> Tuple[Optional[Dict], str]:
        """``(record, "")`` if ``name`` is finished with fingerprint ``fp``; else ``(None, why)``."""
        path = self._record_path(name)
        if not path.exists():
            return None, ""
        if force:
            return None, "--force"
        try:
            rec = json.loads(path.read_text())
            files = rec["files"]
            status = rec["status"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"its record {path} cannot be read ({type(exc).__name__})"
        if status == "error":
            return None, "it failed before"
        if rec.get("fingerprint") != fp:
            return None, "its input or options changed"
        for rel, size in files.items():
            f = self.out / rel
            if not f.is_file() or f.stat().st_size != size:
                return None, f"{rel} is missing or changed"
        return rec, ""

    def owned_files(self, name: str) -> set:
        """Paths (relative to the folder) that ``name``'s record lists: files a run wrote."""
        try:
            return set(json.loads(self._record_path(name).read_text()).get("files", {}))
        except (OSError, ValueError, AttributeError):
            return set()

    def forget(self, name: str) -> set:
        """Drop ``name``'s record (before its outputs are replaced); returns the files it listed."""
        owned = self.owned_files(name)
        with contextlib.suppress(FileNotFoundError):
            self._record_path(name).unlink()
        return owned

    def commit(self, name: str, fp: str, record: Dict, files: Sequence[Path] = ()) -> Dict:
        """Write ``name``'s record last: the item is finished once this returns."""
        rec = dict(record, fingerprint=fp,
                   files={str(Path(f).relative_to(self.out)): Path(f).stat().st_size for f in files})
        atomic_write_text(self._record_path(name), json.dumps(rec, indent=1, default=float))
        return rec

    def publish_dir(self, tmp: Path, name: str) -> Path:
        """Move a finished temporary folder into ``name``'s place, dropping ``name``'s record
        first (:meth:`forget`; the caller commits the new one). An old folder there loses only the
        files its record listed; any other file in it is carried into the new folder (as
        ``<file>.orig`` where a new output takes its name)."""
        owned = self.forget(name)
        final = self.item_path(name)
        if final.is_dir():
            _carry_unowned(final, tmp, self.out, owned)
            shutil.rmtree(final)
        elif final.exists():
            final.rename(final.with_name(final.name + ".orig"))
        tmp.rename(final)
        return final

    # -- reports ------------------------------------------------------------------------------
    def _reports_path(self) -> Path:
        return self.state / "reports.json"

    def keep_users_reports(self, names: Iterable[str]) -> List[Path]:
        """A report file (``summary.csv``) in the folder that no run of ours wrote, or that was
        changed since, is a user's: moved aside to ``<file>.orig`` (``.orig-2``, ...) before the
        run writes its own. Returns the files moved."""
        try:
            ours = json.loads(self._reports_path().read_text())
        except (OSError, ValueError):
            if any(self.records.glob("*.json")):  # a folder of a version before reports.json: its reports are its own
                return []
            ours = {}
        moved = []
        for name in names:
            f = self.out / name
            if f.is_file() and ours.get(name) != file_key(f):
                k, dest = 1, f.with_name(f.name + ".orig")
                while dest.exists():
                    k += 1
                    dest = f.with_name(f"{f.name}.orig-{k}")
                f.rename(dest)
                logger.warning("%s was not written by af2struct (or was changed): kept as %s", f, dest.name)
                moved.append(dest)
        return moved

    def own_reports(self, names: Iterable[str]) -> None:
        """Note the report files just written as the run's own (path, size and modification time:
        a stat, not a read, as predict writes its summary after every target)."""
        ours = {n: file_key(self.out / n) for n in names if (self.out / n).is_file()}
        atomic_write_text(self._reports_path(), json.dumps(ours, indent=1))

    def recorded(self) -> Dict[str, Dict]:
        """Every item recorded in the folder (by this run or an earlier one), by name."""
        out = {}
        for path in sorted(self.records.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                rec = json.loads(path.read_text())
                if isinstance(rec, dict):
                    out[path.stem] = rec
        return out

    def set_apart(self, name: str) -> Optional[Path]:
        """Move ``name``'s finished folder aside to ``<name>.previous`` (``.previous-2``, ...)
        when a rerun of it failed: the old result is kept, and cannot pass for the new one."""
        final = self.item_path(name)
        if not final.is_dir():
            return None
        k, dest = 1, final.with_name(final.name + ".previous")
        while dest.exists():
            k += 1
            dest = final.with_name(f"{final.name}.previous-{k}")
        final.rename(dest)
        return dest


def _carry_unowned(old: Path, new: Path, root: Path, owned: set) -> None:
    """Move every file under ``old`` not in ``owned`` (relative to ``root``) to the same place under ``new``."""
    for f in sorted(old.rglob("*")):
        if f.is_dir() or str(f.relative_to(root)) in owned:
            continue
        dest = new / f.relative_to(old)
        if dest.exists():
            dest = dest.with_name(dest.name + ".orig")
            logger.warning("%s: not written by af2struct; kept as %s", f, dest.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        f.rename(dest)


def plan(folder: RunFolder, items: Sequence[Tuple[str, str]], force: bool = False, what: str = "items"
         ) -> Tuple[Dict[str, Dict], List[str]]:
    """Split ``[(name, fingerprint)]`` into finished records and names to (re)do, logging why."""
    done: Dict[str, Dict] = {}
    todo: List[str] = []
    for name, fp in items:
        rec, why = folder.finished(name, fp, force)
        if rec is not None:
            done[name] = rec
            continue
        if why:
            logger.info("%s: redone: %s", name, why)
        todo.append(name)
    if done:
        logger.info("resuming: %d of %d %s already finished (same input and options)", len(done), len(items), what)
    return done, todo


@dataclasses.dataclass(frozen=True)
class Batch:
    """What :func:`run_batch` needs to know about one command's run.

    ``items``: ``(name, fingerprint)`` of every item, in report order. ``report(folder, records,
    final)`` writes the command's reports from the records so far (``final``: the run is over;
    not-final reports come at most every ``report_every`` seconds). ``what``/``unit``: the progress
    bar's words ("relax", "structure"). ``cost``: each item's expected relative cost (predict: a
    power of the length), so the time left is not read off the short items done first."""

    out: Path
    items: Sequence[Tuple[str, str]]
    reserved: Sequence[str]
    report: Callable[[RunFolder, Dict[str, Dict], bool], None]
    what: str
    unit: str
    report_every: float = 5.0
    cost: Optional[Dict[str, float]] = None  # expected relative cost of each item: weights the time left


def progress_line(batch: "Batch", name: str, record: Dict, done: int, total: int, elapsed: float,
                  share: Optional[float] = None) -> str:
    """One line per finished item: ``relax 3/10 structures: 1abc ok; 42 s so far, about 1 min 38 s left``
    (the time left from the share of the work done so far: ``share`` in (0, 1], by the items'
    expected costs, else the share of items done)."""
    eta = f", about {_duration(time_left(elapsed, done / max(1, total) if share is None else share))} left" \
        if done < total else ""
    status = record.get("status", "")
    return f"{batch.what} {done}/{total} {batch.unit}s: {name} {status}; {_duration(elapsed)} so far{eta}"


def time_left(elapsed: float, share: float) -> float:
    """Seconds left when ``share`` of the work took ``elapsed`` seconds."""
    return elapsed * (1.0 - share) / max(share, 1e-9)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    return f"{m} min {s} s" if m < 60 else f"{m // 60} h {m % 60} min"


def closing_line(records: Sequence[Dict], clean: str, report: os.PathLike) -> str:
    """The run's last log line, one rule for predict and relax: ``"N <clean>, M with violations
    left, K failed -> report"`` (violations are named only when some structure has them: a
    model relaxed with violations left is written and counted, not a failure)."""
    unclean = sum(r.get("status") == "violations" for r in records)
    failed = failed_count(records)
    parts = [f"{len(records) - unclean - failed} {clean}"]
    if unclean:
        parts.append(f"{unclean} with violations left")
    return ", ".join(parts + [f"{failed} failed"]) + f" -> {report}"


def failed_count(records: Sequence[Dict]) -> int:
    """Items that did not finish (errors and items not reached): exit code 3 when any."""
    return sum(r.get("status") not in ("ok", "violations") for r in records)


class Finished(NamedTuple):
    """An item an executor has finished: its record (an item that failed has ``status``
    ``error``) and the output files the record lists."""

    name: str
    record: Dict
    files: Sequence[Path] = ()


#: ``executor(folder, todo)`` runs the named items and yields a :class:`Finished` for each as it
#: finishes. What happens before the first item (loading a model, starting workers) is the executor's.
Executor = Callable[[RunFolder, List[str]], Iterator[Finished]]


def run_batch(batch: Batch, executor: Executor, force: bool = False, progress: bool = True) -> Dict[str, Dict]:
    """The run loop of ``predict``, ``relax`` and ``evaluate``: plan, execute, record, report.

    Items finished before with the same fingerprint are kept (``force``: none); the executor runs
    the others; each record is committed as its item comes back; the reports are written along
    the way and always at the end, also when the run is interrupted. Returns the records by name
    (items not reached have none)."""
    fps = dict(batch.items)
    with RunFolder(batch.out, reserved=batch.reserved) as folder:
        folder.keep_users_reports(batch.reserved)

        def report(final: bool) -> None:
            batch.report(folder, records, final)
            folder.own_reports(batch.reserved)

        records, todo = plan(folder, batch.items, force, f"{batch.unit}s")
        # a bar on a terminal (None: tqdm leaves it out where stderr is a log file, which gets the
        # per-item lines below instead of a bar printed again at every update and at its close)
        bar = tqdm(total=len(todo), desc=batch.what, unit=batch.unit, disable=None if progress else True,
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        cost = {n: (batch.cost or {}).get(n, 1.0) for n in todo}
        total_cost, done_cost = sum(cost.values()), 0.0
        last = start = time.monotonic()
        running = executor(folder, todo)
        try:
            for done, (name, record, files) in enumerate(running, 1):
                records[name] = folder.commit(name, fps[name], record, files)
                done_cost += cost.get(name, 0.0)
                share, elapsed = min(1.0, done_cost / max(total_cost, 1e-9)), time.monotonic() - start
                if done < len(todo):
                    bar.set_postfix_str(f"about {_duration(time_left(elapsed, share))} left", refresh=False)
                bar.update()
                if progress:
                    logger.info("%s", progress_line(batch, name, record, done, len(todo), elapsed, share))
                if time.monotonic() - last >= batch.report_every:
                    report(False)
                    last = time.monotonic()
        finally:
            running.close()  # its workers (processes, Ray tasks) stop before the last report
            bar.close()
            report(True)
    return records

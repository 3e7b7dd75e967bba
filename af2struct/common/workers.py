"""Worker processes for a batch's items (``relax --jobs``, ``evaluate --jobs``).

:func:`run_items` runs items in worker processes: a worker that dies (e.g. killed by the
out-of-memory killer) costs only the item it held, reported as :class:`WorkerDied`; the others
go on, on a fresh worker. Workers die with the parent (Linux ``PR_SET_PDEATHSIG``) so a killed
run leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(Exception):  # Linux only; elsewhere workers end when their pipe closes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _worker(conn: mpc.Connection, parent: int, log_level: int) -> None:
    _die_with_parent(parent)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fn, args = job
        try:
            conn.send(("ok", fn(*args)))
        except Exception as exc:  # noqa: BLE001 - the item fails, the worker goes on
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class WorkerDied(RuntimeError):
    """The process working on an item died (killed, out of memory, crashed)."""


def _death(proc: mp.Process) -> WorkerDied:
    proc.join(5)
    code = proc.exitcode
    if code is not None and code < 0:
        how = f"killed by signal {-code}" + (" (SIGKILL: e.g. the out-of-memory killer)" if -code == 9 else "")
    else:
        how = f"exit code {code}"
    return WorkerDied(f"the worker process died ({how})")


def run_items(fn: Callable, jobs_args: Sequence[Tuple], jobs: int = 1) -> Iterator[Tuple[int, Any]]:
    """Run ``fn(*args)`` for each ``args``; yields ``(index, result)`` as items finish.

    A result is an exception (``WorkerDied`` or the item's own error, as ``RuntimeError``) when an
    item failed; nothing is raised for one item. ``jobs > 1`` runs items in that many worker
    processes (``fn`` must be a module-level function); ``jobs <= 1`` runs them here.
    """
    if jobs <= 1 or len(jobs_args) <= 1:
        for i, args in enumerate(jobs_args):
            try:
                yield i, fn(*args)
            except Exception as exc:  # noqa: BLE001
                yield i, RuntimeError(f"{type(exc).__name__}: {exc}")
        return
    ctx = mp.get_context("spawn")
    queue = list(range(len(jobs_args)))[::-1]
    busy: Dict[mpc.Connection, Tuple[mp.Process, int]] = {}
    idle: List[Tuple[mpc.Connection, mp.Process]] = []
    level = logging.getLogger().getEffectiveLevel()

    def start() -> Tuple[mpc.Connection, mp.Process]:
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(there, os.getpid(), level), daemon=True)
        proc.start()
        there.close()
        return here, proc

    workers = [start() for _ in range(min(jobs, len(queue)))]
    idle.extend(workers)
    try:
        while queue or busy:
            while queue and idle:
                conn, proc = idle.pop()
                i = queue.pop()
                try:
                    conn.send((fn, jobs_args[i]))
                except OSError:  # the worker died while idle: give the item to a fresh one
                    queue.append(i)
                    idle.append(start())
                    continue
                busy[conn] = (proc, i)
            for conn in mpc.wait(list(busy)):
                proc, i = busy.pop(conn)
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):
                    conn.close()
                    yield i, _death(proc)
                    if queue:
                        idle.append(start())
                    continue
                idle.append((conn, proc))
                yield i, (value if kind == "ok" else RuntimeError(value))
    finally:
        for conn, proc in idle + [(c, p) for c, (p, _) in busy.items()]:
            with contextlib.suppress(OSError):
                conn.send(None)
        for conn, proc in idle + [(c, p) for c, (p, _) in busy.items()]:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()

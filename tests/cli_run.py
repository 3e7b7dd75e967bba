"""Run a command of ``af2struct`` as the scripts do, inside the test process.

A test of what a command does (its outputs, errors, resume, exit codes) runs it here: no new
interpreter importing torch and OpenMM again (~3 s each), and the model and databases read once
per test session. The command line itself (entry scripts, signals, kills, two processes on one
folder, nothing written into the home folder) is tested with real subprocesses, by
``scripts(...)``.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def empty_home_env(home: Path) -> dict:
    """The environment with ``home`` (an empty folder) as the home folder and no cache or config
    folder named elsewhere: whatever a command would write there lands in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HOME=str(home), USERPROFILE=str(home))
    for key in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env.pop(key, None)
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(command: str, *args, quiet: bool = True) -> Result:
    """``af2struct <command> args... [--quiet]`` in this process: exit code, standard output and
    what a user would see on standard error (log lines as the command formats them, argparse's
    messages). An exception escaping the command fails the test with its traceback, as a
    traceback on the console would."""
    from af2struct.cli import run_command

    argv = [str(a) for a in args] + (["--quiet"] if quiet else [])
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)  # before the command's basicConfig, which then adds nothing
    root.setLevel(logging.INFO)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = run_command(command, argv)
            except SystemExit as exc:  # argparse errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return Result(code, out.getvalue(), err.getvalue())


def script(name: str, *args, timeout: float = 900, quiet: bool = True, env=None) -> Result:
    """``python scripts/<name>.py args...`` in a new process (the command line itself)."""
    argv = [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *map(str, args)] + (["--quiet"] if quiet else [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return Result(r.returncode, r.stdout, r.stderr)

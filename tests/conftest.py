"""Shared test fixtures: paths to the small real structures kept in tests/fixtures.

The tests run with HOME (and ProDy's USERPROFILE) in a temporary folder, so nothing they or the
packages they import write (sidechainnet's ProDy writes ``~/.prodyrc`` on import) lands in the
user's home folder.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "fixtures"

# One OpenMP thread for torch (and OpenBLAS) in the test process and in every command it starts
# (set before anything imports torch). The tests' tensors are small: on 2 cores a second thread
# mostly spins at barriers (tests/model: 88 CPU-s with two threads, 64 with one). Subprocesses
# inherit it, so a command run here and one run as its own program compute the same digits.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads_kept():
    """A test that sets torch's thread count (the train command's ``--threads``) does not leave it
    changed for the tests after it."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)


def pytest_configure(config):
    home = tempfile.mkdtemp(prefix="af2struct-test-home-")
    config._af2struct_home = (home, os.environ.get("HOME"), os.environ.get("USERPROFILE"))
    os.environ["HOME"] = os.environ["USERPROFILE"] = home


def pytest_unconfigure(config):
    home, old_home, old_profile = getattr(config, "_af2struct_home", (None, None, None))
    if home is None:
        return
    for key, old in (("HOME", old_home), ("USERPROFILE", old_profile)):
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def real_structures() -> list:
    """Small real chains: 1PSM (38 res, NMR), 1AKI (129 res, X-ray), CASP14 T1082 and T1031."""
    return [DATA / "openfold_1psm_A.pdb.gz", DATA / "biotite_1aki_A.pdb.gz", DATA / "T1082.pdb", DATA / "T1031.pdb"]

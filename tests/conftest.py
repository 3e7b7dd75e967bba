"""Shared test fixtures: paths to the small real structures kept in tests/data."""

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def real_structures() -> list:
    """Small real chains: 1PSM (38 res, NMR), 1AKI (129 res, X-ray), CASP14 T1082 and T1031."""
    return [DATA / "openfold_1psm_A.pdb.gz", DATA / "biotite_1aki_A.pdb.gz", DATA / "T1082.pdb", DATA / "T1031.pdb"]

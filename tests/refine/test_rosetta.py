"""The PyRosetta backend against the real PyRosetta; runs only where ``import pyrosetta`` works."""

import numpy as np
import pytest

pyrosetta = pytest.importorskip("pyrosetta")

from af2struct import load_structure  # noqa: E402
from refine import RelaxConfig, relax  # noqa: E402


def test_fastrelax_keeps_structure(real_structures):
    nat = load_structure(real_structures[2])
    r = relax(nat, RelaxConfig(backend="rosetta"))
    assert r.backend == "rosetta" and r.energy_unit == "REU"
    assert r.final_energy <= r.initial_energy
    assert r.protein.sequence == nat.sequence and np.array_equal(r.protein.residue_index, nat.residue_index)
    assert r.rmsd_heavy < 1.0

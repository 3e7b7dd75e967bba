"""Side-chain packing before the model is written: clashes go, clash-free side chains stay."""

from pathlib import Path

import numpy as np
import pytest

from af2struct.common import residue_constants as rc
from af2struct.common.io import load_structure
from af2struct.geometry.angles import chi_angles
from af2struct.geometry.decode import decode_structure, outputs_to_protein
from af2struct.geometry.packing import pack_side_chains
from af2struct.geometry.stereo import find_clashes

DATA = Path(__file__).resolve().parents[1] / "fixtures"
FIXED = {"N", "CA", "C", "O", "CB"}


@pytest.fixture(scope="module")
def native():
    p = load_structure(DATA / "T1031.pdb")
    bb = p.atom_positions[:, [rc.atom_order[a] for a in ("N", "CA", "C")]].astype(np.float64)
    chi, _ = chi_angles(p)
    return p, bb, chi.astype(np.float64)


def _side_chain_clashes(aatype, backbone, chi):
    """Clashes (find_clashes, the violation model's own count) with a moving side-chain atom."""
    protein = outputs_to_protein(aatype, backbone, chi, np.full(len(aatype), 50.0))
    return [c for c in find_clashes(protein) if c.atom_a not in FIXED or c.atom_b not in FIXED]


def test_clash_free_side_chains_keep_the_predicted_chi(native):
    p, bb, chi = native
    clashing = set()
    for c in _side_chain_clashes(p.aatype, bb, chi):
        clashing.update(r for r, a in ((c.residue_a, c.atom_a), (c.residue_b, c.atom_b)) if a not in FIXED)
    packed = pack_side_chains(p.aatype, bb, chi)
    changed = set(np.nonzero(np.abs(packed - chi).max(1) > 1e-9)[0].tolist())
    assert changed <= clashing  # only side chains in a clash are turned
    assert len(changed) <= 0.1 * len(p)  # a native (rebuilt ideally) needs almost nothing


def test_packing_turns_clashing_side_chains_out_of_the_way(native):
    p, bb, chi = native
    rng = np.random.default_rng(0)
    bad = chi.copy()
    bad[:, :2] += rng.choice([-1.0, 1.0], size=(len(p), 2)) * np.radians(rng.uniform(60, 180, size=(len(p), 2)))
    before = len(_side_chain_clashes(p.aatype, bb, bad))
    packed = pack_side_chains(p.aatype, bb, bad)
    after = len(_side_chain_clashes(p.aatype, bb, packed))
    assert before > 40
    assert after <= 0.1 * before
    np.testing.assert_array_equal(packed, pack_side_chains(p.aatype, bb, bad))  # deterministic
    # chi3/chi4 stay as predicted; decode_structure applies the same packing
    np.testing.assert_array_equal(packed[:, 2:], bad[:, 2:])
    decoded = decode_structure(p.aatype, bb, bad, np.full(len(p), 50.0), clean=False)
    expected = outputs_to_protein(p.aatype, bb, packed, np.full(len(p), 50.0))
    np.testing.assert_allclose(decoded.atom_positions, expected.atom_positions, atol=1e-5)

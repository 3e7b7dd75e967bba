import numpy as np
import pytest

from af2struct import load_structure
from af2struct.common import layouts
from af2struct.common import residue_constants as rc


@pytest.mark.parametrize("to,back", [
    (layouts.atom37_to_atom14, layouts.atom14_to_atom37),
    (layouts.atom37_to_scn14, layouts.scn14_to_atom37),
])
def test_atom37_round_trip(real_structures, to, back):
    for path in real_structures:
        p = load_structure(path)
        pos14, m14 = to(p.aatype, p.atom_positions, p.atom_mask)
        assert pos14.shape == (len(p), 14, 3)
        pos37, m37 = back(p.aatype, pos14, m14)
        heavy = p.atom_mask.copy()
        heavy[:, rc.atom_order["OXT"]] = 0  # no OXT slot in 14-atom layouts
        assert np.array_equal(m37, heavy)
        assert np.array_equal(pos37 * heavy[..., None], p.atom_positions * heavy[..., None])


def test_atom14_scn14_both_ways(real_structures):
    p = load_structure(real_structures[1])
    a14, m14 = layouts.atom37_to_atom14(p.aatype, p.atom_positions, p.atom_mask)
    s14, ms = layouts.atom14_to_scn14(p.aatype, a14, m14)
    b14, mb = layouts.scn14_to_atom14(p.aatype, s14, ms)
    assert np.array_equal(a14, b14) and np.array_equal(m14, mb)
    # the layouts differ for branched residues: PHE's CD2 is slot 7 in atom14 and 10 in SCN
    phe = int(np.nonzero(p.aatype == rc.restype_order["F"])[0][0])
    assert np.allclose(a14[phe, 7], s14[phe, 10])


def test_batched(real_structures):
    p = load_structure(real_structures[0])
    aat = np.stack([p.aatype, p.aatype])
    pos = np.stack([p.atom_positions] * 2)
    m = np.stack([p.atom_mask] * 2)
    pos14, m14 = layouts.atom37_to_atom14(aat, pos, m)
    assert pos14.shape == (2, len(p), 14, 3)
    pos37, _ = layouts.atom14_to_atom37(aat, pos14, m14)
    assert np.allclose(pos37[1, :, :36], p.atom_positions[:, :36])

import numpy as np
import pytest

from af2struct import Protein, ProteinError, load_structure


def _arrays(n=3):
    return dict(
        aatype=np.zeros(n, np.int32),
        atom_positions=np.zeros((n, 37, 3), np.float32),
        atom_mask=np.zeros((n, 37), np.float32),
        residue_index=np.arange(n, dtype=np.int32),
    )


def test_frozen_and_readonly(real_structures):
    p = load_structure(real_structures[0])
    with pytest.raises(Exception):
        p.aatype = np.zeros(3)
    with pytest.raises(ValueError):
        p.atom_positions[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    "change,msg",
    [
        ({"aatype": np.zeros((3, 1), np.int32)}, "aatype must be"),
        ({"aatype": np.zeros(3, np.float32)}, "integer"),
        ({"aatype": np.full(3, 25, np.int32)}, "values"),
        ({"atom_positions": np.zeros((3, 14, 3), np.float32)}, "atom_positions"),
        ({"atom_mask": np.full((3, 37), 0.5, np.float32)}, "only 0 and 1"),
        ({"residue_index": np.zeros(2, np.int32)}, "residue_index"),
        ({"b_factors": np.zeros((3, 14), np.float32)}, "b_factors"),
        ({"chain_id": ""}, "chain_id"),
    ],
)
def test_validation(change, msg):
    kw = _arrays()
    kw.update(change)
    with pytest.raises(ProteinError, match=msg):
        Protein(**kw)


def test_nan_coordinates_rejected_where_present():
    kw = _arrays()
    kw["atom_mask"][1, 1] = 1
    kw["atom_positions"][1, 1] = np.nan
    with pytest.raises(ProteinError, match="non-finite"):
        Protein(**kw)
    kw["atom_mask"][1, 1] = 0  # NaN on an absent atom is fine (stored as zero)
    assert np.isfinite(Protein(**kw).atom_positions).all()


def test_select_and_b_factors(real_structures):
    p = load_structure(real_structures[1])
    q = p.select(np.arange(10, 20)).with_residue_b_factors(np.linspace(0, 100, 10))
    assert len(q) == 10 and q.residue_index[0] == p.residue_index[10]
    assert np.allclose(q.residue_b_factors, np.linspace(0, 100, 10))
    assert q.sequence == p.sequence[10:20]


def test_non_finite_coordinates_name_the_residue(data_dir):
    import numpy as np
    import pytest

    from af2struct import load_structure
    from af2struct.common.protein import ProteinError

    p = load_structure(data_dir / "T1082.pdb")
    pos = p.atom_positions.copy()
    pos[3, 1] = np.nan
    with pytest.raises(ProteinError, match=r"non-finite coordinates in residue\(s\) LYS A26"):
        p.replace(atom_positions=pos)

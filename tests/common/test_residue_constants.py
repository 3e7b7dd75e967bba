import pytest

from af2struct.common import residue_constants as rc


def test_tables_consistent():
    assert len(rc.atom_types) == 37 and len(set(rc.atom_types)) == 37
    assert len(rc.restypes) == 20 and rc.restypes == list("ARNDCQEGHILKMFPSTWYV")
    for res, names in rc.restype_name_to_atom14_names.items():
        assert len(names) == 14
        scn = rc.restype_name_to_scn14_names[res]
        assert sorted(a for a in names if a) == sorted(a for a in scn if a)
        assert all(a in rc.atom_order for a in names if a)
    # heavy-atom counts of a few residues
    assert rc.restype_atom37_mask()[rc.restype_order["W"]].sum() == 14
    assert rc.restype_atom37_mask()[rc.restype_order["G"]].sum() == 4


def test_scn_order_matches_sidechainnet_package():
    from sidechainnet.structure.build_info import SC_BUILD_INFO

    for res, info in SC_BUILD_INFO.items():
        ours = [a for a in rc.restype_name_to_scn14_names[res][4:] if a]
        assert ours == list(info["atom-names"]), res


def test_sequence_to_aatype_and_errors():
    assert rc.aatype_to_sequence(rc.sequence_to_aatype("acd e\n")) == "ACDE"
    # X, B, Z, J: unknown (as AlphaFold and ColabFold read them); U as C, O as K
    assert rc.aatype_to_sequence(rc.sequence_to_aatype("XBZJUOa")) == "XXXXCKA"
    with pytest.raises(rc.SequenceError, match=r"'1' at 2.*'\*' at 4"):
        rc.sequence_to_aatype("A1C*")
    with pytest.raises(rc.SequenceError, match="empty"):
        rc.sequence_to_aatype("  \n ")
    assert rc.sequence_to_aatype("A-", allow_unknown=True).tolist() == [0, 20]

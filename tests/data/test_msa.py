import numpy as np
import pytest

from af2struct.data.msa import MsaError, parse_a3m, parse_fasta, read_msa


def test_a3m_real(data_dir):
    msa = read_msa(data_dir / "1psm_A.a3m")
    assert len(msa) == 12 and msa.query == "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"
    assert all(len(s) == 38 for s in msa.sequences)
    assert msa.deletion_matrix.shape == (12, 38) and msa.deletion_matrix.sum() > 0
    prof = msa.profile()
    assert prof.shape == (38, 21) and np.allclose(prof[:, :20].sum(-1), 1)
    msa.check_query("EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK")
    with pytest.raises(MsaError, match="does not match"):
        msa.check_query("EAYKK")


def test_stockholm_real(data_dir):
    msa = read_msa(data_dir / "1psm_A.sto")
    assert msa.query == "EAYKKAKQASQDAEQAAKDAENASKEAEEAAKEAVNLK"
    assert all(len(s) == 38 for s in msa.sequences) and len(msa) > 1
    arr = msa.to_array()
    assert arr.shape == (len(msa), 38) and arr.max() <= 21


def test_a3m_insertions():
    msa = parse_a3m(">q\nACDE\n>s\nAxxC-E\n")
    assert msa.sequences == ("ACDE", "AC-E") and msa.deletion_matrix[1].tolist() == [0, 2, 0, 0]


@pytest.mark.parametrize("text,msg", [
    ("ACDE\n", "before the first"),
    (">\nACDE\n", "no name"),
    (">a\n\n>b\nAC\n", "empty sequence"),
    ("", "no FASTA records"),
])
def test_bad_fasta(text, msg):
    with pytest.raises(MsaError, match=msg):
        parse_fasta(text)


def test_bad_a3m():
    with pytest.raises(MsaError, match="match columns"):
        parse_a3m(">q\nACDE\n>s\nAC\n")
    with pytest.raises(MsaError, match="not residues"):
        parse_a3m(">q\nAC1E\n")


def test_an_msa_of_another_query_names_the_first_difference():
    import pytest

    from af2struct.data.msa import MsaError, parse_a3m

    msa = parse_a3m(">q\nEAYKKAKQASQDAEQ\n>h\nEAYKRAKQASQ-AEQ\n")
    with pytest.raises(MsaError, match=r"first difference at residue 6: 'A' in the MSA, 'W' in the sequence"):
        msa.check_query("EAYKKWKQASQDAEQ")
    with pytest.raises(MsaError, match="prefix"):
        msa.check_query("EAYKKAKQASQDAEQGG")
